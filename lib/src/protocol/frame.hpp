// Framing: every message is a 4-byte big-endian length followed by that many bytes of
// MessagePack. Plain classes, no sockets: the I/O drivers feed bytes in and take frames out.
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace zproc::protocol {

inline constexpr std::size_t frame_header_size = 4;
inline constexpr std::size_t default_max_frame_size = 8u * 1024u * 1024u;

/// Appends one frame holding `message` (as MessagePack) to `out`. Returns the frame's payload
/// size, so that callers can enforce a maximum (and roll back with out.resize()).
std::size_t append_frame(std::string& out, const nlohmann::json& message);

/// A frame written in place: begin_frame() reserves its header and returns where it starts;
/// the payload is appended; end_frame() fills the header and returns the payload's size.
std::size_t begin_frame(std::string& out);
std::size_t end_frame(std::string& out, std::size_t start);

/// Appends the header of a frame of `payload_size` bytes (the payload follows separately).
void append_frame_header(std::string& out, std::size_t payload_size);

/// Splits a byte stream into frames. Usage: read into prepare(), commit() what was read, then
/// call next() until it stops returning status::frame. A payload view stays valid until the next
/// prepare().
class frame_decoder {
 public:
  enum class status {
    need_more,  ///< no complete frame buffered
    frame,      ///< `payload` holds the next frame
    too_large,  ///< the next frame announces more than max_frame_size bytes: the stream is lost
  };

  explicit frame_decoder(std::size_t max_frame_size = default_max_frame_size)
      : max_frame_size_(max_frame_size) {}

  /// Space for at least `min_bytes` (more if a partial frame needs it) to read into.
  std::span<char> prepare(std::size_t min_bytes = 64 * 1024);
  void commit(std::size_t n) noexcept { end_ += n; }

  status next(std::string_view& payload);

  /// Size announced by the frame header that next() reported too_large.
  std::size_t announced_size() const noexcept { return announced_; }
  std::size_t buffered() const noexcept { return end_ - begin_; }
  /// Frees a large buffer once nothing is buffered (after a big frame went through).
  void shrink_if_idle(std::size_t keep = 1024 * 1024);
  std::size_t max_frame_size() const noexcept { return max_frame_size_; }

 private:
  // Not a std::vector: growing one zero-fills the new space, which every read overwrites (a
  // connection's buffer is freed when idle, so that cost came back with each burst).
  std::unique_ptr<char[]> buf_;
  std::size_t capacity_ = 0;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
  std::size_t max_frame_size_;
  std::size_t announced_ = 0;
};

/// Decodes a MessagePack payload; returns a discarded value (is_discarded()) if it is invalid.
nlohmann::json decode_payload(std::string_view payload);

}  // namespace zproc::protocol
