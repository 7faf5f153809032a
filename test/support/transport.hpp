// Test support: the transport the process and swarm suites run on, chosen by the environment,
// so that one suite runs as it is over a Unix socket and over TLS with a token (CTest runs
// both: `process` and `process.tls`, `swarm` and `swarm.tls`).
#pragma once

#include <zproc/context.hpp>

#include <string>
#include <vector>

namespace zproc::test {

/// Options for a context with an embedded server, by ZPROC_TEST_TRANSPORT:
/// - unset or "ipc": the defaults (a fresh Unix socket);
/// - "tcp": the server on tcp://127.0.0.1:0 (the context generates a token);
/// - "tls": the server on tls://127.0.0.1:0 with a certificate from a test CA made once per
///   run (test_pki), the context trusting that CA, and a generated token.
/// Every process and worker the context spawns connects the same way (its ticket carries the
/// token and the TLS settings).
zproc::context_options context_options();

/// The environment a `zproc` command (or another program) needs to reach `ctx`'s server as a
/// client: ZPROC_TOKEN and ZPROC_TLS_CA when the context has them ("K=V" entries for
/// run_program).
std::vector<std::string> client_env(const zproc::context& ctx);

}  // namespace zproc::test
