// Who gets in (docs/security.md), with real server processes and real sockets: tokens over TCP
// (none, wrong, replayed, right), the server proving itself to the client, the Unix socket's
// user check (a client run as another user), the command line's --token-file, and a TCP
// server that will not start without a token.
#include "protocol/auth.hpp"
#include "support/pki.hpp"
#include "support/raw_peer.hpp"
#include "support/server_process.hpp"

#include <zproc/zproc.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <thread>

using namespace zproc;
using nlohmann::json;
namespace auth = zproc::protocol::auth;
namespace fs = std::filesystem;

namespace {

using test::temp_dir;

/// A server process with a token (written by the server itself, at first start).
struct token_server {
  temp_dir dir;
  std::string token_file = dir.file("token");
  test::server_process srv{{"--token-file", token_file}};
  std::string token = read_token_file(token_file);
};

int auth_square(int x) { return x * x; }
ZPROC_TARGET(auth_square);

client_options with_token(std::string token) {
  client_options o;
  o.token = std::move(token);
  o.reconnect_timeout = std::chrono::milliseconds(0);
  return o;
}

error_code connect_error(const std::string& address, client_options o) {
  client c(std::move(o));
  error_code ec;
  try {
    c.connect(address);
  } catch (const zproc::error& e) {
    ec = e.code();
  }
  return ec;
}

error_code error_of(const json& reply) {
  std::string message;
  if (!reply.is_object() || !reply.contains("e")) return {};
  return protocol::decode_error(reply["e"], message);
}

}  // namespace

