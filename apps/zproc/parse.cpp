// The zproc command line on CLI11: one subcommand per command, each with its own options and
// help; the global options (--address, --namespace, --log-level) before or after the command.
#include "cli.hpp"

#include <zproc/access.hpp>
#include <zproc/tls.hpp>
#include <zproc/address.hpp>
#include <zproc/log.hpp>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

namespace zproc::cli {

namespace {

/// The counts and sizes of the server's options, bound by add_count().
struct server_counts {
  std::size_t max_process_records = 0, max_namespaces = 0, max_pending_output = 0,
              history_records = 0, history_bytes = 0, history_total_bytes = 0,
              snapshot_every = 0, max_connections = 0, max_parked = 0, max_tasks = 0,
              max_running_records = 0, max_lock_hold_ms = 0, threads = 0;
};

void add_count(CLI::App* sub, const std::string& name, std::size_t& into,
               std::optional<std::size_t>& result, const std::string& help,
               std::vector<std::function<void()>>& after) {
  auto* o = sub->add_option(name, into, help)->type_name("N");
  after.push_back([o, &into, &result] {
    if (o->count() > 0) result = into;
  });
}

/// A command's help: its own (named "zproc COMMAND"), then the global options.
std::string command_help(const std::string& app_help, const CLI::App& sub) {
  std::string help = sub.help();
  const std::string usage = "Usage: " + sub.get_name();
  if (auto at = help.find(usage); at != std::string::npos)
    help.replace(at, usage.size(), "Usage: zproc " + sub.get_name());
  const std::string& all = app_help;
  const auto from = all.find("Options:");
  const auto to = all.find("Subcommands:");
  if (from != std::string::npos) {
    std::string global = all.substr(from, to == std::string::npos ? std::string::npos : to - from);
    global.replace(0, 8, "Global options:");
    // (Its -h and --version lines are the app's.)
    std::string kept;
    std::size_t line = 0;
    while (line < global.size()) {
      std::size_t end = global.find('\n', line);
      end = end == std::string::npos ? global.size() : end + 1;
      const std::string l = global.substr(line, end - line);
      if (l.find("--help") == std::string::npos && l.find("--version") == std::string::npos)
        kept += l;
      line = end;
    }
    help += kept;
  }
  return help;
}

}  // namespace

std::string read_value_argument(const std::string& text) {
  if (text == "-") {  // the whole of stdin
    std::string all((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    return all;
  }
  if (text.size() > 1 && text[0] == '@') {
    std::ifstream in(text.substr(1), std::ios::binary);
    if (!in) throw usage_error{"cannot read the value file '" + text.substr(1) + "'"};
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  }
  return text;
}

parsed parse(int argc, char** argv) {
  parsed out;
  arguments& a = out.args;
  auto app = std::make_unique<CLI::App>(
      "zproc: a state server, and a client for it on the command line.\n"
      "Exit codes: 0 done, 1 the server refused or could not be reached, 2 bad usage,\n"
      "3 a key not found, 4 a cas whose expected value did not hold.",
      "zproc");
  app->set_version_flag("--version", std::string("zproc ") + ZPROC_VERSION);
  app->require_subcommand(1);
  app->fallthrough();  // the global options may follow the command
  std::string address;
  auto* address_opt = app->add_option(
      "--address", address,
      "server address (ipc:///path.sock or tcp://host:port), or a comma-separated list to fail "
      "over along; default: $ZPROC_ADDRESS");
  address_opt->type_name("ADDR");
  app->add_option("--namespace", a.ns, "namespace (default: \"default\")")->type_name("NS");
  app->add_option("--token-file", a.token_file,
                  "the token to authenticate with (default: $ZPROC_TOKEN, $ZPROC_TOKEN_FILE); "
                  "for 'server': the token clients must know, written (0600) if missing")
      ->type_name("PATH");
  app->add_option("--tls-ca", a.tls_ca,
                  "tls:// addresses: the CA the server's certificate must chain to (default: "
                  "$ZPROC_TLS_CA, else the system's); for 'server': clients must show a "
                  "certificate signed by it")
      ->type_name("PEM");
  std::string log_level;
  app->add_option("--log-level", log_level,
                  "what the library reports on stderr: trace, debug, info, warning, error, off "
                  "(default: $ZPROC_LOG_LEVEL, else info)")
      ->type_name("LEVEL")
      ->check(CLI::IsMember({"trace", "debug", "info", "warning", "error", "off"}));

  std::vector<std::function<void()>> after;
  std::string from_text, to_text;

  // server
  auto* server = app->add_subcommand(
      "server",
      "run a state server (prints \"listening at ADDR\" per address; stops on SIGINT/SIGTERM)");
  server->add_option("--listen", a.listen,
                     "address to listen on; repeatable; port 0 = any free port; default: the "
                     "first of $ZPROC_ADDRESS")
      ->type_name("ADDR");
  server->add_option("--data-dir", a.data_dir,
                     "keep the state and its history on disk (a restart brings them back); a "
                     "damaged data directory stops it (the message says where)")
      ->type_name("DIR");
  server->add_option("--fsync", a.fsync, "when to fsync the log: always, interval (100 ms), never")
      ->check(CLI::IsMember({"always", "interval", "never"}))
      ->default_str("interval");
  server->add_flag("--repair", a.repair,
                   "with --data-dir: keep the good part of a damaged directory, move the rest "
                   "aside, start");
  server->add_option("--access-file", a.access_file,
                     "more tokens, one per line: SECRET ROLE (admin, read-write[:NS,..], "
                     "read-only[:NS,..], worker[:SWARM]); see docs/security.md")
      ->type_name("PATH");
  server->add_option("--tls-cert", a.tls_cert,
                     "the certificate chain of tls:// listeners (PEM)")
      ->type_name("PEM");
  server->add_option("--tls-key", a.tls_key, "the key of --tls-cert (PEM)")->type_name("PEM");
  server->add_flag("--insecure", a.insecure,
                   "listen on TCP without a token: anyone who reaches the port may do "
                   "anything (tests on loopback only)");
  server->add_option("--allow-user", a.allow_users,
                     "a user (name or uid) allowed on the Unix socket besides the server's "
                     "own and root; repeatable")
      ->type_name("USER");
  server->add_option("--allow-group", a.allow_groups,
                     "a group (name or gid) whose members may use the Unix socket; repeatable")
      ->type_name("GROUP");
  server_counts counts;  // (bound during the parse only: `after` copies them out)
  add_count(server, "--max-process-records", counts.max_process_records, a.max_process_records,
            "finished process records to keep (default 10000)", after);
  add_count(server, "--snapshot-every", counts.snapshot_every, a.snapshot_every,
            "with --data-dir: write a snapshot after N logged updates (default 100000)", after);
  add_count(server, "--max-namespaces", counts.max_namespaces, a.max_namespaces,
            "namespaces it holds at most (default 10000)", after);
  add_count(server, "--max-pending-output", counts.max_pending_output, a.max_pending_output,
            "bytes of replies queued for one connection before it is no longer read and its "
            "watchers wait (default 64 MiB)",
            after);
  add_count(server, "--history-records", counts.history_records, a.history_records,
            "history records kept per namespace (default 100000)", after);
  add_count(server, "--history-bytes", counts.history_bytes, a.history_bytes,
            "history bytes kept per namespace (default 64 MiB)", after);
  add_count(server, "--history-total-bytes", counts.history_total_bytes, a.history_total_bytes,
            "history bytes kept by all namespaces (default 512 MiB)", after);
  add_count(server, "--max-connections", counts.max_connections, a.max_connections,
            "connections open at once (default 10000; 0: no limit)", after);
  add_count(server, "--max-parked", counts.max_parked, a.max_parked,
            "requests held unanswered per connection: watches, lock waits, task takes and waits "
            "(default 100000)",
            after);
  add_count(server, "--max-tasks", counts.max_tasks, a.max_tasks,
            "swarm tasks held, all swarms together (default 1000000)", after);
  add_count(server, "--max-running-records", counts.max_running_records, a.max_running_records,
            "running process records per connection (default 10000)", after);
  add_count(server, "--threads", counts.threads, a.threads,
            "threads that serve connections (default: the number of cores; 1: one thread for "
            "everything)",
            after);
  add_count(server, "--max-lock-hold", counts.max_lock_hold_ms, a.max_lock_hold_ms,
            "milliseconds a connection may hold a namespace's lock by taking it again (default "
            "60000)",
            after);

  // state commands
  app->add_subcommand("ping", "print the server's pid");
  auto* get = app->add_subcommand(
      "get", "print the value of KEY as JSON; of several keys, one JSON object of those that "
             "exist (exit code 3 if one is missing)");
  get->add_option("KEY", a.positional, "the keys")->required();
  auto* set = app->add_subcommand("set", "set KEY to a JSON value; prints the new revision");
  set->add_option("KEY", a.key, "the key")->required();
  set->add_option("VALUE", a.value_text,
                  "the value as JSON, '-' to read it from stdin, '@FILE' to read it from FILE")
      ->required();
  auto* del = app->add_subcommand("del", "remove KEY; prints the new revision");
  del->add_option("KEY", a.key, "the key")->required();
  auto* keys = app->add_subcommand(
      "keys", "print the keys, one JSON string per line (read page by page: any number)");
  keys->add_option("--prefix", a.prefix, "only the keys that start with P")->type_name("P");
  auto* dump = app->add_subcommand(
      "dump", "print the whole namespace as one JSON object (read page by page: any number of "
              "keys)");
  dump->add_option("--prefix", a.prefix, "only the keys that start with P")->type_name("P");
  auto* incr = app->add_subcommand("incr", "add DELTA (default 1) atomically; prints the new value");
  incr->add_option("KEY", a.key, "the key")->required();
  incr->add_option("DELTA", a.value_text, "a JSON number (default 1)");
  auto* cas = app->add_subcommand(
      "cas", "set KEY to DESIRED if it holds EXPECTED; prints true/false, exit code 4 if false");
  cas->add_option("KEY", a.key, "the key")->required();
  cas->add_option("EXPECTED", a.expected_text,
                  "JSON, 'absent' (create only), '-' (stdin) or '@FILE'")
      ->required();
  cas->add_option("DESIRED", a.value_text, "JSON, '-' (stdin) or '@FILE'")->required();

  // watch, history
  auto* watch = app->add_subcommand(
      "watch", "print each update (of these keys, or of any) as one JSON line, until interrupted");
  watch->add_option("KEY", a.positional, "only updates of these keys");
  watch->add_flag("--snapshots", a.snapshots, "print the whole namespace after each update");
  watch->add_option("--from", from_text, "start after revision REV (0: the oldest kept)")
      ->type_name("REV");
  watch->add_flag("--live", a.live, "skip updates that pile up while a line is printed");
  const std::string format_help =
      "json: one JSON object per update; pretty: a readable line per update, coloured on a "
      "terminal (default: pretty on a terminal, json when piped)";
  watch->add_option("--format", a.format, format_help)->check(CLI::IsMember({"json", "pretty"}));
  auto* history = app->add_subcommand("history", "print the kept updates as JSON lines");
  history->add_option("--from", from_text, "from revision REV")->type_name("REV");
  history->add_option("--to", to_text, "up to revision REV")->type_name("REV");
  history->add_option("--format", a.format, format_help)->check(CLI::IsMember({"json", "pretty"}));

  // ps, workers
  auto* ps = app->add_subcommand(
      "ps", "list the processes spawned through the server: a table with the reason of each "
            "crash, or JSON lines");
  auto* all = ps->add_flag("--all", a.all, "every record the server keeps (the default)");
  ps->add_flag("--running", a.running, "only the running processes")->excludes(all);
  ps->add_flag("--json", a.json_lines, "one JSON object per line");
  ps->add_flag("--watch", a.watch,
               "a live table: printed again whenever the records change, until interrupted "
               "(redrawn in place on a terminal)");
  auto* workers = app->add_subcommand(
      "workers", "the workers of swarm NAME: pid, host, tasks held and done, tasks queued");
  workers->add_option("NAME", a.swarm, "the swarm (default \"default\")");
  workers->add_flag("--json", a.json_lines, "one JSON object");

  for (auto* sub : app->get_subcommands({})) sub->fallthrough();

  // 'zproc help [COMMAND]': the same as --help.
  std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && args[0] == "help") {
    args.erase(args.begin());
    if (!args.empty()) {
      bool known = false;
      for (auto* sub : app->get_subcommands({})) known = known || sub->get_name() == args[0];
      if (!known) throw usage_error{"no command '" + args[0] + "'", "see 'zproc --help'"};
    }
    args.push_back("--help");
  }
  const std::string app_help = app->help();  // (once parsed, help() is the command's)
  std::vector<const char*> argv2{argv[0]};
  for (const auto& arg : args) argv2.push_back(arg.c_str());
  try {
    app->parse(static_cast<int>(argv2.size()), argv2.data());
  } catch (const CLI::CallForHelp&) {
    const auto subs = app->get_subcommands();
    out.help = subs.empty() ? app->help() : command_help(app_help, *subs.back());
    return out;
  } catch (const CLI::CallForVersion&) {
    out.help = std::string("zproc ") + ZPROC_VERSION + "\n";
    return out;
  } catch (const CLI::ParseError& e) {
    std::string hint = "see 'zproc --help'";
    std::string where = "zproc";
    for (auto* sub : app->get_subcommands()) {
      hint = "see 'zproc " + sub->get_name() + " --help'";
      where = "zproc " + sub->get_name();
    }
    if (app->get_subcommands().empty()) {  // no command, or one that does not exist
      const auto rest = app->remaining();
      for (const auto& x : rest)
        if (!x.starts_with("-")) throw usage_error{"unknown command '" + x + "'", hint};
      if (!rest.empty()) throw usage_error{"unknown option '" + rest.front() + "'", hint};
      if (dynamic_cast<const CLI::RequiredError*>(&e))
        throw usage_error{"no command given", hint};
    }
    // Arguments left over (CLI11 lists them backwards in its message): named first, also
    // when something required is missing too (`zproc get --bogus`).
    const auto rest = app->remaining();
    const bool an_option_left =
        std::any_of(rest.begin(), rest.end(), [](const std::string& x) { return x.starts_with("-"); });
    if (dynamic_cast<const CLI::ExtrasError*>(&e) || an_option_left) {
      std::string extra;
      for (const auto& x : rest) extra += (extra.empty() ? "" : " ") + x;
      throw usage_error{"not an option or argument of '" + where + "': " + extra, hint};
    }
    throw usage_error{e.what(), hint};
  }
  a.command = app->get_subcommands().at(0)->get_name();
  if (address_opt->count() > 0) a.address = address;
  for (auto& f : after) f();
  auto revision = [](const std::string& name, const std::string& text) {
    std::uint64_t rev = 0;
    auto [end, err] = std::from_chars(text.data(), text.data() + text.size(), rev);
    if (err != std::errc() || end != text.data() + text.size())
      throw usage_error{name + " needs a revision (a number), not '" + text + "'", {}};
    return rev;
  };
  if (!from_text.empty()) a.from = revision("--from", from_text);
  if (!to_text.empty()) a.to = revision("--to", to_text);
  if (!log_level.empty()) set_log_level(*parse_log_level(log_level));
  if (!a.token_file.empty() && a.command != "server") {
    // The clients read the token from the environment (client_options::token unset).
    ::unsetenv(token_env);
    ::setenv(token_file_env, a.token_file.c_str(), 1);
  }
  if (!a.tls_ca.empty() && a.command != "server") ::setenv(tls_ca_env, a.tls_ca.c_str(), 1);
  return out;
}

}  // namespace zproc::cli
