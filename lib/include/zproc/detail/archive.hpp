// Private: arguments and return values of targets travel as Boost.Serialization binary
// archives (the same binary on both ends, so the binary format is safe). They are read by
// checked_iarchive: the bytes come from another process, and are not trusted.
#pragma once

#include <boost/archive/binary_oarchive.hpp>
#include <boost/serialization/map.hpp>
#include <boost/serialization/optional.hpp>
#include <boost/serialization/string.hpp>
#include <boost/serialization/utility.hpp>
#include <boost/serialization/vector.hpp>
#include <zproc/detail/checked_iarchive.hpp>

#include <sstream>
#include <streambuf>
#include <string>
#include <string_view>
#include <tuple>
#include <typeinfo>
#include <vector>

namespace zproc::detail {

constexpr auto archive_flags = boost::archive::no_header | boost::archive::no_codecvt;

/// Packs `values` in order into one archive.
template <class... T>
std::string pack(const T&... values) {
  std::ostringstream os(std::ios::binary);
  {
    boost::archive::binary_oarchive ar(os, archive_flags);
    if constexpr (sizeof...(T) > 0) (ar << ... << values);
  }
  return std::move(os).str();
}

/// A streambuf reading a range of bytes in place.
class memory_source : public std::streambuf {
 public:
  explicit memory_source(std::string_view data) {
    char* p = const_cast<char*>(data.data());  // read only: the get area is never written
    setg(p, p, p + data.size());
  }
};

/// Unpacks an archive made by pack() into the elements of `out` (malformed_archive, or
/// boost::archive::archive_exception, when the bytes are not such an archive).
template <class... T>
void unpack(const std::string& bytes, std::tuple<T...>& out) {
  if constexpr (sizeof...(T) > 0) {
    memory_source src(bytes);
    checked_iarchive ar(src, archive_flags);
    std::apply([&](auto&... v) { (ar >> ... >> v); }, out);
  }
}

template <class T>
T unpack_value(const std::string& bytes) {
  std::tuple<T> v;
  unpack(bytes, v);
  return std::move(std::get<0>(v));
}

/// The (mangled) type names of a parameter list, to check packed arguments against a target.
template <class... T>
std::vector<std::string> type_names() {
  return {typeid(T).name()...};
}

/// Arguments packed ahead of time (spawn_options::retry_args), with their types.
struct packed_args {
  std::string bytes;
  std::vector<std::string> types;
  bool empty() const noexcept { return types.empty() && bytes.empty(); }
};

}  // namespace zproc::detail
