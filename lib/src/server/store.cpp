#include "server/store.hpp"

#include "protocol/message.hpp"
#include "protocol/msgpack.hpp"
#include "protocol/ops.hpp"
#include "protocol/value_check.hpp"
#include "server/op_error.hpp"

#include <algorithm>
#include <chrono>
#include <iterator>
#include <limits>
#include <optional>
#include <string_view>
#include <unordered_map>

namespace zproc::server_detail {

namespace field = protocol::field;
namespace test = protocol::compare_test;
using protocol::op;

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

}  // namespace

/// What an operation reads of its request: a json request's fields, or a flat one's
/// (protocol::store_request, for the ops of protocol::flat_store_op: they read no other field).
class store_args {
 public:
  explicit store_args(const json& req) : req_(&req) {}
  explicit store_args(const protocol::store_request& req) : flat_(&req) {}

  const std::string& key() const {
    if (flat_) {
      if (!flat_->key) fail(server_errc::bad_request, "missing key (field 'k')");
      return *flat_->key;
    }
    auto it = req_->find(field::key);
    if (it == req_->end()) fail(server_errc::bad_request, "missing key (field 'k')");
    if (!it->is_string())
      fail(server_errc::bad_request,
           std::string("the key must be a string, not ") + it->type_name());
    return it->get_ref<const std::string&>();
  }
  const json& value() const {
    const json* v = value_if();
    if (!v) fail(server_errc::bad_request, "missing value (field 'v')");
    return *v;
  }
  /// The value, or nullptr if the request has none.
  const json* value_if() const {
    if (flat_) return flat_->value ? &*flat_->value : nullptr;
    auto it = req_->find(field::value);
    return it == req_->end() ? nullptr : &*it;
  }
  const json& object_value(std::string_view op_name) const {
    const json& v = value();
    if (!v.is_object())
      fail(server_errc::wrong_type, std::string(op_name) + " needs a JSON object, not " +
                                        v.type_name());
    return v;
  }
  /// The whole request (a json request's: no flat op reads it).
  const json& raw() const {
    if (flat_) fail(server_errc::internal, "a flat request has no json form");
    return *req_;
  }
  const json* fallback() const {
    if (flat_) return flat_->fallback ? &*flat_->fallback : nullptr;
    auto it = req_->find(field::fallback);
    return it == req_->end() ? nullptr : &*it;
  }

 private:
  const json* req_ = nullptr;
  const protocol::store_request* flat_ = nullptr;
};

namespace {

/// An operation: reads or writes one namespace. Writes bump the revision.
struct op_env {
  namespace_state& ns;
  const std::string& ns_name;
  const store_args& a;
  const request_context& ctx;
  bool wrote = false;
  key_changes changes;

  /// Records that `key` becomes `after` (empty: erased), *before* the namespace changes: a copy
  /// that fails here has changed nothing. The caller then moves the key's value, if it had one,
  /// out of the namespace into the change's `before` (a move: it cannot fail) and changes the
  /// namespace; whatever fails after that, the rollback undoes from these records. Every write
  /// goes through here or through write() (a write that touched no key, e.g. update({})).
  key_change& record(const std::string& key, std::optional<json> after) {
    wrote = true;
    changes.push_back({key, std::nullopt, std::move(after)});
    return changes.back();
  }
  void write() { wrote = true; }
  [[noreturn]] void missing(const std::string& key) const {
    fail(server_errc::key_not_found,
         "key " + quote(key) + " not found in namespace " + quote(ns_name));
  }
};

using op_fn = json (*)(op_env&);

}  // namespace

struct store_op {
  json (*fn)(op_env&);
  bool may_write;
  bool returns_revision = false;  // the result is the revision after the write
};

namespace {

/// The current value of `key`, if present (a copy: it becomes the change's "before").
std::optional<json> current(const json& data, const std::string& key) {
  auto it = data.find(key);
  if (it == data.end()) return std::nullopt;
  return *it;
}

/// Sets `key` to `value`, recording the change first (op_env::record). The value before is
/// moved out of the namespace, not copied; one lookup.
void put(op_env& e, const std::string& key, json value) {
  auto& obj = e.ns.data.get_ref<json::object_t&>();
  key_change& c = e.record(key, value);
  auto it = obj.lower_bound(key);
  if (it != obj.end() && it->first == key) {
    c.before = std::move(it->second);
    it->second = std::move(value);
  } else {
    obj.emplace_hint(it, key, std::move(value));
  }
}

/// Erases the key at `it`, recording the change first; the change's `before` holds its value.
key_change& erase_at(op_env& e, json::object_t::iterator it) {
  key_change& c = e.record(it->first, std::nullopt);
  c.before = std::move(it->second);
  e.ns.data.get_ref<json::object_t&>().erase(it);
  return c;
}

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
  put(e, key, value);
  return nullptr;
}

