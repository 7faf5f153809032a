// Private: the reader of every archive that comes from another process (a target's arguments, a
// task's arguments, a call's value). It reads Boost.Serialization's binary format unchanged, but
// bytes from elsewhere are not trusted: a length or a count that the bytes left cannot hold is
// refused before anything is allocated for it (Boost's own binary_iarchive resizes a string or
// a vector to whatever length the archive claims, then finds out the bytes are missing).
#pragma once

#include <boost/archive/basic_binary_iarchive.hpp>
#include <boost/archive/basic_binary_iprimitive.hpp>
#include <boost/archive/binary_iarchive_impl.hpp>
#include <boost/archive/detail/register_archive.hpp>
#include <boost/serialization/array_optimization.hpp>
#include <boost/serialization/collection_size_type.hpp>

#include <cstddef>
#include <stdexcept>
#include <streambuf>
#include <string>

namespace zproc::detail {

/// An archive claims more than its bytes can hold (a malformed or hostile archive).
class malformed_archive : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Boost's binary input archive, with every length and count checked against the bytes left in
/// the stream buffer (the whole archive is in memory: a frame's payload). A collection may hold
/// at most as many elements as there are bytes left, a string at most as many characters; the
/// memory an archive can make the reader allocate is thus bounded by its own size (times the
/// size of one element), not by numbers it carries. Raw `char*` / `wchar_t*` strings (a buffer
/// of unknown size) are refused, and so are pointers (raw, unique_ptr, shared_ptr) that are not
/// null: Boost reads a pointer's class and object ids as indexes into its tables without a
/// bounds or type check, so a malformed archive could make it write anywhere.
class checked_iarchive
    : public boost::archive::binary_iarchive_impl<checked_iarchive, char, std::char_traits<char>> {
  using impl = boost::archive::binary_iarchive_impl<checked_iarchive, char, std::char_traits<char>>;
  using primitive =
      boost::archive::basic_binary_iprimitive<checked_iarchive, char, std::char_traits<char>>;

 public:
  checked_iarchive(std::streambuf& source, unsigned flags) : impl(source, flags), source_(source) {
    init(flags);
  }

  /// Bytes not read yet.
  std::size_t remaining() const { return static_cast<std::size_t>(source_.in_avail()); }

 protected:
  friend class boost::archive::detail::interface_iarchive<checked_iarchive>;
  friend class boost::archive::basic_binary_iarchive<checked_iarchive>;
  friend class boost::archive::load_access;

  template <class T>
  void load_override(T& t) {
    impl::load_override(t);
  }
  void load_override(boost::serialization::collection_size_type& t) {
    impl::load_override(t);
    check(static_cast<std::size_t>(t), 1, "a collection");
  }
  /// Read before every pointer (and only there): Boost trusts it as an index into its tables.
  void load_override(boost::archive::class_id_type& t) {
    impl::load_override(t);
    if (t != boost::archive::class_id_type(-1)) refuse_pointer();
  }


 public:  // (Boost's primitive loads call these through the most derived archive)
  using primitive::load;
  void load(std::string& s);
  void load(std::wstring& s);
  void load(char* s);
  void load(wchar_t* s);

 private:
  /// Throws malformed_archive unless `count` elements of at least `unit` bytes fit what is left.
  void check(std::size_t count, std::size_t unit, const char* what) const;
  [[noreturn]] static void refuse_pointer();

  std::streambuf& source_;
};

}  // namespace zproc::detail

BOOST_SERIALIZATION_REGISTER_ARCHIVE(zproc::detail::checked_iarchive)
BOOST_SERIALIZATION_USE_ARRAY_OPTIMIZATION(zproc::detail::checked_iarchive)
