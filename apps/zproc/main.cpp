// zproc: the state server and a client for it on the command line. The parsing is in
// parse.cpp (CLI11), each command in its own file; here: what an error becomes (one line on
// stderr and the exit code, the same for every command: cli.hpp, exit_code).
#include "cli.hpp"

#include <zproc/address.hpp>
#include <zproc/error.hpp>

#include <cstdio>
#include <iostream>

int main(int argc, char** argv) {
  using namespace zproc::cli;
  try {
    const parsed p = parse(argc, argv);
    if (!p.help.empty()) {
      std::fputs(p.help.c_str(), stdout);
      return exit_code::ok;
    }
    const arguments& args = p.args;
    if (args.command == "server") return run_server(args);
    if (args.command == "watch") return run_watch(args);
    if (args.command == "history") return run_history(args);
    if (args.command == "ps") return run_ps(args);
    if (args.command == "workers") return run_workers(args);
    return run_state_command(args);
  } catch (const usage_error& e) {
    std::cerr << "zproc: " << e.message << "\n("
              << (e.hint.empty() ? std::string("see 'zproc --help'") : e.hint) << ")\n";
    return exit_code::usage;
  } catch (const zproc::error& e) {
    std::cerr << "zproc: " << (e.diagnostics().empty() ? e.code().message() : e.diagnostics())
              << "\n";
    if (e.code() == zproc::client_errc::server_unreachable)
      std::cerr << "(is a server running there? start one with 'zproc server --listen ADDR', "
                   "or pass --address / set ZPROC_ADDRESS)\n";
    return e.code() == zproc::server_errc::key_not_found ? exit_code::not_found
                                                         : exit_code::failed;
  } catch (const std::exception& e) {
    std::cerr << "zproc: " << e.what() << "\n";
    return exit_code::failed;
  }
}

namespace zproc::cli {

std::string arguments::require_address() const {
  if (address) return *address;
  if (auto env = address_from_env()) return *env;
  throw usage_error{"no server address: pass --address ADDR or set ZPROC_ADDRESS", {}};
}

}  // namespace zproc::cli
