#include "server/store.hpp"

#include "protocol/message.hpp"

#include <unordered_map>

namespace zproc::server_detail {

namespace field = protocol::field;

namespace {

/// Thrown inside an operation to become an error outcome; never escapes execute().
struct op_failure {
  server_errc code;
  std::string message;
};

[[noreturn]] void fail(server_errc code, std::string message) {
  throw op_failure{code, std::move(message)};
}

std::string quote(std::string_view s) {
  std::string q;
  q.reserve(s.size() + 2);
  q += '\'';
  q += s;
  q += '\'';
  return q;
}

/// The arguments of one request, checked on access.
class args {
 public:
  explicit args(const json& req) : req_(req) {}

  const std::string& key() const {
    auto it = req_.find(field::key);
    if (it == req_.end()) fail(server_errc::bad_request, "missing key (field 'k')");
    if (!it->is_string())
      fail(server_errc::bad_request,
           std::string("the key must be a string, not ") + it->type_name());
    return it->get_ref<const std::string&>();
  }
  const json& value() const {
    auto it = req_.find(field::value);
    if (it == req_.end()) fail(server_errc::bad_request, "missing value (field 'v')");
    return *it;
  }
  const json& object_value(std::string_view op) const {
    const json& v = value();
    if (!v.is_object())
      fail(server_errc::wrong_type, std::string(op) + " needs a JSON object, not " +
                                        v.type_name());
    return v;
  }
  const json* fallback() const {
    auto it = req_.find(field::fallback);
    return it == req_.end() ? nullptr : &*it;
  }

 private:
  const json& req_;
};

/// An operation: reads or writes one namespace. Writes bump the revision.
struct op_env {
  namespace_state& ns;
  const std::string& ns_name;
  const args& a;
  bool wrote = false;

