#include "server/hub.hpp"

#include "server/session.hpp"

#include <boost/asio/post.hpp>

namespace zproc::server_detail {

void hub::deliver_locked(delivery&& d) {
  auto it = sessions.find(d.client_id);
  if (it == sessions.end()) return;
  auto s = it->second.lock();
  if (!s) return;
  try {
    s->deliver_locked(std::move(d));
  } catch (const std::exception&) {
    // No memory for that client's reply: its connection closes (it sees that, not a hang).
    try {
      boost::asio::post(s->get_executor(), [s] { s->close(); });
    } catch (...) {
    }
  }
}

}  // namespace zproc::server_detail
