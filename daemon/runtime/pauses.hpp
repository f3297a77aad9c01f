#pragma once

// `barista pause` and `resume` outlive a reload and a restart: a pool's pauses are kept in
// SPOOL/POOL/paused.json ({"pool":true,"keys":["K",...]}), written durably at each change and
// read when the pool is made.

#include "daemon/pool/pool.hpp"

#include <set>
#include <string>

namespace barista::runtime {

/// Applies the pauses saved for `pool` (none when there is no file; a file that cannot be read
/// is logged and ignored).
void restore_pauses(pool::Pool& pool);
/// Applies and saves them. Throws std::system_error when they cannot be saved (then nothing
/// changed).
void save_pauses(pool::Pool& pool, bool paused, const std::set<std::string>& keys);

}  // namespace barista::runtime