json op_del(op_env& e) {
  const auto& key = e.a.key();
  auto& obj = e.ns.data.get_ref<json::object_t&>();
  auto it = obj.find(key);
  if (it == obj.end()) e.missing(key);
  erase_at(e, it);
  return nullptr;
}

json op_contains(op_env& e) { return e.ns.data.contains(e.a.key()); }
json op_size(op_env& e) { return e.ns.data.size(); }

// --- pages -----------------------------------------------------------------------------------

/// A count field (a non-negative integer), clamped to lo..hi; `fallback` if absent or null.
std::uint64_t count_arg(const json& req, const char* name, const char* what, std::uint64_t fallback,
                        std::uint64_t lo, std::uint64_t hi) {
  auto it = req.find(name);
  if (it == req.end() || it->is_null()) return fallback;
  if (!it->is_number_integer() || (!it->is_number_unsigned() && it->get<std::int64_t>() < 0))
    fail(server_errc::bad_request,
         std::string("'") + name + "' must be " + what + " (an unsigned integer)");
  return std::clamp<std::uint64_t>(it->get<std::uint64_t>(), lo, hi);
}

/// The byte budget of a page: the request's "bytes", within 1..max_page_bytes (default: max).
std::uint64_t bytes_arg(const json& req) {
  return count_arg(req, field::bytes, "a byte count", protocol::max_page_bytes, 1,
                   protocol::max_page_bytes);
}

/// What a paged keys/items request asks for.
struct page_args {
  std::optional<std::string> after;
  std::string prefix;
  std::uint64_t limit = protocol::default_page_limit;
  std::uint64_t bytes = protocol::max_page_bytes;
};

/// The paging fields of a keys/items request; nullopt if it has none (the un-paged reply).
std::optional<page_args> page_of(const json& req) {
  const char* const fields[] = {field::after, field::prefix, field::limit, field::bytes};
  if (std::none_of(std::begin(fields), std::end(fields),
                   [&](const char* f) { return req.contains(f); }))
    return std::nullopt;
  page_args p;
  if (auto it = req.find(field::after); it != req.end() && !it->is_null()) {
    if (!it->is_string()) fail(server_errc::bad_request, "'after' must be a key (a string)");
    p.after = it->get<std::string>();
  }
  if (auto it = req.find(field::prefix); it != req.end() && !it->is_null()) {
    if (!it->is_string()) fail(server_errc::bad_request, "'prefix' must be a string");
    p.prefix = it->get<std::string>();
  }
  p.limit = count_arg(req, field::limit, "a number of keys", protocol::default_page_limit, 1,
                      protocol::max_page_limit);
  p.bytes = bytes_arg(req);
  return p;
}

/// One page of `data`: the keys with the prefix, after `after`, in order, at most `limit` of
/// them, and no more once their sizes (`size_of(entry)`) would exceed the budget — but at least
/// one. Calls add(entry) for each; returns the next page's "after": the last key if more keys
/// with the prefix follow, else null. O(log n + page).
template <class SizeOf, class Add>
json walk_page(const json& data, const page_args& p, SizeOf&& size_of, Add&& add) {
  const auto& obj = data.get_ref<const json::object_t&>();
  auto it = obj.begin();
  if (p.after && *p.after >= p.prefix) {
    it = obj.upper_bound(*p.after);
  } else if (!p.prefix.empty()) {
    it = obj.lower_bound(p.prefix);
  }
  const auto in_range = [&](json::object_t::const_iterator i) {
    return i != obj.end() && std::string_view(i->first).starts_with(p.prefix);
  };
  std::uint64_t count = 0;
  std::uint64_t bytes = 0;
  auto last = obj.end();
  for (; in_range(it) && count < p.limit; ++it) {
    const std::uint64_t size = size_of(*it);
    if (count > 0 && bytes + size > p.bytes) break;
    add(*it);
    ++count;
    bytes += size;
    last = it;
  }
  return in_range(it) ? json(last->first) : json(nullptr);
}

/// An upper bound of a key's encoded size (its bytes and a string header of at most 5).
std::uint64_t key_size(const std::string& key) { return key.size() + 5; }

