// zproc/context.hpp - what a program starts with: a server (embedded, or one it connects to),
// states on it, and the processes it spawns and supervises.
#pragma once

#include <zproc/client.hpp>
#include <zproc/detail/target_traits.hpp>
#include <zproc/json.hpp>
#include <zproc/process.hpp>
#include <zproc/server.hpp>
#include <zproc/state.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <ranges>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace zproc {

class swarm;          // zproc/swarm.hpp (the layer above: it uses the context)
struct swarm_options;

/// Must be the first thing main() does. In a process spawned by zproc it runs the target and
/// exits (never returns). Started as `program --zproc-worker ADDRESS [--zproc-swarm NAME]`
/// (or with the environment variables ZPROC_WORKER=ADDRESS and ZPROC_SWARM=NAME), the
/// program becomes a worker of that swarm (default name "default") on that server, and exits
/// when the swarm retires it or the server goes away. In any other process it installs the
/// cleanup of spawned processes at exit and on SIGINT/SIGTERM (only where the program left
/// those signals at their default), and returns.
void init(int argc, char** argv);

/// True in a process spawned by zproc while its target runs.
bool is_spawned_process() noexcept;

struct context_options {
  /// The server to use. Empty: in a spawned process the parent's; otherwise start an embedded
  /// server (on its own thread, on a fresh Unix socket) that lives as long as this context.
  std::string address;
  /// The namespace of create_state() and of spawned processes' contexts.
  std::string ns = "default";
  /// The destructor waits for every process spawned through this context to end.
  bool wait = false;
  /// The destructor stops the processes still running (SIGTERM, then SIGKILL after their
  /// stop_grace), printing "[zproc] Cleaning up 'target' (pid)..." for each. Off: they are left
  /// running (and survive this process).
  bool cleanup = true;
  /// Configuration of the embedded server.
  server_config server;
  /// The token of this context's client and of the processes it spawns (docs/security.md).
  /// Not set: in a spawned process the parent's; with an embedded server, its first token (one
  /// is generated when it listens on TCP with none and is not `insecure`), or none; with an
  /// `address`, token_from_env() (ZPROC_TOKEN, ZPROC_TOKEN_FILE).
  std::optional<std::string> token;
  /// TLS settings for a tls:// `address` (zproc/tls.hpp). Not set: in a spawned process the
  /// parent's; otherwise tls_options_from_env().
  std::optional<tls_options> tls;
};

class context {
 public:
  explicit context(context_options options = {});
  ~context();  ///< wait (option `wait`), then stop what still runs (option `cleanup`)
  context(const context&) = delete;
  context& operator=(const context&) = delete;

  /// The server's address: give it to processes on other machines (tcp://) or to `zproc`.
  std::string address() const;
  /// The token this context authenticates with (empty: none): give it, with the address, to
  /// workers on other machines (as a file they name in ZPROC_TOKEN_FILE).
  const std::string& token() const noexcept;
  /// Options for another client of this context's server (its token); connect it to address().
  client_options connect_options() const;
  const std::string& ns() const noexcept;
  /// Round trip to the server; returns the server's pid.
  std::int64_t ping();

  /// A blocking client connected to the server (connected at first use).
  zproc::client& client();
  /// A state on namespace `ns` (default: the context's); when `initial` is not null, the
  /// namespace is replaced by it.
  zproc::state create_state(const json& initial = nullptr, std::string ns = {});

  /// Spawns `target` (a function registered with ZPROC_TARGET) in a new process running this
  /// same binary, with `args` (converted to its parameter types, then Boost.Serialization).
  /// The target receives a zproc::context& connected to the same server and namespace (when its
  /// first parameter is one), or a zproc::state, or only the arguments.
  template <class F, class... A>
    requires std::is_function_v<F>
  process spawn(F& target, A&&... args) {
    return spawn(spawn_options{}, target, std::forward<A>(args)...);
  }
  template <class F, class... A>
    requires std::is_function_v<F>
  process spawn(const spawn_options& options, F& target, A&&... args) {
    using traits = detail::target_traits<F>;
    typename traits::args* tag = nullptr;
    return spawn_target(options, reinterpret_cast<const void*>(&target),
                        detail::pack_as(tag, std::forward<A>(args)...),
                        detail::type_names_of(tag), typeid(typename traits::value).name());
  }
  /// ZProc's `count=N`: N processes running the same target with the same arguments.
  template <class F, class... A>
  std::vector<process> spawn_many(std::size_t count, const spawn_options& options, F& target,
                                  A&&... args) {
    std::vector<process> out;
    for (std::size_t i = 0; i < count; ++i) out.push_back(spawn(options, target, args...));
    return out;
  }
  /// One process per element of `inputs`, the element as the target's argument.
  template <class F, std::ranges::input_range R>
  std::vector<process> spawn_map(F& target, R&& inputs, const spawn_options& options = {}) {
    std::vector<process> out;
    for (auto&& x : inputs) out.push_back(spawn(options, target, x));
    return out;
  }

  /// A swarm of `count` worker processes on this context's server (default: one per core).
  /// Include <zproc/swarm.hpp> (or <zproc/zproc.hpp>) to call it. The context must outlive it.
  zproc::swarm create_swarm(std::size_t count = default_swarm_size());
  zproc::swarm create_swarm(std::size_t count, swarm_options options);
  /// The number of cores (std::thread::hardware_concurrency(), at least 1).
  static std::size_t default_swarm_size() noexcept;

  /// Runs an external command under the same supervision (records, stop, cleanup, no orphans,
  /// retries on signals); wait() returns nothing and throws process_wait_error on a non-zero exit.
  process spawn_command(const std::string& path, const std::vector<std::string>& args,
                        const spawn_options& options = {});

  /// The processes spawned through this context, in spawn order: those still running, and
  /// those that ended and that a handle still refers to (the others are forgotten).
  std::vector<process> processes() const;
  /// Waits for all of them (one deadline; zero: none), then throws the first failure in spawn
  /// order (remote_error, process_wait_error), as ZProc's ctx.wait() raised; the other failures
  /// stay on their handles. A deadline that passes throws zproc::error (client_errc::timeout) at
  /// once.
  void wait_all(std::chrono::milliseconds timeout = std::chrono::milliseconds::zero());
  /// Stops all that still run.
  void stop_all();

 private:
  std::shared_ptr<detail::child> make_child(const spawn_options& options) const;
  process launch(std::shared_ptr<detail::child> c);
  process spawn_target(const spawn_options& options, const void* target, std::string args,
                       std::vector<std::string> arg_types, const char* value_type);

  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace zproc
