#include "protocol/value_check.hpp"

namespace zproc::protocol {

bool valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    const unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if ((c & 0xe0) == 0xc0) {
      n = 1;
      cp = c & 0x1fu;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2;
      cp = c & 0x0fu;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3;
      cp = c & 0x07u;
    } else {
      return false;  // a continuation byte first, or 0xf8..0xff
    }
    if (static_cast<std::size_t>(end - p) <= n) return false;  // cut short
    for (std::size_t i = 1; i <= n; ++i) {
      if ((p[i] & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (p[i] & 0x3fu);
    }
    static constexpr std::uint32_t least[] = {0, 0x80, 0x800, 0x10000};
    if (cp < least[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    p += n + 1;
  }
  return true;
}

namespace {

std::string shown(std::string_view s) {
  std::string out;
  for (unsigned char c : s.substr(0, 40)) {
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      static constexpr char hex[] = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 0xf];
    }
  }
  return s.size() > 40 ? out + "..." : out;
}

std::optional<std::string> check(const json& v, std::size_t depth, std::size_t max_depth) {
  if (depth > max_depth)
    return "a value nested deeper than " + std::to_string(max_depth) +
           " levels (request and value together) cannot be stored";
  switch (v.type()) {
    case json::value_t::string: {
      const auto& s = v.get_ref<const std::string&>();
      if (!valid_utf8(s)) return "a string that is not valid UTF-8 cannot be stored: \"" + shown(s) + "\"";
      return std::nullopt;
    }
    case json::value_t::array:
      for (const auto& x : v)
        if (auto why = check(x, depth + 1, max_depth)) return why;
      return std::nullopt;
    case json::value_t::object:
      // (The map itself, not items(): its proxy builds strings at every step.)
      for (const auto& [k, x] : v.get_ref<const json::object_t&>()) {
        if (!valid_utf8(k)) return "a key that is not valid UTF-8 cannot be stored: \"" + shown(k) + "\"";
        if (auto why = check(x, depth + 1, max_depth)) return why;
      }
      return std::nullopt;
    default:
      return std::nullopt;
  }
}

}  // namespace

bool deeper_than(const json& v, std::size_t max_depth) {
  if (max_depth == 0) return true;
  if (v.is_array()) {
    for (const auto& x : v)
      if (deeper_than(x, max_depth - 1)) return true;
  } else if (v.is_object()) {
    for (const auto& [k, x] : v.items())
      if (deeper_than(x, max_depth - 1)) return true;
  }
  return false;
}

std::optional<std::string> unstorable(const json& request, std::size_t max_depth) {
  return check(request, 1, max_depth);
}

std::optional<std::string> unstorable_field(const json& value, std::size_t max_depth) {
  return check(value, 2, max_depth);  // a field's value is one level into the request
}

std::optional<std::string> unstorable_text(std::string_view text) {
  if (valid_utf8(text)) return std::nullopt;
  return "a string that is not valid UTF-8 cannot be stored: \"" + shown(text) + "\"";
}

}  // namespace zproc::protocol
