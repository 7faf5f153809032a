#include "client/client_core.hpp"
#include "client/watch_core.hpp"
#include "protocol/message.hpp"
#include "protocol/ops.hpp"

#include <zproc/state.hpp>

#include <algorithm>

namespace zproc {

namespace field = protocol::field;
using access = detail::request_access;

state::state(const client& c, std::string ns)
    : impl_(c.impl()), ns_(std::move(ns)), handle_(impl_->new_handle_id()) {}

state::state(std::shared_ptr<detail::client_impl> impl, std::string ns)
    : impl_(std::move(impl)), ns_(std::move(ns)), handle_(impl_->new_handle_id()) {}

state::state(const state& other)
    : impl_(other.impl_), ns_(other.ns_), handle_(impl_ ? impl_->new_handle_id() : 0) {}

state& state::operator=(const state& other) {
  if (this != &other) {
    impl_ = other.impl_;
    ns_ = other.ns_;
    handle_ = impl_ ? impl_->new_handle_id() : 0;
  }
  return *this;
}

state::executor_type state::get_executor() const noexcept { return impl_->get_executor(); }

detail::request state::req(op o) const { return detail::make_request(o, ns_, handle_); }

detail::request state::req(op o, std::string key) const {
  return detail::make_request(o, ns_, handle_, std::move(key));
}

namespace {
/// The byte budget of one page: half of what this client accepts in a frame (the server caps
/// it at 4 MiB), so that a page of big values is shorter instead of too large.
std::uint64_t page_bytes(const detail::client_impl& c) {
  return std::max<std::uint64_t>(1, c.options().max_frame_size / 2);
}
}  // namespace

detail::request state::history_request(std::uint64_t from, std::optional<std::uint64_t> to,
                                       std::size_t max) const {
  auto out = req(op::history);
  json& r = access::body(out);
  r[field::from] = from;
  if (to) r[field::to] = *to;
  r[field::max] = max;
  r[field::bytes] = page_bytes(*impl_);
  return out;
}

detail::request state::page_req(op o, page_request page) const {
  auto out = req(o);
  json& r = access::body(out);
  if (page.after) r[field::after] = std::move(*page.after);
  if (!page.prefix.empty()) r[field::prefix] = std::move(page.prefix);
  r[field::limit] = page.limit;
  r[field::bytes] = page_bytes(*impl_);
  return out;
}

namespace {
std::optional<std::string> next_of(const json& j) {
  const json& n = j.at(field::next);
  if (n.is_null()) return std::nullopt;
  return n.get<std::string>();
}
}  // namespace

void from_json(const json& j, key_page& p) {
  j.at(field::keys_page).get_to(p.keys);  // throws for anything that is not a page
  p.next = next_of(j);
}

void from_json(const json& j, item_page& p) {
  j.at(field::items_page).get_to(p.items);
  p.next = next_of(j);
}

detail::request state::at_request(std::uint64_t rev) const {
  auto r = req(op::at);
  access::body(r)[field::rev] = rev;
  return r;
}

// --- watchers ------------------------------------------------------------------------------

watcher state::make_watcher(json spec, watch_options options, bool now,
                            std::function<bool(const json&)> filter) const {
  spec[field::op] = protocol::name(op::watch);
  spec[field::ns] = ns_;
  spec[field::handle] = handle_;
  if (now) spec[field::now] = true;
  return watcher(detail::make_watch(impl_, std::move(spec), options, true, std::move(filter)));
}

watcher state::predicate_watcher(detail::predicate kind, std::string key, json value,
                                 watch_options options, bool now) const {
  json pred = json::object();
  pred[field::kind] = protocol::name(kind);
  pred[field::key] = std::move(key);
  if (!value.is_discarded()) pred[field::value] = std::move(value);
  json spec = json::object();
  spec[field::pred] = std::move(pred);
  return make_watcher(std::move(spec), std::move(options), now);
}

namespace {
json keys_spec(std::vector<std::string> keys) {
  json spec = json::object();
  if (!keys.empty()) spec[field::keys] = std::move(keys);
  return spec;
}
const json no_value(json::value_t::discarded);
}  // namespace

watcher state::when_change(std::vector<std::string> keys, watch_options options) const {
  return make_watcher(keys_spec(std::move(keys)), std::move(options), false);
}

raw_watcher state::when_change_raw(std::vector<std::string> keys, watch_options options) const {
  json spec = keys_spec(std::move(keys));
  spec[field::op] = protocol::name(op::watch);
  spec[field::ns] = ns_;
  spec[field::handle] = handle_;
  return raw_watcher(detail::make_watch(impl_, std::move(spec), options, false, {}));
}

watcher state::when(std::function<bool(const json&)> pred, watch_options options) const {
  return make_watcher(json::object(), std::move(options), false, std::move(pred));
}

watcher state::when_equal(std::string key, json value, watch_options options) const {
  return predicate_watcher(detail::predicate::equal, std::move(key), std::move(value), std::move(options), false);
}
watcher state::when_not_equal(std::string key, json value, watch_options options) const {
  return predicate_watcher(detail::predicate::not_equal, std::move(key), std::move(value), std::move(options), false);
}
watcher state::when_truthy(std::string key, watch_options options) const {
  return predicate_watcher(detail::predicate::truthy, std::move(key), no_value, std::move(options), false);
}
watcher state::when_falsy(std::string key, watch_options options) const {
  return predicate_watcher(detail::predicate::falsy, std::move(key), no_value, std::move(options), false);
}
watcher state::when_none(std::string key, watch_options options) const {
  return predicate_watcher(detail::predicate::none, std::move(key), no_value, std::move(options), false);
}
watcher state::when_not_none(std::string key, watch_options options) const {
  return predicate_watcher(detail::predicate::not_none, std::move(key), no_value, std::move(options), false);
}
watcher state::when_available(std::string key, watch_options options) const {
  return predicate_watcher(detail::predicate::available, std::move(key), no_value, std::move(options), false);
}

namespace {
/// The throwing forms: the error_code form, its failure thrown (diagnostics::to_exception).
template <class F>
json value_or_throw(F&& form) {
  error_code ec;
  diagnostics diag;
  json v = std::forward<F>(form)(ec, diag);
  if (ec) std::rethrow_exception(diag.to_exception(ec));
  return v;
}
}  // namespace

json state::get_when_change(std::vector<std::string> keys, watch_options options) const {
  return value_or_throw([&](error_code& ec, diagnostics& diag) {
    return get_when_change(std::move(keys), std::move(options), ec, diag);
  });
}
json state::get_when(std::function<bool(const json&)> pred, watch_options options) const {
  return value_or_throw([&](error_code& ec, diagnostics& diag) {
    return get_when(std::move(pred), std::move(options), ec, diag);
  });
}

#define ZPROC_GET_WHEN(name, ...)                                                          \
  json state::name(std::string key, __VA_OPT__(json value, ) watch_options options) const { \
    return value_or_throw([&](error_code& ec, diagnostics& diag) {                         \
      return name(std::move(key), __VA_OPT__(std::move(value), ) std::move(options), ec, diag); \
    });                                                                                    \
  }
ZPROC_GET_WHEN(get_when_equal, value)
ZPROC_GET_WHEN(get_when_not_equal, value)
ZPROC_GET_WHEN(get_when_truthy)
ZPROC_GET_WHEN(get_when_falsy)
ZPROC_GET_WHEN(get_when_none)
ZPROC_GET_WHEN(get_when_not_none)
ZPROC_GET_WHEN(get_when_available)
#undef ZPROC_GET_WHEN

namespace {
/// The error_code forms: the first item of the watcher `make()` makes; a watcher that could
/// not be made, a failed wait: `ec` and `diag`, and null.
template <class Make>
json first(Make make, error_code& ec, diagnostics& diag) {
  ec.clear();
  diag.clear();
  std::optional<json> v;
  try {
    watcher w = make();
    v = w.next(ec, diag);
  } catch (const zproc::error& e) {
    ec = e.code();
    detail::diagnostics_access::set_message(diag, e.diagnostics());
    return nullptr;
  }
  if (ec) return nullptr;
  if (!v) {
    ec = client_errc::protocol_error;
    detail::diagnostics_access::set_message(diag, "the watch ended without an update");
    return nullptr;
  }
  return std::move(*v);
}
}  // namespace

json state::get_when_change(std::vector<std::string> keys, watch_options options, error_code& ec,
                            diagnostics& diag) const {
  return first([&] { return make_watcher(keys_spec(std::move(keys)), once(std::move(options)), false); },
               ec, diag);
}
json state::get_when(std::function<bool(const json&)> pred, watch_options options, error_code& ec,
                     diagnostics& diag) const {
  return first(
      [&] { return make_watcher(json::object(), once(std::move(options)), true, std::move(pred)); },
      ec, diag);
}

#define ZPROC_GET_WHEN_EC(name, kind, value_expr, ...)                                          \
  json state::name(std::string key, __VA_ARGS__ watch_options options, error_code& ec,           \
                   diagnostics& diag) const {                                                   \
    return first(                                                                               \
        [&] {                                                                                   \
          return predicate_watcher(detail::predicate::kind, std::move(key), value_expr,         \
                                   once(std::move(options)), true);                             \
        },                                                                                      \
        ec, diag);                                                                              \
  }
ZPROC_GET_WHEN_EC(get_when_equal, equal, std::move(value), json value,)
ZPROC_GET_WHEN_EC(get_when_not_equal, not_equal, std::move(value), json value,)
ZPROC_GET_WHEN_EC(get_when_truthy, truthy, no_value)
ZPROC_GET_WHEN_EC(get_when_falsy, falsy, no_value)
ZPROC_GET_WHEN_EC(get_when_none, none, no_value)
ZPROC_GET_WHEN_EC(get_when_not_none, not_none, no_value)
ZPROC_GET_WHEN_EC(get_when_available, available, no_value)
#undef ZPROC_GET_WHEN_EC

}  // namespace zproc
