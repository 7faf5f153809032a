// zproc server --listen ADDR...
#include "cli.hpp"

#include <zproc/address.hpp>
#include <zproc/server.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <thread>

namespace zproc::cli {

namespace {

/// A user or group given by name or number.
std::uint32_t id_of(const std::string& text, bool is_group) {
  if (!text.empty() && text.find_first_not_of("0123456789") == std::string::npos)
    return static_cast<std::uint32_t>(std::stoul(text));
  if (is_group) {
    if (const struct group* g = ::getgrnam(text.c_str())) return g->gr_gid;
    throw usage_error{"--allow-group: no group '" + text + "'", {}};
  }
  if (const struct passwd* p = ::getpwnam(text.c_str())) return p->pw_uid;
  throw usage_error{"--allow-user: no user '" + text + "'", {}};
}

/// Where the server keeps the token it generates when it listens on TCP and was given none:
/// DIR/token with --data-dir, else $XDG_CONFIG_HOME/zproc/token (~/.config/zproc/token).
std::string default_token_path(const arguments& args) {
  if (!args.data_dir.empty()) return args.data_dir + "/token";
  if (const char* x = std::getenv("XDG_CONFIG_HOME"); x && *x) return std::string(x) + "/zproc/token";
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.config/zproc/token";
  throw usage_error{"no --token-file given and no $HOME to keep a generated one in", {}};
}

/// The token in `path`; a new one written there if there is no file yet (said on stdout).
std::string token_at(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) return read_token_file(path);
  std::string token = write_new_token_file(path);
  std::printf("wrote a new token to %s (clients: ZPROC_TOKEN_FILE=%s)\n", path.c_str(),
              path.c_str());
  return token;
}

/// server_config::access from the command line and the environment.
void configure_access(const arguments& args, server_config& config) {
  auto& access = config.access;
  access.insecure = args.insecure;
  for (const auto& u : args.allow_users) access.allowed_uids.push_back(id_of(u, false));
  for (const auto& g : args.allow_groups) access.allowed_gids.push_back(id_of(g, true));
  if (!args.token_file.empty()) {
    access.tokens.push_back({token_at(args.token_file), {}});
  } else if (std::string env = token_from_env(); !env.empty()) {
    access.tokens.push_back({std::move(env), {}});
  }
  if (!args.access_file.empty())
    for (auto& t : read_access_file(args.access_file)) access.tokens.push_back(std::move(t));
  if (config.needs_token())
    access.tokens.push_back({token_at(default_token_path(args)), {}});
}

}  // namespace

int run_server(const arguments& args) {
  server_config config;
  config.listen = args.listen;
  if (config.listen.empty()) {
    if (auto env = address_from_env()) {
      // A list (clients' failover order, ZPROC_ADDRESS=a,b): the first is this server's.
      config.listen.push_back(env->substr(0, env->find(',')));
    } else {
      throw usage_error{"'server' needs --listen ADDR (or ZPROC_ADDRESS)"};
    }
  }
  config.data_dir = args.data_dir;
  if (args.repair && args.data_dir.empty()) throw usage_error{"--repair needs --data-dir DIR"};
  config.repair = args.repair;
  if (args.max_process_records) config.max_process_records = *args.max_process_records;
  if (args.max_namespaces) config.max_namespaces = *args.max_namespaces;
  if (args.max_pending_output) config.max_pending_output = *args.max_pending_output;
  if (args.history_records) config.history.max_records = *args.history_records;
  if (args.history_bytes) config.history.max_bytes = *args.history_bytes;
  if (args.history_total_bytes) config.history.max_total_bytes = *args.history_total_bytes;
  if (args.threads && *args.threads == 0) throw usage_error{"--threads needs a number > 0"};
  config.threads = args.threads ? *args.threads : std::max(1u, std::thread::hardware_concurrency());
  auto& limits = config.limits;
  if (args.max_connections) limits.max_connections = *args.max_connections;
  if (args.max_parked) limits.max_parked_per_connection = *args.max_parked;
  if (args.max_tasks) limits.max_tasks = *args.max_tasks;
  if (args.max_running_records)
    limits.max_running_records_per_connection = *args.max_running_records;
  if (args.max_lock_hold_ms)
    limits.max_lock_hold = std::chrono::milliseconds(*args.max_lock_hold_ms);
  if (args.snapshot_every) {
    if (args.data_dir.empty()) throw usage_error{"--snapshot-every needs --data-dir DIR"};
    if (*args.snapshot_every == 0) throw usage_error{"--snapshot-every needs a number > 0"};
    config.snapshot_every = *args.snapshot_every;
  }
  if (args.fsync == "always") {
    config.fsync = server_config::fsync_policy::always;
  } else if (args.fsync == "interval") {
    config.fsync = server_config::fsync_policy::interval;
  } else if (args.fsync == "never") {
    config.fsync = server_config::fsync_policy::never;
  } else {
    throw usage_error{"--fsync takes always, interval or never, not '" + args.fsync + "'"};
  }
  configure_access(args, config);
  config.tls = {args.tls_cert, args.tls_key, args.tls_ca};
  boost::asio::io_context ioc(1);
  server srv(ioc.get_executor(), config);
  srv.start();
  boost::asio::signal_set signals(ioc, SIGINT, SIGTERM);
  signals.async_wait([&](error_code ec, int) {
    if (!ec) srv.stop();
  });
  for (const auto& a : srv.addresses()) std::printf("listening at %s\n", a.c_str());
  std::fflush(stdout);
  ioc.run();
  return 0;
}

}  // namespace zproc::cli
