#include "server/output_queue.hpp"

#include <algorithm>
#include <cassert>

namespace zproc::server_detail {

void output_queue::append_shared(std::shared_ptr<const std::string> piece_bytes) {
  // Room first (by doubling), so that nothing changes if this throws.
  if (shared_.size() == shared_.capacity())
    shared_.reserve(std::max<std::size_t>(8, 2 * shared_.size()));
  shared_size_ += piece_bytes->size();
  shared_.push_back({owned_.size(), std::move(piece_bytes)});
}

const std::vector<boost::asio::const_buffer>& output_queue::buffers() {
  buffers_.clear();
  std::size_t from = 0;  // owned bytes handed out so far
  for (const auto& s : shared_) {
    assert(s.at <= owned_.size());  // (bytes() taken back only after the last shared piece)
    if (s.at > from) buffers_.emplace_back(owned_.data() + from, s.at - from);
    from = s.at;
    if (!s.bytes->empty()) buffers_.emplace_back(s.bytes->data(), s.bytes->size());
  }
  if (owned_.size() > from) buffers_.emplace_back(owned_.data() + from, owned_.size() - from);
  return buffers_;
}

const std::vector<boost::asio::const_buffer>& output_queue::buffers(std::size_t skip) {
  buffers();
  auto first = buffers_.begin();
  while (skip > 0 && skip >= first->size()) skip -= (first++)->size();
  buffers_.erase(buffers_.begin(), first);
  if (skip > 0) buffers_.front() += skip;
  return buffers_;
}

namespace {

/// Empties `v`, giving its storage back if it is larger than `keep_capacity` bytes.
template <class Container>
void clear_keeping(Container& v, std::size_t keep_capacity) {
  if (v.capacity() * sizeof(typename Container::value_type) <= keep_capacity)
    v.clear();
  else
    Container().swap(v);
}

}  // namespace

void output_queue::clear(std::size_t keep_capacity) {
  clear_keeping(owned_, keep_capacity);
  clear_keeping(shared_, keep_capacity);
  clear_keeping(buffers_, keep_capacity);
  shared_size_ = 0;
}

void output_queue::swap(output_queue& other) noexcept {
  owned_.swap(other.owned_);
  shared_.swap(other.shared_);
  std::swap(shared_size_, other.shared_size_);
  buffers_.swap(other.buffers_);
}

}  // namespace zproc::server_detail
