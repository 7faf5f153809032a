#include "server/watch.hpp"

#include "protocol/message.hpp"
#include "protocol/msgpack.hpp"

#include <algorithm>

namespace zproc::server_detail {

json delivery::message() const {
  if (packed) return json();
  return bytes.empty() ? reply : protocol::decode_msgpack(bytes.view());
}

namespace field = protocol::field;
namespace update_field = protocol::update_field;

namespace {

constexpr std::size_t scan_limit = 10'000;  // records examined per request, at most

bool truthy(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return false;
    case json::value_t::boolean: return v.get<bool>();
    case json::value_t::number_integer: return v.get<std::int64_t>() != 0;
    case json::value_t::number_unsigned: return v.get<std::uint64_t>() != 0;
    case json::value_t::number_float: return v.get<double>() != 0.0;
    case json::value_t::string: return !v.get_ref<const std::string&>().empty();
    case json::value_t::array:
    case json::value_t::object: return !v.empty();
    default: return true;
  }
}

predicate parse_predicate(const json& p) {
  if (!p.is_object()) bad_request("'pred' must be a map");
  predicate out;
  const auto kind = p.value(field::kind, std::string());
  const auto parsed = protocol::parse_predicate(kind);
  if (!parsed) bad_request("unknown predicate kind '" + kind + "'");
  using wire = protocol::predicate;
  switch (*parsed) {
    case wire::equal: out.what = predicate::kind::equal; break;
    case wire::not_equal: out.what = predicate::kind::not_equal; break;
    case wire::truthy: out.what = predicate::kind::truthy; break;
    case wire::falsy: out.what = predicate::kind::falsy; break;
    case wire::none: out.what = predicate::kind::none; break;
    case wire::not_none: out.what = predicate::kind::not_none; break;
    case wire::available: out.what = predicate::kind::available; break;
  }
  auto k = p.find(field::key);
  if (k == p.end() || !k->is_string()) bad_request("a predicate needs a key (field 'k')");
  out.key = k->get<std::string>();
  if (auto v = p.find(field::value); v != p.end()) out.value = *v;
  return out;
}

/// The value a record leaves for `key` (its last change of that key), if it touches it.
const key_change* last_change(const update_record& r, const std::string& key) {
  const key_change* found = nullptr;
  for (const auto& c : r.changes)
    if (c.key == key) found = &c;
  return found;
}

/// Merged changes over revisions (from, to]: each key's final value, or its deletion.
json diff(const namespace_state& ns, std::uint64_t from, std::uint64_t to) {
  std::map<std::string, const std::optional<json>*> merged;
  for (std::uint64_t r = from + 1; r <= to; ++r)
    for (const auto& c : (*ns.hist.find(r))->changes) merged[c.key] = &c.after;
  json set = json::object();
  json del = json::array();
  for (const auto& [k, v] : merged) {
    if (*v) {
      set[k] = **v;
    } else {
      del.push_back(k);
    }
  }
  json d = json::object();
  d[update_field::diff_set] = std::move(set);
  d[update_field::diff_erased] = std::move(del);
  return d;
}

/// A revision field: absent or nil (nullopt), or an unsigned integer.
std::optional<std::uint64_t> revision_field(const json& req, const char* name) {
  auto it = req.find(name);
  if (it == req.end() || it->is_null()) return std::nullopt;
  if (!it->is_number_unsigned()) bad_request(std::string("'") + name + "' must be a revision");
  return it->get<std::uint64_t>();
}

bool flag(const json& req, const char* name) {
  auto it = req.find(name);
  return it != req.end() && it->is_boolean() && it->get<bool>();
}

}  // namespace

bool predicate::holds(const std::optional<json>& v) const {
  switch (what) {
    case kind::equal: return v && *v == value;
    case kind::not_equal: return !v || *v != value;
    case kind::truthy: return v && truthy(*v);
    case kind::falsy: return !v || !truthy(*v);
    case kind::none: return !v || v->is_null();  // like Python's state.get(key) is None
    case kind::not_none: return v && !v->is_null();
    case kind::available: return v.has_value();
  }
  return false;
}

bool watch_spec::matches(const update_record& r) const {
  if (r.identical && !identical_okay) return false;
  if (!include_own && r.client_id == client_id && r.handle == handle) return false;
  if (!keys.empty()) {
    const auto listed = [&](const std::string& k) {
      return std::find(keys.begin(), keys.end(), k) != keys.end();
    };
    const bool hit = std::any_of(r.changes.begin(), r.changes.end(), [&](const key_change& c) {
      return exclude ? !listed(c.key) : listed(c.key);
    });
    if (!hit) return false;
  }
  if (pred) {
    const key_change* c = last_change(r, pred->key);
    if (c == nullptr || !pred->holds(c->after)) return false;
  }
  return true;
}

