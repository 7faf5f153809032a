// A connection's queue of replies (server/output_queue.hpp): what a write is handed, whole and
// after a write that took part of it.
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

  TEST_CASE("cleared, it keeps its first piece's capacity up to the limit") {
    output_queue q;
    q.bytes().assign(1000, 'x');
    q.clear(4096);
    CHECK(q.empty());
    CHECK(q.bytes().capacity() >= 1000);
    q.bytes().assign(10000, 'y');
    q.clear(4096);
    CHECK(q.bytes().capacity() < 10000);
  }

  TEST_CASE("appending pieces grows the queue by doubling, not by one piece at a time") {
    namespace fa = zproc::test::failing_alloc;
    if (!fa::available) return;  // (a sanitizer's runtime owns operator new)
    // A connection with 1,000 watchers woken by one write: a shared piece and a few owned bytes
    // (the reply's envelope) each, 2,000 pieces in one queue.
    const auto update = std::make_shared<const std::string>("update");
    output_queue q;
    const unsigned long before = fa::allocations();
    for (int i = 0; i < 1000; ++i) {
      q.bytes() += "head";  // (fits a std::string inline: only the pieces' array allocates)
      q.append_shared(update);
    }
    const unsigned long made = fa::allocations() - before;
    CHECK(q.size() == 1000 * (4 + update->size()));
    CAPTURE(made);
    CHECK(made <= 16);  // (log2 of 2,000 doublings; one more piece at a time: 2,000)
    CHECK(joined(q.buffers()).size() == q.size());
  }
}
