#include "protocol/ops.hpp"

#include <zproc/error.hpp>
#include <zproc/transaction.hpp>

#include <algorithm>
#include <array>

namespace zproc::protocol {

namespace {

/// The ops grouped by the length of their names, for a lookup that compares the few names of
/// the right length (a request's op is read for every request). Built at compile time: no
/// heap, nothing destroyed at exit while another thread may still parse a request.
struct by_length {
  static constexpr std::size_t longest = 16;
  std::array<op_traits, op_count> sorted{};
  std::array<std::size_t, longest + 2> start{};  // names of length n: [start[n], start[n + 1])

  constexpr by_length() {
    for (const auto& t : ops) ++start[t.name.size() + 1];
    for (std::size_t n = 1; n < start.size(); ++n) start[n] += start[n - 1];
    auto next = start;
    for (const auto& t : ops) sorted[next[t.name.size()]++] = t;
  }
};
static_assert([] {
  for (const auto& t : ops)
    if (t.name.empty() || t.name.size() > by_length::longest) return false;
  return true;
}(), "an op's name is empty or longer than by_length::longest");
constexpr by_length names_by_length{};

}  // namespace

std::optional<op> parse_op(std::string_view name) noexcept {
  if (name.empty() || name.size() > by_length::longest) return std::nullopt;
  const auto& t = names_by_length;
  for (std::size_t i = t.start[name.size()]; i < t.start[name.size() + 1]; ++i)
    if (t.sorted[i].name.front() == name.front() && t.sorted[i].name == name)
      return t.sorted[i].code;
  return std::nullopt;
}

std::optional<predicate> parse_predicate(std::string_view name) noexcept {
  for (std::size_t i = 0; i < predicate_names.size(); ++i)
    if (predicate_names[i] == name) return static_cast<predicate>(i);
  return std::nullopt;
}

std::optional<op> op_of(const json& request) noexcept {
  if (!request.is_object()) return std::nullopt;
  auto it = request.find(field::op);
  if (it == request.end() || !it->is_string()) return std::nullopt;
  return parse_op(it->get_ref<const std::string&>());
}

json make(op o) {
  json r = json::object();
  r[field::op] = name(o);
  return r;
}

json make(op o, const std::string& ns) {
  json r = make(o);
  r[field::ns] = ns;
  return r;
}

json cancel_request(std::uint64_t target, const std::string& ns) {
  json r = make(op::cancel);
  r[field::target] = target;
  if (!ns.empty()) r[field::ns] = ns;
  return r;
}

packed_request more_request(std::uint64_t target, std::uint64_t credit, std::string_view ns) {
  packed_request r;
  r.code = op::more;
  r.add_string(field::op, name(op::more));
  if (!ns.empty()) r.add_string(field::ns, ns);
  r.add_unsigned(field::target, target);
  r.add_unsigned(field::credit, credit);
  return r;
}

json read_request(const std::string& ns, const std::vector<std::string>& keys) {
  json r = make(op::read, ns);
  if (!keys.empty()) r[field::keys] = keys;
  return r;
}

json lock_request(const std::string& ns, const std::vector<std::string>& keys) {
  json r = make(op::lock, ns);
  r[field::read_result] = true;
  if (!keys.empty()) r[field::keys] = keys;
  return r;
}

const json* lock_grant_read(const json& grant) {
  if (!grant.is_object()) return nullptr;
  auto it = grant.find(field::read_result);
  return it == grant.end() ? nullptr : &*it;
}

json commit_request(const std::string& ns, std::uint64_t handle, bool keys_declared,
                    const json& read_reply, const json& changed) {
  if (!changed.is_object())
    throw zproc::error(server_errc::wrong_type, "atomic(): the snapshot must stay a JSON object");
  const json& original = read_reply.at(field::data);
  json set = json::object();
  json del = json::array();
  for (const auto& [k, v] : changed.items()) {
    auto it = original.find(k);
    if (it == original.end() || *it != v) set[k] = v;
  }
  for (const auto& [k, v] : original.items())
    if (!changed.contains(k)) del.push_back(k);
  json r = make(op::commit, ns);
  r[field::handle] = handle;
  if (keys_declared) {
    r[field::mods] = read_reply.at(field::mods);  // the body saw these keys only
  } else {
    r[field::base] = read_reply.at(field::rev);  // the body saw the whole namespace
  }
  r[field::set] = std::move(set);
  r[field::del] = std::move(del);
  return r;
}

}  // namespace zproc::protocol

// --- zproc/transaction.hpp: the compares and operations of a txn, as they travel ----------------

namespace zproc {

namespace {

json make_compare(std::string key, std::string_view test, json value) {
  json c = json::object();
  c[protocol::field::key] = std::move(key);
  c[protocol::field::test] = test;
  c[protocol::field::value] = std::move(value);
  return c;
}

json txn_op(protocol::op o, std::string key, json value) {
  json r = protocol::make(o);
  r[protocol::field::key] = std::move(key);
  if (!value.is_discarded()) r[protocol::field::value] = std::move(value);
  return r;
}

const json no_value(json::value_t::discarded);

}  // namespace

namespace test = protocol::compare_test;
using protocol::op;

json txn::equal(std::string key, json value) {
  return make_compare(std::move(key), test::equal, std::move(value));
}
json txn::not_equal(std::string key, json value) {
  return make_compare(std::move(key), test::not_equal, std::move(value));
}
json txn::exists(std::string key) { return make_compare(std::move(key), test::exists, nullptr); }
json txn::absent(std::string key) { return make_compare(std::move(key), test::absent, nullptr); }
json txn::modified_at(std::string key, std::uint64_t revision) {
  return make_compare(std::move(key), test::modified_at, revision);
}
json txn::modified_before(std::string key, std::uint64_t revision) {
  return make_compare(std::move(key), test::modified_before, revision);
}
json txn::modified_after(std::string key, std::uint64_t revision) {
  return make_compare(std::move(key), test::modified_after, revision);
}

json txn::set(std::string key, json value) { return txn_op(op::set, std::move(key), std::move(value)); }
json txn::erase(std::string key) { return txn_op(op::del, std::move(key), no_value); }
json txn::increment(std::string key, json delta) {
  return txn_op(op::incr, std::move(key), std::move(delta));
}
json txn::append(std::string key, json value) {
  return txn_op(op::append, std::move(key), std::move(value));
}
json txn::get(std::string key) { return txn_op(op::get, std::move(key), no_value); }

}  // namespace zproc