json op_keys(op_env& e) {
  if (auto page = page_of(e.a.raw())) {
    json keys = json::array();
    json next = walk_page(
        e.ns.data, *page, [](const auto& kv) { return key_size(kv.first); },
        [&](const auto& kv) { keys.push_back(kv.first); });
    return json{{field::keys_page, std::move(keys)}, {field::next, std::move(next)}};
  }
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
  if (auto page = page_of(e.a.raw())) {
    json items = json::array();
    json next = walk_page(
        e.ns.data, *page,
        [](const auto& kv) { return 1 + key_size(kv.first) + protocol::packed_size(kv.second); },
        [&](const auto& kv) { items.push_back(json::array({kv.first, kv.second})); });
    return json{{field::items_page, std::move(items)}, {field::next, std::move(next)}};
  }
  json out = json::array();
  out.get_ref<json::array_t&>().reserve(e.ns.data.size());
  for (const auto& [k, v] : e.ns.data.items()) out.push_back(json::array({k, v}));
  return out;
}

json op_update(op_env& e) {
  const json& v = e.a.object_value(protocol::name(op::update));
  e.write();  // update({}) is still a write (an identical one)
  for (const auto& [k, val] : v.items()) put(e, k, val);
  return nullptr;
}

json op_pop(op_env& e) {
  const auto& key = e.a.key();
  auto& obj = e.ns.data.get_ref<json::object_t&>();
  auto it = obj.find(key);
  if (it == obj.end()) {
    if (const json* d = e.a.fallback()) return *d;
    e.missing(key);
  }
  return *erase_at(e, it).before;
}

json op_popitem(op_env& e) {
  auto& obj = e.ns.data.get_ref<json::object_t&>();
  if (obj.empty())
    fail(server_errc::empty_namespace, "popitem(): namespace " + quote(e.ns_name) + " is empty");
  // The last key in key order: O(log n), like every other write.
  const key_change& c = erase_at(e, std::prev(obj.end()));
  return json::array({c.key, *c.before});
}

json op_setdefault(op_env& e) {
  const auto& key = e.a.key();
  const json* d = e.a.fallback();
  auto it = e.ns.data.find(key);
  if (it != e.ns.data.end()) return *it;
  json v = d ? *d : json(nullptr);
  put(e, key, v);
  return v;
}

json op_clear(op_env& e) {
  e.write();
  auto& obj = e.ns.data.get_ref<json::object_t&>();
  for (auto& [k, v] : obj) e.record(k, std::nullopt).before = std::move(v);
  obj.clear();
  return nullptr;
}

json op_copy(op_env& e) { return e.ns.data; }

json op_replace(op_env& e) {
  const json& next = e.a.object_value(protocol::name(op::replace));
  e.write();
  auto& obj = e.ns.data.get_ref<json::object_t&>();
  for (auto& [k, v] : obj)
    if (!next.contains(k)) e.record(k, std::nullopt).before = std::move(v);
  for (const auto& [k, v] : next.items()) {
    key_change& c = e.record(k, v);
    if (auto it = obj.find(k); it != obj.end()) c.before = std::move(it->second);
  }
  e.ns.data = next;  // (if this copy fails, the records restore every key)
  return nullptr;
}

json op_revision(op_env& e) { return e.ns.revision; }

// --- atomic primitives ------------------------------------------------------------------------

/// incr: {k, v: delta (default 1)} -> the new value. An absent key counts as 0.
json op_incr(op_env& e) {
  const auto& key = e.a.key();
  const json* d = e.a.value_if();
  const json delta = d ? *d : json(1);
  if (!delta.is_number())
    fail(server_errc::wrong_type, std::string("increment needs a number, not ") + delta.type_name());
  const auto before = current(e.ns.data, key);
  json next;
  if (!before) {
    next = delta;
  } else if (!before->is_number()) {
    fail(server_errc::wrong_type, "key " + quote(key) + " holds " + before->type_name() +
                                      ", not a number: cannot increment it");
  } else if (before->is_number_float() || delta.is_number_float()) {
    next = before->get<double>() + delta.get<double>();
  } else {
    next = before->get<std::int64_t>() + delta.get<std::int64_t>();
  }
  put(e, key, next);
  return next;
}

/// cas: {k, e: expected | absent: true, v: desired} -> whether it was set.
json op_cas(op_env& e) {
  const auto& key = e.a.key();
  const json& desired = e.a.value();
  auto now = current(e.ns.data, key);
  const bool want_absent = e.a.raw().value(field::absent, false);
  bool holds = false;
  if (want_absent) {
    holds = !now.has_value();
  } else {
    auto expected = e.a.raw().find(field::expected);
    if (expected == e.a.raw().end()) fail(server_errc::bad_request, "cas needs 'e' (expected) or 'absent'");
    holds = now && *now == *expected;
  }
  if (!holds) return false;
  put(e, key, desired);
  return true;
}

