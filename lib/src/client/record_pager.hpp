// Listing process records page by page, without I/O: the next proc_list request, and what a
// reply adds. Driven by list_processes() (blocking) and async_list_processes() (the async
// runner) in process_record.cpp.
#pragma once

#include <zproc/error.hpp>
#include <zproc/json.hpp>
#include <zproc/process_record.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace zproc::detail {

/// A record as the server sends it (docs/protocol.md, "Process records": `n`, `started`,
/// `ended` for ns, started_ms, ended_ms). Fields it does not know are ignored; throws
/// json::exception for a record without an id or with a field of the wrong type.
process_record record_from_wire(const json& j);

class record_pager {
 public:
  /// `page_size`: records per request (at least 1).
  explicit record_pager(std::size_t page_size);

  /// The next proc_list request: the records after the last one received.
  json request() const;

  /// A reply's result: appends its records. Returns true when another page may follow (this
  /// one was full). A malformed page (not an array, a record that does not parse, ids that do
  /// not go up past the last one, more records than asked for) returns false with `ec` =
  /// client_errc::protocol_error and `message`; the records received are dropped then.
  bool on_reply(json&& page, error_code& ec, std::string& message);

  /// The records received, in id order (once done).
  std::vector<process_record> take() { return std::move(records_); }

 private:
  std::size_t page_size_;
  std::vector<process_record> records_;
};

}  // namespace zproc::detail
