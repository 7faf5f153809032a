#include "protocol/task_messages.hpp"

#include "protocol/message.hpp"
#include "protocol/msgpack.hpp"
#include "protocol/ops.hpp"
#include "protocol/tasks.hpp"

#include <limits>

namespace zproc::protocol::tasks {

namespace {

[[noreturn]] void fail(const std::string& what) { throw malformed(what); }
/// fail() with the message `subject` + `predicate` (out of line: GCC 12 warns falsely about
/// std::string's operator+ once it is inlined into the readers).
[[noreturn, gnu::noinline, gnu::cold]] void fail(std::string_view subject,
                                                 std::string_view predicate) {
  std::string message(subject);
  message.append(predicate);
  throw malformed(message);
}

const json& member(const json& o, const char* name, const char* of) {
  if (!o.is_object()) fail(of, " is not an object");
  auto it = o.find(name);
  if (it == o.end()) fail(of, std::string(" has no field '") + name + "'");
  return *it;
}

// A number as JSON or MessagePack may give it: signed or unsigned.
std::uint64_t count(const json& v, const char* what) {
  if (v.is_number_unsigned()) return v.get<std::uint64_t>();
  if (v.is_number_integer() && v.get<std::int64_t>() >= 0)
    return static_cast<std::uint64_t>(v.get<std::int64_t>());
  fail(what, " is not a non-negative integer");
}

std::int64_t integer(const json& v, const char* what) {
  if (v.is_number_unsigned() &&
      v.get<std::uint64_t>() <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
    return static_cast<std::int64_t>(v.get<std::uint64_t>());
  if (v.is_number_integer()) return v.get<std::int64_t>();
  fail(what, " is not an integer");
}

const std::string& text(const json& v, const char* what) {
  if (!v.is_string()) fail(what, " is not a string");
  return v.get_ref<const std::string&>();
}

bool flag(const json& v, const char* what) {
  if (!v.is_boolean()) fail(what, " is not a boolean");
  return v.get<bool>();
}

const json& array_of(const json& v, const char* what) {
  if (!v.is_array()) fail(what, " is not an array");
  return v;
}

/// {"i": id, "r": {<name>: [ — the list opened, the reply's other fields to follow it.
void open_listing_reply(std::string& out, std::uint64_t request_id, std::size_t fields,
                        std::string_view name, counted_list& list) {
  out.reserve(256);
  append_msgpack_map_header(out, 2);
  append_msgpack_string(out, field::id);
  append_msgpack_unsigned(out, request_id);
  append_msgpack_string(out, field::result);
  append_msgpack_map_header(out, fields);
  append_msgpack_string(out, name);
  list.open(out);
}

/// The request's last field, `name`: a list, opened.
void open_list_field(packed_request& r, std::string_view name, counted_list& list) {
  append_msgpack_string(r.entries, name);
  ++r.fields;
  list.open(r.entries);
}

// --- reading MessagePack without a json tree ----------------------------------------------------

/// One MessagePack value (`bytes` is exactly one), read as a T by `read`, or malformed:
/// `what` + `is_not` (" is not a string").
template <class T, class Read>
T packed_value(std::string_view bytes, Read read, const char* what, const char* is_not) {
  msgpack_reader r(bytes);
  T v{};
  if (!read(r, v) || !r.at_end()) fail(what, is_not);
  return v;
}
/// A binary's bytes (or an ext's: json read one as a binary too).
std::string_view packed_bytes(std::string_view v, const char* what) {
  return packed_value<std::string_view>(
      v, [](msgpack_reader& r, std::string_view& x) { return r.binary(x, true); }, what,
      " are not binary");
}
std::uint64_t packed_count(std::string_view v, const char* what) {
  return packed_value<std::uint64_t>(
      v, [](msgpack_reader& r, std::uint64_t& x) { return r.unsigned_integer(x); }, what,
      " is not a non-negative integer");
}
std::int64_t packed_integer(std::string_view v, const char* what) {
  return packed_value<std::int64_t>(
      v, [](msgpack_reader& r, std::int64_t& x) { return r.signed_integer(x); }, what,
      " is not an integer");
}
std::string_view packed_text(std::string_view v, const char* what) {
  return packed_value<std::string_view>(
      v, [](msgpack_reader& r, std::string_view& x) { return r.string(x); }, what,
      " is not a string");
}
bool packed_flag(std::string_view v, const char* what) {
  return packed_value<bool>(
      v, [](msgpack_reader& r, bool& x) { return r.boolean(x); }, what, " is not a boolean");
}

/// The bytes of the next value of `r`; malformed (`what`) if there is none.
std::string_view next_value(msgpack_reader& r, const char* what) {
  std::string_view bytes;
  if (!r.value_bytes(bytes, 1)) fail(what);
  return bytes;
}

/// The elements of a MessagePack array, each as the bytes of its value.
std::vector<std::string_view> packed_elements(std::string_view v, const char* what) {
  msgpack_reader r(v);
  std::size_t n = 0;
  if (!r.array_header(n)) fail(what, " is not an array");
  std::vector<std::string_view> out;
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i)
    if (!r.value_bytes(out.emplace_back(), 1)) fail(what, " is not an array of values");
  if (!r.at_end()) fail(what, " is not one value");
  return out;
}

/// A MessagePack map read in place: its fields looked up by name (the last of a name given
/// twice, as json reads it). A lookup walks the map (a reply's maps hold a few fields).
class packed_map {
 public:
  packed_map(std::string_view bytes, const char* of) : bytes_(bytes), of_(of) {
    msgpack_reader r(bytes);
    if (!r.map_header(n_)) fail(of, " is not an object");
    entries_ = r.position();
    for (std::size_t i = 0; i < n_; ++i) {
      std::string_view key;
      if (!r.string(key) || !r.skip(1)) fail(of, " is not an object");
    }
    if (!r.at_end()) fail(of, " is not one value");
  }
  /// The bytes of field `name`'s value; nullopt if the map has none.
  std::optional<std::string_view> find(std::string_view name) const {
    msgpack_reader r(std::string_view(entries_, static_cast<std::size_t>(
                                                    bytes_.data() + bytes_.size() - entries_)));
    std::optional<std::string_view> found;
    for (std::size_t i = 0; i < n_; ++i) {
      std::string_view key, value;
      if (!r.string(key) || !r.value_bytes(value, 1)) break;  // (checked by the constructor)
      if (key == name) found = value;
    }
    return found;
  }
  std::string_view member(std::string_view name) const {
    auto v = find(name);
    if (!v) fail(of_, " has no field '" + std::string(name) + "'");
    return *v;
  }

