// Private: the operations of the wire protocol by number, and a request ready to send. Their
// names, their fields and how a request is built are in lib/src/protocol/ops.hpp (not
// installed): no public header spells the wire format.
#pragma once

#include <zproc/json.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

namespace zproc::detail {

/// Every operation a server knows (docs/protocol.md, "Operations").
enum class op : std::uint8_t {
  // one namespace, like a dict
  get, set, del, contains, size, keys, values, items, update, pop, popitem, setdefault, clear,
  copy, replace, revision, incr, cas, append,
  // transactions, atomic(), the time machine
  txn, read, commit, lock, unlock, at, history,
  // watchers, cancelling a request, the connection
  watch, cancel, ping,
  // process records
  proc_start, proc_update, proc_list,
  // the swarm's task queue
  task_submit, task_take, task_done, task_wait, task_cancel, task_retire, task_info,
  more,
};

/// What a server-side watch predicate tests of one key.
enum class predicate : std::uint8_t { equal, not_equal, truthy, falsy, none, not_none, available };

struct request_access;

/// A request as the client sends it. Only the protocol layer (lib/src/protocol) reads or writes
/// its wire form; everyone else makes one with the builders of zproc/detail/request.hpp. It is
/// held packed (MessagePack, as it will be sent) or, for the few requests that are built field
/// by field, as json.
class request {
 public:
  request() = default;
  request(request&&) noexcept = default;
  request& operator=(request&&) noexcept = default;
  request(const request& r)
      : body_(r.body_ ? std::make_unique<json>(*r.body_) : nullptr),
        packed_(r.packed_),
        fields_(r.fields_),
        op_(r.op_),
        too_deep_(r.too_deep_) {}
  request& operator=(const request& r) {
    if (this != &r) *this = request(r);
    return *this;
  }
  ~request() = default;

 private:
  friend struct request_access;
  explicit request(json body) : body_(std::make_unique<json>(std::move(body))) {}
  // A request held as json; null when packed (a pointer: a request is moved several times on
  // its way to the connection, and most are packed).
  std::unique_ptr<json> body_;
  std::string packed_;   // a packed request's entries (lib/src/protocol/packed_request.hpp)
  std::size_t fields_ = 0;
  int op_ = -1;          // a packed request's op (-1: none)
  bool too_deep_ = false;
};

}  // namespace zproc::detail
