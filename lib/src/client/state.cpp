#include "client/client_core.hpp"
#include "protocol/message.hpp"

#include <zproc/state.hpp>

namespace zproc {

state::executor_type state::get_executor() const noexcept { return impl_->get_executor(); }

json state::with_value(json r, json value) {
  r[protocol::field::value] = std::move(value);
  return r;
}

json state::with_fallback(json r, json fallback) {
  r[protocol::field::fallback] = std::move(fallback);
  return r;
}

}  // namespace zproc
