// Watchers: wait for changes instead of polling. Built and run by the tests (example.watchers).
#include <zproc/zproc.hpp>

#include <iostream>
#include <thread>

int main() {
  zproc::server_thread server;

  zproc::client baker_client;
  baker_client.connect(server.address());
  zproc::state baker(baker_client, "kitchen");
  baker.set("cookies", 0);

  zproc::client eater_client;
  eater_client.connect(server.address());
  zproc::state eater(eater_client, "kitchen");

  // [watch] A watcher starts watching when it is made: no later update is missed.
  zproc::watcher cookies = eater.when_change({"cookies"}, {.count = 5});
  std::thread oven([&] {
    for (int i = 1; i <= 5; ++i) baker.set("cookies", i);  // as fast as it can
    baker.set("closed", true);
  });
  for (const zproc::json& snapshot : cookies)  // five snapshots, in order, none skipped
    std::cout << "cookies: " << snapshot["cookies"] << "\n";
  // [watch]

  // [one-shot] Wait for a condition (returns at once if it already holds).
  zproc::json after_closing = eater.get_when_equal("closed", true);
  std::cout << "closed with " << after_closing["cookies"] << " cookies\n";
  // [one-shot]
  oven.join();

  // [time-machine] Every write is kept (within the retention limit): replay it.
  for (const zproc::update& u : eater.history(0))
    std::cout << "revision " << u.revision << ": " << u.changes.size() << " key(s) changed\n";
  std::cout << "at revision 3: " << eater.at(3).dump() << "\n";
  // [time-machine]

  // [own-writes] A watcher hides the writes of the handle object that made it, not those of
  // its copies: a copy is another writer.
  zproc::watcher mine = eater.when_change({"note"}, {.timeout = std::chrono::seconds(5)});
  eater.set("note", "written through the watcher's own handle");  // not reported
  zproc::state copy = eater;                                        // another writer
  copy.set("note", "written through a copy");                       // reported
  std::cout << "saw: " << (*mine.next())["note"] << "\n";
  // [own-writes]
  if (mine.revision() != eater.revision()) return 1;
}
