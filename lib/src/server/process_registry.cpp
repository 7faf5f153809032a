#include "server/process_registry.hpp"

#include "protocol/ops.hpp"

#include "protocol/message.hpp"
#include "protocol/process_records.hpp"

#include <array>
#include <climits>
#include <limits>
#include <string>

namespace zproc::server_detail {

namespace wire = protocol::process;
namespace rf = protocol::process::record_field;
using json = nlohmann::json;

namespace {

constexpr std::string_view running_state = "running";
constexpr std::array<std::string_view, 7> states = {"running", "exited", "failed", "crashed",
                                                    "killed",  "stopped", "lost"};
constexpr std::string_view states_text = "running, exited, failed, crashed, killed, stopped, lost";
/// What a start must give (and an update may not remove).
constexpr std::array<std::string_view, 7> required = {rf::pid,  rf::ppid, rf::target, rf::ns,
                                                      rf::host, rf::kind, rf::attempt};
constexpr std::string_view required_text = "pid, ppid, target, n, host, kind, attempt";
/// Written by the server only.
constexpr std::array<std::string_view, 4> server_owned = {rf::id, rf::client, rf::started,
                                                          rf::ended};

template <std::size_t N>
bool one_of(std::string_view s, const std::array<std::string_view, N>& list) {
  for (auto x : list)
    if (x == s) return true;
  return false;
}

bool continuation_byte(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

/// A crash report longer than the limit keeps its head (what happened) and its tail (often
/// the last exception), cut on UTF-8 character boundaries.
std::string shorten(const std::string& s) {
  constexpr std::size_t limit = wire::max_crash_report_bytes;
  if (s.size() <= limit) return s;
  constexpr std::size_t keep = limit - 64;  // room for the marker
  std::size_t head = keep * 3 / 4;
  while (head > 0 && continuation_byte(s[head])) --head;
  std::size_t tail = s.size() - (keep - keep * 3 / 4);
  while (tail < s.size() && continuation_byte(s[tail])) ++tail;
  return s.substr(0, head) + "\n[... " + std::to_string(tail - head) + " bytes cut ...]\n" +
         s.substr(tail);
}

std::string quote(std::string_view s) { return "'" + std::string(s) + "'"; }

void check_size(const json& record, std::string_view what) {
  const auto size = json::to_msgpack(record).size();
  if (size > wire::max_record_bytes)
    bad_request(std::string(what) + " would hold " + std::to_string(size) +
         " bytes, more than the limit of " + std::to_string(wire::max_record_bytes) +
         " bytes per process record: send shorter fields");
}

const std::string& state_of(const json& record) {
  return record.at(wire::state).get_ref<const std::string&>();
}

}  // namespace

bool process_registry::handles(detail::op o) noexcept {
  using protocol::op;
  return o == op::proc_start || o == op::proc_update || o == op::proc_list;
}

bool process_registry::is_state(std::string_view s) noexcept { return one_of(s, states); }

json process_registry::checked(const json& fields, const json* current) {
  if (!fields.is_object()) bad_request("the process record must be a JSON object ('record')");
  json out = json::object();
  for (auto it = fields.begin(); it != fields.end(); ++it) {
    const std::string& key = it.key();
    const json& value = it.value();
    const auto must = [&](bool ok, std::string_view what) {
      if (!ok) bad_request("field " + quote(key) + " of a process record must be " + std::string(what) +
                    ", not " + value.dump(-1, ' ', false, json::error_handler_t::replace));
    };
    if (one_of(key, server_owned))
      bad_request("field " + quote(key) + " of a process record is set by the server and cannot be "
           "written");
    if (value.is_null()) {
      if (!current) continue;  // nothing to remove in a new record
      if (one_of(key, required) || key == wire::state)
        bad_request("field " + quote(key) + " of a process record cannot be removed");
      out[key] = nullptr;  // merge: removes it
      continue;
    }
    if (key == rf::pid || key == rf::ppid) {
      const auto v = as_int64(value);
      must(v.has_value(), "an integer");
      out[key] = *v;
    } else if (key == rf::target || key == rf::ns || key == rf::host || key == rf::note) {
      must(value.is_string(), "a string");
      out[key] = value;
    } else if (key == rf::kind) {
      must(value == "target" || value == "command", "\"target\" or \"command\"");
      out[key] = value;
    } else if (key == rf::attempt) {
      const auto v = as_int64(value);
      must(v && *v >= 1 && *v <= INT_MAX, "a positive integer");
      out[key] = *v;
    } else if (key == rf::exitcode) {
      const auto v = as_int64(value);
      must(v && *v >= INT_MIN && *v <= INT_MAX, "an integer (int)");
      out[key] = *v;
    } else if (key == rf::parent_record) {
      const auto v = as_count(value);
      must(v.has_value(), "a record id (0: none)");
      out[key] = *v;
    } else if (key == wire::state) {
      must(value.is_string() && is_state(value.get_ref<const std::string&>()),
           std::string("one of ") + std::string(states_text));
      if (!current && value != running_state)
        bad_request("a new process record is \"running\"; report how it ended with proc_update");
      out[key] = value;
    } else if (key == rf::crash_report) {
      must(value.is_string(), "a string");
      out[key] = shorten(value.get_ref<const std::string&>());
    } else {
      out[key] = value;  // the supervisor's own fields are kept as they are
    }
  }
  if (!current)
    for (auto key : required)
      if (!out.contains(key))
        bad_request("the process record misses field " + quote(key) + " (a new record needs " +
             std::string(required_text) + ")");
  return out;
}

std::uint64_t process_registry::start(const json& fields, std::uint64_t client_id,
                                      std::int64_t now_ms) {
  json record = checked(fields, nullptr);
  if (max_running_per_client_ > 0)
    if (auto it = running_by_client_.find(client_id);
        it != running_by_client_.end() && it->second.size() >= max_running_per_client_)
      throw op_error{server_errc::limit_reached,
                     "this connection has " + std::to_string(it->second.size()) +
                         " running process records, its limit "
                         "(server_config::limits.max_running_records_per_connection, zproc server "
                         "--max-running-records)"};
  const std::uint64_t id = last_id_ + 1;
  record[rf::id] = id;
  record[rf::client] = client_id;
  record[rf::started] = now_ms;
  record[wire::state] = running_state;
  check_size(record, "the new process record");
  ++last_id_;
  auto [it, inserted] = records_.emplace(id, entry{std::move(record)});
  mark_running(id, it->second);
  return id;
}

void process_registry::update(std::uint64_t id, const json& fields, std::int64_t now_ms) {
  auto it = records_.find(id);
  if (it == records_.end()) {
    if (id == 0 || id > last_id_)
      bad_request("no process record " + std::to_string(id) + " (the last one registered is " +
           std::to_string(last_id_) + ")");
    bad_request("process record " + std::to_string(id) +
         " is gone: the server keeps only the newest finished records "
         "(server_config::max_process_records)");
  }
  entry& e = it->second;
  const json changes = checked(fields, &e.data);
  json merged = e.data;
  for (auto change = changes.begin(); change != changes.end(); ++change) {
    if (change.value().is_null()) {
      merged.erase(change.key());
    } else {
      merged[change.key()] = change.value();
    }
  }
  const bool was_running = state_of(e.data) == running_state;
  const bool runs = state_of(merged) == running_state;
  if (was_running && !runs) merged[rf::ended] = now_ms;
  if (!was_running && runs) merged.erase(rf::ended);  // a retry: it runs again
  check_size(merged, "process record " + std::to_string(id));

  e.data = std::move(merged);
  if (was_running && !runs) {
    mark_finished(id, e);
    evict();
  } else if (!was_running && runs) {
    mark_running(id, e);
  }
}

json process_registry::list(std::optional<std::string_view> state, std::uint64_t after,
                            std::size_t max) const {
  json out = json::array();
  for (auto it = records_.upper_bound(after); it != records_.end() && out.size() < max; ++it) {
    if (state && state_of(it->second.data) != *state) continue;
    out.push_back(it->second.data);
  }
  return out;
}

void process_registry::client_gone(std::uint64_t client_id, std::int64_t now_ms) {
  auto it = running_by_client_.find(client_id);
  if (it == running_by_client_.end()) return;
  const std::set<std::uint64_t> ids = std::move(it->second);
  running_by_client_.erase(it);
  for (const auto id : ids) {
    entry& e = records_.at(id);
    e.data[wire::state] = "lost";
    e.data[rf::ended] = now_ms;
    e.data[rf::note] = "its supervisor disconnected";
    mark_finished(id, e);
  }
  evict();
}

const json* process_registry::find(std::uint64_t id) const {
  auto it = records_.find(id);
  return it == records_.end() ? nullptr : &it->second.data;
}

void process_registry::mark_running(std::uint64_t id, entry& e) {
  if (e.finished_seq != 0) finished_.erase(e.finished_seq);
  e.finished_seq = 0;
  running_by_client_[e.data.at(rf::client).get<std::uint64_t>()].insert(id);
}

void process_registry::mark_finished(std::uint64_t id, entry& e) {
  e.finished_seq = ++last_finish_;
  finished_.emplace(e.finished_seq, id);
  auto it = running_by_client_.find(e.data.at(rf::client).get<std::uint64_t>());
  if (it == running_by_client_.end()) return;
  it->second.erase(id);
  if (it->second.empty()) running_by_client_.erase(it);
}

void process_registry::evict() {
  while (finished_.size() > max_finished_) {
    records_.erase(finished_.begin()->second);
    finished_.erase(finished_.begin());
  }
}

json process_registry::execute(const json& request, std::uint64_t client_id,
                               std::int64_t now_ms) {
  const auto o = protocol::op_of(request);
  if (!o || !handles(*o)) bad_request("not an operation of the process registry");
  return execute(*o, request, client_id, now_ms);
}

json process_registry::execute(detail::op o, const json& request, std::uint64_t client_id,
                               std::int64_t now_ms, bool privileged) {
  using protocol::op;
  const auto field = [&](const char* name) -> const json* {
    auto it = request.find(name);
    return it == request.end() ? nullptr : &*it;
  };
  if (o == op::proc_start) {
    const json* record = field(wire::record);
    if (!record || !record->is_object())
      bad_request("proc_start needs the process's fields as an object ('record')");
    return start(*record, client_id, now_ms);
  }
  if (o == op::proc_update) {
    const json* id = field(wire::id);
    const auto value = id ? as_count(*id) : std::nullopt;
    if (!value || *value == 0) bad_request("proc_update needs the record's id ('id', a positive integer)");
    const json* record = field(wire::record);
    if (!record || !record->is_object())
      bad_request("proc_update needs the fields to change as an object ('record')");
    if (!privileged)
      if (auto it = records_.find(*value);
          it != records_.end() && it->second.data.value(rf::client, std::uint64_t{0}) != client_id)
        throw op_error{server_errc::forbidden,
                       "process record " + std::to_string(*value) +
                           " was created by another connection: only it (or an admin) changes it"};
    update(*value, *record, now_ms);
    return true;
  }
  if (o == op::proc_list) {
    std::optional<std::string_view> state;
    if (const json* s = field(wire::state)) {
      if (!s->is_string() || !is_state(s->get_ref<const std::string&>()))
        bad_request("proc_list's 'state' must be one of " + std::string(states_text));
      state = s->get_ref<const std::string&>();
    }
    std::uint64_t after = 0;
    if (const json* a = field(wire::after)) {
      const auto v = as_count(*a);
      if (!v) bad_request("proc_list's 'after' must be a record id (a non-negative integer)");
      after = *v;
    }
    std::size_t max = static_cast<std::size_t>(-1);
    if (const json* m = field(wire::max)) {
      const auto v = as_count(*m);
      if (!v || *v == 0) bad_request("proc_list's 'max' must be a positive integer");
      max = static_cast<std::size_t>(*v);
    }
    return list(state, after, max);
  }
  bad_request("unknown process operation " + quote(std::string(protocol::name(o))));
}

}  // namespace zproc::server_detail
