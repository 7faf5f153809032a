// A MessagePack decoder into nlohmann::json that copies strings and binaries in one piece
// (nlohmann's own reads them a byte at a time: 3 ms per MiB, which made a swarm's chunks of
// results cost more than the calls). Same result as json::from_msgpack(strict) for every
// valid input; nesting deeper than max_depth is refused. No I/O.
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace zproc::protocol {

inline constexpr std::size_t max_msgpack_depth = 512;

/// Decodes one MessagePack value that spans all of `bytes`; a discarded value
/// (is_discarded()) if the bytes are not exactly one valid value.
nlohmann::json decode_msgpack(std::string_view bytes);

/// A pull reader over MessagePack bytes, for the shapes decoded without a json tree (a reply's
/// envelope, a watch reply): headers, strings and scalars are read in place, a value is decoded
/// into json (as decode_msgpack() would) or stepped over. A read that meets a value of another
/// type returns false and consumes nothing (skip() it, or read it otherwise); after a failure
/// on malformed or truncated input the reader is of no further use. Nothing throws but
/// value()'s allocations.
class msgpack_reader {
 public:
  explicit msgpack_reader(std::string_view bytes) noexcept
      : p_(reinterpret_cast<const unsigned char*>(bytes.data())), end_(p_ + bytes.size()) {}

  /// One whole value into `out`, nested at most max_msgpack_depth - depth levels deep.
  bool value(nlohmann::json& out, std::size_t depth = 0);
  /// Steps over one whole value, refusing what value() would refuse (without allocating).
  bool skip(std::size_t depth = 0) noexcept;
  /// The same; `bytes` gets the value's MessagePack, in place.
  bool value_bytes(std::string_view& bytes, std::size_t depth = 0) noexcept;
  /// The header of a map (`n` pairs follow) or of an array (`n` elements).
  bool map_header(std::size_t& n) noexcept;
  bool array_header(std::size_t& n) noexcept;
  /// A string, in place: valid as long as the bytes are.
  bool string(std::string_view& s) noexcept;
  /// A binary (bin 8, 16 or 32), its bytes in place; with `ext_too`, an ext as well (its type
  /// dropped: json reads an ext as a binary with a subtype).
  bool binary(std::string_view& b, bool ext_too = false) noexcept;
  /// An integer of any width that fits `v`.
  bool unsigned_integer(std::uint64_t& v) noexcept;
  /// An integer in an unsigned form (a positive fixint, uint 8 to 64): what json reads as
  /// number_unsigned (a non-negative integer in a signed form is not).
  bool unsigned_form(std::uint64_t& v) noexcept;
  bool signed_integer(std::int64_t& v) noexcept;
  bool boolean(bool& b) noexcept;
  /// Whether the next value is nil (then it is consumed).
  bool nil() noexcept;

  bool at_end() const noexcept { return p_ == end_; }
  /// Where the next value starts (the bytes of a value: position() before and after skip()).
  const char* position() const noexcept { return reinterpret_cast<const char*>(p_); }

 private:
  std::size_t left() const noexcept { return static_cast<std::size_t>(end_ - p_); }
  template <class U>
  bool number(U& out) noexcept;
  template <class U, class F>
  bool sized(F&& then);
  template <class U>
  bool unsigned_value(nlohmann::json& out);
  template <class U, class S>
  bool signed_value(nlohmann::json& out);
  bool string(std::size_t n, nlohmann::json& out);
  bool binary(std::size_t n, nlohmann::json& out);
  bool ext(std::size_t n, nlohmann::json& out);
  bool array(std::size_t n, nlohmann::json& out, std::size_t depth);
  bool object(std::size_t n, nlohmann::json& out, std::size_t depth);
  bool skip_bytes(std::size_t n) noexcept;
  /// A map's or an array's header: fix form (`fix` | n < 16), 16 or 32 bits; false if the
  /// bytes left cannot hold n elements of at least `min_bytes_each`.
  bool header(std::size_t& n, unsigned char fix, unsigned char type16, unsigned char type32,
              std::size_t min_bytes_each) noexcept;
  /// An integer's bits and whether it is signed (false: not an integer).
  bool integer(std::uint64_t& bits, bool& is_signed) noexcept;

  const unsigned char* p_;
  const unsigned char* end_;
};

/// Appends `v` as MessagePack to `out`: the bytes json::to_msgpack writes (the same choice of
/// widths: the smallest integer, float32 when exact), written straight into the string
/// (nlohmann's writer makes a virtual call per piece and an adapter per call).
void append_msgpack(std::string& out, const nlohmann::json& v);
/// One unsigned integer or one string, as append_msgpack() writes it (no json built for it).
void append_msgpack_unsigned(std::string& out, std::uint64_t v);
void append_msgpack_string(std::string& out, std::string_view s);
void append_msgpack_signed(std::string& out, std::int64_t v);

// Raw writers, for a message of a few scalars built in a buffer of its own (a store op's
// reply): each writes at `p` and returns where it ended. The same bytes as append_msgpack().
/// An unsigned integer (room for 9 bytes).
char* write_msgpack_unsigned(char* p, std::uint64_t v) noexcept;
/// A scalar json value: null, a boolean or a number (room for 9 bytes); nullptr, nothing
/// written, for any other type.
char* write_msgpack_scalar(char* p, const nlohmann::json& v) noexcept;
/// A string's header, its bytes to follow (room for 5 bytes).
char* write_msgpack_string_header(char* p, std::size_t n) noexcept;
/// A string: its header and its bytes (room for 5 + s.size() bytes).
char* write_msgpack_string(char* p, std::string_view s) noexcept;
void append_msgpack_bool(std::string& out, bool b);
/// A binary (no subtype) of `bytes`.
void append_msgpack_binary(std::string& out, std::string_view bytes);
/// The header of a map of `n` pairs (its keys and values follow), of an array of `n` elements.
void append_msgpack_map_header(std::string& out, std::size_t n);
void append_msgpack_array_header(std::string& out, std::size_t n);

/// An upper bound of the bytes json::to_msgpack writes for `v` (numbers count as 9 bytes, the
/// rest is exact), without encoding it: O(size of v). For the byte budgets of pages.
std::size_t packed_size(const nlohmann::json& v);

}  // namespace zproc::protocol