/// append: {k, v} -> the array's new size. An absent key becomes [v].
json op_append(op_env& e) {
  const auto& key = e.a.key();
  const json& value = e.a.value();
  auto found = e.ns.data.find(key);
  const json* before = found == e.ns.data.end() ? nullptr : &*found;
  if (before && !before->is_array())
    fail(server_errc::wrong_type, "key " + quote(key) + " holds " + before->type_name() +
                                      ", not an array: cannot append to it");
  json next = before ? *before : json::array();
  next.push_back(value);
  const std::size_t size = next.size();
  put(e, key, std::move(next));
  return size;
}

/// One compare of a transaction: {k, t: eq|ne|exists|absent|mod_eq|mod_lt|mod_gt, v}.
bool compare_holds(const op_env& e, const json& c) {
  if (!c.is_object() || !c.contains(field::key) || !c[field::key].is_string() ||
      !c.contains(field::test))
    fail(server_errc::bad_request, "a compare needs 'k' (a key) and 't' (its test)");
  const auto& key = c[field::key].get_ref<const std::string&>();
  const std::string t = c[field::test].is_string() ? c[field::test].get<std::string>() : "";
  auto it = e.ns.data.find(key);
  const bool present = it != e.ns.data.end();
  const json v = c.value(field::value, json());
  if (t == test::equal) return present && *it == v;
  if (t == test::not_equal) return !present || *it != v;
  if (t == test::exists) return present;
  if (t == test::absent) return !present;
  if (t == test::modified_at || t == test::modified_before || t == test::modified_after) {
    if (!v.is_number_unsigned()) fail(server_errc::bad_request, "a revision compare needs a revision 'v'");
    const auto mod = e.ns.modified_at(key);
    const auto rev = v.get<std::uint64_t>();
    return t == test::modified_at ? mod == rev : t == test::modified_before ? mod < rev : mod > rev;
  }
  fail(server_errc::bad_request, "unknown compare '" + t + "'");
}

json op_set(op_env& e);
json op_del(op_env& e);
json op_update(op_env& e);

/// txn: {if: [compares], then: [ops], else: [ops]} -> {ok, results}: one revision, all or none.
json op_txn(op_env& e) {
  // The ops a transaction may run.
  const auto sub_op = [](std::optional<op> o) -> op_fn {
    if (!o) return nullptr;
    switch (*o) {
      case op::set: return op_set;
      case op::del: return op_del;
      case op::incr: return op_incr;
      case op::append: return op_append;
      case op::cas: return op_cas;
      case op::get: return op_get;
      case op::update: return op_update;
      default: return nullptr;
    }
  };
  const json& req = e.a.raw();
  const auto list = [&](const char* name) -> const json& {
    static const json empty = json::array();
    auto it = req.find(name);
    if (it == req.end()) return empty;
    if (!it->is_array()) fail(server_errc::bad_request, std::string("'") + name + "' must be an array");
    return *it;
  };
  bool ok = true;
  for (const auto& c : list(field::txn_if)) ok = ok && compare_holds(e, c);
  json results = json::array();
  for (const auto& sub_request : list(ok ? field::txn_then : field::txn_else)) {
    const op_fn fn = sub_op(protocol::op_of(sub_request));
    if (!fn) {
      const auto name = sub_request.is_object() ? sub_request.value(field::op, std::string())
                                                : std::string();
      fail(server_errc::bad_request, "a transaction cannot run '" + name + "'");
    }
    const store_args sub_args(sub_request);
    op_env sub{e.ns, e.ns_name, sub_args, e.ctx, false, {}};
    auto merge = [&] {
      for (auto& c : sub.changes) e.changes.push_back(std::move(c));
      e.wrote = e.wrote || sub.wrote;
    };
    try {
      results.push_back(fn(sub));
    } catch (...) {
      merge();  // so that the whole transaction is rolled back
      throw;
    }
    merge();
  }
  json out = json::object();
  out[field::ok] = ok;
  out[field::results] = std::move(results);
  return out;
}

/// read: {keys?: [...]} -> {rev, data, mods}: what an atomic() body starts from.
json op_read(op_env& e) {
  json data = json::object();
  json mods = json::object();
  auto keys = e.a.raw().find(field::keys);
  if (keys != e.a.raw().end() && keys->is_array()) {
    for (const auto& k : *keys) {
      if (!k.is_string()) fail(server_errc::bad_request, "'keys' must be strings");
      const auto& key = k.get_ref<const std::string&>();
      if (auto it = e.ns.data.find(key); it != e.ns.data.end()) data[key] = *it;
      mods[key] = e.ns.modified_at(key);
    }
  } else {
    data = e.ns.data;
  }
  json out = json::object();
  out[field::rev] = e.ns.revision;
  out[field::data] = std::move(data);
  out[field::mods] = std::move(mods);
  return out;
}

