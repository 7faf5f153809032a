// The wire form of updates (docs/protocol.md), shared by client and server and kept in the
// data directory's files: a change {"k", "b"?, "a"?}, an update record {"rv", "t", "c", "id",
// "ch"}. The public to_json/from_json of these types (zproc/update.hpp) are the user's schema
// instead (the C++ member names), what the zproc command prints. (Process records' wire form:
// lib/src/client/process_record.cpp.)
#pragma once

#include <zproc/json.hpp>
#include <zproc/update.hpp>

#include <span>
#include <vector>

namespace zproc::protocol {

json change_to_wire(const key_change& c);
/// Throws json::exception for a change of the wrong shape.
key_change change_from_wire(const json& j);
json changes_to_wire(std::span<const key_change> changes);
std::vector<key_change> changes_from_wire(const json& j);

/// An update record as history and watch replies carry it. Throws json::exception.
update update_from_wire(const json& j);

}  // namespace zproc::protocol
