#include "protocol/watch_reply.hpp"

#include "protocol/msgpack.hpp"
#include "protocol/ops.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace zproc::protocol {

namespace {

namespace uf = update_field;

[[noreturn]] void malformed(const std::string& what) { throw std::invalid_argument(what); }

/// A field's value as json (depth: the field's nesting in the reply).
json value_of(msgpack_reader& r, std::size_t depth, std::string_view name) {
  json v;
  if (!r.value(v, depth)) malformed("'" + std::string(name) + "' is not a valid value");
  return v;
}

/// A change {k, b?, a?} at nesting `depth`.
key_change read_change(msgpack_reader& r, std::size_t depth) {
  std::size_t n = 0;
  if (!r.map_header(n)) malformed("a change that is not a map");
  key_change c;
  bool has_key = false;
  for (std::size_t i = 0; i < n; ++i) {
    std::string_view name;
    if (!r.string(name)) malformed("a change with a key that is not text");
    if (name == field::key) {
      std::string_view k;
      if (!r.string(k)) malformed("a change whose key is not text");
      c.key = k;
      has_key = true;
    } else if (name == uf::before) {
      c.before = value_of(r, depth + 1, name);
    } else if (name == uf::after_value) {
      c.after = value_of(r, depth + 1, name);
    } else if (!r.skip(depth + 1)) {
      malformed("a change with a malformed field");
    }
  }
  if (!has_key) malformed("a change without its key");
  return c;
}

/// An update record {rv, t, c, id, ch, d?, h?} at nesting `depth`.
watch_reply::entry read_entry(msgpack_reader& r, std::size_t depth, bool records) {
  std::size_t n = 0;
  if (!r.map_header(n)) malformed("an update that is not a map");
  watch_reply::entry e;
  // What a record must have (a snapshot watcher's needs only the revision).
  bool has_rv = false, has_t = !records, has_c = !records, has_id = !records, has_ch = !records;
  for (std::size_t i = 0; i < n; ++i) {
    std::string_view name;
    if (!r.string(name)) malformed("an update with a key that is not text");
    if (name == uf::revision) {
      if (!r.unsigned_integer(e.revision)) malformed("an update whose revision is not a count");
      e.record.revision = e.revision;
      has_rv = true;
    } else if (name == uf::diff) {
      e.diff = value_of(r, depth + 1, name);
    } else if (records && name == uf::time) {
      std::int64_t us = 0;
      if (!r.signed_integer(us)) malformed("an update whose time is not an integer");
      e.record.time = std::chrono::system_clock::time_point(std::chrono::microseconds(us));
      has_t = true;
    } else if (records && name == uf::client) {
      if (!r.unsigned_integer(e.record.client_id)) malformed("an update whose client is not a count");
      has_c = true;
    } else if (records && name == uf::identical) {
      if (!r.boolean(e.record.identical)) malformed("an update whose 'id' is not true or false");
      has_id = true;
    } else if (records && name == uf::changes) {
      std::size_t k = 0;
      if (!r.array_header(k)) malformed("an update whose changes are not a list");
      // (A count the bytes may not hold: reserved up to a bound, as the json decoder does. A
      // field given twice: the last stands.)
      e.record.changes.clear();
      e.record.changes.reserve(std::min<std::size_t>(k, 1024));
      for (std::size_t j = 0; j < k; ++j) e.record.changes.push_back(read_change(r, depth + 2));
      has_ch = true;
    } else if (!r.skip(depth + 1)) {
      malformed("an update with a malformed field");
    }
  }
  if (!has_rv || !has_t || !has_c || !has_id || !has_ch)
    malformed("an update record without its revision, time, client, 'id' or changes");
  return e;
}

}  // namespace

watch_reply decode_watch_reply(std::string_view result, bool records) {
  msgpack_reader r(result);
  std::size_t n = 0;
  if (!r.map_header(n)) malformed("the result is not a map");
  watch_reply out;
  bool has_cursor = false, has_updates = false;
  // The result is the reply's "r" value: its fields are nested two levels deep.
  constexpr std::size_t depth = 2;
  for (std::size_t i = 0; i < n; ++i) {
    std::string_view name;
    if (!r.string(name)) malformed("a field name that is not text");
    if (name == field::cursor) {
      if (!r.unsigned_integer(out.cursor)) malformed("'cursor' is not a revision");
      has_cursor = true;
    } else if (name == field::updates) {
      std::size_t k = 0;
      if (!r.array_header(k)) malformed("'updates' is not a list");
      out.updates.clear();
      out.updates.reserve(std::min<std::size_t>(k, 1024));
      for (std::size_t j = 0; j < k; ++j) out.updates.push_back(read_entry(r, depth + 1, records));
      has_updates = true;
    } else if (name == field::base) {
      out.base = value_of(r, depth, name);
      if (!out.base->is_object()) malformed("'base' is not an object");
    } else if (name == field::tail) {
      out.tail = value_of(r, depth, name);
    } else if (name == field::now) {
      if (!r.boolean(out.now) && !r.skip(depth)) malformed("'now' is malformed");
    } else if (!r.skip(depth)) {
      malformed("a malformed field");
    }
  }
  if (!r.at_end()) malformed("bytes after the result");
  if (!has_cursor) malformed("no 'cursor'");
  if (!has_updates) malformed("no 'updates'");
  return out;
}

}  // namespace zproc::protocol