/// commit: {base: R | mods: {key: rev}, set: {...}, del: [...]} -> the new revision, or
/// conflict if what the body read changed (the namespace since R, or any declared key), or if
/// another client holds the namespace's atomic lock.
json op_commit(op_env& e) {
  const json& req = e.a.raw();
  if (e.ns.locked_by != 0 && e.ns.locked_by != e.ctx.client_id)
    fail(server_errc::conflict, "another client holds the atomic lock of " + quote(e.ns_name));
  if (auto mods = req.find(field::mods); mods != req.end() && mods->is_object()) {
    for (const auto& [k, rev] : mods->items())
      if (!rev.is_number_unsigned() || e.ns.modified_at(k) != rev.get<std::uint64_t>())
        fail(server_errc::conflict, "key " + quote(k) + " changed since it was read");
  } else {
    auto base = req.find(field::base);
    if (base == req.end() || !base->is_number_unsigned())
      fail(server_errc::bad_request, "commit needs 'base' (a revision) or 'mods'");
    if (base->get<std::uint64_t>() != e.ns.revision)
      fail(server_errc::conflict, "namespace " + quote(e.ns_name) + " changed since it was read");
  }
  e.write();  // one revision even if the body changed nothing
  if (auto del = req.find(field::del); del != req.end() && del->is_array()) {
    for (const auto& k : *del) {
      if (!k.is_string()) fail(server_errc::bad_request, "'del' must be keys");
      const auto& key = k.get_ref<const std::string&>();
      auto& obj = e.ns.data.get_ref<json::object_t&>();
      if (auto it = obj.find(key); it != obj.end()) erase_at(e, it);
    }
  }
  if (auto set = req.find(field::set); set != req.end() && set->is_object())
    for (const auto& [k, v] : set->items()) put(e, k, v);
  return nullptr;
}

std::uint64_t revision_arg(const json& req, const char* name, std::uint64_t fallback) {
  auto it = req.find(name);
  if (it == req.end() || it->is_null()) return fallback;
  if (!it->is_number_unsigned())
    fail(server_errc::bad_request, std::string("'") + name + "' must be a revision (an unsigned integer)");
  return it->get<std::uint64_t>();
}

/// at: {"rev": R} -> the namespace as it was at revision R.
json op_at(op_env& e) {
  const std::uint64_t rev = revision_arg(e.a.raw(), field::rev, e.ns.revision);
  if (rev > e.ns.revision)
    fail(server_errc::bad_request, "revision " + std::to_string(rev) + " is in the future (now " +
                                       std::to_string(e.ns.revision) + ")");
  auto snapshot = e.ns.at(rev);
  if (!snapshot) fail(server_errc::compacted, compacted_message(rev, e.ns.hist.oldest() - 1));
  return std::move(*snapshot);
}

