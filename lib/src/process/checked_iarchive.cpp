// The checked archive's compiled part: its own loads, and Boost's binary archive code
// instantiated for it (as Boost's library does for binary_iarchive).
#include <zproc/detail/checked_iarchive.hpp>

#include <boost/archive/detail/archive_serializer_map.hpp>
#include <boost/archive/impl/archive_serializer_map.ipp>
#include <boost/archive/impl/basic_binary_iarchive.ipp>
#include <boost/archive/impl/basic_binary_iprimitive.ipp>

#include <string>

namespace boost::archive {
template class detail::archive_serializer_map<zproc::detail::checked_iarchive>;
template class basic_binary_iprimitive<zproc::detail::checked_iarchive, char,
                                       std::char_traits<char>>;
template class basic_binary_iarchive<zproc::detail::checked_iarchive>;
template class binary_iarchive_impl<zproc::detail::checked_iarchive, char, std::char_traits<char>>;
}  // namespace boost::archive

namespace zproc::detail {

void checked_iarchive::check(std::size_t count, std::size_t unit, const char* what) const {
  const std::size_t left = remaining();
  if (count > left / unit)
    throw malformed_archive("zproc: malformed archive: " + std::string(what) + " of " +
                            std::to_string(count) + " claimed with " + std::to_string(left) +
                            " bytes left");
}

void checked_iarchive::refuse_pointer() {
  throw malformed_archive(
      "zproc: a pointer (raw, unique_ptr, shared_ptr) that is not null cannot travel between "
      "processes: pass the value it points to");
}

void checked_iarchive::load(std::string& s) {
  std::size_t n = 0;
  primitive::load(n);
  check(n, 1, "a string");
  s.resize(n);
  if (n > 0) load_binary(s.data(), n);
}

void checked_iarchive::load(std::wstring& s) {
  std::size_t n = 0;
  primitive::load(n);
  check(n, sizeof(wchar_t), "a wide string");
  s.resize(n);
  if (n > 0) load_binary(s.data(), n * sizeof(wchar_t));
}

void checked_iarchive::load(char*) {
  throw malformed_archive("zproc: an archive from another process cannot fill a raw char*");
}

void checked_iarchive::load(wchar_t*) {
  throw malformed_archive("zproc: an archive from another process cannot fill a raw wchar_t*");
}

}  // namespace zproc::detail
