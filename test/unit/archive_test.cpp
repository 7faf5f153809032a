// The reader of archives from other processes (zproc/detail/checked_iarchive.hpp): it reads
// what Boost's binary_oarchive writes, refuses lengths the bytes cannot hold before allocating
// for them, and survives malformed input.
#include <zproc/detail/archive.hpp>
#include <zproc/detail/chunk.hpp>

#include <boost/serialization/unique_ptr.hpp>
#include <boost/serialization/unordered_map.hpp>

#include <doctest/doctest.h>
#include <sys/resource.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <unordered_map>
#include <random>
#include <string>
#include <tuple>
#include <vector>

using zproc::detail::malformed_archive;
using zproc::detail::pack;
using zproc::detail::unpack;
using zproc::detail::unpack_value;

namespace {

struct point {
  int x = 0;
  std::string label;
  std::vector<double> path;
  template <class Archive>
  void serialize(Archive& ar, unsigned version) {
    ar & x & label;
    if (version > 0) ar & path;
  }
  bool operator==(const point&) const = default;
};

struct node {
  int value = 0;
  std::unique_ptr<node> next;
  template <class Archive>
  void serialize(Archive& ar, unsigned) {
    ar & value & next;
  }
};

/// The largest resident size this process has had, in KiB.
long peak_rss_kib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

/// Replaces the 8 bytes at `at` (a length or a count, in the machine's order) by `v`.
void patch_u64(std::string& bytes, std::size_t at, std::uint64_t v) {
  REQUIRE(at + sizeof v <= bytes.size());
  std::memcpy(bytes.data() + at, &v, sizeof v);
}

std::uint64_t read_u64(const std::string& bytes, std::size_t at) {
  std::uint64_t v = 0;
  std::memcpy(&v, bytes.data() + at, sizeof v);
  return v;
}

/// Where the 8 bytes `v` first appear (a count, after whatever class information precedes it).
std::size_t find_u64(const std::string& bytes, std::uint64_t v) {
  for (std::size_t at = 0; at + sizeof v <= bytes.size(); ++at)
    if (read_u64(bytes, at) == v) return at;
  FAIL("not found");
  return 0;
}

}  // namespace

BOOST_CLASS_VERSION(point, 1)