/// history: {"from": A, "to": B, "max": N, "bytes": S} -> [records with A <= revision <= B].
/// from = 0 means the oldest kept record. At most N (<= 10,000) records per reply, and with S,
/// no more once their encoded size would exceed S (at most max_page_bytes), but at least one:
/// the reply is never too large to send; continue from the last revision + 1 until a reply is
/// empty. Without S, no byte budget: the reply of clients that stop at a short page, unchanged.
json op_history(op_env& e) {
  const auto& h = e.ns.hist;
  std::uint64_t from = revision_arg(e.a.raw(), field::from, 0);
  const std::uint64_t to = std::min(revision_arg(e.a.raw(), field::to, h.newest()), h.newest());
  const std::uint64_t max = std::clamp<std::uint64_t>(revision_arg(e.a.raw(), field::max, 1000), 1, 10'000);
  if (from == 0) from = h.oldest();
  if (from < h.oldest() && from <= h.newest())
    fail(server_errc::compacted, "revision " + std::to_string(from) +
                                     " is no longer in the history; the oldest record kept is " +
                                     std::to_string(h.oldest()));
  const std::uint64_t budget = e.a.raw().contains(field::bytes)
                                   ? bytes_arg(e.a.raw())
                                   : std::numeric_limits<std::uint64_t>::max();
  json records = json::array();
  std::uint64_t bytes = 0;
  for (std::uint64_t r = from; r <= to && records.size() < max; ++r) {
    json rec = to_json(**h.find(r));
    const std::uint64_t size = protocol::packed_size(rec);
    if (!records.empty() && bytes + size > budget) break;
    bytes += size;
    records.push_back(std::move(rec));
  }
  return records;
}

/// The store's part of `o` (fn null: not a store op).
constexpr store_op info(op o) noexcept {
  switch (o) {
    case op::get: return {op_get, false};
    case op::set: return {op_set, true, true};
    case op::del: return {op_del, true, true};
    case op::contains: return {op_contains, false};
    case op::size: return {op_size, false};
    case op::keys: return {op_keys, false};
    case op::values: return {op_values, false};
    case op::items: return {op_items, false};
    case op::update: return {op_update, true, true};
    case op::pop: return {op_pop, true};
    case op::popitem: return {op_popitem, true};
    case op::setdefault: return {op_setdefault, true};
    case op::clear: return {op_clear, true, true};
    case op::copy: return {op_copy, false};
    case op::replace: return {op_replace, true, true};
    case op::revision: return {op_revision, false};
    case op::at: return {op_at, false};
    case op::incr: return {op_incr, true};
    case op::cas: return {op_cas, true};
    case op::append: return {op_append, true};
    case op::txn: return {op_txn, true};
    case op::read: return {op_read, false};
    case op::commit: return {op_commit, true, true};
    case op::history: return {op_history, false};
    default: return {nullptr, false};
  }
}

outcome error_outcome(server_errc code, std::string message) {
  outcome o;
  o.error = code;
  o.message = std::move(message);
  return o;
}

}  // namespace

std::string compacted_message(std::uint64_t asked, std::uint64_t oldest) {
  return "revision " + std::to_string(asked) +
         " is no longer in the history; the oldest revision to start from is " +
         std::to_string(oldest);
}

std::optional<json> namespace_state::at(std::uint64_t rev) const {
  if (rev == revision) return data;
  if (!hist.covers_after(rev)) return std::nullopt;
  json snapshot = data;
  for (std::uint64_t r = revision; r > rev; --r) {
    const auto& rec = **hist.find(r);
    for (auto c = rec.changes.rbegin(); c != rec.changes.rend(); ++c) {
      if (c->before) {
        snapshot[c->key] = *c->before;
      } else {
        snapshot.erase(c->key);
      }
    }
  }
  return snapshot;
}

const namespace_state* store::find(std::string_view ns) const {
  auto it = namespaces_.find(std::string(ns));
  return it == namespaces_.end() ? nullptr : &it->second;
}

namespace_state* store::find(std::string_view ns) {
  auto it = namespaces_.find(std::string(ns));
  return it == namespaces_.end() ? nullptr : &it->second;
}

store::entry& store::get_or_create(const std::string& ns, bool limited) {
  auto it = namespaces_.find(ns);
  if (it != namespaces_.end()) return *it;
  const auto refuse = [&](std::size_t held) {
    return op_error{server_errc::limit_reached,
                    "the server holds " + std::to_string(held) +
                        " namespaces, its limit (server_config::max_namespaces, zproc server "
                        "--max-namespaces): namespace " + quote(ns) + " is not created"};
  };
  if (!shared_) {
    if (limited && namespaces_.size() >= max_namespaces_) throw refuse(namespaces_.size());
    return *namespaces_.emplace(ns, namespace_state(limits_)).first;
  }
  // Counted server-wide first (other shards create theirs meanwhile), given back if the
  // namespace cannot be made.
  auto& count = budget_->namespaces;
  std::size_t held = count.load(std::memory_order_relaxed);
  do {
    if (limited && held >= max_namespaces_) throw refuse(held);
  } while (!count.compare_exchange_weak(held, held + 1, std::memory_order_relaxed));
  try {
    return *namespaces_.emplace(ns, namespace_state(limits_)).first;
  } catch (...) {
    count.fetch_sub(1, std::memory_order_relaxed);
    throw;
  }
}

void store::count_dropped(history::dropped d) noexcept {
  history_bytes_ -= d.bytes;
  history_records_ -= d.records;
  if (shared_) budget_->history_bytes.fetch_sub(d.bytes, std::memory_order_relaxed);
}

void store::reset_history(namespace_state& ns, std::uint64_t next) noexcept {
  count_dropped({ns.hist.size(), ns.hist.bytes()});
  ns.hist.reset(next);  // its entries in order_ are stale now: swept like the others
}

