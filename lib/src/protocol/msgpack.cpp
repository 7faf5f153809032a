#include "protocol/msgpack.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

namespace zproc::protocol {

using json = nlohmann::json;

// --- msgpack_reader: into json ----------------------------------------------------------------

bool msgpack_reader::value(json& out, std::size_t depth) {
  if (depth > max_msgpack_depth || p_ == end_) return false;
  const unsigned char b = *p_++;
  if (b <= 0x7f) {
    out = static_cast<std::uint64_t>(b);
    return true;
  }
  if (b >= 0xe0) {
    out = static_cast<std::int64_t>(static_cast<std::int8_t>(b));
    return true;
  }
  if ((b & 0xf0) == 0x80) return object(b & 0x0f, out, depth);
  if ((b & 0xf0) == 0x90) return array(b & 0x0f, out, depth);
  if ((b & 0xe0) == 0xa0) return string(b & 0x1f, out);
  switch (b) {
    case 0xc0: out = nullptr; return true;
    case 0xc2: out = false; return true;
    case 0xc3: out = true; return true;
    case 0xc4: return sized<std::uint8_t>([&](std::size_t n) { return binary(n, out); });
    case 0xc5: return sized<std::uint16_t>([&](std::size_t n) { return binary(n, out); });
    case 0xc6: return sized<std::uint32_t>([&](std::size_t n) { return binary(n, out); });
    case 0xc7: return sized<std::uint8_t>([&](std::size_t n) { return ext(n, out); });
    case 0xc8: return sized<std::uint16_t>([&](std::size_t n) { return ext(n, out); });
    case 0xc9: return sized<std::uint32_t>([&](std::size_t n) { return ext(n, out); });
    case 0xca: {
      std::uint32_t u;
      if (!number(u)) return false;
      float f;
      std::memcpy(&f, &u, sizeof f);
      out = static_cast<double>(f);
      return true;
    }
    case 0xcb: {
      std::uint64_t u;
      if (!number(u)) return false;
      double d;
      std::memcpy(&d, &u, sizeof d);
      out = d;
      return true;
    }
    case 0xcc: return unsigned_value<std::uint8_t>(out);
    case 0xcd: return unsigned_value<std::uint16_t>(out);
    case 0xce: return unsigned_value<std::uint32_t>(out);
    case 0xcf: return unsigned_value<std::uint64_t>(out);
    case 0xd0: return signed_value<std::uint8_t, std::int8_t>(out);
    case 0xd1: return signed_value<std::uint16_t, std::int16_t>(out);
    case 0xd2: return signed_value<std::uint32_t, std::int32_t>(out);
    case 0xd3: return signed_value<std::uint64_t, std::int64_t>(out);
    case 0xd4: return ext(1, out);
    case 0xd5: return ext(2, out);
    case 0xd6: return ext(4, out);
    case 0xd7: return ext(8, out);
    case 0xd8: return ext(16, out);
    case 0xd9: return sized<std::uint8_t>([&](std::size_t n) { return string(n, out); });
    case 0xda: return sized<std::uint16_t>([&](std::size_t n) { return string(n, out); });
    case 0xdb: return sized<std::uint32_t>([&](std::size_t n) { return string(n, out); });
    case 0xdc: return sized<std::uint16_t>([&](std::size_t n) { return array(n, out, depth); });
    case 0xdd: return sized<std::uint32_t>([&](std::size_t n) { return array(n, out, depth); });
    case 0xde: return sized<std::uint16_t>([&](std::size_t n) { return object(n, out, depth); });
    case 0xdf: return sized<std::uint32_t>([&](std::size_t n) { return object(n, out, depth); });
    default: return false;  // 0xc1 is never used
  }
}

/// A big-endian unsigned integer of type U.
template <class U>
bool msgpack_reader::number(U& out) noexcept {
  if (left() < sizeof(U)) return false;
  U v = 0;
  for (std::size_t i = 0; i < sizeof(U); ++i) v = static_cast<U>((v << 8) | p_[i]);
  p_ += sizeof(U);
  out = v;
  return true;
}
template <class U, class F>
bool msgpack_reader::sized(F&& then) {
  U n;
  return number(n) && then(static_cast<std::size_t>(n));
}
template <class U>
bool msgpack_reader::unsigned_value(json& out) {
  U v;
  if (!number(v)) return false;
  out = static_cast<std::uint64_t>(v);
  return true;
}
template <class U, class S>
bool msgpack_reader::signed_value(json& out) {
  U v;
  if (!number(v)) return false;
  out = static_cast<std::int64_t>(static_cast<S>(v));
  return true;
}

bool msgpack_reader::string(std::size_t n, json& out) {
  if (left() < n) return false;
  out = std::string(reinterpret_cast<const char*>(p_), n);
  p_ += n;
  return true;
}
bool msgpack_reader::binary(std::size_t n, json& out) {
  if (left() < n) return false;
  out = json::binary(std::vector<std::uint8_t>(p_, p_ + n));
  p_ += n;
  return true;
}
bool msgpack_reader::ext(std::size_t n, json& out) {
  if (left() < 1 || left() - 1 < n) return false;
  const auto subtype = static_cast<std::int8_t>(*p_++);
  out = json::binary(std::vector<std::uint8_t>(p_, p_ + n), static_cast<std::uint8_t>(subtype));
  p_ += n;
  return true;
}
bool msgpack_reader::array(std::size_t n, json& out, std::size_t depth) {
  if (left() < n) return false;  // every element takes at least one byte
  out = json::array();
  auto& a = out.get_ref<json::array_t&>();
  // Not n at once: nested arrays each announcing the rest of the frame would multiply it.
  a.reserve(std::min<std::size_t>(n, 1024));
  for (std::size_t i = 0; i < n; ++i)
    if (!value(a.emplace_back(), depth + 1)) return false;
  return true;
}
bool msgpack_reader::object(std::size_t n, json& out, std::size_t depth) {
  if (left() / 2 < n) return false;  // a key and a value: at least two bytes
  out = json::object();
  auto& o = out.get_ref<json::object_t&>();
  for (std::size_t i = 0; i < n; ++i) {
    std::string_view key;
    if (!string(key)) return false;  // a map's key must be a string (read in place)
    // (A key given twice: the last value stands, as before.)
    if (!value(o[std::string(key)], depth + 1)) return false;
  }
  return true;
}

// --- msgpack_reader: in place -----------------------------------------------------------------

bool msgpack_reader::skip_bytes(std::size_t n) noexcept {
  if (left() < n) return false;
  p_ += n;
  return true;
}

bool msgpack_reader::skip(std::size_t depth) noexcept {
  if (depth > max_msgpack_depth || p_ == end_) return false;
  const unsigned char b = *p_;
  std::size_t n = 0;
  if ((b & 0xf0) == 0x80 || b == 0xde || b == 0xdf) {
    if (!map_header(n)) return false;
    for (std::size_t i = 0; i < n; ++i) {
      std::string_view key;
      if (!string(key) || !skip(depth + 1)) return false;
    }
    return true;
  }
  if ((b & 0xf0) == 0x90 || b == 0xdc || b == 0xdd) {
    if (!array_header(n)) return false;
    for (std::size_t i = 0; i < n; ++i)
      if (!skip(depth + 1)) return false;
    return true;
  }
  ++p_;
  if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) return true;
  if ((b & 0xe0) == 0xa0) return skip_bytes(b & 0x1f);
  const auto then_skip = [this](std::size_t extra) {
    return [this, extra](std::size_t len) { return skip_bytes(len + extra); };
  };
  switch (b) {
    case 0xc4: case 0xd9: return sized<std::uint8_t>(then_skip(0));
    case 0xc5: case 0xda: return sized<std::uint16_t>(then_skip(0));
    case 0xc6: case 0xdb: return sized<std::uint32_t>(then_skip(0));
    case 0xc7: return sized<std::uint8_t>(then_skip(1));  // ext: a subtype, then the bytes
    case 0xc8: return sized<std::uint16_t>(then_skip(1));
    case 0xc9: return sized<std::uint32_t>(then_skip(1));
    case 0xcc: case 0xd0: return skip_bytes(1);
    case 0xcd: case 0xd1: return skip_bytes(2);
    case 0xca: case 0xce: case 0xd2: return skip_bytes(4);
    case 0xcb: case 0xcf: case 0xd3: return skip_bytes(8);
    case 0xd4: return skip_bytes(2);
    case 0xd5: return skip_bytes(3);
    case 0xd6: return skip_bytes(5);
    case 0xd7: return skip_bytes(9);
    case 0xd8: return skip_bytes(17);
    default: return false;  // 0xc1 is never used
  }
}

