#define BOOST_STACKTRACE_LINK 1  // the implementation is libboost_stacktrace_backtrace
#include "process/crash.hpp"

#include "process/throw_capture.hpp"

#include <boost/core/demangle.hpp>
#include <boost/stacktrace/frame.hpp>
#include <boost/stacktrace/safe_dump_to.hpp>

// libbacktrace's own API (GCC's header; the library comes with Boost::stacktrace_backtrace):
// Boost.Stacktrace reports one function per address, the outermost of the functions inlined
// there, which hides a target inlined into zproc's runner.
#include <backtrace.h>
#include <cxxabi.h>
#include <dlfcn.h>
#include <link.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string_view>
#include <unordered_map>

namespace zproc::process_detail {
namespace {

std::vector<signal_dump::object> list_objects() {
  std::vector<signal_dump::object> out;
  struct ctx {
    std::vector<signal_dump::object>* out;
    std::string exe;
  } c{&out, executable_path()};
  dl_iterate_phdr(
      [](dl_phdr_info* info, std::size_t, void* p) {
        auto& cx = *static_cast<ctx*>(p);
        signal_dump::object o;
        o.bias = info->dlpi_addr;
        o.begin = UINT64_MAX;
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const auto& ph = info->dlpi_phdr[i];
          if (ph.p_type != PT_LOAD) continue;
          o.begin = std::min<std::uint64_t>(o.begin, info->dlpi_addr + ph.p_vaddr);
          o.end = std::max<std::uint64_t>(o.end, info->dlpi_addr + ph.p_vaddr + ph.p_memsz);
        }
        o.path = (info->dlpi_name && info->dlpi_name[0]) ? info->dlpi_name : cx.exe;
        if (o.begin < o.end) cx.out->push_back(std::move(o));
        return 0;
      },
      &c);
  return out;
}

// --- symbolising, with libbacktrace directly -----------------------------------------------
// One state per thread, as Boost.Stacktrace keeps it (a state shared between threads crashed
// in a shared library: https://gcc.gnu.org/bugzilla/show_bug.cgi?id=87653). It reads each
// object's debug info once, at the first address asked of it: in the parent, a retried failure
// costs a lookup, where the child paid the whole read each time.
backtrace_state* symboliser() {
  thread_local backtrace_state* state =
      ::backtrace_create_state(nullptr, 0, [](void*, const char*, int) {}, nullptr);
  return state;
}

struct location {
  std::string function;
  std::string file;
  int line = 0;
};

std::string clean_name(std::string name) {
  if (name.empty()) return "??";
  name = boost::core::demangle(name.c_str());
  // "f(int) [clone .constprop.0] [clone .cold]" is f, for whoever reads the report.
  for (auto at = name.find(" [clone "); at != std::string::npos; at = name.find(" [clone ")) {
    const auto end = name.find(']', at);
    name.erase(at, end == std::string::npos ? std::string::npos : end - at + 1);
  }
  return name;
}

bool is_runner(std::string_view frame);

// What one address says: the functions there, innermost first (several where calls were
// inlined), as text, and whether the function that holds it is zproc's runner.
struct described {
  std::vector<std::string> lines;
  bool runner = false;
};

described describe_pc(std::uintptr_t pc) {
  thread_local std::unordered_map<std::uintptr_t, described> cache;
  if (auto it = cache.find(pc); it != cache.end()) return it->second;

  backtrace_state* state = symboliser();
  std::vector<location> found;
  std::string symbol;  // of the function that holds pc: qualified, with its parameters
  if (state && pc != 0) {
    ::backtrace_pcinfo(
        state, pc,
        [](void* data, std::uintptr_t, const char* file, int line, const char* function) {
          static_cast<std::vector<location>*>(data)->push_back(
              {function ? function : "", file ? file : "", file ? line : 0});
          return 0;
        },
        [](void*, const char*, int) {}, &found);
    ::backtrace_syminfo(
        state, pc,
        [](void* data, std::uintptr_t, const char* symname, std::uintptr_t, std::uintptr_t) {
          if (symname) *static_cast<std::string*>(data) = symname;
        },
        [](void*, const char*, int) {}, &symbol);
  }
  std::erase_if(found, [](const location& l) { return l.function.empty() && l.line <= 0; });
  Dl_info info{};
  const bool known = pc != 0 && ::dladdr(reinterpret_cast<void*>(pc), &info) != 0;
  if (symbol.empty() && known && info.dli_sname) symbol = info.dli_sname;
  const std::string object = known && info.dli_fname ? info.dli_fname : "";
  if (found.empty()) found.push_back({});
  // The debug info names an inlined function as written ("flaky"); the symbol table names the
  // function that holds the address in full ("(anonymous namespace)::flaky(int)").
  if (!symbol.empty()) found.back().function = symbol;

  described out;
  for (const auto& l : found) {
    std::string name = clean_name(l.function);
    if (!l.file.empty() && l.line > 0)
      out.lines.push_back(name + " at " + l.file + ":" + std::to_string(l.line));
    else
      out.lines.push_back(object.empty() ? name : name + " in " + object);
  }
  out.runner = is_runner(out.lines.back());
  cache.emplace(pc, out);
  return out;
}

// Frames of zproc's runner and below (main, libc) say nothing about the crash.
bool is_runner(std::string_view frame) {
  return frame.find("zproc::detail::invoke_target") != std::string_view::npos ||
         frame.find("zproc::detail::run_coroutine") != std::string_view::npos ||
         frame.find("zproc::process_detail::run_spawned") != std::string_view::npos;
}

bool has_location(std::string_view frame) {
  const auto at = frame.rfind(" at ");
  return at != std::string_view::npos && frame.find(':', at) != std::string_view::npos;
}

// `pcs` are return addresses (the instruction after each call: pc - 1 is inside the call, and
// on the call's line), except the first when `exact_first` (a faulting instruction).
std::vector<std::string> resolve_pcs(const std::vector<std::uintptr_t>& pcs, bool exact_first) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < pcs.size(); ++i) {
    const std::uintptr_t pc = pcs[i] == 0 ? 0 : (exact_first && i == 0 ? pcs[i] : pcs[i] - 1);
    described d = describe_pc(pc);
    if (d.runner) {
      // An unnamed frame without a location just before the runner was the runner's own.
      if (!out.empty() && out.back().starts_with("??") && !has_location(out.back()))
        out.pop_back();
      break;
    }
    for (auto& line : d.lines) out.push_back(std::move(line));
  }
  return out;
}

