#pragma once

// The control requests' one view of a pool's batches (`submit`, `cancel`, `results`, `wait`,
// the pool's part of `status`), whichever backend keeps them: the spool's folders
// (spool_store.cpp) or Redis (redis_store.cpp). The handlers (control_handlers.cpp) ask a
// pool's store and never which kind it is.

#include "daemon/control/control_server.hpp"
#include "daemon/control/replies.hpp"
#include "daemon/pool/pool.hpp"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>

namespace barista::runtime {

/// A batch a control request named, as its store found it.
class FoundBatch {
 public:
  FoundBatch() = default;
  FoundBatch(const FoundBatch&) = delete;
  FoundBatch& operator=(const FoundBatch&) = delete;
  virtual ~FoundBatch() = default;

  /// `barista cancel`: cancels it, and answers. `ref`: the batch as the client named it.
  virtual void cancel(const std::string& ref, control::Connection& conn) = 0;
  /// `barista results [--summary]`: its results so far (or its summary), and answers.
  virtual void results(bool summary, control::Connection& conn) = 0;
  /// `barista submit --wait`: its progress until it ends, then its summary, sent from the
  /// control server's wait loop (the daemon's stop ends the wait with a refusal there).
  virtual std::unique_ptr<control::Watch> wait(const std::string& ref) = 0;
};

/// A store that cannot be asked now (Redis unreachable): what() says why, naming the pool.
class StoreUnavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Where a pool's batches are kept, as the control requests see them.
class BatchStore {
 public:
  BatchStore() = default;
  BatchStore(const BatchStore&) = delete;
  BatchStore& operator=(const BatchStore&) = delete;
  virtual ~BatchStore() = default;

  /// Stores a batch named `name` whose body was received, durably, in `tmp` (a dot-file in
  /// the pool's inbox, `bytes` long) with `weight` (1-1000; fair shares between the batches of
  /// a spool pool), and answers with its id or why not. `tmp` is gone after.
  virtual void submit(const std::filesystem::path& tmp, const std::string& name,
                      std::uint64_t bytes, int weight, const std::function<bool()>& stopping,
                      control::Connection& conn) = 0;
  /// The batch `id` (a valid id) of this pool, or null when it has none. Throws
  /// StoreUnavailable when the store cannot be asked.
  virtual std::unique_ptr<FoundBatch> find(const std::string& id) = 0;
  /// Fills in what the store knows of its pool's row in `status` (a Redis pool: `redis`,
  /// `pending`).
  virtual void describe(const pool::PoolStatus& status, control::PoolRow& row) = 0;
};

/// The store of `pool`'s batches (backends.cpp).
std::unique_ptr<BatchStore> store_of(const std::shared_ptr<pool::Pool>& pool);

/// The same for a pool shared through Redis, and for a spool pool (redis_store.cpp,
/// spool_store.cpp): called by store_of().
std::unique_ptr<BatchStore> redis_store(std::shared_ptr<pool::Pool> pool);
std::unique_ptr<BatchStore> spool_store(std::shared_ptr<pool::Pool> pool);

}  // namespace barista::runtime