bool msgpack_reader::value_bytes(std::string_view& bytes, std::size_t depth) noexcept {
  const unsigned char* const start = p_;
  if (!skip(depth)) return false;
  bytes = std::string_view(reinterpret_cast<const char*>(start), static_cast<std::size_t>(p_ - start));
  return true;
}

bool msgpack_reader::header(std::size_t& n, unsigned char fix, unsigned char type16,
                            unsigned char type32, std::size_t min_bytes_each) noexcept {
  if (p_ == end_) return false;
  const unsigned char b = *p_;
  if ((b & 0xf0) == fix) {
    ++p_;
    n = b & 0x0f;
  } else if (b == type16) {
    ++p_;
    std::uint16_t k;
    if (!number(k)) return false;
    n = k;
  } else if (b == type32) {
    ++p_;
    std::uint32_t k;
    if (!number(k)) return false;
    n = k;
  } else {
    return false;
  }
  return left() / min_bytes_each >= n;  // what the bytes left can hold
}

bool msgpack_reader::map_header(std::size_t& n) noexcept {
  return header(n, 0x80, 0xde, 0xdf, 2);  // a key and a value: at least two bytes
}

bool msgpack_reader::array_header(std::size_t& n) noexcept {
  return header(n, 0x90, 0xdc, 0xdd, 1);  // every element takes at least one byte
}

