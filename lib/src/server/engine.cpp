#include "server/engine.hpp"

#include "protocol/message.hpp"

namespace zproc::server_detail {

recovery_report engine::attach(std::unique_ptr<journal> j) {
  journal_ = std::move(j);
  return journal_->recover(store_);
}

void engine::handle(const json& request, std::uint64_t request_id, const request_context& ctx,
                    std::vector<delivery>& out) {
  const auto op = request.is_object() ? request.find(protocol::field::op) : request.end();
  const bool named = request.is_object() && op != request.end() && op->is_string();

  if (named && *op == "watch") {
    try {
      if (auto now = watches_.watch(store_, request, ctx.client_id))
        out.push_back({ctx.client_id, protocol::make_reply(request_id, std::move(*now))});
    } catch (const op_error& e) {
      out.push_back({ctx.client_id, protocol::make_error_reply(request_id, e.code, e.message)});
    } catch (const json::exception& e) {
      out.push_back({ctx.client_id, protocol::make_error_reply(request_id, server_errc::bad_request,
                                                               e.what())});
    }
    return;
  }
  if (named && *op == "cancel") {
    auto target = request.find("target");
    if (target == request.end() || !target->is_number_unsigned()) {
      out.push_back({ctx.client_id,
                     protocol::make_error_reply(request_id, server_errc::bad_request,
                                                "cancel needs the request id to cancel ('target')")});
      return;
    }
    const bool found = watches_.cancel(ctx.client_id, target->get<std::uint64_t>());
    out.push_back({ctx.client_id, protocol::make_reply(request_id, found)});
    return;
  }

  outcome o = store_.execute(request, ctx);
  if (o.committed && journal_) {
    // Durable before acknowledged: the reply is queued only after the log write (and fsync).
    try {
      journal_->append(*o.ns, *o.committed);
      if (journal_->snapshot_due()) journal_->snapshot(store_);
    } catch (const std::exception& e) {
      out.push_back({ctx.client_id,
                     protocol::make_error_reply(request_id, server_errc::internal,
                                                std::string("the update is applied but could not "
                                                            "be written to the data directory: ") +
                                                    e.what())});
      watches_.notify(store_, *o.ns, *o.committed, out);
      return;
    }
  }
  if (o.error) {
    out.push_back({ctx.client_id, protocol::make_error_reply(request_id, o.error, o.message)});
  } else if (o.has_revision) {
    out.push_back({ctx.client_id, protocol::make_reply(request_id, std::move(o.result), o.revision)});
  } else {
    out.push_back({ctx.client_id, protocol::make_reply(request_id, std::move(o.result))});
  }
  if (o.committed) watches_.notify(store_, *o.ns, *o.committed, out);
}

}  // namespace zproc::server_detail
