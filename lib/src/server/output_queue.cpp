#include "server/output_queue.hpp"

#include <algorithm>

namespace zproc::server_detail {

void output_queue::make_room() {
  if (pieces_.size() == pieces_.capacity())
    pieces_.reserve(std::max<std::size_t>(8, 2 * pieces_.size()));
}

std::string& output_queue::bytes() {
  if (pieces_.empty() || pieces_.back().shared) {
    make_room();
    if (!pieces_.empty()) sealed_ += pieces_.back().view().size();
    pieces_.emplace_back();
  }
  return pieces_.back().owned;
}

void output_queue::append_shared(std::shared_ptr<const std::string> piece_bytes) {
  make_room();
  if (!pieces_.empty()) sealed_ += pieces_.back().view().size();
  pieces_.push_back({std::string(), std::move(piece_bytes)});
}

std::size_t output_queue::size() const noexcept {
  return pieces_.empty() ? 0 : sealed_ + pieces_.back().view().size();
}

const std::vector<boost::asio::const_buffer>& output_queue::buffers() {
  buffers_.clear();
  for (const auto& p : pieces_) {
    const auto v = p.view();
    if (!v.empty()) buffers_.emplace_back(v.data(), v.size());
  }
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

void output_queue::clear(std::size_t keep_capacity) {
  if (!pieces_.empty() && !pieces_.front().shared &&
      pieces_.front().owned.capacity() <= keep_capacity) {
    pieces_.resize(1);
    pieces_.front().owned.clear();
  } else {
    pieces_.clear();
  }
  sealed_ = 0;
  buffers_.clear();
}

void output_queue::swap(output_queue& other) noexcept {
  pieces_.swap(other.pieces_);
  std::swap(sealed_, other.sealed_);
  buffers_.swap(other.buffers_);
}

}  // namespace zproc::server_detail
