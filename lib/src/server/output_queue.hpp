// The bytes a session has queued for its socket: its own bytes, appended in place, and pieces
// shared with other sessions (a woken watcher's update, encoded once for every watcher). Every
// piece counts in full toward the connection's output limit, shared or not. No I/O: the session
// hands buffers() to one gathered write.
#pragma once

#include <boost/asio/buffer.hpp>

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

namespace zproc::server_detail {

class output_queue {
 public:
  /// The owned bytes of the queue, to append to at the end. Nothing already there is to be
  /// changed, except that a caller may take back bytes it appended since the last
  /// append_shared() (a reply found too large).
  std::string& bytes() noexcept { return owned_; }
  /// Appends a piece shared with other queues (not copied).
  void append_shared(std::shared_ptr<const std::string> piece);

  /// Bytes queued, shared pieces included.
  std::size_t size() const noexcept { return owned_.size() + shared_size_; }
  bool empty() const noexcept { return size() == 0; }

  /// The queued bytes in order, for one gathered write (valid until the queue changes).
  const std::vector<boost::asio::const_buffer>& buffers();
  /// The same, less the first `skip` bytes (those a write took already; fewer than size()).
  const std::vector<boost::asio::const_buffer>& buffers(std::size_t skip);

  /// Empties the queue, keeping the capacity of its owned bytes, and of its arrays of shared
  /// pieces and of buffers, each unless it is larger than `keep_capacity` bytes (an idle
  /// connection holds no big buffer, nor what a burst of 1,000 woken watchers grew).
  void clear(std::size_t keep_capacity);
  void swap(output_queue& other) noexcept;

 private:
  /// A piece shared with other queues, and where it goes: before the owned bytes from `at` on.
  struct shared_piece {
    std::size_t at;
    std::shared_ptr<const std::string> bytes;
  };
  /// Every owned byte of the queue, in one buffer (the shared pieces go between them): an
  /// envelope between two shared pieces costs no buffer of its own.
  std::string owned_;
  std::vector<shared_piece> shared_;
  std::size_t shared_size_ = 0;  // bytes of the shared pieces
  std::vector<boost::asio::const_buffer> buffers_;
};

}  // namespace zproc::server_detail