bool msgpack_reader::binary(std::string_view& bytes, bool ext_too) noexcept {
  if (p_ == end_) return false;
  const unsigned char b = *p_;
  std::size_t width = 0, fixed = 0;  // bytes of the length, or the fixed length of a fixext
  bool ext = false;
  if (b >= 0xc4 && b <= 0xc6) {
    width = b == 0xc4 ? 1 : b == 0xc5 ? 2 : 4;
  } else if (ext_too && b >= 0xc7 && b <= 0xc9) {
    width = b == 0xc7 ? 1 : b == 0xc8 ? 2 : 4;
    ext = true;
  } else if (ext_too && b >= 0xd4 && b <= 0xd8) {
    fixed = std::size_t{1} << (b - 0xd4);  // fixext 1, 2, 4, 8, 16
    ext = true;
  } else {
    return false;
  }
  const unsigned char* const start = p_++;
  std::size_t n = fixed;
  if (left() < width) {
    p_ = start;
    return false;
  }
  for (std::size_t i = 0; i < width; ++i) n = (n << 8) | *p_++;
  if (ext) {  // its type byte
    if (left() < 1) {
      p_ = start;
      return false;
    }
    ++p_;
  }
  if (left() < n) {
    p_ = start;
    return false;
  }
  bytes = std::string_view(reinterpret_cast<const char*>(p_), n);
  p_ += n;
  return true;
}

bool msgpack_reader::string(std::string_view& s) noexcept {
  if (p_ == end_) return false;
  const unsigned char b = *p_;
  std::size_t n = 0;
  if ((b & 0xe0) == 0xa0) {
    ++p_;
    n = b & 0x1f;
  } else if (b == 0xd9 || b == 0xda || b == 0xdb) {
    ++p_;
    const int bytes = b == 0xd9 ? 1 : b == 0xda ? 2 : 4;
    if (left() < static_cast<std::size_t>(bytes)) return false;
    for (int i = 0; i < bytes; ++i) n = (n << 8) | *p_++;
  } else {
    return false;
  }
  if (left() < n) return false;
  s = std::string_view(reinterpret_cast<const char*>(p_), n);
  p_ += n;
  return true;
}