TEST_SUITE("archive") {
  TEST_CASE("what binary_oarchive writes reads back unchanged") {
    using all = std::tuple<std::string, std::wstring, std::vector<int>,
                           std::map<std::string, std::vector<double>>,
                           std::unordered_map<int, std::string>, point, std::vector<point>>;
    const all in{"hello",
                 L"wide",
                 {1, 2, 3},
                 {{"a", {1.5}}, {"b", {}}},
                 {{1, "one"}, {2, "two"}},
                 {7, "p", {0.5, 0.25}},
                 {{1, "q", {}}, {2, "", {3.0}}}};
    const std::string bytes = std::apply([](const auto&... v) { return pack(v...); }, in);
    all out;
    unpack(bytes, out);
    CHECK(out == in);

    const node alone = unpack_value<node>(pack(node{4, nullptr}));  // a null pointer travels
    CHECK(alone.value == 4);
    CHECK(alone.next == nullptr);
  }

  TEST_CASE("a pointer that is not null is refused (Boost trusts its ids as table indexes)") {
    const node list{1, std::make_unique<node>(node{2, nullptr})};
    CHECK_THROWS_WITH_AS(unpack_value<node>(pack(list)), doctest::Contains("pointer"),
                         malformed_archive);
  }

  TEST_CASE("a string longer than the bytes left is refused before it is allocated") {
    std::string bytes = pack(std::string("hello"));
    REQUIRE(read_u64(bytes, 0) == 5);
    patch_u64(bytes, 0, std::uint64_t{1} << 30);  // 1 GiB claimed, 5 bytes there
    const long before = peak_rss_kib();
    CHECK_THROWS_WITH_AS(unpack_value<std::string>(bytes),
                         doctest::Contains("a string of 1073741824 claimed with 5 bytes left"),
                         malformed_archive);
    CHECK(peak_rss_kib() - before < 256 * 1024);  // Boost's own reader zero-fills 1 GiB first

    patch_u64(bytes, 0, ~std::uint64_t{0});
    CHECK_THROWS_AS(unpack_value<std::string>(bytes), malformed_archive);
  }

  TEST_CASE("a collection with more elements than bytes left is refused before it is resized") {
    std::string bytes = pack(std::vector<std::uint64_t>{7, 7, 7});
    REQUIRE(read_u64(bytes, 0) == 3);
    patch_u64(bytes, 0, std::uint64_t{1} << 40);
    const long before = peak_rss_kib();
    CHECK_THROWS_AS(unpack_value<std::vector<std::uint64_t>>(bytes), malformed_archive);
    std::string map_bytes = pack(std::map<int, int>{{1, 2}});
    patch_u64(map_bytes, find_u64(map_bytes, 1), std::uint64_t{1} << 50);
    CHECK_THROWS_AS((unpack_value<std::map<int, int>>(map_bytes)), malformed_archive);
    CHECK(peak_rss_kib() - before < 256 * 1024);
  }

  TEST_CASE("malformed archives: an exception, never a crash (mutations of good ones)") {
    using args = std::tuple<std::string, std::vector<int>, std::map<std::string, std::vector<double>>,
                            std::unordered_map<int, std::string>, std::vector<point>, node>;
    const node list{9, nullptr};
    const std::string original =
        pack(std::string("some text"), std::vector<int>{1, 2, 3, 4},
             std::map<std::string, std::vector<double>>{{"k", {1.0, 2.0}}, {"l", {}}},
             std::unordered_map<int, std::string>{{5, "five"}},
             std::vector<point>{{1, "a", {0.5}}, {2, "b", {}}}, list);
    std::mt19937_64 rng(20261206);
    int refused = 0, read = 0;
    for (int round = 0; round < 20000; ++round) {
      std::string bytes = original;
      switch (rng() % 4) {
        case 0:  // a byte flipped
          bytes[rng() % bytes.size()] = static_cast<char>(rng());
          break;
        case 1: {  // a word overwritten (a length, often)
          const std::size_t at = rng() % (bytes.size() - 8);
          patch_u64(bytes, at, rng() % 3 == 0 ? rng() : rng() % 512);
          break;
        }
        case 2:  // cut short
          bytes.resize(rng() % bytes.size());
          break;
        default:  // several bytes changed
          for (int i = 0; i < 8; ++i) bytes[rng() % bytes.size()] = static_cast<char>(rng() % 4);
      }
      args out;
      try {
        unpack(bytes, out);
        ++read;
      } catch (const std::exception&) {
        ++refused;
      }
    }
    CHECK(refused > 1000);
    CHECK(read + refused == 20000);
  }

  TEST_CASE("a chunk with a hostile argument archive fails its calls, and runs none") {
    std::string bytes = pack(std::string("abc"), std::string("def"));
    patch_u64(bytes, 0, std::uint64_t{1} << 33);
    zproc::detail::chunk_output out;
    int calls = 0;
    zproc::detail::run_chunk<std::tuple<std::string>, int>(bytes, 2, out, [&](const std::string&) {
      return ++calls;
    });
    CHECK(calls == 0);
    REQUIRE(out.failures.size() == 2);
    CHECK(out.failures[0].type.find("malformed_archive") != std::string::npos);
  }

  TEST_CASE("arithmetic chunks are written and read without an archive, as the same bytes") {
    namespace d = zproc::detail;
    static_assert(d::all_raw_packed<std::tuple<int, double, bool, char, std::uint64_t>>);
    static_assert(!d::all_raw_packed<std::tuple<int, std::string>>);
    // The chunk's arguments as pack_some() writes them (raw) and as a binary_oarchive does.
    std::vector<std::tuple<int, double, bool, char, std::uint64_t>> in;
    std::mt19937_64 rng(7);
    for (int i = 0; i < 100; ++i)
      in.emplace_back(static_cast<int>(rng()), static_cast<double>(rng()) / 3.0, rng() % 2 == 1,
                      static_cast<char>(rng()), rng());
    std::size_t packed = 0;
    auto it = in.begin();
    const auto chunks = d::pack_some<std::tuple<int, double, bool, char, std::uint64_t>>(
        it, in.end(), 1, d::chunk_schedule::fixed(in.size()), std::size_t{1} << 20, packed);
    REQUIRE(chunks.size() == 1);
    REQUIRE(packed == in.size());
    std::string boost_bytes;
    {
      std::ostringstream os(std::ios::binary);
      {
        boost::archive::binary_oarchive ar(os, d::archive_flags);
        for (const auto& [a, b, c, e, f] : in) ar << a << b << c << e << f;
      }
      boost_bytes = std::move(os).str();
    }
    const std::string raw(chunks[0].bytes.begin(), chunks[0].bytes.end());
    CHECK(raw == boost_bytes);

    // A worker runs them (reading raw) and writes the values raw; the submitter reads them.
    d::chunk_output out;
    std::vector<double> seen;
    d::run_chunk<std::tuple<int, double, bool, char, std::uint64_t>, double>(
        boost_bytes, in.size(), out, [&](int a, double b, bool c, char, std::uint64_t) {
          seen.push_back(b);
          return c ? b : static_cast<double>(a);
        });
    CHECK(out.failures.empty());
    REQUIRE(seen.size() == in.size());
    for (std::size_t i = 0; i < in.size(); ++i) CHECK(seen[i] == std::get<1>(in[i]));
    std::string values_boost;
    {
      std::ostringstream os(std::ios::binary);
      {
        boost::archive::binary_oarchive ar(os, d::archive_flags);
        for (const auto& [a, b, c, e, f] : in) ar << (c ? b : static_cast<double>(a));
      }
      values_boost = std::move(os).str();
    }
    CHECK(std::string(out.values.begin(), out.values.end()) == values_boost);
    auto got = d::unpack_chunk<double>(values_boost, std::vector<std::exception_ptr>(in.size()));
    for (std::size_t i = 0; i < in.size(); ++i) {
      REQUIRE(got.values[i].has_value());
      CHECK(*got.values[i] == (std::get<2>(in[i]) ? std::get<1>(in[i])
                                                  : static_cast<double>(std::get<0>(in[i]))));
    }

    // Cut short: the calls it cannot read fail (the rest of the chunk), as with an archive.
    d::chunk_output cut;
    int calls = 0;
    d::run_chunk<std::tuple<int>, int>(std::string(6, '\0'), 2, cut, [&](int) { return ++calls; });
    CHECK(calls == 1);
    REQUIRE(cut.failures.size() == 1);
    CHECK(cut.failures[0].index == 1);
    CHECK(cut.failures[0].type.find("malformed_archive") != std::string::npos);
    auto short_values = d::unpack_chunk<std::int64_t>(std::string(12, '\0'),
                                                      std::vector<std::exception_ptr>(2));
    CHECK(short_values.values[0].has_value());
    CHECK(!short_values.values[1].has_value());
    CHECK(short_values.errors[1] != nullptr);
    // A bool that is neither 0 nor 1 is refused, not read as true.
    auto bad_bool = d::unpack_chunk<bool>(std::string(1, '\x02'), std::vector<std::exception_ptr>(1));
    CHECK(!bad_bool.values[0].has_value());
    CHECK(bad_bool.errors[0] != nullptr);
  }
}
