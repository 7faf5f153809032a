// Command-line parsing shared by the zproc subcommands: --address/--namespace and positionals.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace zproc::cli {

/// Thrown for bad usage: main prints the message and the usage line, exit code 2.
struct usage_error {
  std::string message;
};

struct arguments {
  std::string command;
  std::optional<std::string> address;  // --address, else ZPROC_ADDRESS
  std::string ns = "default";          // --namespace
  std::vector<std::string> listen;     // server: --listen (repeatable)
  std::optional<std::uint64_t> from;   // watch/history: --from REV
  std::optional<std::uint64_t> to;     // history: --to REV
  bool live = false;                   // watch: --live
  bool snapshots = false;              // watch: --snapshots
  std::string data_dir;                // server: --data-dir
  std::string fsync = "interval";      // server: --fsync always|interval|never
  bool repair = false;                 // server: --repair
  std::optional<std::size_t> max_process_records;  // server: --max-process-records N
  std::optional<std::size_t> max_namespaces;       // server: --max-namespaces N
  std::optional<std::size_t> max_pending_output;   // server: --max-pending-output BYTES
  std::optional<std::size_t> history_records;      // server: --history-records N
  std::optional<std::size_t> history_bytes;        // server: --history-bytes BYTES
  std::optional<std::size_t> history_total_bytes;  // server: --history-total-bytes BYTES
  std::string prefix;                  // keys, dump: --prefix P
  std::optional<std::size_t> snapshot_every;       // server: --snapshot-every N
  bool all = false;                    // ps: --all
  bool running = false;                // ps: --running
  bool json_lines = false;             // ps, workers: --json
  bool help = false;
  std::vector<std::string> positional;

  /// The address to connect to; usage_error if neither --address nor ZPROC_ADDRESS is set.
  std::string require_address() const;
  /// Exactly `n` positionals, else usage_error naming them.
  void expect(std::size_t n, const char* names) const;
};

arguments parse(int argc, char** argv);

int run_server(const arguments& args);
int run_state_command(const arguments& args);
int run_watch(const arguments& args);
int run_history(const arguments& args);
int run_ps(const arguments& args);
int run_workers(const arguments& args);

extern const char* const usage_text;

}  // namespace zproc::cli