 private:
  std::string_view bytes_;
  const char* of_;
  std::size_t n_ = 0;
  const char* entries_ = nullptr;
};

json request(op o) {
  json r = json::object();
  r[field::op] = name(o);
  return r;
}

}  // namespace

void counted_list::open(std::string& out) {
  out.push_back(static_cast<char>(0xdd));
  at_ = out.size();
  out.append(4, '\0');
}

void counted_list::close(std::string& out) const {
  for (std::size_t i = 0; i < 4; ++i)
    out[at_ + i] = static_cast<char>((count_ >> (8 * (3 - i))) & 0xff);
}

// --- requests ------------------------------------------------------------------------------------

submit_writer::submit_writer(const submit_options& options) {
  r_.code = op::task_submit;  // (no namespace: a submit names a swarm)
  r_.add_string(field::op, name(op::task_submit));
  r_.add_string(queue, options.queue);
  r_.add_string(target, options.target);
  r_.add_bool(bound, options.bound);
  r_.add_unsigned(max_attempts, options.max_attempts);
  if (options.call_timeout_ms) r_.add_unsigned(call_timeout, *options.call_timeout_ms);
  open_list_field(r_, tasks, list_);
}

void submit_writer::add(std::string_view packed_args, std::size_t calls) {
  r_.entries.push_back(static_cast<char>(0x92));  // [args, items]
  append_msgpack_binary(r_.entries, packed_args);
  append_msgpack_unsigned(r_.entries, calls);
  list_.added();
}

packed_request submit_writer::finish() && {
  list_.close(r_.entries);
  return std::move(r_);
}

json take_request(const std::string& queue_name, std::size_t most, std::int64_t worker,
                  const std::string& its_host, std::uint64_t calls,
                  std::string_view measured_on) {
  json r = request(op::task_take);
  r[queue] = queue_name;
  r[max] = most;
  if (calls > 0) r[max_calls] = calls;
  if (!measured_on.empty()) r[calls_target] = measured_on;
  r[pid] = worker;
  r[host] = its_host;
  return r;
}

done_writer::done_writer() {
  r_.code = op::task_done;
  r_.add_string(field::op, name(op::task_done));
  open_list_field(r_, results, list_);
}

void done_writer::add(std::uint64_t id, std::string_view outcome) {
  r_.entries.push_back(static_cast<char>(0x92));  // [id, outcome]
  append_msgpack_unsigned(r_.entries, id);
  r_.entries.append(outcome);
  list_.added();
}

packed_request done_writer::finish() && {
  list_.close(r_.entries);
  return std::move(r_);
}

json wait_request(std::uint64_t begin, std::uint64_t last, std::uint64_t ms,
                  const std::vector<std::uint64_t>& acks) {
  json r = request(op::task_wait);
  r[from] = begin;
  r[to] = last;
  r[wait_ms] = ms;
  if (!acks.empty()) r[ack] = acks;
  return r;
}

json cancel_request(std::uint64_t begin, std::uint64_t last) {
  json r = request(op::task_cancel);
  r[from] = begin;
  r[to] = last;
  return r;
}

json retire_request(const std::string& queue_name, const std::vector<std::int64_t>& leaving,
                    const std::string& workers_host) {
  json r = request(op::task_retire);
  r[queue] = queue_name;
  r[pids] = leaving;
  r[host] = workers_host;
  return r;
}

json info_request(const std::string& queue_name) {
  json r = request(op::task_info);
  r[queue] = queue_name;
  return r;
}

// --- replies -------------------------------------------------------------------------------------

json submit_reply(std::uint64_t id) {
  json r = json::object();
  r[first] = id;
  return r;
}

std::uint64_t parse_submit_reply(const json& reply) {
  return count(member(reply, first, "task_submit reply"), "task_submit reply's 'first'");
}

json retire_reply() {
  json r = json::object();
  r[retire] = true;
  return r;
}

take_reply_writer::take_reply_writer(std::uint64_t request_id) {
  open_listing_reply(out_, request_id, 1, tasks, list_);
}

void take_reply_writer::add(std::uint64_t id, std::string_view task_target,
                            std::string_view packed_args, std::uint64_t n, std::uint64_t attempt,
                            std::int64_t call_timeout_ms) {
  out_.push_back(static_cast<char>(0x96));  // [id, target, args, items, attempt, ct]
  append_msgpack_unsigned(out_, id);
  append_msgpack_string(out_, task_target);
  out_.append(packed_args);
  append_msgpack_unsigned(out_, n);
  append_msgpack_unsigned(out_, attempt);
  append_msgpack_signed(out_, call_timeout_ms);
  list_.added();
}

std::string take_reply_writer::finish() && {
  list_.close(out_);
  return std::move(out_);
}

wait_reply_writer::wait_reply_writer(std::uint64_t request_id) {
  open_listing_reply(out_, request_id, 2, results, list_);
}

void wait_reply_writer::add(std::uint64_t id, std::string_view outcome) {
  out_.push_back(static_cast<char>(0x92));  // [id, outcome]
  append_msgpack_unsigned(out_, id);
  out_.append(outcome);
  list_.added();
}

std::string wait_reply_writer::finish(bool more) && {
  list_.close(out_);
  append_msgpack_string(out_, left);
  append_msgpack_bool(out_, more);
  return std::move(out_);
}

json info_reply(const info& i) {
  json list = json::array();
  for (const auto& w : i.workers) {
    json one = json::object();
    one[client] = w.client;
    one[pid] = w.pid;
    one[host] = w.host;
    one[running] = w.running;
    one[done] = w.done;
    one[retiring] = w.retiring;
    list.push_back(std::move(one));
  }
  json r = json::object();
  r[workers] = std::move(list);
  r[queued] = i.queued;
  r[running] = i.running;
  return r;
}

info parse_info_reply(const json& reply) {
  info out;
  for (const json& w : array_of(member(reply, workers, "task_info reply"), "task_info reply's workers")) {
    worker_entry e;
    e.client = count(member(w, client, "a worker of a task_info reply"), "a worker's client");
    e.pid = integer(member(w, pid, "a worker of a task_info reply"), "a worker's pid");
    e.host = text(member(w, host, "a worker of a task_info reply"), "a worker's host");
    e.running = static_cast<std::size_t>(
        count(member(w, running, "a worker of a task_info reply"), "a worker's running count"));
    e.done = static_cast<std::size_t>(
        count(member(w, done, "a worker of a task_info reply"), "a worker's done count"));
    e.retiring = flag(member(w, retiring, "a worker of a task_info reply"), "a worker's 'retiring'");
    out.workers.push_back(std::move(e));
  }
  out.queued = static_cast<std::size_t>(count(member(reply, queued, "task_info reply"), "'queued'"));
  out.running =
      static_cast<std::size_t>(count(member(reply, running, "task_info reply"), "'running'"));
  return out;
}

take_view parse_take_reply(std::string_view reply) {
  take_view out;
  const packed_map m(reply, "task_take reply");
  if (auto r = m.find(retire)) {
    out.retire = packed_flag(*r, "task_take reply's 'retire'");
    if (out.retire) return out;
  }
  msgpack_reader list(m.member(tasks));
  std::size_t n = 0;
  if (!list.array_header(n)) fail("task_take reply's tasks is not an array");
  out.tasks.reserve(n);
  constexpr const char* shape =
      "a task of a task_take reply is not [id, target, args, items, attempt, ...]";
  for (std::size_t i = 0; i < n; ++i) {
    // [id, target, args, items, attempt, call_timeout]; a server older than call timeouts
    // sends five.
    std::size_t fields = 0;
    if (!list.array_header(fields) || fields < 5) fail(shape);
    task_view v;
    v.id = packed_count(next_value(list, shape), "a taken task's id");
    v.target = packed_text(next_value(list, shape), "a taken task's target");
    v.args = packed_bytes(next_value(list, shape), "a taken task's arguments");
    v.items = static_cast<std::size_t>(packed_count(next_value(list, shape), "a taken task's item count"));
    v.attempt = packed_count(next_value(list, shape), "a taken task's attempt");
    if (fields > 5)
      v.call_timeout_ms = packed_integer(next_value(list, shape), "a taken task's call timeout");
    for (std::size_t k = 6; k < fields; ++k) next_value(list, shape);
    out.tasks.push_back(v);
  }
  return out;
}

wait_view parse_wait_reply(std::string_view reply) {
  wait_view out;
  const packed_map m(reply, "task_wait reply");
  const auto r = m.find(results);
  msgpack_reader list(r.value_or(std::string_view()));
  std::size_t n = 0;
  if (!r || !list.array_header(n)) fail("task_wait reply has no array 'r' of results");
  out.results.reserve(n);
  constexpr const char* shape = "a result of a task_wait reply is not [id, outcome]";
  for (std::size_t i = 0; i < n; ++i) {
    std::size_t fields = 0;
    if (!list.array_header(fields) || fields < 2) fail(shape);
    const std::uint64_t id = packed_count(next_value(list, shape), "a result's task id");
    out.results.emplace_back(id, next_value(list, shape));
    for (std::size_t k = 2; k < fields; ++k) next_value(list, shape);
  }
  out.left = packed_flag(m.member(left), "task_wait reply's 'left'");
  return out;
}

// --- outcomes ------------------------------------------------------------------------------------

std::string ran_outcome(std::string_view packed_values, std::size_t n, std::string_view name,
                        const std::vector<failure>& failed) {
  std::string o;
  o.reserve(packed_values.size() + name.size() + 16);
  append_msgpack_map_header(o, failed.empty() ? 3 : 4);
  append_msgpack_string(o, values);
  append_msgpack_binary(o, packed_values);
  append_msgpack_string(o, items);
  append_msgpack_unsigned(o, n);
  append_msgpack_string(o, target_name);
  append_msgpack_string(o, name);
  if (!failed.empty()) {
    append_msgpack_string(o, failures);
    append_msgpack_array_header(o, failed.size());
    for (const auto& f : failed) {
      o.push_back(static_cast<char>(0x95));  // [index, type, message, stacktrace, report]
      append_msgpack_unsigned(o, f.index);
      append_msgpack_string(o, f.type);
      append_msgpack_string(o, f.message);
      append_msgpack_string(o, f.stacktrace);
      append_msgpack_string(o, f.crash_report);
    }
  }
  return o;
}

json lost_outcome(std::string why, std::int64_t pid_of_worker, const std::string& host_of_worker,
                  std::uint64_t tries, std::size_t n, const std::string& name) {
  json o = json::object();
  o[lost] = std::move(why);
  o[worker_pid] = pid_of_worker;
  o[worker_host] = host_of_worker;
  o[attempts] = tries;
  o[items] = n;
  o[target_name] = name;
  return o;
}

std::string stamped_outcome(std::string_view outcome, std::int64_t pid_of_worker,
                            std::string_view host_of_worker) {
  // A first pass counts the entries to replace (a worker sends none: then the entries are
  // copied in one piece); a second copies the others one by one.
  std::size_t n = 0, replaced = 0;
  msgpack_reader r(outcome);
  if (!r.map_header(n)) fail("an outcome is not a map");
  const char* const entries = r.position();
  for (std::size_t i = 0; i < n; ++i) {
    std::string_view key;
    if (!r.string(key) || !r.skip(1)) fail("an outcome is not a map of named fields");
    if (key == worker_pid || key == worker_host) ++replaced;
  }
  const char* const end = r.position();
  std::string out;
  out.reserve(outcome.size() + host_of_worker.size() + 16);
  append_msgpack_map_header(out, n - replaced + 2);
  if (replaced == 0) {
    out.append(entries, static_cast<std::size_t>(end - entries));
  } else {
    msgpack_reader again(std::string_view(entries, static_cast<std::size_t>(end - entries)));
    for (std::size_t i = 0; i < n; ++i) {
      std::string_view key, value;
      if (!again.string(key) || !again.value_bytes(value, 1)) break;  // (read once already)
      if (key != worker_pid && key != worker_host) {
        append_msgpack_string(out, key);
        out.append(value);
      }
    }
  }
  append_msgpack_string(out, worker_pid);
  append_msgpack_signed(out, pid_of_worker);
  append_msgpack_string(out, worker_host);
  append_msgpack_string(out, host_of_worker);
  return out;
}

outcome parse_outcome(std::string_view o) {
  // One pass over the map: each known field's value (the last of a name given twice, as json
  // reads it); then read in the order json's reader took them.
  struct {
    std::optional<std::string_view> items, target, pid, host, lost, attempts, values, failures;
  } f;
  {
    msgpack_reader r(o);
    std::size_t n = 0;
    if (!r.map_header(n)) fail("an outcome is not an object");
    constexpr const char* shape = "an outcome is not an object";
    for (std::size_t i = 0; i < n; ++i) {
      std::string_view key;
      if (!r.string(key)) fail(shape);
      const std::string_view v = next_value(r, shape);
      if (key == items) f.items = v;
      else if (key == target_name) f.target = v;
      else if (key == worker_pid) f.pid = v;
      else if (key == worker_host) f.host = v;
      else if (key == lost) f.lost = v;
      else if (key == attempts) f.attempts = v;
      else if (key == values) f.values = v;
      else if (key == failures) f.failures = v;
    }
    if (!r.at_end()) fail("an outcome is not one value");
  }
  outcome out;
  // The task's identity: optional (a message is only less precise without it).
  if (auto n = f.items) out.items = std::max<std::size_t>(1, packed_count(*n, "an outcome's item count"));
  if (auto t = f.target) out.target = packed_text(*t, "an outcome's target");
  if (auto p = f.pid) out.worker_pid = packed_integer(*p, "an outcome's worker pid");
  if (auto h = f.host) out.worker_host = packed_text(*h, "an outcome's worker host");
  if (auto x = f.lost) {
    out.lost = packed_text(*x, "an outcome's 'lost'");
    if (auto a = f.attempts) out.attempts = packed_count(*a, "an outcome's attempts");
    return out;
  }
  if (auto v = f.values) {
    const auto bytes = packed_bytes(*v, "an outcome's values");
    out.values.assign(bytes.begin(), bytes.end());
  }
  if (auto list = f.failures) {
    for (const auto one : packed_elements(*list, "an outcome's failures")) {
      // An entry that names no call of the task (a negative or too large index, or not
      // [index, type, message, stacktrace, crash_report]) is skipped; one that names a call
      // but whose texts are not strings makes the outcome malformed.
      std::vector<std::string_view> e;
      try {
        e = packed_elements(one, "a failure");
      } catch (const malformed&) {
        continue;
      }
      if (e.size() < 5) continue;
      std::uint64_t index = 0;
      msgpack_reader r(e[0]);
      if (!r.unsigned_integer(index) || !r.at_end()) continue;  // not an index, or negative
      if (index >= out.items) continue;
      failure x;
      x.index = static_cast<std::size_t>(index);
      x.type = packed_text(e[1], "a failure's type");
      x.message = packed_text(e[2], "a failure's message");
      x.stacktrace = packed_text(e[3], "a failure's stacktrace");
      x.crash_report = packed_text(e[4], "a failure's crash report");
      out.failures.push_back(std::move(x));
    }
  }
  return out;
}

}  // namespace zproc::protocol::tasks
