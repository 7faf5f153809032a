#include "client/async_runner.hpp"
#include "client/client_core.hpp"
#include "protocol/records.hpp"
#include "client/completion.hpp"
#include "protocol/message.hpp"
#include "protocol/msgpack.hpp"

#include <zproc/client.hpp>
#include <zproc/state.hpp>
#include <zproc/transaction.hpp>
#include <zproc/update.hpp>

#include <boost/asio/any_completion_executor.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>

namespace zproc {
namespace detail {

namespace asio = boost::asio;

namespace {

/// Converts a reply's result to T; a result of the wrong shape is a protocol error.
template <class T>
error_code convert(json&& result, T& out, std::string& message) {
  try {
    if constexpr (std::is_same_v<T, json>) {
      out = std::move(result);
    } else if constexpr (std::is_same_v<T, std::vector<update>>) {  // the wire's form
      if (!result.is_array()) throw json::type_error::create(302, "history is not a list", &result);
      out.clear();
      for (const auto& u : result) out.push_back(protocol::update_from_wire(u));
    } else {
      out = std::move(result).template get<T>();
    }
    return {};
  } catch (const json::exception& ex) {
    message = std::string("unexpected reply from the server: ") + ex.what();
    return client_errc::protocol_error;
  }
}

/// A pending async operation: the user's handler, converting the reply's result to T.
template <class T>
class handler_op final : public pending_op {
 public:
  explicit handler_op(held_handler<T>&& h) : h_(std::move(h)) {}

  void complete(error_code ec, json&& result, std::string&& message, bool must_post) override {
    T value{};
    if (!ec) ec = convert(std::move(result), value, message);
    if (ec) h_.set_message(std::move(message));
    h_.complete(must_post, ec, std::move(value));
  }

  /// A write's revision or a yes/no, the most common results, read in place (no json);
  /// anything else (another shape: a protocol error) takes the json way.
  void complete_result(std::string_view result) override {
    protocol::msgpack_reader r(result);
    if constexpr (std::is_same_v<T, std::uint64_t>) {
      if (std::uint64_t v = 0; r.unsigned_form(v) && r.at_end())
        return h_.complete(false, error_code{}, v);
    } else if constexpr (std::is_same_v<T, bool>) {
      if (bool b = false; r.boolean(b) && r.at_end()) return h_.complete(false, error_code{}, b);
    }
    pending_op::complete_result(result);
  }

 private:
  held_handler<T> h_;
};

/// A pending async operation that reports the connection its reply came on
/// (start_connection_request).
class connection_op final : public pending_op {
 public:
  connection_op(basic_held_handler<error_code, json, std::uint64_t>&& h, const connection& conn)
      : h_(std::move(h)), conn_(conn) {}

  void complete(error_code ec, json&& result, std::string&& message, bool must_post) override {
    // A reply completes the op in on_frame, while its connection is the current one.
    const std::uint64_t on = conn_.connections();
    if (ec) h_.set_message(std::move(message));
    h_.complete(must_post, ec, std::move(result), on);
  }

 private:
  basic_held_handler<error_code, json, std::uint64_t> h_;
  const connection& conn_;  // owns this op
};

/// A pending blocking operation: hands its outcome to the waiting thread (`packed`: its result
/// undecoded, in blocking_result::packed).
class blocking_op final : public pending_op {
 public:
  blocking_op(std::shared_ptr<blocking_result> r, const connection& conn, bool packed)
      : r_(std::move(r)), conn_(conn), packed_(packed) {}
  void complete(error_code ec, json&& result, std::string&& message, bool) override {
    // A reply completes the op in on_frame, while its connection is the current one.
    r_->set(ec, std::move(result), std::move(message), conn_.connections());
  }
  void complete_result(std::string_view result) override {
    if (!packed_) return pending_op::complete_result(result);
    r_->packed.assign(result);  // (before set(): the waiting thread reads it after)
    r_->set({}, json(), {}, conn_.connections());
  }

