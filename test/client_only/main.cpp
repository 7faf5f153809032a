// A program that uses only the client component (zproc::client): it must link without the
// process layer (no __cxa_throw interposer, no supervisor), and work. Run with an address where
// no server listens: the connect must fail with server_unreachable.
#include <zproc/client.hpp>
#include <zproc/state.hpp>

#include <cstdio>
#include <string>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s ADDRESS\n", argv[0]);
    return 2;
  }
  zproc::client c({.connect_timeout = std::chrono::milliseconds(5000)});
  try {
    c.connect(argv[1]);
    std::printf("pid %lld\n", static_cast<long long>(c.ping()));
    zproc::state(c, "client-only").set("k", 1);
    return 0;
  } catch (const zproc::error& e) {
    std::printf("%s\n", e.code() == zproc::client_errc::server_unreachable ? "unreachable"
                                                                            : e.what());
    return e.code() == zproc::client_errc::server_unreachable ? 0 : 1;
  }
}