protocol::watch_request watch_registry::request_of(const json& req) {
  protocol::watch_request w;
  w.id = req.at(field::id).get<std::uint64_t>();
  auto ns_it = req.find(field::ns);
  if (ns_it == req.end() || !ns_it->is_string()) bad_request("missing namespace (field 'n')");
  w.ns = ns_it->get<std::string>();
  if (auto h = req.find(field::handle); h != req.end() && h->is_number_unsigned())
    w.handle = h->get<std::uint64_t>();
  if (auto k = req.find(field::keys); k != req.end()) {
    if (!k->is_array()) bad_request("'keys' must be an array of strings");
    for (const auto& key : *k) {
      if (!key.is_string()) bad_request("'keys' must be an array of strings");
      w.keys.push_back(key.get<std::string>());
    }
  }
  if (auto p = req.find(field::pred); p != req.end()) {
    parse_predicate(*p);  // its shape is judged before the fields below, as it always was
    w.pred = *p;
  }
  w.exclude = flag(req, field::exclude);
  w.identical = flag(req, field::identical);
  w.own = flag(req, field::own);
  w.live = flag(req, field::live);
  w.snap = flag(req, field::snap);
  w.now = flag(req, field::now);
  w.base = flag(req, field::base);
  w.oldest = flag(req, field::oldest);
  w.pin = flag(req, field::pin);
  w.max = revision_field(req, field::max);
  if (auto st = req.find(field::stream); st != req.end()) {
    if (!st->is_number_unsigned() || st->get<std::uint64_t>() == 0)
      bad_request("'stream' must be a positive count of replies");
    w.stream = st->get<std::uint64_t>();
  }
  // (An 'after' beside 'oldest' is not read.)
  if (!w.oldest) w.after = revision_field(req, field::after);
  return w;
}

