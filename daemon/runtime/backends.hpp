#pragma once

// How the daemon makes a pool: the engine with the backend its config names (the spool, or a
// Redis stream), and the way back from a pool to its spool backend.

#include "daemon/batch/crash_journal.hpp"
#include "daemon/batch/spool.hpp"
#include "daemon/config/config.hpp"
#include "daemon/plugin/plugin_library.hpp"
#include "daemon/pool/pool.hpp"
#include "daemon/spool/spool_backend.hpp"

#include <filesystem>
#include <memory>

namespace barista::runtime {

/// A pool for `config`: its backend is a Redis stream when it has `redis:`, the spool otherwise.
/// `running`, when given, is the crash journal its spool workers mark. Throws (the plugin's
/// factory, the spool's folders).
std::shared_ptr<pool::Pool> make_pool(const config::PoolConfig& config,
                                      std::shared_ptr<const plugin::PluginLibrary> library,
                                      const std::filesystem::path& spool,
                                      std::shared_ptr<batch::RunningJobs> running);

/// The pool's spool backend, or null for a pool shared through Redis.
spool::SpoolBackend* spool_of(const pool::Pool& pool);

/// The pool's folders in the spool (every pool has them: a Redis pool's hold submissions while
/// they arrive).
const batch::PoolSpool& folders_of(const pool::Pool& pool);

}  // namespace barista::runtime
