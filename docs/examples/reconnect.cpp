// Clients that survive their server: a client fails over from a stopped server to the next
// address of its list, reads are sent again, and a write shows what "connection_lost" means.
#include <zproc/zproc.hpp>

#include <cstdio>
#include <iostream>

int main() {
  zproc::server_thread primary;  // two servers on fresh Unix sockets
  zproc::server_thread backup;

  // [reconnect-options]
  zproc::client c({.addresses = {backup.address()},  // after the address given to connect()
                   .reconnect_timeout = std::chrono::seconds(10),  // then give up
                   .reconnect_initial_delay = std::chrono::milliseconds(50),
                   .reconnect_max_delay = std::chrono::seconds(1)});
  c.connect(primary.address());  // or "ipc:///a.sock,tcp://b:7000", as ZPROC_ADDRESS may be
  // [reconnect-options]
  zproc::state st(c, "jobs");
  st.set("done", 1);

  primary.stop();  // the primary goes away for good

  // [reconnect-write]
  try {
    st.set("done", 2);  // waits for the reconnect (to the backup here), then is sent once
  } catch (const zproc::error& e) {
    if (e.code() != zproc::client_errc::connection_lost) throw;
    // It was in flight when the connection broke: it may or may not have been applied.
    // Read the state to know; never blindly send it again if applying twice is wrong.
  }
  // [reconnect-write]

  if (c.address() != backup.address()) return 1;  // failed over
  // The backup is another server, in memory: the primary's state is not there (only what was
  // written since the failover).
  if (st.size() > 1 || st.get("done", nullptr) == 1) return 1;
  std::cout << "failed over to " << c.address() << "\n";
  return 0;
}