void store::append_history(namespace_state& ns, record_ptr r) {
  // Allocations first (the order entry), then the history's own append, which either
  // succeeds or changes nothing.
  order_.push_back({&ns, r->revision});
  const std::size_t size = r->bytes;
  history::dropped own;
  try {
    own = ns.hist.append(std::move(r));
  } catch (...) {
    order_.pop_back();
    throw;
  }
  history_bytes_ += size;
  history_records_ += 1;
  if (shared_) budget_->history_bytes.fetch_add(size, std::memory_order_relaxed);
  count_dropped(own);
  enforce_budget(1);
}

void store::trim_history() noexcept {
  if (shared_) enforce_budget(0);
}

void store::enforce_budget(std::size_t keep) noexcept {
  const auto stale = [](const appended& a) {
    return a.ns->hist.size() == 0 || a.revision < a.ns->hist.oldest();
  };
  // The server-wide budget: this store's oldest records go, the one just added stays. With
  // one store (one shard), the server's oldest. With several, a store over its share gives
  // back while the server is over the budget; one within its share keeps what it has (the
  // others give back as they write).
  const std::size_t budget = limits_.max_total_bytes;
  const std::size_t share = shared_ ? budget / std::max<std::size_t>(budget_->shards, 1) : budget;
  const auto over = [&] {
    return history_bytes_ > budget ||
           (shared_ && history_bytes_ > share &&
            budget_->history_bytes.load(std::memory_order_relaxed) > budget);
  };
  while (order_.size() > keep && over()) {
    const appended a = order_.front();
    order_.pop_front();
    if (!stale(a)) count_dropped(a.ns->hist.drop_oldest());
  }
  while (!order_.empty() && stale(order_.front())) order_.pop_front();
  if (order_.size() > 2 * history_records_ + 1024) std::erase_if(order_, stale);  // in place
}

outcome store::execute(const json& request, const request_context& ctx) {
  if (!request.is_object()) return error_outcome(server_errc::bad_request, "a request must be a map");
  auto op_it = request.find(field::op);
  if (op_it == request.end() || !op_it->is_string())
    return error_outcome(server_errc::bad_request, "missing operation name (field 'o')");
  const auto& name = op_it->get_ref<const std::string&>();
  const auto o = protocol::parse_op(name);
  if (!o) return error_outcome(server_errc::unknown_op, "unknown operation " + quote(name));
  return execute(*o, request, ctx);
}

outcome store::execute(op code, const json& request, const request_context& ctx) {
  if (code == op::ping) {
    outcome o;
    o.result = server_pid_;
    return o;
  }

  const store_op what = info(code);
  if (!what.fn)
    return error_outcome(server_errc::unknown_op,
                         "unknown operation " + quote(protocol::name(code)) + " for the store");

  auto ns_it = request.find(field::ns);
  if (ns_it == request.end() || !ns_it->is_string())
    return error_outcome(server_errc::bad_request, "missing namespace (field 'n')");
  const auto& ns_name = ns_it->get_ref<const std::string&>();

  // What is stored must be readable by everyone: refused at the door, before anything changes.
  if (what.may_write)
    if (auto why = protocol::unstorable(request))
      return error_outcome(server_errc::bad_request, std::move(*why));
  std::optional<std::uint64_t> handle;
  if (auto h = request.find(field::handle); h != request.end() && h->is_number_unsigned())
    handle = h->get<std::uint64_t>();
  return run(what, ns_name, store_args(request), handle, ctx);
}

outcome store::execute(const protocol::store_request& request, const request_context& ctx) {
  const store_op what = info(request.code);
  if (!what.fn || !protocol::flat_store_op(request.code))
    return error_outcome(server_errc::unknown_op, "not a flat store op: " +
                                                      quote(protocol::name(request.code)));
  if (what.may_write) {
    // As unstorable() judges the json request, field by field in its order (d, k, n, v).
    std::optional<std::string> why;
    if (request.fallback) why = protocol::unstorable_field(*request.fallback);
    if (!why && request.key) why = protocol::unstorable_text(*request.key);
    if (!why) why = protocol::unstorable_text(request.ns);
    if (!why && request.value) why = protocol::unstorable_field(*request.value);
    if (why) return error_outcome(server_errc::bad_request, std::move(*why));
  }
  return run(what, request.ns, store_args(request), request.handle, ctx);
}

