// zproc/with_diagnostics.hpp - a completion token adapter that turns an operation's
// (error_code, T...) completion into (std::exception_ptr, T...), where the exception is a
// zproc::error carrying the server's diagnostics text ("key 'cookies' not found in namespace
// 'kitchen'"), not only the error code's generic message.
//
// It is part of zproc's default token (`co_await st.async_get("k")` throws zproc::error with the
// server's message), and zproc applies it by itself to asio::use_future and asio::use_awaitable
// (tokens that turn errors into exceptions anyway). With a callback or asio::as_tuple the
// operation completes with the plain error_code; wrap such a token in zproc::with_diagnostics()
// to receive the message too. (After Boost.MySQL's with_diagnostics.)
#pragma once

#include <zproc/detail/asio_fixes.hpp>
#include <zproc/diagnostics.hpp>
#include <zproc/error.hpp>

#include <boost/asio/associator.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/recycling_allocator.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <exception>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

namespace zproc {

/// The token adapter: `zproc::with_diagnostics(token)`.
template <class CompletionToken>
struct with_diagnostics_t {
  constexpr with_diagnostics_t() = default;
  template <class T>
  constexpr explicit with_diagnostics_t(T&& t) : token_(std::forward<T>(t)) {}
  CompletionToken token_{};
};

/// Adapts `token`: the operation completes with (std::exception_ptr, T...) where the exception
/// is a zproc::error whose diagnostics() is the server's (or client's) message, or the richer
/// exception of a process or task (remote_error, process_wait_error, task_lost_error).
template <class CompletionToken>
constexpr with_diagnostics_t<std::decay_t<CompletionToken>> with_diagnostics(
    CompletionToken&& token) {
  return with_diagnostics_t<std::decay_t<CompletionToken>>(std::forward<CompletionToken>(token));
}

/// The completion token used when none is given: `co_await st.async_get("k")` works in an
/// asio::awaitable coroutine (a failure throws zproc::error with the server's message), and the
/// operation composes with other deferred operations.
using default_token = with_diagnostics_t<boost::asio::deferred_t>;

namespace detail {

/// Where an operation leaves what it knows of its failure, for a diagnostics handler.
using diagnostics_ptr = std::shared_ptr<zproc::diagnostics>;

/// The completion of an operation giving an R: void(error_code, R), void(error_code) for
/// R = void.
template <class R>
struct value_signature {
  using type = void(error_code, R);
};
template <>
struct value_signature<void> {
  using type = void(error_code);
};

/// Sets the message of `d` (if any).
inline void set_message(const diagnostics_ptr& d, std::string message) {
  if (d) diagnostics_access::set_message(*d, std::move(message));
}

/// The handler made by with_diagnostics_t: converts (error_code, T...) to (exception_ptr, T...).
template <class Handler>
class diagnostics_handler {
 public:
  // The slot comes from Asio's per-thread recycling allocator, as the operation's type-erased
  // handler does (any_completion_handler's default): made and freed once per call.
  template <class H>
  explicit diagnostics_handler(H&& h)
      : handler_(std::forward<H>(h)),
        diagnostics_(std::allocate_shared<zproc::diagnostics>(
            boost::asio::recycling_allocator<zproc::diagnostics>())) {}

  template <class... Args>
  void operator()(error_code ec, Args&&... args) {
    std::exception_ptr e;
    if (ec) e = diagnostics_->to_exception(ec);
    std::move(handler_)(std::move(e), std::forward<Args>(args)...);
  }

  const diagnostics_ptr& diagnostics() const noexcept { return diagnostics_; }

  Handler handler_;

 private:
  diagnostics_ptr diagnostics_;
};

template <class T>
struct is_diagnostics_handler : std::false_type {};
template <class H>
struct is_diagnostics_handler<diagnostics_handler<H>> : std::true_type {};

/// The slot an operation fills with its failure's message, if its handler wants it.
template <class Handler>
diagnostics_ptr diagnostics_of(const Handler& h) {
  if constexpr (is_diagnostics_handler<Handler>::value) {
    return h.diagnostics();
  } else {
    return nullptr;
  }
}

template <class Token>
struct wants_diagnostics : std::false_type {};
template <class Alloc>
struct wants_diagnostics<boost::asio::use_future_t<Alloc>> : std::true_type {};
template <class Executor>
struct wants_diagnostics<boost::asio::use_awaitable_t<Executor>> : std::true_type {};

/// Tokens that turn errors into exceptions (use_future, use_awaitable) get the diagnostics
/// adapter: their exception is then a zproc::error with the message. Others pass unchanged.
template <class CompletionToken>
decltype(auto) adapt_token(CompletionToken&& token) {
  if constexpr (wants_diagnostics<std::decay_t<CompletionToken>>::value) {
    return with_diagnostics(std::forward<CompletionToken>(token));
  } else {
    return std::forward<CompletionToken>(token);
  }
}

/// async_initiate, with adapt_token() applied to the token.
template <class Signature, class CompletionToken, class Initiation, class... Args>
auto initiate(Initiation&& initiation, CompletionToken&& token, Args&&... args) {
  auto&& adapted = adapt_token(std::forward<CompletionToken>(token));
  // Asio 1.81 takes the token as an lvalue; its type says whether it may be moved from.
  return boost::asio::async_initiate<decltype(adapted), Signature>(
      std::forward<Initiation>(initiation), adapted, std::forward<Args>(args)...);
}

}  // namespace detail
}  // namespace zproc

namespace boost::asio {

template <class CompletionToken, class... Args>
struct async_result<zproc::with_diagnostics_t<CompletionToken>, void(zproc::error_code, Args...)> {
  template <class Initiation>
  struct init_wrapper {
    explicit init_wrapper(Initiation init) : initiation_(std::move(init)) {}
    template <class Handler, class... InitArgs>
    void operator()(Handler&& handler, InitArgs&&... args) {
      std::move(initiation_)(
          zproc::detail::diagnostics_handler<std::decay_t<Handler>>(std::forward<Handler>(handler)),
          std::forward<InitArgs>(args)...);
    }
    Initiation initiation_;
  };

  template <class Initiation, class RawCompletionToken, class... InitArgs>
  static auto initiate(Initiation&& initiation, RawCompletionToken&& token, InitArgs&&... args) {
    CompletionToken inner = std::forward<RawCompletionToken>(token).token_;
    return async_initiate<CompletionToken&&, void(std::exception_ptr, Args...)>(
        init_wrapper<std::decay_t<Initiation>>(std::forward<Initiation>(initiation)), inner,
        std::forward<InitArgs>(args)...);
  }
};

template <template <class, class> class Associator, class Handler, class DefaultCandidate>
struct associator<Associator, zproc::detail::diagnostics_handler<Handler>, DefaultCandidate>
    : Associator<Handler, DefaultCandidate> {
  static typename Associator<Handler, DefaultCandidate>::type get(
      const zproc::detail::diagnostics_handler<Handler>& h) noexcept {
    return Associator<Handler, DefaultCandidate>::get(h.handler_);
  }
  static auto get(const zproc::detail::diagnostics_handler<Handler>& h,
                  const DefaultCandidate& c) noexcept
      -> decltype(Associator<Handler, DefaultCandidate>::get(h.handler_, c)) {
    return Associator<Handler, DefaultCandidate>::get(h.handler_, c);
  }
};

}  // namespace boost::asio
