#pragma once

// `barista pause` and `resume` outlive a reload and a restart: a spool pool's pauses are kept
// in SPOOL/POOL/paused.json ({"pool":true,"keys":["K",...]}), written durably at each change
// and read when the pool is made. A pool shared through Redis keeps them in Redis, for every
// daemon of the pool (daemon/redis/key_leases.hpp); its daemons read them when they connect.

#include "daemon/pool/pool.hpp"

#include <set>
#include <string>

namespace barista::runtime {

/// Applies the pauses saved for a spool pool (none when there is no file; a file that cannot be
/// read is logged and ignored). A Redis pool's come from Redis when it connects.
void restore_pauses(pool::Pool& pool);

/// What change_pause() did.
enum class PauseChange {
  kDone,       ///< kept and applied (or it was so already)
  kNotPaused,  ///< a resume of a key that is not paused: nothing changed
};
/// Pauses (or resumes) `pool`, or its `key` when not empty: keeps it, then applies it. Throws
/// std::system_error (a spool pool's file) or redis::RedisError when it cannot be kept (then
/// nothing changed).
PauseChange change_pause(pool::Pool& pool, bool pause, const std::string& key);

}  // namespace barista::runtime