TEST_SUITE("auth") {
  TEST_CASE("over TCP: no token and a wrong token are refused, the right one is in") {
    token_server s;
    struct stat st {};
    REQUIRE(::stat(s.token_file.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);  // written for its owner only

    CHECK(connect_error(s.srv.tcp(), with_token("")) == server_errc::unauthenticated);
    CHECK(connect_error(s.srv.tcp(), with_token(generate_token())) ==
          server_errc::unauthenticated);

    client c(with_token(s.token));
    c.connect(s.srv.tcp());
    CHECK(c.ping() == s.srv.pid());
    state st_(c, "auth");
    st_.set("k", 1);
    CHECK(st_.get("k") == 1);

    // The Unix socket lets the server's own user in without a token, and checks one if given.
    client local(with_token(""));
    local.connect(s.srv.ipc());
    CHECK(state(local, "auth").get("k") == 1);
    CHECK(connect_error(s.srv.ipc(), with_token(generate_token())) ==
          server_errc::unauthenticated);
  }

  TEST_CASE("nothing before the handshake is over reaches the state; a replayed hello fails") {
    token_server s;
    {  // A request instead of the proof: only the error comes back, and the connection closes.
      test::raw_peer p(s.srv.tcp());
      p.send(protocol::make_hello(protocol::default_max_frame_size, auth::make_nonce()));
      json challenge = p.receive();
      REQUIRE(challenge.contains(protocol::field::server_nonce));
      json req = protocol::make(protocol::op::set, "auth");
      req[protocol::field::key] = "stolen";
      req[protocol::field::value] = 1;
      req[protocol::field::id] = 1;
      p.send(req);
      CHECK(error_of(p.receive()) == server_errc::unauthenticated);
      CHECK(p.closed_by_server());
    }
    {  // No hello at all: the request gets the error, nothing else.
      test::raw_peer p(s.srv.tcp());
      json req = protocol::make(protocol::op::get, "auth");
      req[protocol::field::key] = "stolen";
      req[protocol::field::id] = 1;
      p.send(req);
      CHECK(error_of(p.receive()) == server_errc::handshake_required);
      CHECK(p.closed_by_server());
    }
    // A good handshake, recorded; then the same bytes again on a new connection.
    const std::string cn = auth::make_nonce();
    std::string proof;
    {
      test::raw_peer p(s.srv.tcp());
      p.send(protocol::make_hello(protocol::default_max_frame_size, cn));
      const std::string sn = p.receive().at(protocol::field::server_nonce).get<std::string>();
      proof = auth::client_proof(s.token, cn, sn);
      p.send(protocol::make_proof(proof));
      json reply = p.receive();
      REQUIRE(reply.contains(protocol::field::server_proof));
      CHECK(auth::same_proof(reply[protocol::field::server_proof].get<std::string>(),
                             auth::server_proof(s.token, cn, sn)));
    }
    test::raw_peer replay(s.srv.tcp());
    replay.send(protocol::make_hello(protocol::default_max_frame_size, cn));
    REQUIRE(replay.receive().contains(protocol::field::server_nonce));
    replay.send(protocol::make_proof(proof));
    CHECK(error_of(replay.receive()) == server_errc::unauthenticated);
    CHECK(replay.closed_by_server());
    client c(with_token(s.token));
    c.connect(s.srv.tcp());
    CHECK_FALSE(state(c, "auth").contains("stolen"));
  }

  TEST_CASE("roles from an access file: read-only reads, a worker token reads nothing") {
    temp_dir dir;
    const std::string admin = generate_token(), reader = generate_token(),
                      worker = generate_token();
    const std::string file = dir.file("access");
    {
      std::ofstream(file) << "# tokens\n"
                          << admin << " admin\n"
                          << reader << " read-only:metrics\n"
                          << worker << " worker:render\n";
      fs::permissions(file, fs::perms::owner_read | fs::perms::owner_write);
    }
    test::server_process srv({"--access-file", file});
    client a(with_token(admin));
    a.connect(srv.tcp());
    state(a, "metrics").set("cpu", 0.5);
    state(a, "secrets").set("key", "hunter2");

    const auto code_of = [](auto&& f) {
      try {
        f();
        return error_code{};
      } catch (const zproc::error& e) {
        return e.code();
      }
    };
    client r(with_token(reader));
    r.connect(srv.tcp());
    CHECK(state(r, "metrics").get("cpu") == 0.5);
    CHECK(code_of([&] { state(r, "metrics").set("cpu", 1); }) == server_errc::forbidden);
    CHECK(code_of([&] { state(r, "secrets").get("key"); }) == server_errc::forbidden);
    CHECK(state(a, "metrics").get("cpu") == 0.5);  // unchanged

    client w(with_token(worker));
    w.connect(srv.tcp());
    CHECK(w.ping() == srv.pid());
    CHECK(code_of([&] { state(w, "secrets").get("key"); }) == server_errc::forbidden);
    CHECK(code_of([&] { state(w, "metrics").get("cpu"); }) == server_errc::forbidden);
    CHECK(code_of([&] { state(w, "secrets").set("key", "mine"); }) == server_errc::forbidden);
    CHECK(state(a, "secrets").get("key") == "hunter2");
  }

  TEST_CASE("fuzz before the handshake is over: only errors come back, nothing reaches the state") {
    token_server s;
    std::mt19937 rng(4242);
    for (int round = 0; round < 120; ++round) {
      test::raw_peer p(round % 3 == 0 ? s.srv.ipc() : s.srv.tcp());
      const int stage = static_cast<int>(rng() % 3);  // nothing, a hello without a token, or
      if (stage == 1) p.send(protocol::make_hello(protocol::default_max_frame_size));
      if (stage == 2) {  // a hello with a nonce, then anything but the proof
        p.send(protocol::make_hello(protocol::default_max_frame_size, auth::make_nonce()));
        REQUIRE(p.receive().contains(protocol::field::server_nonce));
      }
      if (stage == 1 && round % 3 == 0) continue;  // (ipc, the server's own user: let in)
      for (int i = 0; i < 3; ++i) {
        json req = protocol::make(protocol::op::set, "fuzz");
        req[protocol::field::key] = "k" + std::to_string(round);
        req[protocol::field::value] = round;
        req[protocol::field::id] = i + 1;
        if (rng() % 3 == 0) req[protocol::field::client_proof] = auth::make_nonce();
        if (rng() % 4 == 0) req = json::array({rng(), "zproc"});
        std::string wire;
        protocol::append_frame(wire, req);
        if (i == 2 && rng() % 5 == 0) wire.resize(wire.size() / 2);  // a torn last frame
        try {
          p.send_bytes(wire);
        } catch (const std::exception&) {
          break;  // the server closed already
        }
      }
      // At most one answer, an error about the connection itself, then the close.
      json r = p.receive();
      if (!r.is_discarded()) {
        CHECK(r.value("i", std::uint64_t{1}) == 0);
        CHECK(r.contains("e"));
        CHECK_FALSE(r.contains("r"));
        CHECK(p.receive().is_discarded());
      }
    }
    client c(with_token(s.token));
    c.connect(s.srv.tcp());
    CHECK(state(c, "fuzz").size() == 0);
  }

  TEST_CASE("the client checks the server: an impostor that does not know the token is refused") {
    // A listener that answers the hello with a challenge, then with a reply whose proof it
    // cannot have made (it does not know the token).
    boost::asio::io_context io;
    boost::asio::ip::tcp::acceptor acc(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
    const auto port = acc.local_endpoint().port();
    std::thread impostor([&] {
      boost::system::error_code ec;
      auto sock = acc.accept(ec);
      if (ec) return;
      protocol::frame_decoder d;
      auto next = [&]() -> json {
        std::string_view payload;
        while (d.next(payload) != protocol::frame_decoder::status::frame) {
          auto space = d.prepare();
          const auto n = sock.read_some(boost::asio::buffer(space.data(), space.size()), ec);
          if (ec) return json::value_t::discarded;
          d.commit(n);
        }
        return protocol::decode_payload(payload);
      };
      auto send = [&](const json& m) {
        std::string wire;
        protocol::append_frame(wire, m);
        boost::asio::write(sock, boost::asio::buffer(wire), ec);
      };
      if (next().is_discarded()) return;
      send(protocol::make_challenge(auth::make_nonce()));
      if (next().is_discarded()) return;
      protocol::hello_reply r{1, 1, protocol::default_max_frame_size, "x"};
      r.server_proof = auth::make_nonce();  // a guess
      send(protocol::make_hello_reply(r));
      next();  // until the client hangs up
    });
    CHECK(connect_error("tcp://127.0.0.1:" + std::to_string(port), with_token(generate_token())) ==
          client_errc::untrusted_server);
    impostor.join();
  }

  TEST_CASE("a client that offers a token to a server without one is refused (mutual)") {
    test::server_process open;  // --insecure, no token
    CHECK(connect_error(open.tcp(), with_token(generate_token())) ==
          server_errc::unauthenticated);
    CHECK(connect_error(open.tcp(), with_token("")) == error_code{});
  }

  TEST_CASE("a TCP server without a token does not start; zproc server makes one") {
    server_config config;
    config.listen = {"tcp://127.0.0.1:0"};
    boost::asio::io_context io;
    server srv(io.get_executor(), config);
    try {
      srv.start();
      FAIL("a TCP server without a token started");
    } catch (const zproc::error& e) {
      CHECK(std::string(e.what()).find("--insecure") != std::string::npos);
    }

    temp_dir dir;
    const std::string data = dir.file("data");
    test::child_process server({ZPROC_EXE, "server", "--listen", "tcp://127.0.0.1:0",
                                "--data-dir", data});
    REQUIRE(server.wait_for_line("wrote a new token", std::chrono::seconds(10)));
    CHECK(server.last_line().find(data + "/token") != std::string::npos);
    REQUIRE(server.wait_for_line("listening at ", std::chrono::seconds(10)));
    const std::string address = server.last_line().substr(13);
    auto cmd = [&](std::vector<std::string> extra) {
      std::vector<std::string> argv = {ZPROC_EXE, "--address", address};
      argv.insert(argv.end(), extra.begin(), extra.end());
      return test::run_program(argv, std::chrono::seconds(20));
    };
    CHECK(cmd({"ping"}).exit_code == 1);
    auto r = cmd({"--token-file", data + "/token", "set", "k", "5"});
    CHECK(r.exit_code == 0);
    CHECK(cmd({"--token-file", data + "/token", "get", "k"}).out == "5\n");
    // The environment works as well as the option.
    r = test::run_program({ZPROC_EXE, "--address", address, "get", "k"}, std::chrono::seconds(20),
                          {std::string("ZPROC_TOKEN_FILE=") + data + "/token"});
    CHECK(r.out == "5\n");
    // A token file others may read is refused, with the fix in the message.
    const std::string loose = dir.file("loose");
    std::ofstream(loose) << read_token_file(data + "/token") << "\n";
    fs::permissions(loose, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                               fs::perms::others_read);
    r = cmd({"--token-file", loose, "ping"});
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("chmod 600") != std::string::npos);
  }

  TEST_CASE("the Unix socket: a user the server does not allow is refused (run as nobody)") {
    if (::geteuid() != 0) {
      MESSAGE("skipped: needs root to run a client as another user");
      return;
    }
    const std::string nobody = "65534";
    for (const bool allowed : {false, true}) {
      std::vector<std::string> args;
      if (allowed) args = {"--allow-user", nobody};
      test::server_process s(args);
      // The socket is 0600 in a directory of ours: shared on purpose (a loose chmod).
      const std::string path = address::parse(s.ipc()).path;
      ::chmod(path.c_str(), 0666);
      auto r = test::run_program({"/usr/bin/setpriv", "--reuid=" + nobody, "--regid=" + nobody,
                                  "--clear-groups", ZPROC_EXE, "--address", s.ipc(), "ping"},
                                 std::chrono::seconds(20));
      if (allowed) {
        CHECK(r.exit_code == 0);
        CHECK(r.out == std::to_string(s.pid()) + "\n");
      } else {
        CHECK(r.exit_code == 1);
        CHECK(r.err.find("user 65534 may not use") != std::string::npos);
      }
    }
  }
}

namespace {

/// `zproc server` on a tls:// address with a token; its address.
struct tls_server {
  test::test_pki pki;
  std::string token_file = pki.dir.file("token");
  test::child_process proc;
  std::string address;
  std::string token;
  /// `client_ca`: the server asks clients for a certificate signed by it.
  explicit tls_server(bool client_ca = false)
      : proc([&] {
          std::vector<std::string> argv = {ZPROC_EXE,  "server",    "--listen",
                                           "tls://127.0.0.1:0", "--tls-cert", pki.cert,
                                           "--tls-key", pki.key,    "--token-file",
                                           token_file};
          if (client_ca) argv.insert(argv.end(), {"--tls-ca", pki.ca});
          return argv;
        }()) {
    REQUIRE(proc.wait_for_line("listening at ", std::chrono::seconds(10)));
    address = proc.last_line().substr(13);
    token = read_token_file(token_file);
  }
  client_options options(std::string ca, std::string server_name = {}) const {
    client_options o = with_token(token);
    o.tls = tls_options{std::move(ca), "", "", std::move(server_name)};
    return o;
  }
};

}  // namespace

TEST_SUITE("auth") {
  TEST_CASE("TLS: the right CA and name get in; another CA, another name, plain TCP do not") {
    tls_server s;
    REQUIRE(s.address.rfind("tls://127.0.0.1:", 0) == 0);
    client c(s.options(s.pki.ca));
    c.connect(s.address);
    state st_(c, "tls");
    st_.set("k", "over TLS");
    CHECK(st_.get("k") == "over TLS");

    CHECK(connect_error(s.address, s.options(s.pki.other_ca)) == client_errc::untrusted_server);
    CHECK(connect_error(s.address, s.options(s.pki.ca, "zproc.example")) ==
          client_errc::untrusted_server);
    // By name: localhost is in the certificate too.
    const std::string by_name = "tls://localhost:" + s.address.substr(s.address.rfind(':') + 1);
    CHECK(connect_error(by_name, s.options(s.pki.ca)) == error_code{});
    // A plain client on the TLS port gets no zproc hello.
    const std::string plain = "tcp://" + s.address.substr(6);
    CHECK(connect_error(plain, with_token(s.token)) != error_code{});

    // The command line: --tls-ca and --token-file.
    auto r = test::run_program({ZPROC_EXE, "--address", s.address, "--tls-ca", s.pki.ca,
                                "--token-file", s.token_file, "--namespace", "tls", "get", "k"},
                               std::chrono::seconds(20));
    CHECK(r.out == "\"over TLS\"\n");
  }

  TEST_CASE("TLS: a server that asks for client certificates lets in only those its CA signed") {
    tls_server s(true);
    CHECK(connect_error(s.address, s.options(s.pki.ca)) != error_code{});  // no certificate
    client_options o = s.options(s.pki.ca);
    o.tls->cert_file = s.pki.client_cert;
    o.tls->key_file = s.pki.client_key;
    client c(o);
    c.connect(s.address);
    CHECK(c.ping() == s.proc.pid());
    o.tls->cert_file = s.pki.cert;  // signed by the CA, but with the server's key: no
    CHECK(connect_error(s.address, o) != error_code{});
  }

  TEST_CASE("TLS: a swarm whose workers connect over TLS with the token") {
    tls_server s;
    context_options co;
    co.address = s.address;
    co.token = s.token;
    co.tls = tls_options{s.pki.ca, "", "", ""};
    context ctx(co);
    auto sw = ctx.create_swarm(2);
    std::vector<int> in(100);
    std::iota(in.begin(), in.end(), 0);
    map_options mo;
    mo.timeout = std::chrono::seconds(60);
    const auto out = sw.map(auth_square, in, mo);
    REQUIRE(out.size() == in.size());
    CHECK(out[99] == 99 * 99);
  }
}
