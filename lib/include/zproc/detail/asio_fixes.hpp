// Private: a fix for Boost 1.81's Asio, needed to `co_await` a deferred operation whose
// completion is (std::exception_ptr, T) (zproc's default token gives such operations).
//
// Boost 1.81's awaitable_async_op_handler<R(std::exception_ptr, T), Executor>::resume() tests
// `*result` on a struct (it means `*result.ex_`), so any program that instantiates it fails to
// compile; Boost 1.82 fixed it. The partial specialization below, for the default awaitable
// executor (any_io_executor), is that class with the fix. It cannot conflict with another
// instantiation of the broken one in the same program: that one does not compile.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/version.hpp>

#include <exception>
#include <utility>

#if BOOST_VERSION < 108200

namespace boost::asio::detail {

template <typename R, typename T>
class awaitable_async_op_handler<R(std::exception_ptr, T), any_io_executor>
    : public awaitable_thread<any_io_executor> {
 public:
  struct result_type {
    std::exception_ptr* ex_;
    T* value_;
  };

  awaitable_async_op_handler(awaitable_thread<any_io_executor>* h, result_type& result)
      : awaitable_thread<any_io_executor>(std::move(*h)), result_(result) {}

  void operator()(std::exception_ptr ex, T value) {
    result_.ex_ = &ex;
    result_.value_ = &value;
    this->entry_point()->top_of_stack_->attach_thread(this);
    this->entry_point()->top_of_stack_->clear_cancellation_slot();
    this->pump();
  }

  static T resume(result_type& result) {
    if (*result.ex_) {
      std::exception_ptr ex = std::exchange(*result.ex_, nullptr);
      std::rethrow_exception(ex);
    }
    return std::move(*result.value_);
  }

 private:
  result_type& result_;
};

}  // namespace boost::asio::detail

#endif