  void write() { wrote = true; }
  [[noreturn]] void missing(const std::string& key) const {
    fail(server_errc::key_not_found,
         "key " + quote(key) + " not found in namespace " + quote(ns_name));
  }
};

using op_fn = json (*)(op_env&);

json op_get(op_env& e) {
  const auto& key = e.a.key();
  auto it = e.ns.data.find(key);
  if (it != e.ns.data.end()) return *it;
  if (const json* d = e.a.fallback()) return *d;
  e.missing(key);
}

json op_set(op_env& e) {
  // Check every argument before touching the namespace: a bad request changes nothing.
  const auto& key = e.a.key();
  const json& value = e.a.value();
  e.ns.data[key] = value;
  e.write();
  return nullptr;
}

json op_del(op_env& e) {
  const auto& key = e.a.key();
  auto it = e.ns.data.find(key);
  if (it == e.ns.data.end()) e.missing(key);
  e.ns.data.erase(it);
  e.write();
  return nullptr;
}

json op_contains(op_env& e) { return e.ns.data.contains(e.a.key()); }
json op_size(op_env& e) { return e.ns.data.size(); }

json op_keys(op_env& e) {
  json out = json::array();
  out.get_ref<json::array_t&>().reserve(e.ns.data.size());
  for (const auto& [k, v] : e.ns.data.items()) out.push_back(k);
  return out;
}

json op_values(op_env& e) {
  json out = json::array();
  out.get_ref<json::array_t&>().reserve(e.ns.data.size());
  for (const auto& [k, v] : e.ns.data.items()) out.push_back(v);
  return out;
}

json op_items(op_env& e) {
  json out = json::array();
  out.get_ref<json::array_t&>().reserve(e.ns.data.size());
  for (const auto& [k, v] : e.ns.data.items()) out.push_back(json::array({k, v}));
  return out;
}

json op_update(op_env& e) {
  const json& v = e.a.object_value("update");
  for (const auto& [k, val] : v.items()) e.ns.data[k] = val;
  e.write();
  return nullptr;
}

json op_pop(op_env& e) {
  const auto& key = e.a.key();
  auto it = e.ns.data.find(key);
  if (it == e.ns.data.end()) {
    if (const json* d = e.a.fallback()) return *d;
    e.missing(key);
  }
  json out = std::move(*it);
  e.ns.data.erase(it);
  e.write();
  return out;
}

json op_popitem(op_env& e) {
  auto& obj = e.ns.data.get_ref<json::object_t&>();
  if (obj.empty())
    fail(server_errc::empty_namespace, "popitem(): namespace " + quote(e.ns_name) + " is empty");
  // The last key in key order: O(log n), like every other write.
  auto it = std::prev(obj.end());
  json out = json::array({it->first, std::move(it->second)});
  obj.erase(it);
  e.write();
  return out;
}

json op_setdefault(op_env& e) {
  const auto& key = e.a.key();
  const json* d = e.a.fallback();
  auto it = e.ns.data.find(key);
  if (it != e.ns.data.end()) return *it;
  json v = d ? *d : json(nullptr);
  e.ns.data[key] = v;
  e.write();
  return v;
}

json op_clear(op_env& e) {
  e.ns.data = json::object();
  e.write();
  return nullptr;
}

json op_copy(op_env& e) { return e.ns.data; }

json op_replace(op_env& e) {
  e.ns.data = e.a.object_value("replace");
  e.write();
  return nullptr;
}

json op_revision(op_env& e) { return e.ns.revision; }

struct op_info {
  op_fn fn;
  bool may_write;
  bool returns_revision = false;  // the result is the revision after the write
};

const std::unordered_map<std::string_view, op_info>& op_table() {
  static const std::unordered_map<std::string_view, op_info> table{
      {"get", {op_get, false}},
      {"set", {op_set, true, true}},
      {"del", {op_del, true, true}},
      {"contains", {op_contains, false}},
      {"size", {op_size, false}},
      {"keys", {op_keys, false}},
      {"values", {op_values, false}},
      {"items", {op_items, false}},
      {"update", {op_update, true, true}},
      {"pop", {op_pop, true}},
      {"popitem", {op_popitem, true}},
      {"setdefault", {op_setdefault, true}},
      {"clear", {op_clear, true, true}},
      {"copy", {op_copy, false}},
      {"replace", {op_replace, true, true}},
      {"revision", {op_revision, false}},
  };
  return table;
}

outcome error_outcome(server_errc code, std::string message) {
  outcome o;
  o.error = code;
  o.message = std::move(message);
  return o;
}

}  // namespace

const namespace_state* store::find(std::string_view ns) const {
  auto it = namespaces_.find(std::string(ns));
  return it == namespaces_.end() ? nullptr : &it->second;
}

namespace_state& store::get_or_create(const std::string& ns) { return namespaces_[ns]; }

outcome store::execute(const json& request, const request_context& /*ctx*/) {
  if (!request.is_object()) return error_outcome(server_errc::bad_request, "a request must be a map");
  auto op_it = request.find(field::op);
  if (op_it == request.end() || !op_it->is_string())
    return error_outcome(server_errc::bad_request, "missing operation name (field 'o')");
  const auto& op = op_it->get_ref<const std::string&>();

  if (op == "ping") {
    outcome o;
    o.result = server_pid_;
    return o;
  }

  const auto& table = op_table();
  auto fn_it = table.find(op);
  if (fn_it == table.end())
    return error_outcome(server_errc::unknown_op, "unknown operation " + quote(op));

  auto ns_it = request.find(field::ns);
  if (ns_it == request.end() || !ns_it->is_string())
    return error_outcome(server_errc::bad_request, "missing namespace (field 'n')");
  const auto& ns_name = ns_it->get_ref<const std::string&>();

  // Reads of a namespace nobody wrote do not create it.
  namespace_state empty;
  namespace_state* ns = nullptr;
  if (fn_it->second.may_write) {
    ns = &get_or_create(ns_name);
  } else {
    auto it = namespaces_.find(ns_name);
    ns = it == namespaces_.end() ? &empty : &it->second;
  }

  const args a(request);
  op_env env{*ns, ns_name, a};
  outcome o;
  try {
    o.result = fn_it->second.fn(env);
  } catch (op_failure& f) {
    return error_outcome(f.code, std::move(f.message));
  } catch (const std::exception& ex) {
    return error_outcome(server_errc::internal, ex.what());
  }
  if (env.wrote) ++ns->revision;
  if (fn_it->second.returns_revision) o.result = ns->revision;
  o.revision = ns->revision;
  o.has_revision = true;
  return o;
}

}  // namespace zproc::server_detail
