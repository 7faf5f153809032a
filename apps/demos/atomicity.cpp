// ZProc's atomicity example: processes add to one counter at the same time. A get() then a
// set() is two steps, and another process writes between them: updates are lost. atomic()
// (or increment()) is one step on the server: none is.
#include <zproc/zproc.hpp>

#include <cstdio>
#include <vector>

namespace {

constexpr int processes = 4;
constexpr int adds = 500;

void careless(zproc::state& st) {  // read, then write: two round trips
  for (int i = 0; i < adds; ++i) st.set("count", st.get("count").get<int>() + 1);
}
ZPROC_TARGET(careless);

void careful(zproc::state& st) {  // one atomic step each
  for (int i = 0; i < adds; ++i)
    st.atomic([](zproc::json& snap) { snap["count"] = snap["count"].get<int>() + 1; });
}
ZPROC_TARGET(careful);

template <class Target>
int run(zproc::context& ctx, Target& target) {
  auto st = ctx.create_state({{"count", 0}});
  zproc::wait_all(ctx.spawn_many(processes, {}, target));
  return st.get("count").get<int>();
}

}  // namespace

int main(int argc, char** argv) {
  zproc::init(argc, argv);
  zproc::context ctx;
  const int want = processes * adds;
  const int lost = run(ctx, careless);
  std::printf("get + set:  %d of %d (%d updates lost)\n", lost, want, want - lost);
  const int kept = run(ctx, careful);
  std::printf("atomic():   %d of %d\n", kept, want);
  return kept == want ? 0 : 1;
}
