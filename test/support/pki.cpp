#include "support/pki.hpp"

#include "support/server_process.hpp"

#include <doctest/doctest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <vector>

namespace zproc::test {

namespace fs = std::filesystem;

temp_dir::temp_dir() {
  static std::atomic<int> count{0};
  path = fs::temp_directory_path() /
         ("zproc-test-" + std::to_string(::getpid()) + "-" + std::to_string(++count));
  fs::create_directories(path);
}

temp_dir::~temp_dir() {
  std::error_code ec;
  fs::remove_all(path, ec);
}

test_pki::test_pki() {
  const auto run = [](const std::vector<std::string>& args) {
    std::vector<std::string> argv{std::string("/usr/bin/openssl")};
    argv.reserve(args.size() + 1);
    for (const auto& a : args) argv.push_back(a);
    auto r = run_program(argv, std::chrono::seconds(30));
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  };
  const std::vector<std::string> ec = {"-newkey", "ec", "-pkeyopt",
                                       "ec_paramgen_curve:prime256v1", "-nodes"};
  const auto self_signed = [&](const std::string& pem, const std::string& name) {
    std::vector<std::string> argv = {"req", "-x509", "-days", "2", "-subj", "/CN=" + name,
                                     "-keyout", pem + ".key", "-out", pem};
    argv.insert(argv.end(), ec.begin(), ec.end());
    run(argv);
  };
  self_signed(ca, "zproc test CA");
  self_signed(other_ca, "someone else's CA");
  std::vector<std::string> req = {"req", "-subj", "/CN=localhost", "-keyout", key, "-out",
                                  dir.file("server.csr")};
  req.insert(req.end(), ec.begin(), ec.end());
  run(req);
  std::ofstream(dir.file("ext.cnf")) << "subjectAltName=DNS:localhost,IP:127.0.0.1\n";
  run({"x509", "-req", "-days", "2", "-in", dir.file("server.csr"), "-CA", ca, "-CAkey",
       ca + ".key", "-CAcreateserial", "-out", cert, "-extfile", dir.file("ext.cnf")});
  // A client certificate signed by the same CA (for a server that asks for one).
  std::vector<std::string> creq = {"req", "-subj", "/CN=a client", "-keyout", client_key,
                                   "-out", dir.file("client.csr")};
  creq.insert(creq.end(), ec.begin(), ec.end());
  run(creq);
  run({"x509", "-req", "-days", "2", "-in", dir.file("client.csr"), "-CA", ca, "-CAkey",
       ca + ".key", "-CAcreateserial", "-out", client_cert});
}

}  // namespace zproc::test
