// Private: a chunk is the unit of work a swarm hands to a worker: the arguments of several
// calls of one target packed one after the other into one Boost.Serialization archive, and the
// values of those calls packed the same way (one archive per chunk, not per call: a chunk of
// 10,000 ints costs one archive's set-up, not 10,000). Arithmetic values are written and read
// without an archive, as the same bytes (chunk_oarchive, raw_iarchive): an archive's set-up
// copies a locale and its facets, which is most of what a chunk of one small call costs.
#pragma once

#include <zproc/detail/archive.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <optional>
#include <stdexcept>
#include <streambuf>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace zproc::detail {

/// The steady clock in nanoseconds (what a call's start is noted in, for the watchdog).
inline std::int64_t steady_now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

/// Packed bytes, as they go into a message (json::binary) without a copy.
using bytes = std::vector<std::uint8_t>;

/// A streambuf appending to `bytes` through a put area: an archive's primitive is a memcpy,
/// not a container append. The bytes have their final size once the sink is destroyed.
class byte_sink : public std::streambuf {
 public:
  explicit byte_sink(bytes& out) : out_(out), base_(out.size()) {
    out_.resize(std::max<std::size_t>(out_.capacity(), base_ + 256));
    reset_area(base_);
  }
  ~byte_sink() override { out_.resize(size()); }
  byte_sink(const byte_sink&) = delete;
  byte_sink& operator=(const byte_sink&) = delete;

  /// Bytes in `out` so far (including what it held before).
  std::size_t size() const noexcept {
    return static_cast<std::size_t>(pptr() - reinterpret_cast<char*>(out_.data()));
  }
  /// Drops what was written after the first `n` bytes.
  void truncate(std::size_t n) {
    if (n < size()) reset_area(n);
  }

 protected:
  int_type overflow(int_type c) override {
    if (c == traits_type::eof()) return c;
    grow(1);
    *pptr() = static_cast<char>(c);
    pbump(1);
    return c;
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    const auto len = static_cast<std::size_t>(n);
    if (static_cast<std::size_t>(epptr() - pptr()) < len) grow(len);
    std::memcpy(pptr(), s, len);
    pbump(static_cast<int>(n));
    return n;
  }

 private:
  void reset_area(std::size_t used) {
    char* b = reinterpret_cast<char*>(out_.data());
    setp(b, b + out_.size());
    pbump(static_cast<int>(used));
  }
  void grow(std::size_t more) {
    const std::size_t used = size();
    // The put area is indexed by int (pbump): a chunk stays far below that anyway (frames).
    if (more > static_cast<std::size_t>(INT_MAX) - used)
      throw std::length_error("zproc: a chunk's packed data would exceed 2 GiB");
    out_.resize(std::min<std::size_t>(std::max(out_.size() * 2, used + more), INT_MAX));
    reset_area(used);
  }

  bytes& out_;
  std::size_t base_;
};

/// Whether a T is packed as its object representation: an arithmetic type, which a Boost binary
/// archive writes as save_binary(&t, sizeof t) (native byte order, as everything it writes) and
/// reads back the same way. Written without an archive, the bytes are the same.
template <class T>
inline constexpr bool raw_packed = std::is_arithmetic_v<T>;
template <class Tuple>
inline constexpr bool all_raw_packed = false;
template <class... T>
inline constexpr bool all_raw_packed<std::tuple<T...>> = (raw_packed<T> && ...);

/// Reads what chunk_oarchive wrote of arithmetic values (or a binary_oarchive: the same bytes);
/// checks the length as checked_iarchive does, and that a bool is 0 or 1.
class raw_iarchive {
 public:
  explicit raw_iarchive(std::string_view packed) noexcept : bytes_(packed) {}
  template <class T>
  raw_iarchive& operator>>(T& v) {
    static_assert(raw_packed<T>);
    if (bytes_.size() - at_ < sizeof v)
      throw malformed_archive("zproc: an archive ends inside a value");
    if constexpr (std::is_same_v<T, bool>) {
      const auto b = static_cast<unsigned char>(bytes_[at_]);
      if (b > 1) throw malformed_archive("zproc: an archive holds a bool that is neither 0 nor 1");
      v = b == 1;
    } else {
      std::memcpy(&v, bytes_.data() + at_, sizeof v);
    }
    at_ += sizeof v;
    return *this;
  }

 private:
  std::string_view bytes_;
  std::size_t at_ = 0;
};