bool msgpack_reader::integer(std::uint64_t& bits, bool& is_signed) noexcept {
  if (p_ == end_) return false;
  const unsigned char* const start = p_;
  const unsigned char b = *p_;
  is_signed = false;
  if (b <= 0x7f) {
    ++p_;
    bits = b;
    return true;
  }
  if (b >= 0xe0) {
    ++p_;
    is_signed = true;
    bits = static_cast<std::uint64_t>(static_cast<std::int64_t>(static_cast<std::int8_t>(b)));
    return true;
  }
  const auto read = [&](auto width, bool sign) {
    using U = decltype(width);
    using S = std::make_signed_t<U>;
    ++p_;
    U v;
    if (!number(v)) {
      p_ = start;
      return false;
    }
    is_signed = sign;
    bits = sign ? static_cast<std::uint64_t>(static_cast<std::int64_t>(static_cast<S>(v)))
                : static_cast<std::uint64_t>(v);
    return true;
  };
  switch (b) {
    case 0xcc: return read(std::uint8_t{}, false);
    case 0xcd: return read(std::uint16_t{}, false);
    case 0xce: return read(std::uint32_t{}, false);
    case 0xcf: return read(std::uint64_t{}, false);
    case 0xd0: return read(std::uint8_t{}, true);
    case 0xd1: return read(std::uint16_t{}, true);
    case 0xd2: return read(std::uint32_t{}, true);
    case 0xd3: return read(std::uint64_t{}, true);
    default: return false;
  }
}

bool msgpack_reader::unsigned_integer(std::uint64_t& v) noexcept {
  std::uint64_t bits;
  bool is_signed;
  const unsigned char* const start = p_;
  if (!integer(bits, is_signed)) return false;
  if (is_signed && static_cast<std::int64_t>(bits) < 0) {
    p_ = start;
    return false;
  }
  v = bits;
  return true;
}

bool msgpack_reader::unsigned_form(std::uint64_t& v) noexcept {
  const unsigned char* const start = p_;
  std::uint64_t bits;
  bool is_signed;
  if (!integer(bits, is_signed)) return false;
  if (is_signed) {
    p_ = start;
    return false;
  }
  v = bits;
  return true;
}

bool msgpack_reader::signed_integer(std::int64_t& v) noexcept {
  std::uint64_t bits;
  bool is_signed;
  const unsigned char* const start = p_;
  if (!integer(bits, is_signed)) return false;
  if (!is_signed && bits > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    p_ = start;
    return false;
  }
  v = static_cast<std::int64_t>(bits);
  return true;
}

bool msgpack_reader::boolean(bool& b) noexcept {
  if (p_ == end_ || (*p_ != 0xc2 && *p_ != 0xc3)) return false;
  b = *p_++ == 0xc3;
  return true;
}

bool msgpack_reader::nil() noexcept {
  if (p_ == end_ || *p_ != 0xc0) return false;
  ++p_;
  return true;
}

json decode_msgpack(std::string_view bytes) {
  msgpack_reader r(bytes);
  json out;
  if (!r.value(out, 0) || !r.at_end()) return json(json::value_t::discarded);
  return out;
}

namespace {
/// Bytes of a str/bin/array/map header for `n` elements or bytes (fix: fits in the type byte).
std::size_t header_size(std::size_t n, std::size_t fix_below, bool has_8bit) {
  if (n < fix_below) return 1;
  if (has_8bit && n <= 0xff) return 2;
  if (n <= 0xffff) return 3;
  return 5;
}
}  // namespace

