// zproc/transaction.hpp - a multi-key transaction: compares, then operations applied as one
// revision if all compares hold (else the other list), like etcd's Txn.
#pragma once

#include <zproc/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace zproc {

/// Build with the static helpers:
///
///   zproc::txn t{.compare = {zproc::txn::equal("owner", nullptr)},
///                .then = {zproc::txn::set("owner", "me"), zproc::txn::increment("claims")},
///                .otherwise = {zproc::txn::get("owner")}};
///   auto r = st.transaction(t);  // r.succeeded, r.results (one per operation run)
struct txn {
  std::vector<json> compare;    ///< all must hold...
  std::vector<json> then;       ///< ...for these to run (one revision, all or nothing)
  std::vector<json> otherwise;  ///< else these run

  // compares
  static json equal(std::string key, json value);
  static json not_equal(std::string key, json value);
  static json exists(std::string key);
  static json absent(std::string key);
  /// The key's last write was at `revision` (0: the key is absent / never written).
  static json modified_at(std::string key, std::uint64_t revision);
  static json modified_before(std::string key, std::uint64_t revision);
  static json modified_after(std::string key, std::uint64_t revision);

  // operations (their results, in order, are in transaction_result::results)
  static json set(std::string key, json value);
  static json erase(std::string key);
  static json increment(std::string key, json delta = 1);
  static json append(std::string key, json value);
  static json get(std::string key);
};

/// How state::atomic() behaves under contention.
struct atomic_options {
  /// Conflicting attempts before taking the namespace's lock (0: lock at once, for bodies that
  /// are slow or that must not run twice).
  std::size_t optimistic_attempts = 3;
};

/// What a transaction did.
struct transaction_result {
  bool succeeded = false;    ///< whether the compares held (`then` ran; else `otherwise` ran)
  std::vector<json> results;  ///< one per operation run
};

void from_json(const json& j, transaction_result& r);

}  // namespace zproc
