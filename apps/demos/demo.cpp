// The first demo: a state shared by two processes through an embedded server.
//
// The parent starts a server on its own thread, then runs this same binary again as a child,
// handing it the server's address. The child waits for the parent's "ready", reads the cookies
// the parent baked and eats them; the parent waits until the jar is empty. (Once zproc can spawn
// processes itself, the cookie_eater demo replaces this one.)
#include <zproc/zproc.hpp>

#include <boost/process/v2/process.hpp>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

namespace {

using namespace std::chrono_literals;

/// Polls until `pred` holds (watchers that co_await changes come with the next release).
template <class Pred>
bool poll_until(Pred pred, std::chrono::seconds limit = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

int child(const std::string& address) {
  zproc::client c;
  c.connect(address);
  zproc::state st(c, "kitchen");
  if (!poll_until([&] { return st.get("ready", false) == true; })) return 1;
  std::printf("[child %d] the jar holds %s cookies\n", ::getpid(), st.get("cookies").dump().c_str());
  while (st.get("cookies").get<int>() > 0) {
    st.set("cookies", st.get("cookies").get<int>() - 1);  // only the child writes "cookies" now
    std::printf("[child %d] nom nom nom\n", ::getpid());
  }
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
  for (int i = 0; i < 5; ++i) {
    st.set("cookies", st.get("cookies").get<int>() + 1);
    std::printf("[parent %d] Here's a cookie!\n", ::getpid());
  }
  std::fflush(stdout);

  boost::asio::io_context ioc;
  boost::process::v2::process proc(ioc, self, {"--child", srv.address()});
  st.set("ready", true);
  if (!poll_until([&] { return st.get("done", false) == true; })) {
    std::fprintf(stderr, "the child did not finish\n");
    return 1;
  }
  const int rc = proc.wait();
  std::printf("[parent %d] child exited with %d; cookies left: %s; revision %llu\n", ::getpid(), rc,
              st.get("cookies").dump().c_str(),
              static_cast<unsigned long long>(st.revision()));
  return rc == 0 && st.get("cookies") == 0 ? 0 : 1;
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
