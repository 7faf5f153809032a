// Atomic operations: built and run by the tests (example.atomic).
#include <zproc/zproc.hpp>

#include <iostream>
#include <thread>
#include <vector>

int main() {
  zproc::server_thread server;
  zproc::client c;
  c.connect(server.address());
  zproc::state st(c, "bank");
  st.update({{"alice", 100}, {"bob", 0}});

  // [atomic] A read-modify-write as one write, retried on conflict: no lost update.
  std::vector<std::thread> tellers;
  for (int t = 0; t < 4; ++t)
    tellers.emplace_back([&] {
      zproc::client mine;  // one connection per thread (a blocking client serializes calls)
      mine.connect(server.address());
      zproc::state bank(mine, "bank");
      for (int i = 0; i < 25; ++i)
        bank.atomic([](zproc::json& s) {
          s["alice"] = s["alice"].get<int>() - 1;
          s["bob"] = s["bob"].get<int>() + 1;
        });
    });
  for (auto& t : tellers) t.join();
  std::cout << st.copy().dump() << "\n";  // {"alice":0,"bob":100}
  // [atomic]

  // [primitives] One step on the server, no data round trip.
  st.increment("visits");                                    // 1
  bool claimed = st.compare_and_set("owner", std::nullopt, "me");  // create only if absent
  st.append("log", "opened");                                // ["opened"]
  auto r = st.transaction({.compare = {zproc::txn::equal("owner", "me")},
                           .then = {zproc::txn::increment("visits"),
                                    zproc::txn::append("log", "visited")},
                           .otherwise = {zproc::txn::get("owner")}});
  std::cout << claimed << " " << r.succeeded << " " << st.get("visits") << "\n";  // 1 1 2
  // [primitives]
}