namespace {
/// `n` in `bytes` big-endian bytes.
void put_be(std::string& out, std::uint64_t n, int bytes) {
  char b[8];
  for (int i = bytes - 1; i >= 0; --i) {
    b[i] = static_cast<char>(n & 0xff);
    n >>= 8;
  }
  out.append(b, static_cast<std::size_t>(bytes));
}
void put_type(std::string& out, unsigned char t) { out.push_back(static_cast<char>(t)); }
/// A header of `n` elements or bytes: fix form below `fix_below` (type `fix | n`), else the
/// 8-bit form if `type8` is not 0, then 16 and 32 bits.
void put_header(std::string& out, std::size_t n, std::size_t fix_below, unsigned char fix,
                unsigned char type8, unsigned char type16, unsigned char type32) {
  if (n < fix_below) {
    put_type(out, static_cast<unsigned char>(fix | n));
  } else if (type8 != 0 && n <= 0xff) {
    put_type(out, type8);
    put_be(out, n, 1);
  } else if (n <= 0xffff) {
    put_type(out, type16);
    put_be(out, n, 2);
  } else {
    put_type(out, type32);
    put_be(out, n, 4);
  }
}
/// A type byte and `bytes` big-endian bytes of `n`, at `p`.
char* typed_be(char* p, unsigned char type, std::uint64_t n, int bytes) noexcept {
  *p = static_cast<char>(type);
  for (int i = bytes; i >= 1; --i) {
    p[i] = static_cast<char>(n & 0xff);
    n >>= 8;
  }
  return p + bytes + 1;
}
char* write_unsigned(char* p, std::uint64_t v) noexcept {
  if (v < 128) {
    *p = static_cast<char>(v);
    return p + 1;
  }
  if (v <= 0xff) return typed_be(p, 0xcc, v, 1);
  if (v <= 0xffff) return typed_be(p, 0xcd, v, 2);
  if (v <= 0xffffffffu) return typed_be(p, 0xce, v, 4);
  return typed_be(p, 0xcf, v, 8);
}
char* write_signed(char* p, std::int64_t v) noexcept {
  if (v >= 0) return write_unsigned(p, static_cast<std::uint64_t>(v));
  const auto bits = static_cast<std::uint64_t>(v);
  if (v >= -32) {
    *p = static_cast<char>(bits & 0xff);  // negative fixint
    return p + 1;
  }
  if (v >= INT8_MIN) return typed_be(p, 0xd0, bits, 1);
  if (v >= INT16_MIN) return typed_be(p, 0xd1, bits, 2);
  if (v >= INT32_MIN) return typed_be(p, 0xd2, bits, 4);
  return typed_be(p, 0xd3, bits, 8);
}
char* write_float(char* p, double d) noexcept {
  const auto f = static_cast<float>(d);
  if (d >= static_cast<double>(std::numeric_limits<float>::lowest()) &&
      d <= static_cast<double>(std::numeric_limits<float>::max()) &&
      static_cast<double>(f) == d) {
    std::uint32_t bits;
    std::memcpy(&bits, &f, sizeof bits);
    return typed_be(p, 0xca, bits, 4);
  }
  std::uint64_t bits;
  std::memcpy(&bits, &d, sizeof bits);
  return typed_be(p, 0xcb, bits, 8);
}
void put_unsigned(std::string& out, std::uint64_t v) {
  char b[9];
  out.append(b, static_cast<std::size_t>(write_unsigned(b, v) - b));
}
void put_signed(std::string& out, std::int64_t v) {
  char b[9];
  out.append(b, static_cast<std::size_t>(write_signed(b, v) - b));
}
void put_float(std::string& out, double d) {
  char b[9];
  out.append(b, static_cast<std::size_t>(write_float(b, d) - b));
}
void put_binary(std::string& out, const json::binary_t& b) {
  const std::size_t n = b.size();
  if (!b.has_subtype()) {
    put_header(out, n, 0, 0, 0xc4, 0xc5, 0xc6);
  } else {
    switch (n) {
      case 1: put_type(out, 0xd4); break;
      case 2: put_type(out, 0xd5); break;
      case 4: put_type(out, 0xd6); break;
      case 8: put_type(out, 0xd7); break;
      case 16: put_type(out, 0xd8); break;
      default: put_header(out, n, 0, 0, 0xc7, 0xc8, 0xc9);
    }
    put_type(out, static_cast<unsigned char>(b.subtype()));
  }
  out.append(reinterpret_cast<const char*>(b.data()), n);
}
}  // namespace

void append_msgpack_unsigned(std::string& out, std::uint64_t v) { put_unsigned(out, v); }

char* write_msgpack_unsigned(char* p, std::uint64_t v) noexcept { return write_unsigned(p, v); }

char* write_msgpack_scalar(char* p, const json& v) noexcept {
  switch (v.type()) {
    case json::value_t::null: *p = '\xc0'; return p + 1;
    case json::value_t::boolean: *p = v.get<bool>() ? '\xc3' : '\xc2'; return p + 1;
    case json::value_t::number_integer: return write_signed(p, v.get<std::int64_t>());
    case json::value_t::number_unsigned: return write_unsigned(p, v.get<std::uint64_t>());
    case json::value_t::number_float: return write_float(p, v.get<double>());
    default: return nullptr;
  }
}

