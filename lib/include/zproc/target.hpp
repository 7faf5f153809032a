// zproc/target.hpp - ZPROC_TARGET(fn): registers a function that spawned processes can run.
#pragma once

#include <zproc/context.hpp>
#include <zproc/detail/chunk.hpp>
#include <zproc/detail/target_traits.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <string>
#include <utility>

namespace zproc::detail {

/// Runs the target on its context with packed arguments; returns its packed value. Throws what
/// the target throws.
using target_invoker = std::string (*)(context& ctx, const std::string& args);
/// Runs `items` calls of the target (a swarm's chunk) on its context; never throws: a call
/// that throws is a failure in `out`.
using chunk_invoker = void (*)(context& ctx, std::string_view packed, std::size_t items,
                               chunk_output& out);

struct target_info {
  const char* name;
  target_invoker invoke;
  std::vector<std::string> arg_types;  ///< mangled, to check retry_args
  chunk_invoker invoke_chunk = nullptr;
};

/// Registers `fn` (its address identifies it in spawn()) under `name`.
int register_target(const void* fn, target_info info);

template <class T>
T run_coroutine(boost::asio::awaitable<T> aw) {
  boost::asio::io_context io;
  auto result = boost::asio::co_spawn(io, std::move(aw), boost::asio::use_future);
  io.run();
  return result.get();
}

template <auto Fn>
std::string invoke_target(context& ctx, const std::string& packed) {
  using traits = target_traits<decltype(Fn)>;
  typename traits::args args;
  unpack(packed, args);
  // Called through a pointer the optimizer cannot follow: the target keeps a frame of its own,
  // which crash reports show (inlined into this runner, it was cut with the runner's frames).
  decltype(Fn) volatile fn = Fn;
  auto call = [&] {
    return std::apply(
        [&](auto&... a) {
          if constexpr (traits::first == first_param::context) {
            return fn(ctx, std::move(a)...);
          } else if constexpr (traits::first == first_param::state) {
            state st = ctx.create_state();
            return fn(st, std::move(a)...);
          } else {
            return fn(std::move(a)...);
          }
        },
        args);
  };
  auto run = [&] {
    if constexpr (traits::coroutine) {
      return run_coroutine(call());
    } else {
      return call();
    }
  };
  if constexpr (std::is_void_v<typename traits::value>) {
    run();
    return {};
  } else {
    return pack(run());
  }
}

template <auto Fn>
void invoke_chunk(context& ctx, std::string_view packed, std::size_t items, chunk_output& out) {
  using traits = target_traits<decltype(Fn)>;
  using args = typename traits::args;
  using value = typename traits::value;
  auto finish = [](auto&& result) -> value {
    if constexpr (traits::coroutine) {
      return run_coroutine(std::move(result));
    } else {
      return std::move(result);
    }
  };
  if constexpr (traits::first == first_param::context) {
    run_chunk<args, value>(packed, items, out, [&](auto&&... a) -> value {
      if constexpr (std::is_void_v<value> && !traits::coroutine) {
        Fn(ctx, std::move(a)...);
      } else {
        return finish(Fn(ctx, std::move(a)...));
      }
    });
  } else if constexpr (traits::first == first_param::state) {
    state st = ctx.create_state();
    run_chunk<args, value>(packed, items, out, [&](auto&&... a) -> value {
      if constexpr (std::is_void_v<value> && !traits::coroutine) {
        Fn(st, std::move(a)...);
      } else {
        return finish(Fn(st, std::move(a)...));
      }
    });
  } else {
    run_chunk<args, value>(packed, items, out, [&](auto&&... a) -> value {
      if constexpr (std::is_void_v<value> && !traits::coroutine) {
        Fn(std::move(a)...);
      } else {
        return finish(Fn(std::move(a)...));
      }
    });
  }
}

}  // namespace zproc::detail

#define ZPROC_DETAIL_CONCAT2(a, b) a##b
#define ZPROC_DETAIL_CONCAT(a, b) ZPROC_DETAIL_CONCAT2(a, b)

/// At namespace scope, after the function: ZPROC_TARGET(cookie_eater); The name (as written)
/// identifies the target in spawned processes, crash reports and `zproc ps`.
#define ZPROC_TARGET(fn)                                                                      \
  [[maybe_unused]] static const int ZPROC_DETAIL_CONCAT(zproc_target_, __COUNTER__) =         \
      ::zproc::detail::register_target(                                                       \
          reinterpret_cast<const void*>(&fn),                                                 \
          {#fn, &::zproc::detail::invoke_target<&fn>,                                         \
           ::zproc::detail::type_names_of(                                                    \
               static_cast<typename ::zproc::detail::target_traits<decltype(&fn)>::args*>(    \
                   nullptr)),                                                                 \
           &::zproc::detail::invoke_chunk<&fn>})
