#define BOOST_STACKTRACE_LINK 1  // the implementation is libboost_stacktrace_backtrace
#include "process/crash.hpp"

#include "process/throw_capture.hpp"

#include <boost/core/demangle.hpp>
#include <boost/stacktrace/frame.hpp>
#include <boost/stacktrace/safe_dump_to.hpp>

#include <cxxabi.h>
#include <dlfcn.h>
#include <link.h>
#include <signal.h>
#include <unistd.h>

#include <array>
#include <climits>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string_view>

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

std::string describe_frame(const void* addr) {
  const boost::stacktrace::frame f(addr);
  std::string name = f.name();
  std::string file = f.source_file();
  const std::size_t line = f.source_line();
  Dl_info info{};
  const bool known = ::dladdr(addr, &info) != 0;
  if (name.empty() && known && info.dli_sname) name = boost::core::demangle(info.dli_sname);
  if (name.empty()) name = "??";
  // "f(int) [clone .constprop.0] [clone .cold]" is f, for whoever reads the report.
  for (auto at = name.find(" [clone "); at != std::string::npos; at = name.find(" [clone ")) {
    const auto end = name.find(']', at);
    name.erase(at, end == std::string::npos ? std::string::npos : end - at + 1);
  }
  if (!file.empty() && line > 0) return name + " at " + file + ":" + std::to_string(line);
  if (known && info.dli_fname) return name + " in " + info.dli_fname;
  return name;
}

// Frames of zproc's runner and below (main, libc) say nothing about the crash.
bool is_runner(std::string_view frame) {
  return frame.find("zproc::detail::invoke_target") != std::string_view::npos ||
         frame.find("zproc::detail::run_coroutine") != std::string_view::npos ||
         frame.find("zproc::process_detail::run_spawned") != std::string_view::npos;
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

std::vector<std::string> resolve_frames(const std::vector<void*>& frames) {
  std::vector<std::string> out;
  for (void* f : frames) {
    std::string text = describe_frame(f);
    if (is_runner(text)) {
      // The runner calls the target through invoke_target<fn>; optimized, that frame has no
      // name of its own (the target may be inlined into it): it is the runner's too.
      if (!out.empty() && out.back().starts_with("?? ")) out.pop_back();
      break;
    }
    out.push_back(std::move(text));
  }
  return out;
}

std::vector<std::string> resolve_dump(const signal_dump& dump) {
  const auto mine = list_objects();
  std::vector<void*> local;
  for (std::uint64_t addr : dump.frames) {
    std::uint64_t moved = 0;
    for (const auto& o : dump.objects) {
      if (addr < o.begin || addr >= o.end) continue;
      for (const auto& m : mine)
        if (m.path == o.path) moved = addr - o.bias + m.bias;
      break;
    }
    local.push_back(reinterpret_cast<void*>(static_cast<std::uintptr_t>(moved)));
  }
  // The dump starts inside on_fatal_signal, then the kernel's signal trampoline (libc's
  // __restore_rt), then the frame that faulted: start there.
  std::vector<std::string> text = resolve_frames(local);
  for (std::size_t i = 0; i < text.size() && i < 4; ++i) {
    if (text[i].find("on_fatal_signal") == std::string::npos) continue;
    text.erase(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(std::min(i + 2, text.size())));
    break;
  }
  return text;
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

}  // namespace zproc::process_detail
