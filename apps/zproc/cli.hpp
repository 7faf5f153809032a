// Command-line parsing shared by the zproc subcommands: --address/--namespace and positionals.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace zproc::cli {

/// Thrown for bad usage: main prints the message and the hint, exit code 2.
struct usage_error {
  std::string message;
  std::string hint;  // empty: "see 'zproc --help'"
};

/// Exit codes, the same for every command.
namespace exit_code {
inline constexpr int ok = 0;
inline constexpr int failed = 1;     // the server refused, or could not be reached
inline constexpr int usage = 2;      // bad usage: an unknown option, a missing value, bad JSON
inline constexpr int not_found = 3;  // a key that is not there
inline constexpr int unchanged = 4;  // cas: the key did not hold the expected value
}  // namespace exit_code

struct arguments {
  std::string command;
  std::string key;                     // set, del, incr, cas: KEY
  std::string value_text;              // set: VALUE; incr: DELTA; cas: DESIRED
  std::string expected_text;           // cas: EXPECTED
  std::string swarm = "default";       // workers: NAME
  std::optional<std::string> address;  // --address, else ZPROC_ADDRESS
  std::string ns = "default";          // --namespace
  std::vector<std::string> listen;     // server: --listen (repeatable)
  std::optional<std::uint64_t> from;   // watch/history: --from REV
  std::optional<std::uint64_t> to;     // history: --to REV
  bool live = false;                   // watch: --live
  bool snapshots = false;              // watch: --snapshots
  std::string format;                  // watch, history: --format json|pretty (empty: by tty)
  bool watch = false;                  // ps: --watch
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
  std::optional<std::size_t> max_connections;      // server: --max-connections N
  std::optional<std::size_t> max_parked;           // server: --max-parked N
  std::optional<std::size_t> max_tasks;            // server: --max-tasks N
  std::optional<std::size_t> max_running_records;  // server: --max-running-records N
  std::optional<std::size_t> max_lock_hold_ms;     // server: --max-lock-hold MS
  std::optional<std::size_t> threads;              // server: --threads N
  bool all = false;                    // ps: --all
  bool running = false;                // ps: --running
  bool json_lines = false;             // ps, workers: --json
  std::vector<std::string> positional;  // get: KEY...; watch: KEY...
  std::string token_file;              // --token-file: the client's token; the server's
  std::string access_file;             // server: --access-file (tokens with roles)
  std::string tls_ca;                  // --tls-ca: the client's CA; the server's client CA
  std::string tls_cert, tls_key;       // server: --tls-cert, --tls-key
  bool insecure = false;               // server: --insecure
  std::vector<std::string> allow_users;   // server: --allow-user (repeatable)
  std::vector<std::string> allow_groups;  // server: --allow-group (repeatable)

  /// The address to connect to; usage_error if neither --address nor ZPROC_ADDRESS is set.
  std::string require_address() const;
};

/// What the command line asks for: a command with its arguments, or only a text to print
/// (help, version).
struct parsed {
  arguments args;
  std::string help;
};

/// Parses the command line (parse.cpp); usage_error for bad usage. Applies --log-level.
parsed parse(int argc, char** argv);

/// A value argument's text: itself, or all of stdin for "-", or the file's content for "@FILE".
std::string read_value_argument(const std::string& text);

int run_server(const arguments& args);
int run_state_command(const arguments& args);
int run_watch(const arguments& args);
int run_history(const arguments& args);
int run_ps(const arguments& args);
int run_workers(const arguments& args);

}  // namespace zproc::cli
