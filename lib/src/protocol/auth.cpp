#include "protocol/auth.hpp"

#include <zproc/error.hpp>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <array>
#include <vector>

namespace zproc::protocol::auth {

namespace {

constexpr char hex_digits[] = "0123456789abcdef";

std::string to_hex(const unsigned char* data, std::size_t n) {
  std::string out(2 * n, '\0');
  for (std::size_t i = 0; i < n; ++i) {
    out[2 * i] = hex_digits[data[i] >> 4];
    out[2 * i + 1] = hex_digits[data[i] & 0xf];
  }
  return out;
}

/// HMAC-SHA256(token, label NUL client_nonce NUL server_nonce), in hex.
std::string proof(std::string_view label, std::string_view token, std::string_view cn,
                  std::string_view sn) {
  std::string message;
  message.reserve(label.size() + cn.size() + sn.size() + 2);
  message.append(label).push_back('\0');
  message.append(cn).push_back('\0');
  message.append(sn);
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  unsigned int size = 0;
  if (!HMAC(EVP_sha256(), token.data(), static_cast<int>(token.size()),
            reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac.data(),
            &size))
    throw zproc::error(make_error_code(std::errc::io_error), "HMAC-SHA256 failed (OpenSSL)");
  return to_hex(mac.data(), size);
}

}  // namespace

std::string random_hex(std::size_t n) {
  std::vector<unsigned char> bytes(n);
  if (RAND_bytes(bytes.data(), static_cast<int>(n)) != 1)
    throw zproc::error(make_error_code(std::errc::io_error),
                       "no random bytes from the system (OpenSSL RAND_bytes failed)");
  return to_hex(bytes.data(), n);
}

std::string make_nonce() { return random_hex(nonce_bytes); }

bool well_formed_nonce(std::string_view nonce) noexcept {
  return nonce.size() == 2 * nonce_bytes &&
         nonce.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

std::string client_proof(std::string_view token, std::string_view client_nonce,
                         std::string_view server_nonce) {
  return proof("zproc client proof v1", token, client_nonce, server_nonce);
}

std::string server_proof(std::string_view token, std::string_view client_nonce,
                         std::string_view server_nonce) {
  return proof("zproc server proof v1", token, client_nonce, server_nonce);
}

bool same_proof(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

void initialize_openssl() {
  // Only the base (~75 us; it registers the exit-time cleanup): the configuration file and the
  // TLS library (~2 ms) load when a connection first needs them, not in every program.
  OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG, nullptr);
}

}  // namespace zproc::protocol::auth
