// A connection's queue of replies (server/output_queue.hpp): what a write is handed, whole and
// after a write that took part of it; what appending costs.
#include "failing_alloc.hpp"
#include "server/output_queue.hpp"

#include <doctest/doctest.h>

#include <memory>
#include <string>

using zproc::server_detail::output_queue;

namespace {

std::string joined(const std::vector<boost::asio::const_buffer>& buffers) {
  std::string all;
  for (const auto& b : buffers) {
    CHECK(b.size() > 0);  // no empty buffer is handed to a write
    all.append(static_cast<const char*>(b.data()), b.size());
  }
  return all;
}

}  // namespace

TEST_SUITE("output") {
  TEST_CASE("the buffers after a partial write: every split point, inside a piece and between") {
    output_queue q;
    q.bytes() = "abc";
    q.append_shared(std::make_shared<const std::string>("defgh"));
    q.append_shared(std::make_shared<const std::string>(""));  // (an empty piece is skipped)
    q.bytes() += "ij";
    const std::string all = "abcdefghij";
    REQUIRE(q.size() == all.size());
    CHECK(joined(q.buffers()) == all);
    for (std::size_t skip = 0; skip < all.size(); ++skip) {
      CAPTURE(skip);
      CHECK(joined(q.buffers(skip)) == all.substr(skip));
      CHECK(q.size() == all.size());  // the queue itself is unchanged
    }
    CHECK(q.buffers(3).size() == 2);  // a piece written whole is left out, not kept empty
  }

  TEST_CASE("shared pieces first, one after another and last: the bytes in order, each split") {
    output_queue q;
    q.append_shared(std::make_shared<const std::string>("ab"));  // at offset 0
    q.append_shared(std::make_shared<const std::string>("cd"));  // right after another
    q.bytes() += "e";
    q.append_shared(std::make_shared<const std::string>("fg"));
    q.append_shared(std::make_shared<const std::string>("hi"));  // the last piece
    const std::string all = "abcdefghi";
    REQUIRE(q.size() == all.size());
    CHECK(q.buffers().size() == 5);  // no empty owned piece between shared ones
    for (std::size_t skip = 0; skip < all.size(); ++skip) {
      CAPTURE(skip);
      CHECK(joined(q.buffers(skip)) == all.substr(skip));
    }
    // Bytes taken back after the last shared piece (a reply found too large) are gone.
    q.bytes() += "jk";
    q.bytes().resize(q.bytes().size() - 2);
    CHECK(joined(q.buffers()) == all);
  }

  TEST_CASE("cleared, it keeps its owned bytes' capacity up to the limit") {
    output_queue q;
    q.bytes().assign(1000, 'x');
    q.clear(4096);
    CHECK(q.empty());
    CHECK(q.bytes().capacity() >= 1000);
    q.bytes().assign(10000, 'y');
    q.clear(4096);
    CHECK(q.bytes().capacity() < 10000);
  }

  TEST_CASE("cleared after a burst of shared pieces, it gives back what the burst grew") {
    namespace fa = zproc::test::failing_alloc;
    if (!fa::available) return;  // (a sanitizer's runtime owns operator new)
    const auto update = std::make_shared<const std::string>("update");
    output_queue q;
    for (int i = 0; i < 10'000; ++i) {
      q.bytes() += "h";
      q.append_shared(update);
    }
    CHECK(q.buffers().size() == 20'000);
    q.clear(4096);
    CHECK(q.empty());
    // The arrays were given back: the next shared piece and buffer list allocate anew (a kept
    // array would not).
    const unsigned long before = fa::allocations();
    q.append_shared(update);
    CHECK(q.buffers().size() == 1);
    CHECK(fa::allocations() - before == 2);
    // Small, they are kept: a queue cleared again allocates nothing for its next piece.
    q.clear(4096);
    const unsigned long again = fa::allocations();
    q.append_shared(update);
    CHECK(q.buffers().size() == 1);
    CHECK(fa::allocations() == again);
  }

  TEST_CASE("appending grows the queue by doubling, not by one piece or one envelope at a time") {
    namespace fa = zproc::test::failing_alloc;
    if (!fa::available) return;  // (a sanitizer's runtime owns operator new)
    // A connection with 1,000 watchers woken by one write: an envelope (owned, 40 bytes: past
    // what a std::string holds inline) and a shared piece each, 2,000 pieces in one queue.
    const auto update = std::make_shared<const std::string>("update");
    const std::string head(40, 'h');
    output_queue q;
    const unsigned long before = fa::allocations();
    for (int i = 0; i < 1000; ++i) {
      q.bytes() += head;
      q.append_shared(update);
    }
    const unsigned long made = fa::allocations() - before;
    CHECK(q.size() == 1000 * (head.size() + update->size()));
    CAPTURE(made);
    // The owned bytes in one buffer and the shared pieces in one array, each grown by doubling:
    // a few dozen (a buffer per envelope: 1,000 more; an array grown one piece at a time: 2,000).
    CHECK(made <= 32);
    CHECK(joined(q.buffers()) == [&] {
      std::string all;
      for (int i = 0; i < 1000; ++i) all += head + *update;
      return all;
    }());
  }
}
