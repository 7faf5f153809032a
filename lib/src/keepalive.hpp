// TCP keep-alive on a zproc connection: a peer whose machine vanished (no FIN, no RST: power
// cut, cable, partition) is noticed after about 25 s of silence (10 s idle, then 3 probes 5 s
// apart) instead of never. A swarm worker parked in task_take, or a server holding a worker's
// tasks, depends on it.
#pragma once

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

namespace zproc::detail {

inline void enable_keepalive(int fd) noexcept {
  const int on = 1, idle = 10, interval = 5, probes = 3;
  ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &probes, sizeof probes);
}

}  // namespace zproc::detail
