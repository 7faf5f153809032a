#include <zproc/address.hpp>

#include <doctest/doctest.h>

using zproc::address;

TEST_SUITE("address") {
  TEST_CASE("ipc and tcp addresses parse and print back") {
    auto a = address::parse("ipc:///tmp/x.sock");
    CHECK(a.kind == address::transport::ipc);
    CHECK(a.path == "/tmp/x.sock");
    CHECK(a.to_string() == "ipc:///tmp/x.sock");

    auto t = address::parse("tcp://127.0.0.1:5000");
    CHECK(t.kind == address::transport::tcp);
    CHECK(t.host == "127.0.0.1");
    CHECK(t.port == 5000);
    CHECK(t.to_string() == "tcp://127.0.0.1:5000");

    auto v6 = address::parse("tcp://[::1]:0");
    CHECK(v6.host == "::1");
    CHECK(v6.port == 0);
    CHECK(v6.to_string() == "tcp://[::1]:0");
    CHECK(t.is_tcp());

    auto tls = address::parse("tls://localhost:7443");
    CHECK(tls.kind == address::transport::tls);
    CHECK(tls.is_tcp());
    CHECK(tls.host == "localhost");
    CHECK(tls.port == 7443);
    CHECK(tls.to_string() == "tls://localhost:7443");
    CHECK(address::parse("tls://[::1]:1").to_string() == "tls://[::1]:1");
    CHECK_FALSE(a.is_tcp());
  }

  TEST_CASE("bad addresses are rejected with bad_address") {
    for (const char* bad : {"", "ipc://", "http://x:1", "tcp://host", "tcp://:80", "tcp://h:",
                            "tcp://h:99999", "tcp://h:12x", "tcp://::1:80", "tcp://[::1]80",
                            "tls://host", "tls://:80", "tcps://h:1",
                            "/tmp/sock", "ipc:///tmp/this-path-is-much-longer-than-the-one-"
                            "hundred-and-seven-bytes-that-a-unix-socket-address-can-hold-really.sock"}) {
      CAPTURE(bad);
      zproc::error_code ec;
      CHECK_FALSE(address::parse(bad, ec).has_value());
      CHECK(ec == zproc::client_errc::bad_address);
      CHECK_THROWS_AS(address::parse(bad), zproc::error);
    }
  }
}
