#include "protocol/frame.hpp"

#include "protocol/msgpack.hpp"

#include <algorithm>
#include <cstring>

namespace zproc::protocol {

std::size_t begin_frame(std::string& out) {
  const std::size_t start = out.size();
  out.append(frame_header_size, '\0');
  return start;
}

std::size_t end_frame(std::string& out, std::size_t start) {
  const std::size_t size = out.size() - start - frame_header_size;
  const auto n = static_cast<std::uint32_t>(size);
  out[start + 0] = static_cast<char>((n >> 24) & 0xff);
  out[start + 1] = static_cast<char>((n >> 16) & 0xff);
  out[start + 2] = static_cast<char>((n >> 8) & 0xff);
  out[start + 3] = static_cast<char>(n & 0xff);
  return size;
}

std::size_t append_frame(std::string& out, const nlohmann::json& message) {
  const std::size_t start = begin_frame(out);
  append_msgpack(out, message);
  return end_frame(out, start);
}

void append_frame_header(std::string& out, std::size_t payload_size) {
  const auto n = static_cast<std::uint32_t>(payload_size);
  const char header[frame_header_size] = {
      static_cast<char>((n >> 24) & 0xff), static_cast<char>((n >> 16) & 0xff),
      static_cast<char>((n >> 8) & 0xff), static_cast<char>(n & 0xff)};
  out.append(header, frame_header_size);
}


std::span<char> frame_decoder::prepare(std::size_t min_bytes) {
  // Move a partial frame to the front so that the buffer does not grow with the stream.
  if (begin_ == end_) {
    begin_ = end_ = 0;
  } else if (begin_ > 0 && (capacity_ - end_ < min_bytes)) {
    std::memmove(buf_.get(), buf_.get() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  const std::size_t need = end_ + min_bytes;
  if (capacity_ < need) {
    const std::size_t grown = std::max(need, capacity_ * 2);
    auto bigger = std::make_unique_for_overwrite<char[]>(grown);  // (not zero-filled)
    if (end_ > begin_) std::memcpy(bigger.get(), buf_.get() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
    buf_ = std::move(bigger);
    capacity_ = grown;
  }
  return {buf_.get() + end_, capacity_ - end_};
}

void frame_decoder::shrink_if_idle(std::size_t keep) {
  if (begin_ != end_ || capacity_ <= keep) return;
  buf_.reset();
  capacity_ = 0;
  begin_ = end_ = 0;
}

frame_decoder::status frame_decoder::next(std::string_view& payload) {
  const std::size_t avail = end_ - begin_;
  if (avail < frame_header_size) return status::need_more;
  const auto* p = reinterpret_cast<const unsigned char*>(buf_.get() + begin_);
  const std::size_t size = (std::size_t{p[0]} << 24) | (std::size_t{p[1]} << 16) |
                           (std::size_t{p[2]} << 8) | std::size_t{p[3]};
  if (size > max_frame_size_) {
    announced_ = size;
    return status::too_large;
  }
  if (avail < frame_header_size + size) return status::need_more;
  payload = std::string_view(buf_.get() + begin_ + frame_header_size, size);
  begin_ += frame_header_size + size;
  return status::frame;
}

nlohmann::json decode_payload(std::string_view payload) { return decode_msgpack(payload); }

}  // namespace zproc::protocol
