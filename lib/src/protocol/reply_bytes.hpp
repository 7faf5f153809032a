// Encoded MessagePack that a server's reply carries: a short piece (a store op's whole reply,
// a woken watcher's envelope) inline, without an allocation; a longer one (a large get, a
// swarm's batch of tasks) in a string it adopts, never copied. No I/O.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

namespace zproc::protocol {

class reply_bytes {
 public:
  /// The longest piece held inline. A store op's reply with a scalar result and a revision is
  /// at most 35 bytes, a watch reply's envelope at most 40.
  static constexpr std::size_t inline_capacity = 46;

  reply_bytes() noexcept = default;
  /// Adopts `bytes` (implicit: taking a string's buffer costs nothing).
  reply_bytes(std::string&& bytes) noexcept : heap_(std::move(bytes)) {}  // NOLINT

  /// Room for exactly `n` bytes, to be written at the returned pointer (what was held is gone):
  /// inline when `n` fits, else an allocation.
  char* assign_uninitialized(std::size_t n) {
    if (n <= inline_capacity) {
      std::string().swap(heap_);
      inline_size_ = static_cast<std::uint8_t>(n);
      return inline_.data();
    }
    inline_size_ = 0;
    heap_.assign(n, '\0');
    return heap_.data();
  }

  std::string_view view() const noexcept {
    return inline_size_ != 0 ? std::string_view(inline_.data(), inline_size_)
                             : std::string_view(heap_);
  }
  std::size_t size() const noexcept { return view().size(); }
  bool empty() const noexcept { return size() == 0; }

 private:
  std::string heap_;              // used when inline_size_ is 0
  std::uint8_t inline_size_ = 0;  // bytes of inline_ in use
  std::array<char, inline_capacity> inline_{};
};

}  // namespace zproc::protocol
