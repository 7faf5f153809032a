#include "process/registry.hpp"

#include <map>
#include <mutex>
#include <stdexcept>

namespace zproc::process_detail {
namespace {

struct tables {
  std::mutex m;
  std::map<const void*, detail::target_info> by_address;
  std::map<std::string, const void*> by_name;
  std::map<std::string, detail::exception_matcher> matchers;
};
tables& get() {
  static tables t;  // constructed on first use: registration happens during static init
  return t;
}

}  // namespace

const detail::target_info& target_at(const void* fn) {
  auto& t = get();
  std::lock_guard lock(t.m);
  auto it = t.by_address.find(fn);
  if (it == t.by_address.end())
    throw std::invalid_argument(
        "zproc: spawn() of a function that is not a target: register it with "
        "ZPROC_TARGET(name) at namespace scope, after its definition");
  return it->second;
}

const detail::target_info* target_named(const std::string& name) {
  auto& t = get();
  std::lock_guard lock(t.m);
  auto it = t.by_name.find(name);
  return it == t.by_name.end() ? nullptr : &t.by_address.at(it->second);
}

bool exception_matches(const std::exception_ptr& e, const std::vector<std::string>& types) {
  auto& t = get();
  for (const auto& name : types) {
    detail::exception_matcher match = nullptr;
    {
      std::lock_guard lock(t.m);
      if (auto it = t.matchers.find(name); it != t.matchers.end()) match = it->second;
    }
    if (match && match(e)) return true;
  }
  return false;
}

}  // namespace zproc::process_detail

namespace zproc::detail {

int register_target(const void* fn, target_info info) {
  auto& t = process_detail::get();
  std::lock_guard lock(t.m);
  const std::string name = info.name;
  if (auto it = t.by_name.find(name); it != t.by_name.end() && it->second != fn)
    throw std::logic_error("zproc: two targets registered as '" + name + "'");
  t.by_name[name] = fn;
  t.by_address.insert_or_assign(fn, std::move(info));
  return static_cast<int>(t.by_address.size());
}

int register_exception_matcher(const char* type_name, exception_matcher match) {
  auto& t = process_detail::get();
  std::lock_guard lock(t.m);
  t.matchers.emplace(type_name, match);
  return static_cast<int>(t.matchers.size());
}

}  // namespace zproc::detail