char* write_msgpack_string(char* p, std::string_view s) noexcept {
  p = write_msgpack_string_header(p, s.size());
  if (!s.empty()) std::memcpy(p, s.data(), s.size());
  return p + s.size();
}

char* write_msgpack_string_header(char* p, std::size_t n) noexcept {
  if (n < 32) {
    *p = static_cast<char>(0xa0 | n);
    return p + 1;
  }
  if (n <= 0xff) return typed_be(p, 0xd9, n, 1);
  if (n <= 0xffff) return typed_be(p, 0xda, n, 2);
  return typed_be(p, 0xdb, n, 4);
}

void append_msgpack_signed(std::string& out, std::int64_t v) { put_signed(out, v); }

void append_msgpack_bool(std::string& out, bool b) { put_type(out, b ? 0xc3 : 0xc2); }

void append_msgpack_binary(std::string& out, std::string_view bytes) {
  put_header(out, bytes.size(), 0, 0, 0xc4, 0xc5, 0xc6);
  out.append(bytes);
}

void append_msgpack_map_header(std::string& out, std::size_t n) {
  put_header(out, n, 16, 0x80, 0, 0xde, 0xdf);
}

void append_msgpack_array_header(std::string& out, std::size_t n) {
  put_header(out, n, 16, 0x90, 0, 0xdc, 0xdd);
}

void append_msgpack_string(std::string& out, std::string_view s) {
  const std::size_t at = out.size();
  if (s.size() < 32) {  // a fixstr (every field name, most keys): one resize, one copy
    out.resize(at + 1 + s.size());
    char* p = out.data() + at;
    *p = static_cast<char>(0xa0 | s.size());
    if (!s.empty()) std::memcpy(p + 1, s.data(), s.size());
    return;
  }
  char head[5];
  out.append(head, static_cast<std::size_t>(write_msgpack_string_header(head, s.size()) - head));
  out.append(s);
}

void append_msgpack(std::string& out, const json& v) {
  switch (v.type()) {
    case json::value_t::null: put_type(out, 0xc0); return;
    case json::value_t::boolean: put_type(out, v.get<bool>() ? 0xc3 : 0xc2); return;
    case json::value_t::number_integer: put_signed(out, v.get<std::int64_t>()); return;
    case json::value_t::number_unsigned: put_unsigned(out, v.get<std::uint64_t>()); return;
    case json::value_t::number_float: put_float(out, v.get<double>()); return;
    case json::value_t::string: append_msgpack_string(out, v.get_ref<const std::string&>()); return;
    case json::value_t::binary: put_binary(out, v.get_binary()); return;
    case json::value_t::array: {
      const auto& a = v.get_ref<const json::array_t&>();
      put_header(out, a.size(), 16, 0x90, 0, 0xdc, 0xdd);
      for (const auto& e : a) append_msgpack(out, e);
      return;
    }
    case json::value_t::object: {
      const auto& o = v.get_ref<const json::object_t&>();
      append_msgpack_map_header(out, o.size());
      for (const auto& [k, e] : o) {
        append_msgpack_string(out, k);
        append_msgpack(out, e);
      }
      return;
    }
    case json::value_t::discarded: return;  // (nlohmann writes nothing for it either)
  }
}

std::size_t packed_size(const json& v) {
  switch (v.type()) {
    case json::value_t::string: {
      const auto n = v.get_ref<const std::string&>().size();
      return header_size(n, 32, true) + n;
    }
    case json::value_t::binary: {
      const auto n = v.get_binary().size();
      return (v.get_binary().has_subtype() ? 1 : 0) + header_size(n, 0, true) + n;
    }
    case json::value_t::array: {
      std::size_t n = header_size(v.size(), 16, false);
      for (const auto& e : v) n += packed_size(e);
      return n;
    }
    case json::value_t::object: {
      std::size_t n = header_size(v.size(), 16, false);
      for (const auto& [k, e] : v.get_ref<const json::object_t&>())
        n += header_size(k.size(), 32, true) + k.size() + packed_size(e);
      return n;
    }
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float: return 9;
    default: return 1;  // null, booleans
  }
}

}  // namespace zproc::protocol
