#include "daemon/runtime/backends.hpp"

#include "daemon/redis/redis_backend.hpp"
#include "daemon/runtime/batch_store.hpp"
#include "daemon/runtime/pauses.hpp"

namespace barista::runtime {

std::shared_ptr<pool::Pool> make_pool(const config::PoolConfig& config,
                                      std::shared_ptr<const plugin::PluginLibrary> library,
                                      const std::filesystem::path& spool,
                                      std::shared_ptr<batch::RunningJobs> running) {
  std::shared_ptr<pool::Pool> pool;
  if (config.redis) {
    // Its crash journal is Redis's: an entry stays pending until its result is recorded.
    auto backend = std::make_shared<redis::RedisBackend>(config.name, spool);
    pool = std::make_shared<pool::Pool>(config, std::move(library), backend, backend);
  } else {
    auto backend = std::make_shared<spool::SpoolBackend>(config.name, spool, std::move(running));
    pool = std::make_shared<pool::Pool>(config, std::move(library), backend, backend);
  }
  restore_pauses(*pool);  // `barista pause` outlives a restart
  return pool;
}

spool::SpoolBackend* spool_of(const pool::Pool& pool) {
  return dynamic_cast<spool::SpoolBackend*>(&pool.source());
}

const batch::PoolSpool& folders_of(const pool::Pool& pool) {
  if (const auto* spool = spool_of(pool)) {
    return spool->spool();
  }
  return dynamic_cast<const redis::RedisBackend&>(pool.source()).spool();
}

std::unique_ptr<BatchStore> store_of(const std::shared_ptr<pool::Pool>& pool) {
  return spool_of(*pool) != nullptr ? spool_store(pool) : redis_store(pool);
}

}  // namespace barista::runtime