void watch_registry::watch(store& s, const protocol::watch_request& req, std::uint64_t client_id,
                           std::vector<delivery>& out) {
  const auto reply = [&](json result) {
    out.push_back(delivery{client_id, protocol::make_reply(req.id, std::move(result))});
  };
  watch_spec spec;
  spec.client_id = client_id;
  spec.request_id = req.id;
  spec.ns = req.ns;
  spec.handle = req.handle;
  spec.keys = req.keys;
  spec.exclude = req.exclude;
  if (req.pred) spec.pred = parse_predicate(*req.pred);
  spec.identical_okay = req.identical;
  spec.include_own = req.own;
  spec.live = req.live;
  spec.snapshot = req.snap;
  spec.max = static_cast<std::size_t>(std::clamp<std::uint64_t>(req.max.value_or(256), 1, 10'000));
  const bool want_base = req.base;
  const bool check_now = req.now;
  if (req.stream != 0) {
    if (check_now) bad_request("'stream' does not go with 'now' (a one-shot wait)");
    // (Checked before anything is answered: a stream is registered under its id.)
    if (by_id_.count({client_id, req.id}) != 0)
      bad_request("a watch with this request id is already pending");
  }

  static const namespace_state empty_ns;
  namespace_state* found = s.find(spec.ns);
  const namespace_state& ns = found ? *found : empty_ns;
  const std::uint64_t current = ns.revision;
  // "oldest": from the oldest record kept (a watcher started at revision 0).
  const std::uint64_t after = req.oldest ? ns.hist.oldest() - 1 : req.after.value_or(current);
  if (after > current)
    bad_request("revision " + std::to_string(after) + " is in the future (now " + std::to_string(current) + ")");

  waiter w{spec, after, after, spec.live ? current : after};
  w.stream = req.stream != 0;
  w.credit = std::min(req.stream, max_credit);
  json result = json::object();

  // The client's replica must be able to follow from `after`; a live watcher may jump instead.
  if (!ns.hist.covers_after(after) && after != current) {
    if (!spec.live)
      throw op_error{server_errc::compacted, compacted_message(after, ns.hist.oldest() - 1)};
    w.cursor = w.replica = current;
    if (spec.snapshot) {
      result[field::base] = ns.data;
      result[field::base_rv] = current;
    }
  } else if (spec.snapshot && want_base) {
    result[field::base] = *ns.at(after);
    result[field::base_rv] = after;
  }

  // One-shot waits: answer at once if the predicate holds already (no predicate: always; the
  // client then tests its own predicate on the snapshot, and asks again if it fails).
  if (check_now) {
    bool holds = true;
    if (spec.pred) {
      auto it = ns.data.find(spec.pred->key);
      holds = spec.pred->holds(it == ns.data.end() ? std::nullopt : std::optional<json>(*it));
    }
    if (holds) {
      if (spec.snapshot && (!result.contains(field::base) || w.replica != current)) {
        result[field::base] = ns.data;
        result[field::base_rv] = current;
      }
      result[field::cursor] = current;
      result[field::updates] = json::array();
      result[field::now] = true;
      reply(std::move(result));
      return;
    }
  }

  // The backlog: scan the history after the cursor.
  std::optional<std::uint64_t> answered_to;  // a reply went, up to this revision
  std::uint64_t scanned = w.cursor;
  const auto hits = scan(ns, w, scanned);
  if (!hits.empty() || scanned - w.cursor >= scan_limit) {
    const std::uint64_t cursor = hits.empty() ? scanned : hits.back()->revision;
    if (result.empty()) {
      out.push_back(reply_for(ns, w, hits, cursor));
    } else {
      json a = answer(ns, w, hits, cursor);
      for (auto& [k, v] : result.items()) a[k] = v;
      reply(std::move(a));
    }
    answered_to = cursor;
  } else if (result.contains(field::base) || req.pin) {
    // A base snapshot, or a client that wants to know where it starts ("pin": a watcher being
    // created), does not wait: answer now with no updates (a one-shot client asks again).
    result[field::cursor] = w.cursor;
    result[field::updates] = json::array();
    reply(std::move(result));
    answered_to = w.cursor;
  }
  if (!answered_to) {
    w.cursor = current;
    add(std::move(w));
    return;
  }
  if (!w.stream) return;
  auto it = add(std::move(w));
  answered(it, *answered_to);
  if (it->cursor < current) {
    // Behind still (the backlog was more than one reply): it goes on as far as its credit does.
    set_stalled(*it, true);
    burst(s, it, out);
  }
}

void watch_registry::burst(const store& s, waiter_list::iterator it, std::vector<delivery>& out) {
  const std::uint64_t client = it->spec.client_id;
  try {
    std::size_t budget = burst_bytes;
    if (!catch_up(s, it, out, budget)) held_back_.insert(client);
  } catch (const std::bad_alloc&) {
    retry_due_ = true;  // it stays stalled: the tick catches it up when memory is back
  }
}

json watch_registry::answer(const namespace_state& ns, waiter& w,
                            std::span<const update_record* const> hits,
                            std::uint64_t cursor) const {
  json updates = json::array();
  json out = json::object();
  for (const auto* rec : hits) {
    json u = to_json(*rec);
    if (w.spec.snapshot) {
      if (!ns.hist.covers_after(w.replica)) {
        // The records between are gone: resend the whole state as of this update.
        out[field::base] = *ns.at(rec->revision);
        out[field::base_rv] = rec->revision;
        u[update_field::diff] = json{{update_field::diff_set, json::object()},
                                     {update_field::diff_erased, json::array()}};
      } else {
        u[update_field::diff] = diff(ns, w.replica, rec->revision);
      }
      w.replica = rec->revision;
    }
    updates.push_back(std::move(u));
  }
  if (w.spec.snapshot && cursor > w.replica) {
    if (ns.hist.covers_after(w.replica)) {
      out[field::tail] = diff(ns, w.replica, cursor);
    } else if (auto base = ns.at(cursor)) {  // the records between are gone: the whole state
      out[field::base] = std::move(*base);
      out[field::base_rv] = cursor;
    }
    w.replica = cursor;
  }
  out[field::cursor] = cursor;
  out[field::updates] = std::move(updates);
  return out;
}

std::vector<const update_record*> watch_registry::scan(const namespace_state& ns,
                                                      const waiter& w, std::uint64_t& scanned) {
  std::vector<const update_record*> hits;
  scanned = w.cursor;
  for (std::uint64_t r = w.cursor + 1; r <= ns.revision && hits.size() < w.spec.max; ++r) {
    if (r - w.cursor > scan_limit) break;
    const auto& rec = **ns.hist.find(r);
    scanned = r;
    if (r > w.eligible_after && w.spec.matches(rec)) hits.push_back(&rec);
  }
  return hits;
}

delivery watch_registry::reply_for(const namespace_state& ns, waiter& w,
                                   std::span<const update_record* const> hits,
                                   std::uint64_t cursor) const {
  // The common case of a fan-out: the watcher was up to date, so its reply is exactly this
  // record (with its own changes as the diff): the record's shared encoding, not a copy.
  if (hits.size() == 1 && hits.front()->revision == cursor &&
      (!w.spec.snapshot || w.replica + 1 == cursor)) {
    return {w.spec.client_id, json(), hits.front()->packed(w.spec.snapshot), w.spec.request_id,
            protocol::watch_reply_head(w.spec.request_id, cursor)};
  }
  return {w.spec.client_id, protocol::make_reply(w.spec.request_id, answer(ns, w, hits, cursor)),
          nullptr, w.spec.request_id};
}

void watch_registry::notify(store& s, const std::string& ns_name, const update_record& r,
                            const std::unordered_set<std::uint64_t>& congested,
                            std::vector<delivery>& out) {
  auto ns_it = by_ns_.find(ns_name);
  if (ns_it == by_ns_.end()) return;
  const namespace_state* ns = s.find(ns_name);
  if (ns == nullptr) return;
  // Candidates: waiters on a key this write touched, and waiters on every update.
  std::vector<waiter_list::iterator> hits;
  auto consider = [&](const std::string& key) {
    auto list = ns_it->second.find(key);
    if (list == ns_it->second.end()) return;
    for (auto it : list->second) {
      if (it->seen == r.revision) continue;  // indexed under two keys this write touched
      it->seen = r.revision;
      if (r.revision > it->eligible_after && it->spec.matches(r)) hits.push_back(it);
    }
  };
  consider(std::string());
  for (const auto& c : r.changes) consider(c.key);
  out.reserve(out.size() + hits.size());
  for (auto it : hits) {
    waiter& w = *it;
    if (congested.count(w.spec.client_id) != 0 || !answerable(w)) {
      // Backpressure (its connection is full, or a stream's client granted no more replies):
      // it catches up once its connection drained, or the client grants more.
      stall(w, r.revision);
      continue;
    }
    try {
      if (w.stalled) {
        burst(s, it, out);
        continue;
      }
      const update_record* const one[] = {&r};  // (no vector: nothing allocated per watcher)
      out.push_back(reply_for(*ns, w, one, r.revision));
      answered(it, r.revision);
    } catch (const std::bad_alloc&) {
      stall(w, r.revision);  // retry_stalled() answers it when memory is back
      retry_due_ = true;
    }
  }
}

bool watch_registry::catch_up(const store& s, waiter_list::iterator it,
                              std::vector<delivery>& out, std::size_t& budget) {
  waiter& w = *it;
  if (!answerable(w)) return true;  // a stream out of credit: stalled until the client grants more
  static const namespace_state empty_ns;
  const namespace_state* found = s.find(w.spec.ns);
  const namespace_state& ns = found ? *found : empty_ns;
  for (;;) {
    if (!ns.hist.covers_after(w.cursor)) {
      out.push_back({w.spec.client_id,
                     protocol::make_error_reply(w.spec.request_id, server_errc::compacted,
                                                compacted_message(w.cursor, ns.hist.oldest() - 1))});
      remove(it);  // (a stream ends with its error)
      return true;
    }
    std::uint64_t scanned = w.cursor;
    const auto hits = scan(ns, w, scanned);
    if (hits.empty() && scanned - w.cursor < scan_limit) break;
    const std::uint64_t cursor = hits.empty() ? scanned : hits.back()->revision;
    out.push_back(reply_for(ns, w, hits, cursor));
    const std::size_t bytes = reply_bytes(out.back());
    budget = bytes >= budget ? 0 : budget - bytes;
    if (!w.stream) {
      remove(it);
      return true;
    }
    answered(it, cursor);
    if (w.cursor >= ns.revision) break;
    if (!answerable(w)) return true;  // behind, out of credit: stays stalled
    if (budget == 0) return false;    // behind: the rest once its connection has drained
  }
  w.cursor = ns.revision;  // nothing (more) it waits for: up to date, waiting on
  set_stalled(w, false);
  return true;
}

std::size_t watch_registry::reply_bytes(const delivery& d) {
  if (const auto n = d.encoded_size()) return *n;
  return protocol::packed_size(d.reply);
}

void watch_registry::answered(waiter_list::iterator it, std::uint64_t cursor) {
  waiter& w = *it;
  if (!w.stream) {
    remove(it);
    return;
  }
  w.cursor = cursor;
  if (w.spec.snapshot) w.replica = cursor;  // every reply brings the client's replica there
  --w.credit;
}

bool watch_registry::more(const store& s, std::uint64_t client_id, std::uint64_t request_id,
                          std::uint64_t credit, bool congested, std::vector<delivery>& out) {
  auto found = by_id_.find({client_id, request_id});
  if (found == by_id_.end() || !found->second->stream) return false;
  waiter& w = *found->second;
  w.credit = std::min(max_credit, w.credit + std::min(credit, max_credit));
  if (w.stalled && !congested) burst(s, found->second, out);
  return true;
}

void watch_registry::set_stalled(waiter& w, bool stalled) noexcept {
  if (w.stalled == stalled) return;
  w.stalled = stalled;
  stalled ? ++stalled_ : --stalled_;
}

void watch_registry::stall(waiter& w, std::uint64_t revision) noexcept {
  // Not stalled yet: no record before `revision` matched it (it would have been answered), so
  // it catches up from there, not from where it started waiting (long compacted, maybe).
  if (!w.stalled) w.cursor = std::max(w.cursor, revision - 1);
  set_stalled(w, true);
}

void watch_registry::stall_namespace(const std::string& ns, std::uint64_t revision) noexcept {
  auto ns_it = by_ns_.find(ns);
  if (ns_it == by_ns_.end()) return;
  for (auto& [key, list] : ns_it->second)
    for (auto it : list) stall(*it, revision);
  retry_due_ = true;
}

bool watch_registry::resume(store& s, std::uint64_t client_id, std::size_t budget,
                            std::vector<delivery>& out) {
  held_back_.erase(client_id);
  if (stalled_ == 0) return true;
  auto it = by_id_.lower_bound({client_id, 0});
  while (it != by_id_.end() && it->first.first == client_id) {
    auto w = (it++)->second;  // catch_up() may remove it
    if (!w->stalled) continue;
    // The rest when this much has been sent (a stream part-way, the others not yet).
    if (budget == 0 || !catch_up(s, w, out, budget)) {
      held_back_.insert(client_id);
      return false;
    }
  }
  return true;
}

void watch_registry::retry_stalled(store& s, const std::unordered_set<std::uint64_t>& congested,
                                   std::vector<delivery>& out) {
  // Only after a failure: a congested client's stalled waiters wait for resume() instead of
  // costing a walk of every waiter each tick.
  if (!retry_due_) return;
  retry_due_ = false;
  for (auto it = waiters_.begin(); stalled_ != 0 && it != waiters_.end();) {
    auto w = it++;  // catch_up() may remove it
    if (!w->stalled || congested.count(w->spec.client_id) != 0) continue;
    try {
      std::size_t budget = burst_bytes;
      if (!catch_up(s, w, out, budget)) held_back_.insert(w->spec.client_id);
    } catch (const std::bad_alloc&) {
      retry_due_ = true;  // still no memory: the next tick
    }
  }
}

/// The keys a waiter is indexed under ("" = every update of its namespace).
std::vector<std::string> watch_registry::index_keys(const watch_spec& spec) {
  if (spec.pred) return {spec.pred->key};
  if (!spec.keys.empty() && !spec.exclude) return spec.keys;
  return {std::string()};
}

watch_registry::waiter_list::iterator watch_registry::add(waiter w) {
  const auto key = key_type{w.spec.client_id, w.spec.request_id};
  if (by_id_.count(key)) bad_request("a watch with this request id is already pending");
  waiters_.push_back(std::move(w));
  auto it = std::prev(waiters_.end());
  by_id_.emplace(key, it);
  per_client_.add(it->spec.client_id);
  auto& index = by_ns_[it->spec.ns];
  for (auto& k : index_keys(it->spec)) {
    slot_list& list = index[k];
    list.push_back(it);
    it->slots.push_back({std::move(k), &list, std::prev(list.end())});
  }
  return it;
}

void watch_registry::remove(waiter_list::iterator it) {
  set_stalled(*it, false);
  auto ns_it = by_ns_.find(it->spec.ns);
  if (ns_it != by_ns_.end()) {
    auto& index = ns_it->second;
    for (auto& sl : it->slots) {
      sl.list->erase(sl.pos);  // O(1)
      if (sl.list->empty()) index.erase(sl.key);
    }
    if (index.empty()) by_ns_.erase(ns_it);
  }
  by_id_.erase({it->spec.client_id, it->spec.request_id});
  per_client_.remove(it->spec.client_id);
  waiters_.erase(it);
}

bool watch_registry::cancel(std::uint64_t client_id, std::uint64_t request_id) {
  auto it = by_id_.find({client_id, request_id});
  if (it == by_id_.end()) return false;
  remove(it->second);
  return true;
}

void watch_registry::drop_client(std::uint64_t client_id) {
  held_back_.erase(client_id);
  auto it = by_id_.lower_bound({client_id, 0});
  while (it != by_id_.end() && it->first.first == client_id) {
    auto victim = (it++)->second;
    remove(victim);
  }
}

std::size_t watch_registry::pending_of(std::uint64_t client_id) const {
  return per_client_.of(client_id);
}

}  // namespace zproc::server_detail
