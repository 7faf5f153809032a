// A log handler for tests (zproc/log.hpp): appends each message, as "<level> <component>:
// <message>", to a file. test/main.cpp installs it in every process of the test binary,
// spawned ones included, when ZPROC_TEST_LOG_FILE names a file.
#pragma once

#include <zproc/log.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <string>

namespace zproc::test {

inline log_handler file_log_handler(std::string path) {
  return [path = std::move(path)](const log_record& r) {
    std::string line(to_string(r.level));
    line += ' ';
    line += r.component;
    line += ": ";
    line += r.message;
    line += '\n';
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return;
    [[maybe_unused]] auto n = ::write(fd, line.data(), line.size());  // one write: whole lines
    ::close(fd);
  };
}

}  // namespace zproc::test