/// The archive a chunk of `Args` (a tuple) is written with: one on a byte_sink, started
/// with open(); for arithmetic values none, their bytes written as a binary_oarchive would.
template <class Tuple>
class chunk_oarchive {
 public:
  void open(byte_sink& sink) {
    if constexpr (all_raw_packed<Tuple>) {
      sink_ = &sink;
    } else {
      ar_.emplace(sink, archive_flags);
    }
  }
  void close() noexcept {
    sink_ = nullptr;
    ar_.reset();
  }
  bool is_open() const noexcept { return sink_ != nullptr || ar_.has_value(); }
  template <class T>
  chunk_oarchive& operator<<(const T& v) {
    if constexpr (all_raw_packed<Tuple>) {
      static_assert(raw_packed<T>);
      sink_->sputn(reinterpret_cast<const char*>(&v), static_cast<std::streamsize>(sizeof v));
    } else {
      *ar_ << v;
    }
    return *this;
  }

 private:
  byte_sink* sink_ = nullptr;
  std::optional<boost::archive::binary_oarchive> ar_;
};
/// The archive a chunk of `Args` is read with.
template <class Tuple>
using args_iarchive = std::conditional_t<all_raw_packed<Tuple>, raw_iarchive, checked_iarchive>;

/// Starts an archive of type A on `src` over `packed`.
template <class A>
void open_archive(std::optional<A>& ar, memory_source& src, std::string_view packed) {
  if constexpr (std::is_same_v<A, raw_iarchive>) {
    ar.emplace(packed);
  } else {
    ar.emplace(src, archive_flags);
  }
}

/// The packed arguments of some calls.
struct packed_chunk {
  detail::bytes bytes;
  std::size_t items = 0;
};

/// Writes the arguments of one call: `x` converted to the parameter types `P...` (a tuple or a
/// pair for several parameters, or the value itself for one).
template <class... P, class Archive, class X>
void write_call(Archive& ar, std::tuple<P...>*, X&& x) {
  if constexpr (sizeof...(P) == 1) {
    using P0 = std::tuple_element_t<0, std::tuple<P...>>;
    static_assert(std::is_constructible_v<P0, X&&>,
                  "zproc: an input does not convert to the target's parameter type");
    const P0 v(std::forward<X>(x));
    ar << v;
  } else {
    static_assert(sizeof...(P) > 1 || sizeof...(P) == 0);
    if constexpr (sizeof...(P) > 1) {
      static_assert(std::tuple_size_v<std::decay_t<X>> == sizeof...(P),
                    "zproc: a target with several parameters maps over tuples of as many values");
      std::apply([&](auto&&... e) { (..., (ar << static_cast<const P&>(P(e)))); }, x);
    }
  }
}

/// How many calls each chunk of a map holds. A fixed size (`fixed()`), or guided: `base` calls
/// while many inputs remain, then about remaining / workers — so that the last tasks are small
/// and the workers finish close together whatever their calls cost — but never fewer than
/// `least`. Needs the number of inputs (`total`); without it every chunk is `base`.
struct chunk_schedule {
  std::size_t base = 1;
  std::size_t least = 1;
  std::size_t total = 0;    ///< inputs in all; 0: unknown
  std::size_t workers = 1;  ///< at least 1

  static chunk_schedule fixed(std::size_t size) noexcept {
    const std::size_t n = std::max<std::size_t>(1, size);
    return {n, n, 0, 1};
  }
  /// The size of the chunk that starts after `packed` inputs.
  std::size_t next(std::size_t packed) const noexcept {
    if (total <= packed || least >= base) return base;
    const std::size_t w = std::max<std::size_t>(1, workers);
    const std::size_t share = (total - packed + w - 1) / w;
    return std::clamp(share, least, base);
  }
};

/// Packs inputs from `it` (advanced past what it packs) into at most `max_chunks` chunks of
/// the schedule's sizes (`packed` inputs before a chunk decide its size), or fewer calls when
/// a chunk's arguments pass `max_bytes`. Pulls no input beyond the last one it packs. `packed`
/// counts the inputs packed.
template <class Args, class It, class Sentinel>
std::vector<packed_chunk> pack_some(It& it, const Sentinel& end, std::size_t max_chunks,
                                    const chunk_schedule& schedule, std::size_t max_bytes,
                                    std::size_t& packed) {
  std::vector<packed_chunk> chunks;
  std::optional<byte_sink> sink;
  chunk_oarchive<Args> ar;
  std::size_t chunk_size = 1;
  for (; it != end; ++it) {
    if (!ar.is_open()) {
      if (chunks.size() >= max_chunks) break;
      chunks.emplace_back();
      sink.emplace(chunks.back().bytes);
      ar.open(*sink);
      chunk_size = schedule.next(packed);
    }
    auto&& x = *it;
    write_call(ar, static_cast<Args*>(nullptr), x);
    ++packed;
    packed_chunk& c = chunks.back();
    if (++c.items >= chunk_size || sink->size() >= max_bytes) {
      ar.close();
      sink.reset();
    }
  }
  return chunks;
}

