#pragma once

#include "daemon/batch/job_counters.hpp"
#include "daemon/pool/pool.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace barista::runtime {

/// The Prometheus endpoint (`metrics: HOST:PORT` in the config): the text exposition at
/// http://HOST:PORT/metrics.
///
/// Nothing is counted here. Each scrape asks for the current pools and reads the numbers they
/// already keep (batch::JobCounters, pool::PoolStatus), so a job pays nothing for the metrics and
/// pools added or removed by a reload show up (or vanish) at the next scrape.
class Metrics {
 public:
  /// One pool as a scrape sees it.
  struct PoolView {
    std::string name;
    pool::PoolStatus status;
    /// The pool's running totals; null for a pool without job metrics.
    const batch::JobCounters* counters = nullptr;
    /// Keeps `*counters` alive while the scrape reads it (the pool, in the daemon).
    std::shared_ptr<const void> keepalive;
  };

  /// The pools running now. Called once per scrape from the HTTP server's threads, possibly two
  /// at once: it must be thread-safe and must not wait on anything a scrape could hold.
  using PoolSource = std::function<std::vector<PoolView>()>;

  /// Starts serving on `bind_address`: `HOST:PORT`, `[IPV6]:PORT`; HOST may be a name
  /// (`localhost`) and PORT 0 picks a free port (see port()). `generation`: the config
  /// generation running now. Throws std::runtime_error naming the address and the reason when
  /// the address is malformed or cannot be bound (port in use, not a local address, ...).
  Metrics(const std::string& bind_address, PoolSource pools, std::uint64_t generation = 1);
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;
  /// Stops the server; waits for scrapes in progress (milliseconds).
  ~Metrics();

  /// The view of a daemon pool, keeping the pool alive for the scrape.
  static PoolView view(std::shared_ptr<pool::Pool> pool);

  /// Moves the endpoint to another address (a reload changed `metrics:`). The new address is
  /// bound before the old one is let go, so on failure (it throws as the constructor does)
  /// the endpoint keeps serving where it was. The reload counters carry over.
  void listen(const std::string& bind_address);

  /// A reload was applied: counts it and sets the config generation now running.
  void reload_applied(std::uint64_t generation);
  /// A reload was rejected (the old config keeps running): counts it.
  void reload_rejected();

  /// The port the endpoint listens on (the one picked when the address asked for port 0).
  [[nodiscard]] std::uint16_t port() const;
  /// Where the endpoint listens, as `HOST:PORT` with the numeric host and the bound port.
  [[nodiscard]] std::string address() const;

 private:
  class Collector;
  class Server;

  std::shared_ptr<Collector> collector_;  // the server holds it weakly
  mutable std::mutex mutex_;              // guards server_ (listen() vs port())
  std::unique_ptr<Server> server_;
};

}  // namespace barista::runtime
