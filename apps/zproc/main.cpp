// zproc: the state server and a client for it on the command line.
#include "cli.hpp"

#include <zproc/address.hpp>
#include <zproc/error.hpp>

#include <charconv>
#include <cstdio>
#include <iostream>

namespace zproc::cli {

const char* const usage_text = R"(usage: zproc COMMAND [OPTIONS] [ARGS]

commands:
  server --listen ADDR...   run a state server (prints "listening at ADDR" per address;
                            stops on SIGINT/SIGTERM); --data-dir DIR keeps the state and its
                            history on disk (a restart brings them back), with
                            --fsync always|interval|never (default: interval, 100 ms);
                            a damaged data directory stops it (the message says where);
                            --repair keeps the good part, moves the rest aside, starts
  ping                      print the server's pid
  get KEY                   print the value of KEY as JSON
  set KEY JSON              set KEY to a JSON value; prints the new revision
  del KEY                   remove KEY; prints the new revision
  keys [--prefix P]         print the keys (only those that start with P), one JSON string
                            per line; read page by page: any number of keys
  dump [--prefix P]         print the whole namespace (or its keys that start with P) as one
                            JSON object; read page by page: any number of keys
  incr KEY [DELTA]          add DELTA (default 1) atomically; prints the new value
  cas KEY EXPECTED DESIRED  set KEY to DESIRED if it holds EXPECTED (JSON, or the word
                            'absent': create only); prints true/false, exit code 3 if false
  watch [KEY...]            print each update (of these keys, or of any) as one JSON line,
                            until interrupted; --snapshots prints the whole namespace instead;
                            --from REV starts after revision REV (0: the oldest kept);
                            --live skips updates that pile up while a line is printed
  history                   print the kept updates as JSON lines (--from REV, --to REV)
  ps [--all|--running]      list the processes spawned through the server: all the records it
     [--json]               keeps (default) or only the running ones; a table with the first
                            line of each crash report, or with --json one JSON object per line
  workers [NAME] [--json]   the workers of swarm NAME (default "default"): pid, host, tasks
                            held and done, and the tasks queued; --json: one JSON object

options:
  --address ADDR            server address (ipc:///path.sock or tcp://host:port), or a
                            comma-separated list to fail over along; default: $ZPROC_ADDRESS
  --namespace NS            namespace (default: "default")
  --listen ADDR             (server) address to listen on; repeatable; port 0 = any free port
  --max-process-records N   (server) finished process records to keep (default 10000)
  --snapshot-every N        (server, with --data-dir) write a snapshot after N logged updates
                            (default 100000); it is written in steps between requests
  --max-namespaces N        (server) namespaces it holds at most (default 10000)
  --max-pending-output B    (server) bytes of replies queued for one connection before it
                            is no longer read and its watchers wait (default 64 MiB)
  --history-records N       (server) history records kept per namespace (default 100000)
  --history-bytes B         (server) history bytes kept per namespace (default 64 MiB)
  --history-total-bytes B   (server) history bytes kept by all namespaces (default 512 MiB)
  -h, --help                this text; 'zproc COMMAND --help': that command only
)";

/// The lines of usage_text about `command` (its entry under "commands:"), then the options;
/// empty if there is no such command.
std::string command_help(const std::string& command) {
  const std::string text = usage_text;
  const std::string head = "\n  " + command;
  std::size_t at = text.find(head + " ");
  if (at == std::string::npos) at = text.find(head + "\n");
  const std::size_t options = text.find("\noptions:");
  if (at == std::string::npos || at > options) return {};
  std::size_t end = at + 1;
  do {  // the entry's first line, then the lines indented deeper than a command name
    end = text.find('\n', end) + 1;
  } while (end < options && text.compare(end, 3, "   ") == 0);
  return "usage: zproc " + text.substr(at + 3, end - at - 3) + text.substr(options);
}

std::string arguments::require_address() const {
  if (address) return *address;
  if (auto env = address_from_env()) return *env;
  throw usage_error{"no server address: pass --address ADDR or set ZPROC_ADDRESS"};
}

void arguments::expect(std::size_t n, const char* names) const {
  if (positional.size() != n)
    throw usage_error{"'" + command + "' takes " + names + " (got " +
                      std::to_string(positional.size()) + " arguments)"};
}

/// The field of the server's numeric options (a count or a size in bytes), or nullptr.
std::optional<std::size_t>* count_option(arguments& a, const std::string& arg) {
  if (arg == "--max-process-records") return &a.max_process_records;
  if (arg == "--max-namespaces") return &a.max_namespaces;
  if (arg == "--snapshot-every") return &a.snapshot_every;
  if (arg == "--max-pending-output") return &a.max_pending_output;
  if (arg == "--history-records") return &a.history_records;
  if (arg == "--history-bytes") return &a.history_bytes;
  if (arg == "--history-total-bytes") return &a.history_total_bytes;
  return nullptr;
}

arguments parse(int argc, char** argv) {
  arguments a;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&](const char* name) -> std::string {
      if (i + 1 >= argc) throw usage_error{std::string(name) + " needs a value"};
      return argv[++i];
    };
    if (arg == "-h" || arg == "--help") {
      a.help = true;
    } else if (arg == "--address") {
      a.address = value("--address");
    } else if (arg == "--namespace") {
      a.ns = value("--namespace");
    } else if (arg == "--listen") {
      a.listen.push_back(value("--listen"));
    } else if (arg == "--from" || arg == "--to") {
      const std::string v = value(arg.c_str());
      std::uint64_t rev = 0;
      auto [end, err] = std::from_chars(v.data(), v.data() + v.size(), rev);
      if (err != std::errc() || end != v.data() + v.size())
        throw usage_error{arg + " needs a revision (a number), not '" + v + "'"};
      (arg == "--from" ? a.from : a.to) = rev;
    } else if (auto* field = count_option(a, arg)) {
      const std::string v = value(arg.c_str());
      std::size_t n = 0;
      auto [end, err] = std::from_chars(v.data(), v.data() + v.size(), n);
      if (err != std::errc() || end != v.data() + v.size())
        throw usage_error{arg + " needs a number, not '" + v + "'"};
      *field = n;
    } else if (arg == "--prefix") {
      a.prefix = value("--prefix");
    } else if (arg == "--all") {
      a.all = true;
    } else if (arg == "--running") {
      a.running = true;
    } else if (arg == "--json") {
      a.json_lines = true;
    } else if (arg == "--data-dir") {
      a.data_dir = value("--data-dir");
    } else if (arg == "--fsync") {
      a.fsync = value("--fsync");
    } else if (arg == "--repair") {
      a.repair = true;
    } else if (arg == "--live") {
      a.live = true;
    } else if (arg == "--snapshots") {
      a.snapshots = true;
    } else if (arg.starts_with("--") && arg.size() > 2) {
      throw usage_error{"unknown option " + arg};
    } else if (a.command.empty()) {
      a.command = arg;
    } else {
      a.positional.push_back(arg);
    }
  }
  return a;
}

}  // namespace zproc::cli

