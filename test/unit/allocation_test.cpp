// What the server's hot paths allocate, counted (failing_alloc's count of operator new): a
// one-key write allocates its history record and nothing per request besides; waking watchers
// allocates nothing per watcher. Through the engine without sockets, as a session calls it.
#include "failing_alloc.hpp"
#include "protocol/store_request.hpp"
#include "server/engine.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using zproc::json;
using namespace zproc::server_detail;
namespace protocol = zproc::protocol;
namespace fa = zproc::test::failing_alloc;

namespace {

std::string packed(const json& j) {
  const auto b = json::to_msgpack(j);
  return std::string(b.begin(), b.end());
}

/// Reads `payload` as a session does (a flat store request) and hands it to `e`; false if it
/// was not one. Allocates only what the request's path does (strings of up to 15 bytes are
/// inline).
bool handle(engine& e, const std::string& payload, std::uint64_t client,
            std::vector<delivery>& out) {
  protocol::store_request s;
  if (!protocol::decode_store_request(payload, s)) return false;
  e.handle(s, request_context{client}, out);
  return true;
}

}  // namespace

TEST_SUITE("allocations") {
  TEST_CASE("a one-key set allocates its history record and nothing else on the server's "
            "path: the request is read into inline strings, the reply is held inline") {
    if (!fa::available) return;  // (a sanitizer's runtime owns operator new)
    engine e{1, retention{}};
    std::vector<delivery> out;
    out.reserve(4);
    constexpr int sets = 200;
    // Made before counting. Ids of a client that has sent 2^32 requests: a reply of 19 or 20
    // bytes, past the 15 that a std::string holds without an allocation.
    std::vector<std::string> payloads;
    for (int i = 0; i <= sets; ++i)
      payloads.push_back(packed({{"i", (std::uint64_t{1} << 32) + static_cast<std::uint64_t>(i)},
                                 {"o", "set"},
                                 {"n", "ns"},
                                 {"k", "counter"},
                                 {"v", i}}));
    REQUIRE(handle(e, payloads[0], 1, out));  // the namespace and the key exist from here on
    out.clear();
    int read = 0;
    int answered = 0;
    const unsigned long before = fa::allocations();
    for (int i = 1; i <= sets; ++i) {
      read += handle(e, payloads[static_cast<std::size_t>(i)], 1, out) ? 1 : 0;
      answered += out.size() == 1 && !out[0].bytes.empty() ? 1 : 0;
      out.clear();
    }
    const unsigned long made = fa::allocations() - before;
    CHECK(read == sets);
    CHECK(answered == sets);
    // One record per set, and now and then a block of the history's deques (32 entries each).
    CHECK(made >= sets);
    CHECK(made <= sets + sets / 8);
    CHECK(e.data().find("ns")->data.at("counter") == sets);
  }

  TEST_CASE("waking watchers allocates nothing per watcher: each reply is the record's shared "
            "encoding behind an envelope held inline") {
    if (!fa::available) return;
    // What one write allocates as it wakes n watchers (each of its own client).
    const auto wake = [](std::uint64_t n) {
      engine e{1, retention{}};
      std::vector<delivery> out;
      bool ok = handle(
          e, packed({{"i", 1}, {"o", "set"}, {"n", "ns"}, {"k", "x"}, {"v", 0}}), 100'000, out);
      for (std::uint64_t c = 1; c <= n; ++c)
        e.handle(json{{"i", 7}, {"o", "watch"}, {"n", "ns"}, {"keys", {"x"}}, {"after", 1u}}, 7,
                 request_context{c}, out);
      ok = ok && out.size() == 1;  // the first set's reply: every watcher waits
      out.clear();
      out.reserve(n + 1);
      const std::string set = packed({{"i", 2}, {"o", "set"}, {"n", "ns"}, {"k", "x"}, {"v", 1}});
      const unsigned long before = fa::allocations();
      ok = ok && handle(e, set, 100'000, out);
      const unsigned long made = fa::allocations() - before;
      std::uint64_t shared = 0;
      for (const auto& d : out) shared += d.packed ? 1 : 0;
      CHECK(ok);
      CHECK(out.size() == n + 1);  // the writer's reply and every watcher's
      CHECK(shared == n);
      return made;
    };
    const unsigned long few = wake(200);
    const unsigned long many = wake(400);
    CAPTURE(few);
    CAPTURE(many);
    // The same record and encoding either way; the list of the woken grows by doubling.
    CHECK(many - few < 10);
  }
}
