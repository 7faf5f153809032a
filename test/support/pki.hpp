// Test support: temporary directories, and certificates made with the openssl command.
#pragma once

#include <filesystem>
#include <string>

namespace zproc::test {

/// A fresh directory under the temp directory, removed with what it holds at the end.
struct temp_dir {
  temp_dir();
  ~temp_dir();
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  std::string file(const std::string& name) const { return (path / name).string(); }
  std::filesystem::path path;
};

/// A CA, a server certificate it signs for localhost and 127.0.0.1, a client certificate it
/// signs, and another CA that signed nothing of ours (P-256 keys, valid two days).
struct test_pki {
  test_pki();
  temp_dir dir;
  std::string ca = dir.file("ca.pem"), other_ca = dir.file("other-ca.pem"),
              cert = dir.file("server.pem"), key = dir.file("server.key"),
              client_cert = dir.file("client.pem"), client_key = dir.file("client.key");
};

}  // namespace zproc::test
