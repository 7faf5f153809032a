#include "swarm/submit_plan.hpp"

#include "protocol/ops.hpp"
#include "protocol/task_messages.hpp"

#include <algorithm>
#include <limits>

namespace zproc::detail {

namespace wire = protocol::tasks;

submit_plan::submit_plan(config c, std::size_t frame_limit)
    : settings_(std::move(c)), frame_limit_(frame_limit) {}

json submit_plan::info_request() const { return wire::info_request(settings_.queue); }

std::size_t submit_plan::workers_in(const json& info_reply) {
  return wire::parse_info_reply(info_reply).workers.size();
}

void submit_plan::resolve(std::size_t workers, std::size_t size_hint) {
  workers_ = std::max<std::size_t>(1, workers);
  resolved_ = true;
  if (settings_.chunk_size != 0) {
    schedule_ = chunk_schedule::fixed(settings_.chunk_size);
  } else if (size_hint == 0) {  // unknown size: 1024 calls per task
    schedule_ = chunk_schedule::fixed(1024);
  } else {  // about 4 tasks per worker, then smaller ones for the tail (chunk.hpp)
    const std::size_t base = std::max<std::size_t>(1, (size_hint + 4 * workers_ - 1) /
                                                          (4 * workers_));
    schedule_ = {base, std::max<std::size_t>(1, base / 64), size_hint, workers_};
  }
  window_ = settings_.window;
  if (window_ == 0)
    window_ = settings_.lazy ? std::max<std::size_t>(8, 4 * workers_)
                             : std::numeric_limits<std::size_t>::max();
}

std::size_t submit_plan::room(std::size_t in_flight) const noexcept {
  return in_flight >= window_ ? 0 : window_ - in_flight;
}

bool submit_plan::due(std::size_t in_flight) const noexcept {
  return !resolved_ || in_flight <= window_ / 2;
}

request submit_plan::next_request(std::vector<packed_chunk>& chunks, std::size_t& i,
                                  std::size_t& n) const {
  wire::submit_options o;
  o.queue = settings_.queue;
  o.target = settings_.target;
  o.bound = settings_.bound;
  o.max_attempts = settings_.max_attempts;
  if (settings_.call_timeout)
    o.call_timeout_ms = static_cast<std::uint64_t>(settings_.call_timeout->count());
  // One request per batch of tasks, well below the frame size; each batch's ids are
  // consecutive (one collector each). 16: a chunk's framing (array, binary header, count).
  const std::size_t limit = frame_limit_ / 2;
  wire::submit_writer w(o);
  std::size_t size = 0;
  while (i < chunks.size() && (w.size() == 0 || size + chunks[i].bytes.size() + 16 <= limit)) {
    auto& c = chunks[i++];
    size += c.bytes.size() + 16;
    w.add(std::string_view(reinterpret_cast<const char*>(c.bytes.data()), c.bytes.size()),
          c.items);
    detail::bytes().swap(c.bytes);
  }
  n = w.size();
  return request_access::wrap(std::move(w).finish());
}

std::uint64_t submit_plan::first_id(const json& submit_reply) {
  return wire::parse_submit_reply(submit_reply);
}

}  // namespace zproc::detail