 private:
  std::shared_ptr<blocking_result> r_;
  const connection& conn_;  // owns this op
  bool packed_;
};

/// A pending async operation whose result is handed over undecoded. (A reply's result comes
/// through complete_result(); complete() carries the failures.)
class packed_handler_op final : public pending_op {
 public:
  explicit packed_handler_op(basic_held_handler<error_code, std::string>&& h) : h_(std::move(h)) {}
  void complete(error_code ec, json&&, std::string&& message, bool must_post) override {
    h_.set_message(std::move(message));
    h_.complete(must_post, ec, std::string());
  }
  void complete_result(std::string_view result) override {
    h_.complete(false, error_code{}, std::string(result));
  }

 private:
  basic_held_handler<error_code, std::string> h_;
};

/// Runs one blocking request: the outcome, or nullptr after setting ec and message.
std::shared_ptr<blocking_result> run_call(const std::shared_ptr<client_impl>& c,
                                          protocol::packed_request request, bool packed,
                                          error_code& ec, std::string& message) {
  ec.clear();
  message.clear();
  // What the lambdas use, in one allocation and captured by value: after a timeout in async
  // mode they may run after this function returned.
  // (The pending op holds the state through `result`: the state holds no connection.)
  struct call_state {
    blocking_result result;
    std::uint64_t id = 0;
    protocol::packed_request request;
  };
  auto st = std::make_shared<call_state>();
  st->request = std::move(request);
  std::shared_ptr<blocking_result> result(st, &st->result);
  const auto& conn = c->conn();  // (the client's one connection: both lambdas hold it)
  const bool in_time = c->run_blocking(
      st->result,
      [st, result, conn, packed] {
        st->id = conn->request(std::move(st->request),
                               std::make_unique<blocking_op>(result, *conn, packed));
      },
      c->options().request_timeout, [st, conn] { conn->cancel(st->id); });
  if (!in_time) {
    ec = client_errc::timeout;
    message = "no reply within " + std::to_string(c->options().request_timeout.count()) +
              " ms (client_options::request_timeout)";
    return nullptr;
  }
  std::lock_guard lock(result->mutex);
  if (result->ec) {
    ec = result->ec;
    message = std::move(result->message);
  }
  return result;
}

}  // namespace

json call_raw(const std::shared_ptr<client_impl>& c, protocol::packed_request request,
              error_code& ec, std::string& message, std::uint64_t* on) {
  auto result = run_call(c, std::move(request), false, ec, message);
  if (!result) return {};
  std::lock_guard lock(result->mutex);
  if (on) *on = result->connection;
  if (ec) return {};
  return std::move(result->value);
}

std::string call_packed(const std::shared_ptr<client_impl>& c, request r, error_code& ec,
                        std::string& message) {
  auto result = run_call(c, request_access::take(std::move(r)), true, ec, message);
  if (!result || ec) return {};
  std::lock_guard lock(result->mutex);
  return std::move(result->packed);
}

namespace {

/// Sends `request` with the op `make(held handler)` makes, on the client's connection.
template <class... Values, class Make>
void send_async(const std::shared_ptr<client_impl>& c, protocol::packed_request request,
                asio::any_completion_handler<void(error_code, Values...)> h,
                diagnostics_ptr diagnostics, Make make) {
  run_client_async(c, std::move(h), std::move(diagnostics), cancel_terminal_or_partial,
                   cancel_request(c),
                   [conn = c->conn(), request = std::move(request), make = std::move(make)](
                       basic_held_handler<error_code, Values...>&& held,
                       std::shared_ptr<cancel_token> token) mutable {
                     std::unique_ptr<pending_op> op = make(std::move(held), *conn);
                     op->token = std::move(token);
                     conn->request(std::move(request), std::move(op));
                   });
}

}  // namespace

template <class T>
void start_request(const std::shared_ptr<client_impl>& c, request r, handler<T> h,
                   diagnostics_ptr diagnostics) {
  send_async(c, request_access::take(std::move(r)), std::move(h), std::move(diagnostics),
             [](held_handler<T>&& held, const connection&) {
               return std::make_unique<handler_op<T>>(std::move(held));
             });
}

void start_packed_request(const std::shared_ptr<client_impl>& c, request r,
                          asio::any_completion_handler<void(error_code, std::string)> h,
                          diagnostics_ptr diagnostics) {
  send_async(c, request_access::take(std::move(r)), std::move(h), std::move(diagnostics),
             [](basic_held_handler<error_code, std::string>&& held, const connection&) {
               return std::make_unique<packed_handler_op>(std::move(held));
             });
}

void start_connection_request(
    const std::shared_ptr<client_impl>& c, std::uint64_t only_on, request r,
    asio::any_completion_handler<void(error_code, json, std::uint64_t)> h,
    diagnostics_ptr diagnostics) {
  send_async(c, request_access::take(std::move(r)), std::move(h), std::move(diagnostics),
             [only_on](basic_held_handler<error_code, json, std::uint64_t>&& held,
                       const connection& conn) {
               auto op = std::make_unique<connection_op>(std::move(held), conn);
               op->only_on = only_on;
               return op;
             });
}

template <class T>
T call(const std::shared_ptr<client_impl>& c, request r, error_code& ec, diagnostics& diag) {
  std::string message;
  json raw = call_raw(c, request_access::take(std::move(r)), ec, message);
  T value{};
  if (!ec) ec = convert(std::move(raw), value, message);
  diagnostics_access::set_message(diag, std::move(message));
  return value;
}

template <class T>
T call(const std::shared_ptr<client_impl>& c, request r) {
  error_code ec;
  diagnostics diag;
  T value = call<T>(c, std::move(r), ec, diag);
  if (ec) throw zproc::error(ec, diag.message());
  return value;
}

#define ZPROC_INSTANTIATE(T)                                                         \
  template void start_request<T>(const std::shared_ptr<client_impl>&, request, handler<T>,  \
                                 diagnostics_ptr);                                          \
  template T call<T>(const std::shared_ptr<client_impl>&, request);                         \
  template T call<T>(const std::shared_ptr<client_impl>&, request, error_code&, diagnostics&);

ZPROC_INSTANTIATE(json)
ZPROC_INSTANTIATE(bool)
ZPROC_INSTANTIATE(std::uint64_t)
ZPROC_INSTANTIATE(std::int64_t)
ZPROC_INSTANTIATE(std::vector<std::string>)
ZPROC_INSTANTIATE(std::vector<json>)
using item = std::pair<std::string, json>;
ZPROC_INSTANTIATE(item)
ZPROC_INSTANTIATE(std::vector<item>)
ZPROC_INSTANTIATE(std::vector<update>)
ZPROC_INSTANTIATE(transaction_result)
ZPROC_INSTANTIATE(key_page)
ZPROC_INSTANTIATE(item_page)
#undef ZPROC_INSTANTIATE

request make_request(op o, const std::string& ns, std::uint64_t handle) {
  auto r = protocol::packed_request::make(o, ns);
  r.add_unsigned(protocol::field::handle, handle);
  return request_access::wrap(std::move(r));
}

request make_request(op o, const std::string& ns, std::uint64_t handle, std::string key) {
  auto r = protocol::packed_request::make(o, ns);
  r.add_unsigned(protocol::field::handle, handle);
  r.add_string(protocol::field::key, key);
  return request_access::wrap(std::move(r));
}

request with_value(request r, json value) {
  request_access::add(r, protocol::field::value, value);
  return r;
}

request with_fallback(request r, json fallback) {
  request_access::add(r, protocol::field::fallback, fallback);
  return r;
}

request ping_request() { return request_access::wrap(protocol::make(protocol::op::ping)); }

}  // namespace detail

// --- client ------------------------------------------------------------------------------------

client::client(client_options options)
    : impl_(std::make_shared<detail::client_impl>(options)) {}
client::client(executor_type ex, client_options options)
    : impl_(std::make_shared<detail::client_impl>(std::move(ex), options)) {}
client::~client() = default;
client::client(client&&) noexcept = default;
client& client::operator=(client&&) noexcept = default;

client::executor_type client::get_executor() const noexcept { return impl_->get_executor(); }

namespace {

/// `text`: one address or several separated by commas (as in ZPROC_ADDRESS=a,b). Empty on a bad
/// one, with `ec` and `message` set.
std::vector<address> parse_address_list(const std::string& text, error_code& ec,
                                        std::string& message) {
  std::vector<address> list;
  std::size_t begin = 0;
  for (;;) {
    const std::size_t comma = text.find(',', begin);
    const std::string item =
        text.substr(begin, comma == std::string::npos ? std::string::npos : comma - begin);
    if (!item.empty() || comma == std::string::npos) {
      auto a = address::parse(item, ec);
      if (!a) {
        message = "not a zproc address: '" + item + "' (ipc:///path, tcp://host:port or tls://host:port)";
        return {};
      }
      list.push_back(std::move(*a));
    }
    if (comma == std::string::npos) break;
    begin = comma + 1;
  }
  return list;
}

}  // namespace

void client::start_connect(const std::shared_ptr<detail::client_impl>& c, std::string text,
                           boost::asio::any_completion_handler<void(error_code)> h,
                           detail::diagnostics_ptr diagnostics) {
  error_code parse_ec;
  std::string parse_message;
  auto list = parse_address_list(text, parse_ec, parse_message);
  // Terminal cancellation only: a connect cannot stop half way and leave the client usable.
  detail::run_client_async(
      c, std::move(h), std::move(diagnostics), boost::asio::cancellation_type::terminal,
      [weak = std::weak_ptr<detail::connection>(c->conn())](
          const std::shared_ptr<detail::cancel_token>&) {
        if (auto conn = weak.lock()) conn->abort_connect();
      },
      [conn = c->conn(), list = std::move(list), parse_ec,
       parse_message = std::move(parse_message)](detail::basic_held_handler<error_code>&& held,
                                                 const std::shared_ptr<detail::cancel_token>&) mutable {
        auto shared = std::make_shared<detail::basic_held_handler<error_code>>(std::move(held));
        if (list.empty()) {
          shared->set_message(parse_message);
          return shared->complete(true, parse_ec);
        }
        conn->connect(std::move(list), [shared](error_code ec, std::string message) {
          if (ec) shared->set_message(std::move(message));
          // (Posted: connect completes inline when the socket cannot even be opened.)
          shared->complete(true, ec);
        });
      });
}

void client::connect(const std::string& text, error_code& ec, diagnostics& diag) {
  std::string message;
  auto list = parse_address_list(text, ec, message);
  if (list.empty()) {
    detail::diagnostics_access::set_message(diag, std::move(message));
    return;
  }
  auto result = std::make_shared<detail::blocking_result>();
  auto conn = impl_->conn();
  const auto attempts = static_cast<int>(list.size());
  const bool in_time = impl_->run_blocking(
      *result,
      [conn, list = std::move(list), result]() mutable {
        conn->connect(std::move(list), [result](error_code e, std::string m) {
          result->set(e, {}, std::move(m));
        });
      },
      // connect has its own deadline (per address); this one only guards against an executor
      // nobody runs
      impl_->options().connect_timeout.count() > 0
          ? impl_->options().connect_timeout * attempts + std::chrono::seconds(1)
          : std::chrono::milliseconds(0),
      [conn] { conn->close(client_errc::timeout, "connect timed out"); });
  std::lock_guard lock(result->mutex);
  if (!in_time) {
    ec = client_errc::timeout;
    detail::diagnostics_access::set_message(
        diag, "connect did not complete: is the client's executor running?");
    return;
  }
  ec = result->ec;
  detail::diagnostics_access::set_message(diag, std::move(result->message));
}

void client::connect(const std::string& address) {
  error_code ec;
  diagnostics diag;
  connect(address, ec, diag);
  if (ec) throw zproc::error(ec, diag.message());
}

std::int64_t client::ping(error_code& ec, diagnostics& diag) {
  return detail::call<std::int64_t>(impl_, detail::ping_request(), ec, diag);
}

std::int64_t client::ping() {
  return detail::call<std::int64_t>(impl_, detail::ping_request());
}

void client::close() { impl_->close(); }

std::string client::address() const { return impl_->conn()->remote(); }
std::int64_t client::server_pid() const { return impl_->conn()->server_pid(); }
std::uint64_t client::id() const { return impl_->conn()->client_id(); }

}  // namespace zproc
