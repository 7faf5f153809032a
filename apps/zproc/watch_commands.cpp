// zproc watch [KEY...] | zproc history: updates as JSON lines.
#include "cli.hpp"

#include <zproc/client.hpp>
#include <zproc/state.hpp>

#include <iostream>

namespace zproc::cli {

int run_watch(const arguments& args) {
  client c;
  c.connect(args.require_address());
  state st(c, args.ns);
  watch_options options;
  options.live = args.live;
  options.start = args.from;
  options.identical_okay = true;  // a tool shows every write
  if (args.snapshots) {
    auto w = st.when_change(args.positional, options);
    for (const auto& snapshot : w) std::cout << snapshot.dump() << std::endl;
  } else {
    auto w = st.when_change_raw(args.positional, options);
    for (const auto& u : w) std::cout << json(u).dump() << std::endl;  // the schema of zproc::to_json
  }
  return 0;
}

int run_history(const arguments& args) {
  client c;
  c.connect(args.require_address());
  state st(c, args.ns);
  std::uint64_t from = args.from.value_or(0);
  // Page by page (a page may be short to fit a frame): until a page is empty.
  for (;;) {
    auto page = st.history(from, args.to);
    if (page.empty()) break;
    for (const auto& u : page) std::cout << json(u).dump() << "\n";
    from = page.back().revision + 1;
    if (args.to && from > *args.to) break;
  }
  std::cout.flush();
  return 0;
}

}  // namespace zproc::cli
