// The example of README.md, verbatim (test 'docs.readme' checks they match).
#include <iostream>
#include <zproc/zproc.hpp>

int main() {
  zproc::server_thread server;            // an embedded state server on its own thread
  zproc::client c;                        // or zproc::client c(executor) for co_await
  c.connect(server.address());            // ipc:///tmp/... ; also tcp://host:port
  zproc::state st(c, "kitchen");          // one namespace
  st.set("cookies", 5);                   // returns the new revision
  st.update({{"baker", "me"}, {"oven", true}});
  int left = st.get("cookies").get<int>() - 1;
  st.set("cookies", left);
  std::cout << st.copy().dump() << "\n";  // {"baker":"me","cookies":4,"oven":true}
}