// Moves each frame from the other process's mapping of its object to ours (0 if we do not
// have that object loaded).
std::vector<std::uintptr_t> to_local(const std::vector<std::uint64_t>& frames,
                                     const std::vector<signal_dump::object>& objects) {
  const auto mine = list_objects();
  std::vector<std::uintptr_t> local;
  for (std::uint64_t addr : frames) {
    std::uint64_t moved = 0;
    for (const auto& o : objects) {
      if (addr < o.begin || addr >= o.end) continue;
      for (const auto& m : mine)
        if (m.path == o.path) moved = addr - o.bias + m.bias;
      break;
    }
    local.push_back(static_cast<std::uintptr_t>(moved));
  }
  return local;
}

// What the signal handler reads: set up before any crash, never changed after.
int report_fd = -1;
std::vector<signal_dump::object>* objects = nullptr;
constexpr std::array fatal_signals{SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};

void on_fatal_signal(int signo) {
  static char buffer[64 * 1024];
  boost::stacktrace::frame::native_frame_ptr_t raw[128];
  const std::size_t n = boost::stacktrace::safe_dump_to(raw, sizeof raw);
  std::uint64_t frames[128];
  for (std::size_t i = 0; i < n; ++i) frames[i] = reinterpret_cast<std::uintptr_t>(raw[i]);
  const std::size_t len = encode_signal(signo, frames, n, objects->data(), objects->size(), buffer,
                                        sizeof buffer);
  for (std::size_t done = 0; done < len;) {
    const ssize_t w = ::write(report_fd, buffer + done, len - done);
    if (w <= 0) break;
    done += static_cast<std::size_t>(w);
  }
  ::signal(signo, SIG_DFL);
  ::raise(signo);  // delivered when the handler returns (the signal is blocked until then)
}

}  // namespace

