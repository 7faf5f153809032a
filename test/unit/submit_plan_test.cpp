// Planning a swarm submission without I/O (swarm/submit_plan.hpp): the chunk size and the
// window once the workers are known, and which chunks one task_submit holds under the frame
// limit.
#include "protocol/ops.hpp"
#include "protocol/task_messages.hpp"
#include "protocol/tasks.hpp"
#include "swarm/submit_plan.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <limits>
#include <numeric>
#include <tuple>
#include <vector>

using zproc::json;
using zproc::detail::packed_chunk;
using zproc::detail::submit_plan;
namespace wire = zproc::protocol::tasks;

namespace {

submit_plan::config lazy_map() {
  submit_plan::config c;
  c.queue = "q";
  c.target = "square";
  c.max_attempts = 2;
  c.lazy = true;
  return c;
}

std::vector<packed_chunk> chunks_of(std::initializer_list<std::size_t> sizes) {
  std::vector<packed_chunk> out;
  for (auto n : sizes) out.push_back({std::vector<std::uint8_t>(n, 7), 3});
  return out;
}

}  // namespace

TEST_SUITE("swarm_algorithms") {
  TEST_CASE("submit plan: chunk size and window from the workers and the input's size") {
    submit_plan lazy(lazy_map(), 1 << 20);
    CHECK(!lazy.resolved());
    CHECK(lazy.due(1000));  // unresolved: always worth a submit (it resolves first)
    lazy.resolve(4, 1600);  // 4 tasks per worker
    CHECK(lazy.resolved());
    CHECK(lazy.chunk_size() == 100);
    CHECK(lazy.window() == 16);
    CHECK(lazy.room(10) == 6);
    CHECK(lazy.room(16) == 0);
    CHECK(lazy.room(99) == 0);
    CHECK(lazy.due(8));
    CHECK(!lazy.due(9));

    submit_plan unknown(lazy_map(), 1 << 20);
    unknown.resolve(0, 0);  // no workers known counts as one; unknown size: 1024 per task
    CHECK(unknown.chunk_size() == 1024);
    CHECK(unknown.window() == 8);

    auto eager = lazy_map();
    eager.lazy = false;  // map/run: the whole input at once
    submit_plan all(eager, 1 << 20);
    all.resolve(2, 3);
    CHECK(all.chunk_size() == 1);
    CHECK(all.window() == std::numeric_limits<std::size_t>::max());

    auto fixed = lazy_map();
    fixed.chunk_size = 5;
    fixed.window = 3;
    submit_plan given(fixed, 1 << 20);
    given.resolve(64, 1'000'000);
    CHECK(given.chunk_size() == 5);
    CHECK(given.window() == 3);
  }

  TEST_CASE("submit plan: automatic chunks shrink at the end so that workers finish together") {
    // 16 workers, 16,000 inputs: 250 calls per task while many remain (4 per worker), then
    // each chunk at most the remaining inputs' share per worker, down to 250 / 64.
    submit_plan plan(lazy_map(), 1 << 20);
    plan.resolve(16, 16'000);
    CHECK(plan.chunk_size() == 250);
    std::vector<int> inputs(16'000);
    std::iota(inputs.begin(), inputs.end(), 0);
    auto it = inputs.begin();
    std::size_t packed = 0;
    std::vector<std::size_t> sizes;
    for (;;) {  // packed a window at a time, as map_lazy does: the sizes depend only on `packed`
      const auto chunks = zproc::detail::pack_some<std::tuple<int>>(
          it, inputs.end(), plan.window(), plan.schedule(), std::size_t{1} << 20, packed);
      if (chunks.empty()) break;
      for (const auto& c : chunks) sizes.push_back(c.items);
    }
    CHECK(packed == inputs.size());
    CHECK(std::accumulate(sizes.begin(), sizes.end(), std::size_t{0}) == inputs.size());
    std::size_t before = 0;
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      CAPTURE(i);
      if (i > 0) CHECK(sizes[i] <= sizes[i - 1]);
      const std::size_t share = (inputs.size() - before + 15) / 16;
      CHECK(sizes[i] <= std::max<std::size_t>(share, 3));  // 250 / 64 = 3: the least
      CHECK((sizes[i] >= 3 || before + sizes[i] == inputs.size()));
      before += sizes[i];
    }
    CHECK(sizes.front() == 250);
    CHECK(sizes.back() <= 3);
    CHECK(std::count(sizes.begin(), sizes.end(), std::size_t{250}) >= 3 * 16);
    CHECK(sizes.size() <= 10 * 16);  // a few more tasks than 4 per worker, not many more

    // A chunk size given, or an input of unknown size: every chunk the same.
    auto fixed = lazy_map();
    fixed.chunk_size = 7;
    submit_plan given(fixed, 1 << 20);
    given.resolve(16, 100);
    for (std::size_t p : {0, 50, 99, 100}) CHECK(given.schedule().next(p) == 7);
    submit_plan unknown(lazy_map(), 1 << 20);
    unknown.resolve(16, 0);
    for (std::size_t p : {0, 50'000, 1'000'000}) CHECK(unknown.schedule().next(p) == 1024);
    // Fewer inputs than 4 per worker: one call per task from the start.
    submit_plan few(lazy_map(), 1 << 20);
    few.resolve(16, 20);
    CHECK(few.schedule().next(0) == 1);
  }

  TEST_CASE("submit plan: a task_submit holds the chunks that fit half a frame, at least one") {
    auto c = lazy_map();
    c.call_timeout = std::chrono::milliseconds(250);
    submit_plan plan(c, 2000);  // a submit stays below 1000 bytes of arguments
    auto chunks = chunks_of({400, 400, 400, 5000, 10});
    std::size_t i = 0;
    std::size_t n = 0;

    using zproc::detail::request_access;
    json r = request_access::body(plan.next_request(chunks, i, n));
    CHECK(n == 2);
    CHECK(i == 2);
    CHECK(zproc::protocol::op_of(r) == zproc::protocol::op::task_submit);
    CHECK(r[wire::queue] == "q");
    CHECK(r[wire::target] == "square");
    CHECK(r[wire::max_attempts] == 2);
    CHECK(r[wire::call_timeout] == 250);
    REQUIRE(r[wire::tasks].size() == 2);
    CHECK(r[wire::tasks][0][0].get_binary().size() == 400);
    CHECK(r[wire::tasks][0][1] == 3);
    CHECK(chunks[0].bytes.capacity() == 0);  // written into the request, and freed

    r = request_access::body(plan.next_request(chunks, i, n));  // the third; the large fourth does not fit with it
    CHECK(n == 1);
    CHECK(i == 3);
    r = request_access::body(plan.next_request(chunks, i, n));  // a chunk larger than the limit goes alone
    CHECK(n == 1);
    CHECK(r[wire::tasks][0][0].get_binary().size() == 5000);
    r = request_access::body(plan.next_request(chunks, i, n));
    CHECK(n == 1);
    CHECK(i == chunks.size());
  }

  TEST_CASE("submit plan: reads the workers and the first id; refuses a malformed reply") {
    submit_plan plan(lazy_map(), 1 << 20);
    json info = plan.info_request();
    CHECK(zproc::protocol::op_of(info) == zproc::protocol::op::task_info);
    CHECK(info[wire::queue] == "q");
    wire::info i;
    i.workers.resize(3);
    CHECK(submit_plan::workers_in(wire::info_reply(i)) == 3);
    CHECK(submit_plan::first_id(wire::submit_reply(77)) == 77);
    CHECK_THROWS_AS(submit_plan::workers_in(json::object()), wire::malformed);
    CHECK_THROWS_AS(submit_plan::first_id(json{{wire::first, "x"}}), wire::malformed);
  }
}
