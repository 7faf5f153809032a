// The wire form of process records (see docs/protocol.md, "Process records"): the operations,
// their fields, and the size limits both ends rely on. Constants only, no I/O.
#pragma once

#include <cstddef>

namespace zproc::protocol::process {

/// Operations.
inline constexpr const char* start_op = "proc_start";
inline constexpr const char* update_op = "proc_update";
inline constexpr const char* list_op = "proc_list";

/// Request fields (besides i and o).
inline constexpr const char* record = "record";  // start, update: the record's fields
inline constexpr const char* id = "id";          // update: the record's id
inline constexpr const char* state = "state";    // list: only records in this state
inline constexpr const char* after = "after";    // list: only records with a larger id
inline constexpr const char* max = "max";        // list: at most this many records

/// Largest record the server keeps, as MessagePack (what a start or update may not exceed).
inline constexpr std::size_t max_record_bytes = 16 * 1024;
/// A longer crash_report is shortened to about this size: its head and its tail are kept.
inline constexpr std::size_t max_crash_report_bytes = 8 * 1024;

}  // namespace zproc::protocol::process
