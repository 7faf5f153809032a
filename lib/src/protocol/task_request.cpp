#include "protocol/task_request.hpp"

#include "protocol/message.hpp"
#include "protocol/msgpack.hpp"
#include "protocol/request_reader.hpp"
#include "protocol/tasks.hpp"
#include "protocol/value_check.hpp"

#include <algorithm>
#include <limits>

namespace zproc::protocol {

namespace {

// Where an outcome's fields are nested, counted so that msgpack_reader::skip refuses one that
// nests deeper than max_request_depth levels (the outcome map itself is level 1): the server
// sends it on one level deeper than it came, and the client's reader must still take it.
constexpr std::size_t outcome_field_depth = max_msgpack_depth - max_request_depth + 2;
// At most this many elements reserved ahead of reading them (a count comes from the wire).
constexpr std::size_t max_reserve = 1024;

bool non_empty_string(msgpack_reader& r, std::string_view& s) noexcept {
  return r.string(s) && !s.empty();
}

/// [[binary, items > 0], ...], not empty.
bool read_chunks(msgpack_reader& r, std::vector<task_chunk>& out) {
  std::size_t n = 0;
  if (!r.array_header(n) || n == 0) return false;
  out.clear();
  out.reserve(std::min(n, max_reserve));
  for (std::size_t i = 0; i < n; ++i) {
    std::size_t pair = 0;
    task_chunk c;
    std::string_view bytes;
    if (!r.array_header(pair) || pair != 2) return false;
    const char* const args = r.position();
    if (!r.binary(bytes)) return false;  // (an ext: the json path)
    c.args = std::string_view(args, static_cast<std::size_t>(r.position() - args));
    if (!r.unsigned_integer(c.items) || c.items == 0) return false;
    out.push_back(c);
  }
  return true;
}

/// [[id, outcome map], ...].
bool read_results(msgpack_reader& r, std::vector<task_result>& out) {
  std::size_t n = 0;
  if (!r.array_header(n)) return false;
  out.clear();
  out.reserve(std::min(n, max_reserve));
  for (std::size_t i = 0; i < n; ++i) {
    std::size_t pair = 0, fields = 0;
    task_result t;
    if (!r.array_header(pair) || pair != 2 || !r.unsigned_integer(t.task)) return false;
    const char* const start = r.position();
    if (!r.map_header(fields)) return false;
    for (std::size_t k = 0; k < fields; ++k) {
      std::string_view key;
      if (!r.string(key) || !r.skip(outcome_field_depth)) return false;
    }
    t.outcome = std::string_view(start, static_cast<std::size_t>(r.position() - start));
    out.push_back(t);
  }
  return true;
}

bool read_counts(msgpack_reader& r, std::vector<std::uint64_t>& out) {
  std::size_t n = 0;
  if (!r.array_header(n)) return false;
  out.clear();
  out.reserve(std::min(n, max_reserve));
  for (std::size_t i = 0; i < n; ++i) {
    std::uint64_t v = 0;
    if (!r.unsigned_integer(v)) return false;
    out.push_back(v);
  }
  return true;
}

}  // namespace

bool flat_task_op(op o) noexcept {
  return o == op::task_submit || o == op::task_take || o == op::task_done || o == op::task_wait;
}

bool decode_task_request(std::string_view payload, task_request& out) {
  out = {};
  bool has_tasks = false, has_results = false, has_from = false, has_to = false;
  const bool read = read_request(
      payload, out.id, out.code, flat_task_op, [&](std::string_view name, msgpack_reader& r) {
        if (name == tasks::queue) return non_empty_string(r, out.queue);
        if (name == tasks::target) return non_empty_string(r, out.target);
        if (name == tasks::tasks) return has_tasks = read_chunks(r, out.tasks);
        if (name == tasks::bound) return r.boolean(out.bound);
        if (name == tasks::max_attempts)
          return r.unsigned_integer(out.max_attempts) && out.max_attempts > 0 &&
                 out.max_attempts <= std::numeric_limits<std::uint32_t>::max();
        if (name == tasks::call_timeout) return r.unsigned_integer(out.call_timeout_ms);
        if (name == tasks::max) return r.unsigned_integer(out.max);
        if (name == tasks::max_calls) return r.unsigned_integer(out.max_calls);
        if (name == tasks::calls_target) return non_empty_string(r, out.calls_target);
        if (name == tasks::pid) return r.signed_integer(out.pid);
        if (name == tasks::host) return r.string(out.host);
        if (name == tasks::results) return has_results = read_results(r, out.results);
        if (name == tasks::from) return has_from = r.unsigned_integer(out.from);
        if (name == tasks::to) return has_to = r.unsigned_integer(out.to);
        if (name == tasks::wait_ms) return r.unsigned_integer(out.wait_ms);
        if (name == tasks::ack) return read_counts(r, out.ack);
        // Any other field: the json path (it may mean something this reader does not know).
        return false;
      });
  if (!read) return false;
  switch (out.code) {
    case op::task_submit: return !out.queue.empty() && !out.target.empty() && has_tasks;
    case op::task_take: return !out.queue.empty();
    case op::task_done: return has_results;
    case op::task_wait: return has_from && has_to;
    default: return false;
  }
}

}  // namespace zproc::protocol
