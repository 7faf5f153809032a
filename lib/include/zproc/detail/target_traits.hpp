// Private: what a target function looks like to spawn(): whether it takes the context (or a
// state) first, the types of its arguments, and the value it returns (through a coroutine too).
#pragma once

#include <zproc/detail/archive.hpp>

#include <boost/asio/awaitable.hpp>

#include <tuple>
#include <type_traits>
#include <utility>

namespace zproc {
class context;
class state;
}  // namespace zproc

namespace zproc::detail {

enum class first_param { none, context, state };

template <class... P>
struct param_list {
  using args = std::tuple<std::decay_t<P>...>;
  static constexpr first_param first = first_param::none;
};
template <class... P>
struct param_list<context&, P...> {
  using args = std::tuple<std::decay_t<P>...>;
  static constexpr first_param first = first_param::context;
};
template <class... P>
struct param_list<state&, P...> {
  using args = std::tuple<std::decay_t<P>...>;
  static constexpr first_param first = first_param::state;
};
template <class... P>
struct param_list<state, P...> : param_list<state&, P...> {};
template <class... P>
struct param_list<const state&, P...> : param_list<state&, P...> {};

template <class R>
struct returned {
  using type = R;
  static constexpr bool coroutine = false;
};
template <class T, class Executor>
struct returned<boost::asio::awaitable<T, Executor>> {
  using type = T;
  static constexpr bool coroutine = true;
};

template <class F>
struct target_traits;
template <class R, class... P>
struct target_traits<R (*)(P...)> : param_list<P...> {
  using value = typename returned<R>::type;  ///< what wait<R>() returns
  static constexpr bool coroutine = returned<R>::coroutine;
};
template <class R, class... P>
struct target_traits<R(P...)> : target_traits<R (*)(P...)> {};

template <class... A>
std::vector<std::string> type_names_of(std::tuple<A...>*) {
  return type_names<A...>();
}

/// Packs `u...` converted to the target's parameter types `A...`.
template <class... A, class... U>
std::string pack_as(std::tuple<A...>*, U&&... u) {
  static_assert(sizeof...(A) == sizeof...(U),
                "zproc: spawn() got a different number of arguments than the target takes "
                "(after its zproc::context& / zproc::state parameter, if any)");
  static_assert((std::is_constructible_v<A, U&&> && ...),
                "zproc: an argument of spawn() does not convert to the target's parameter type");
  return pack(static_cast<const A&>(A(std::forward<U>(u)))...);
}

}  // namespace zproc::detail
