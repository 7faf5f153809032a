// The bytes a session has queued for its socket: its own bytes, appended in place, and pieces
// shared with other sessions (a woken watcher's update, encoded once for every watcher). Every
// piece counts in full toward the connection's output limit, shared or not. No I/O: the session
// hands buffers() to one gathered write.
#pragma once

#include <boost/asio/buffer.hpp>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace zproc::server_detail {

class output_queue {
 public:
  /// The owned bytes at the end of the queue, to append to.
  std::string& bytes();
  /// Appends a piece shared with other queues (not copied).
  void append_shared(std::shared_ptr<const std::string> piece);

  /// Bytes queued, shared pieces included.
  std::size_t size() const noexcept;
  bool empty() const noexcept { return size() == 0; }

  /// The queued bytes in order, for one gathered write (valid until the queue changes).
  const std::vector<boost::asio::const_buffer>& buffers();
  /// The same, less the first `skip` bytes (those a write took already; fewer than size()).
  const std::vector<boost::asio::const_buffer>& buffers(std::size_t skip);

  /// Empties the queue, keeping the capacity of its first owned piece unless it is larger than
  /// `keep_capacity` bytes (an idle connection does not hold a big buffer).
  void clear(std::size_t keep_capacity);
  void swap(output_queue& other) noexcept;

 private:
  /// Room for one more piece before anything changes (the size stays right if this throws),
  /// growing by doubling: a reserve() of exactly one more copied every piece at every append.
  void make_room();

  struct piece {
    std::string owned;
    std::shared_ptr<const std::string> shared;
    std::string_view view() const noexcept { return shared ? std::string_view(*shared) : owned; }
  };
  std::vector<piece> pieces_;
  std::size_t sealed_ = 0;  // bytes of every piece but the last
  std::vector<boost::asio::const_buffer> buffers_;
};

}  // namespace zproc::server_detail