const std::string& host_name() {
  static const std::string name = [] {
    char buf[256] = {};
    return ::gethostname(buf, sizeof buf - 1) == 0 ? std::string(buf) : std::string("localhost");
  }();
  return name;
}

const std::string& executable_path() {
  static const std::string path = [] {
    char buf[PATH_MAX];
    const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
  }();
  return path;
}

void install_crash_handlers(int fd) {
  report_fd = fd;
  objects = new std::vector<signal_dump::object>(list_objects());  // lives as long as the process
  static std::array<char, 64 * 1024> alt_stack;  // a stack overflow still gets its report
  stack_t ss{};
  ss.ss_sp = alt_stack.data();
  ss.ss_size = alt_stack.size();
  ::sigaltstack(&ss, nullptr);
  struct sigaction sa{};
  sa.sa_handler = &on_fatal_signal;
  sa.sa_flags = SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  for (int s : fatal_signals) ::sigaction(s, &sa, nullptr);
}

std::vector<signal_dump::object> loaded_objects() { return list_objects(); }

std::vector<std::string> resolve_frames(const std::vector<void*>& frames) {
  std::vector<std::uintptr_t> pcs;
  for (void* f : frames) pcs.push_back(reinterpret_cast<std::uintptr_t>(f));
  return resolve_pcs(pcs, false);
}

std::vector<std::string> resolve_remote(const std::vector<std::uint64_t>& frames,
                                        const std::vector<signal_dump::object>& loaded) {
  return resolve_pcs(to_local(frames, loaded), false);
}

std::vector<std::string> resolve_dump(const signal_dump& dump) {
  std::vector<std::uintptr_t> local = to_local(dump.frames, dump.objects);
  // The dump starts inside on_fatal_signal, then the kernel's signal trampoline (libc's
  // __restore_rt), then the instruction that faulted: start there (exactly that address).
  for (std::size_t i = 0; i < local.size() && i < 4; ++i) {
    const auto lines = describe_pc(local[i] == 0 ? 0 : local[i] - 1).lines;
    const bool handler = std::any_of(lines.begin(), lines.end(), [](const std::string& l) {
      return l.find("on_fatal_signal") != std::string::npos;
    });
    if (!handler) continue;
    local.erase(local.begin(), local.begin() + static_cast<std::ptrdiff_t>(std::min(i + 2, local.size())));
    return resolve_pcs(local, true);
  }
  return resolve_pcs(local, false);
}

std::string describe_signal(int signo) {
  const char* abbrev = sigabbrev_np(signo);
  const char* desc = sigdescr_np(signo);
  std::string out = abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(signo);
  if (desc) out += std::string(" (") + desc + ")";
  return out;
}

std::string format_crash_report(const crash_info& c) {
  std::string out = "[zproc] Crash report:\n";
  out += "  target: '" + c.target + "'\n";
  out += "  pid: " + std::to_string(c.pid) + "\n";
  out += "  ppid: " + std::to_string(c.ppid) + "\n";
  out += "  what: " + c.what + "\n";
  out += "  stacktrace:\n";
  if (c.frames.empty()) out += "   (none)\n";
  for (std::size_t i = 0; i < c.frames.size(); ++i) {
    char idx[32];
    std::snprintf(idx, sizeof idx, "%4zu# ", i);
    out += idx;
    out += c.frames[i];
    out += "\n";
  }
  return out;
}

std::string format_stacktrace(const std::vector<std::string>& frames) {
  std::string trace;
  for (std::size_t i = 0; i < frames.size(); ++i)
    trace += std::to_string(i) + "# " + frames[i] + "\n";
  return trace;
}

exception_report describe_current_exception(bool with_frames) {
  exception_report r;
  const std::exception_ptr e = std::current_exception();
  if (const std::type_info* t = abi::__cxa_current_exception_type())
    r.type = boost::core::demangle(t->name());
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    r.message = ex.what();
  } catch (...) {
  }
  if (with_frames) r.frames = resolve_frames(throw_frames(e));
  return r;
}

exception_report capture_current_exception() {
  exception_report r = describe_current_exception(false);
  for (void* f : throw_frames(std::current_exception()))
    r.raw_frames.push_back(reinterpret_cast<std::uintptr_t>(f));
  r.objects = list_objects();
  return r;
}

}  // namespace zproc::process_detail
