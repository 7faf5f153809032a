// The wire form of process records (see docs/protocol.md, "Process records"): the operations,
// their fields, and the size limits both ends rely on. Constants only, no I/O.
#pragma once

#include <cstddef>

namespace zproc::protocol::process {

/// Operations: op::proc_start, op::proc_update, op::proc_list (protocol/ops.hpp).

/// Request fields (besides i and o).
inline constexpr const char* record = "record";  // start, update: the record's fields
inline constexpr const char* id = "id";          // update: the record's id
inline constexpr const char* state = "state";    // list: only records in this state
inline constexpr const char* after = "after";    // list: only records with a larger id
inline constexpr const char* max = "max";        // list: at most this many records

/// The fields of a record (zproc/process_record.hpp tells what each means).
namespace record_field {
inline constexpr const char* id = "id";
inline constexpr const char* pid = "pid";
inline constexpr const char* ppid = "ppid";
inline constexpr const char* target = "target";
inline constexpr const char* ns = "n";
inline constexpr const char* host = "host";
inline constexpr const char* kind = "kind";
inline constexpr const char* state = "state";
inline constexpr const char* attempt = "attempt";
inline constexpr const char* started = "started";
inline constexpr const char* ended = "ended";
inline constexpr const char* client = "client";
inline constexpr const char* exitcode = "exitcode";
inline constexpr const char* crash_report = "crash_report";
inline constexpr const char* note = "note";
inline constexpr const char* parent_record = "parent_record";
}  // namespace record_field

/// Largest record the server keeps, as MessagePack (what a start or update may not exceed).
inline constexpr std::size_t max_record_bytes = 16 * 1024;
/// A longer crash_report is shortened to about this size: its head and its tail are kept.
inline constexpr std::size_t max_crash_report_bytes = 8 * 1024;

}  // namespace zproc::protocol::process