/// What a worker fills while it runs a chunk: the packed values of the calls that returned,
/// and the index of each call that threw (with what it threw, described in compiled code).
struct chunk_output {
  detail::bytes values;
  struct failure {
    std::size_t index;
    std::string type, message;
    std::vector<std::string> frames;  ///< the throw's stacktrace, resolved (the first few only)
  };
  std::vector<failure> failures;
  /// When set, each call stores its start time here (steady clock, ns) for a watchdog.
  std::atomic<std::int64_t>* call_started = nullptr;
  /// Called in a catch block: records the exception in flight as the failure of call `index`.
  void fail(std::size_t index);
};

/// Runs the calls of a chunk on `fn(args...)` (fn: the target, with its context or state
/// bound by the caller).
template <class Args, class Value, class Fn>
void run_chunk(std::string_view packed, std::size_t items, chunk_output& out, Fn&& fn) {
  memory_source src(packed);
  std::optional<args_iarchive<Args>> in;
  byte_sink sink(out.values);
  chunk_oarchive<std::tuple<std::conditional_t<std::is_void_v<Value>, int, Value>>> values;
  std::size_t i = 0;
  try {
    open_archive(in, src, packed);
    if constexpr (!std::is_void_v<Value>) values.open(sink);
  } catch (...) {
    for (; i < items; ++i) out.fail(i);
    return;
  }
  for (; i < items; ++i) {
    if (out.call_started) out.call_started->store(steady_now_ns(), std::memory_order_relaxed);
    Args args;
    try {
      std::apply([&](auto&... a) { (..., (*in >> a)); }, args);
    } catch (...) {  // the rest of the chunk cannot be read either
      for (; i < items; ++i) out.fail(i);
      return;
    }
    if constexpr (std::is_void_v<Value>) {
      try {
        std::apply(fn, std::move(args));
      } catch (...) {
        out.fail(i);
      }
    } else {
      std::optional<Value> v;
      try {
        v.emplace(std::apply(fn, std::move(args)));
      } catch (...) {
        out.fail(i);
        continue;
      }
      const std::size_t before = sink.size();
      try {
        values << *v;
      } catch (...) {  // half a value written: drop it; the archive may be off, stop here
        sink.truncate(before);
        for (; i < items; ++i) out.fail(i);
        return;
      }
    }
  }
}

/// The values of a chunk's calls, in order, with an error in place of each call that threw.
template <class R>
struct chunk_values {
  using value_type = std::conditional_t<std::is_void_v<R>, std::nullptr_t, R>;
  std::vector<std::optional<value_type>> values;
  std::vector<std::exception_ptr> errors;  // null where the call returned
};

/// Unpacks the values of a chunk of `items` calls; `failed[i]` is the error of call i (null:
/// it returned, and its value is the next one in `packed`).
template <class R>
chunk_values<R> unpack_chunk(std::string_view packed, std::vector<std::exception_ptr> failed) {
  chunk_values<R> out;
  out.values.resize(failed.size());
  if constexpr (!std::is_void_v<R>) {
    std::optional<memory_source> src;
    std::optional<args_iarchive<std::tuple<R>>> ar;
    for (std::size_t i = 0; i < failed.size(); ++i) {
      if (failed[i]) continue;
      try {
        if (!ar) {
          src.emplace(packed);
          open_archive(ar, *src, packed);
        }
        R v;
        *ar >> v;
        out.values[i].emplace(std::move(v));
      } catch (...) {  // not an R (another type asked for), or cut short: the rest is lost too
        const std::exception_ptr e = std::current_exception();
        for (; i < failed.size(); ++i)
          if (!failed[i]) failed[i] = e;
      }
    }
  } else {
    for (std::size_t i = 0; i < failed.size(); ++i)
      if (!failed[i]) out.values[i].emplace(nullptr);
  }
  out.errors = std::move(failed);
  return out;
}

}  // namespace zproc::detail