outcome store::run(const store_op& what, const std::string& ns_name, const store_args& a,
                   std::optional<std::uint64_t> handle, const request_context& ctx) {

  // Reads of a namespace nobody wrote do not create it (an empty one stands in, built only then).
  std::optional<namespace_state> empty;
  namespace_state* ns = nullptr;
  const std::string* stored_name = nullptr;  // (a write's: the store's own copy of ns_name)
  if (what.may_write) {
    try {
      auto& e = get_or_create(ns_name, true);
      stored_name = &e.first;
      ns = &e.second;
    } catch (op_error& e) {
      return error_outcome(e.code, std::move(e.message));
    } catch (const std::bad_alloc&) {
      return error_outcome(server_errc::out_of_memory,
                           "the server is out of memory; nothing was changed");
    }
  } else {
    auto it = namespaces_.find(ns_name);
    ns = it == namespaces_.end() ? &empty.emplace() : &it->second;
  }

  op_env env{*ns, ns_name, a, ctx, false, {}};
  outcome o;
  // A failed operation changes nothing: what it changed before failing is undone.
  const auto rollback = [&] {
    for (auto c = env.changes.rbegin(); c != env.changes.rend(); ++c) {
      if (c->before) {
        ns->data[c->key] = std::move(*c->before);
      } else {
        ns->data.erase(c->key);
      }
    }
  };
  try {
    o.result = what.fn(env);
  } catch (op_failure& f) {
    rollback();
    return error_outcome(f.code, std::move(f.message));
  } catch (const std::bad_alloc&) {
    rollback();
    return error_outcome(server_errc::out_of_memory,
                         "the server is out of memory; nothing was changed");
  } catch (const std::exception& ex) {
    rollback();
    return error_outcome(server_errc::internal, ex.what());
  }
  if (env.wrote) {
    // Everything that allocates comes first; the namespace changes only once nothing can fail,
    // so that a write without memory left is undone whole (never half-applied).
    std::shared_ptr<update_record> rec;
    std::unordered_map<std::string, std::uint64_t> new_keys;  // their `modified` entries
    // Each key's last change says whether it is present after the write: the one change of
    // most writes (a set, an incr: no map for it, and one lookup of its key), or per key.
    const key_change* only = nullptr;
    std::uint64_t* only_modified = nullptr;  // its key's entry in `modified`, if it has one
    std::unordered_map<std::string_view, std::pair<const std::string*, bool>> final_keys;
    const auto each_final = [&](auto&& f) {  // (several changes)
      for (const auto& [k, last] : final_keys) f(*last.first, last.second);
    };
    try {
      rec = std::make_shared<update_record>();
      rec->revision = ns->revision + 1;
      rec->time_us = std::chrono::duration_cast<std::chrono::microseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
      rec->client_id = ctx.client_id;
      if (handle) rec->handle = *handle;
      rec->identical = true;
      for (const auto& c : env.changes)
        if (c.before != c.after) rec->identical = false;
      rec->changes = std::move(env.changes);
      rec->bytes = record_bytes(*rec);
      if (rec->changes.size() == 1) {
        only = &rec->changes.front();
      } else {
        for (const auto& c : rec->changes) final_keys[c.key] = {&c.key, c.after.has_value()};
      }
      if (only) {  // (its entry is kept: node addresses survive a rehash)
        if (auto it = ns->modified.find(only->key); it != ns->modified.end()) {
          only_modified = &it->second;
        } else if (only->after) {
          new_keys.emplace(only->key, rec->revision);
        }
      } else {
        each_final([&](const std::string& key, bool present) {
          if (present && !ns->modified.contains(key)) new_keys.emplace(key, rec->revision);
        });
      }
      if (!new_keys.empty()) ns->modified.reserve(ns->modified.size() + new_keys.size());
      append_history(*ns, rec);  // the first change; it has no effect if it throws
    } catch (const std::exception&) {
      if (rec && env.changes.empty()) env.changes = std::move(rec->changes);
      rollback();
      return error_outcome(server_errc::out_of_memory,
                           "the server is out of memory; nothing was changed");
    }
    record_ptr committed = std::move(rec);
    ns->revision = committed->revision;
    if (only_modified && only->after) {
      *only_modified = committed->revision;
    } else if (only_modified) {
      ns->modified.erase(only->key);
    } else if (!only) {
      each_final([&](const std::string& key, bool present) {
        if (!present) {
          ns->modified.erase(key);
        } else if (auto it = ns->modified.find(key); it != ns->modified.end()) {
          it->second = committed->revision;
        }
      });
    }
    ns->modified.merge(new_keys);  // nodes made above, buckets reserved: no allocation
    o.committed = std::move(committed);
    o.ns = stored_name;
  }
  if (what.returns_revision) o.result = ns->revision;
  o.revision = ns->revision;
  o.has_revision = true;
  return o;
}

}  // namespace zproc::server_detail