int main(int argc, char** argv) {
  using namespace zproc::cli;
  try {
    const arguments args = parse(argc, argv);
    // zproc CMD --help, zproc help CMD: that command's entry and the options.
    const std::string topic = args.command == "help" && !args.positional.empty()
                                  ? args.positional[0]
                                  : (args.help ? args.command : std::string());
    if (!topic.empty()) {
      const std::string help = command_help(topic);
      if (help.empty()) throw usage_error{"no command '" + topic + "'"};
      std::fputs(help.c_str(), stdout);
      return 0;
    }
    if (args.help || args.command.empty() || args.command == "help") {
      std::fputs(usage_text, args.command.empty() && !args.help ? stderr : stdout);
      return args.command.empty() && !args.help ? 2 : 0;
    }
    if (args.command == "server") return run_server(args);
    if (args.command == "watch") return run_watch(args);
    if (args.command == "history") return run_history(args);
    if (args.command == "ps") return run_ps(args);
    if (args.command == "workers") return run_workers(args);
    return run_state_command(args);
  } catch (const usage_error& e) {
    std::cerr << "zproc: " << e.message << "\n(see 'zproc --help')\n";
    return 2;
  } catch (const zproc::error& e) {
    std::cerr << "zproc: " << (e.diagnostics().empty() ? e.code().message() : e.diagnostics())
              << "\n";
    if (e.code() == zproc::client_errc::server_unreachable)
      std::cerr << "(is a server running there? start one with 'zproc server --listen ADDR', "
                   "or pass --address / set ZPROC_ADDRESS)\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "zproc: " << e.what() << "\n";
    return 1;
  }
}
