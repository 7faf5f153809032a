// The first demo: a state shared by two processes through an embedded server.
//
// The parent starts a server on its own thread, then runs this same binary again as a child,
// handing it the server's address. The child watches the cookie jar; the parent bakes five
// cookies; the child eats each one as it appears (a watcher: no polling, none missed), then
// says it is done. (Once zproc can spawn processes itself, the cookie_eater demo replaces this.)
#include <zproc/zproc.hpp>

#include <boost/process/v2/process.hpp>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdio>
#include <string>

namespace {

int child(const std::string& address) {
  zproc::client c;
  c.connect(address);
  zproc::state st(c, "kitchen");
  // Watch first, then say "ready": no cookie baked after this can be missed.
  auto baked = st.when_change({"cookies"}, {.timeout = std::chrono::seconds(10), .count = 5});
  st.set("ready", true);
  for (const auto& snapshot : baked)
    std::printf("[child %d] nom nom nom (%s in the jar)\n", ::getpid(),
                snapshot["cookies"].dump().c_str());
  st.set("done", true);
  return 0;
}

int parent(const char* self) {
  zproc::server_thread srv;  // an embedded server on a fresh Unix socket
  std::printf("[parent %d] server at %s\n", ::getpid(), srv.address().c_str());

  zproc::client c;
  c.connect(srv.address());
  zproc::state st(c, "kitchen");
  st.replace({{"cookies", 0}, {"ready", false}});
  std::fflush(stdout);

  boost::asio::io_context ioc;
  boost::process::v2::process proc(ioc, self, {"--child", srv.address()});
  const zproc::watch_options within_10s{.timeout = std::chrono::seconds(10)};
  st.get_when_equal("ready", true, within_10s);  // the child is watching
  for (int i = 1; i <= 5; ++i) {
    st.set("cookies", i);
    std::printf("[parent %d] Here's a cookie!\n", ::getpid());
    std::fflush(stdout);
  }
  st.get_when_equal("done", true, within_10s);
  const int rc = proc.wait();
  std::printf("[parent %d] the child saw every cookie and exited with %d (revision %llu)\n",
              ::getpid(), rc, static_cast<unsigned long long>(st.revision()));
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc == 3 && std::string(argv[1]) == "--child") return child(argv[2]);
    return parent("/proc/self/exe");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "demo: %s\n", e.what());
    return 1;
  }
}
