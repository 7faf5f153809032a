// zproc server --listen ADDR...
#include "cli.hpp"

#include <zproc/address.hpp>
#include <zproc/server.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <csignal>
#include <cstdio>

namespace zproc::cli {

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
