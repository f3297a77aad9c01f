#pragma once

// The control requests (the `barista` CLI's verbs), apart from the daemon's life: the handlers
// see the daemon only through `Daemon` (its pools, its generation, a reload, whether it stops)
// and a pool's batches only through its store (batch_store.hpp).

#include "daemon/control/control_server.hpp"
#include "daemon/control/protocol.hpp"
#include "daemon/pool/pool.hpp"
#include "daemon/runtime/batch_store.hpp"

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace barista::runtime {

/// The outcome of one reload.
struct ReloadOutcome {
  bool ok = false;
  std::uint64_t generation = 0;      ///< the config generation running afterwards
  std::vector<std::string> changes;  ///< what changed, one line each
  std::vector<std::string> errors;   ///< why it was rejected, `FILE:LINE:COL: message` each
};

using PoolMap = std::map<std::string, std::shared_ptr<pool::Pool>>;

/// What the control requests ask of the running daemon (the Supervisor).
class Daemon {
 public:
  Daemon() = default;
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  [[nodiscard]] virtual PoolMap pools() const = 0;
  [[nodiscard]] virtual std::shared_ptr<pool::Pool> find_pool(const std::string& name) const = 0;
  /// The config generation running now.
  [[nodiscard]] virtual std::uint64_t generation() const = 0;
  /// Asks for a reload and waits for its outcome.
  virtual ReloadOutcome reload_and_wait() = 0;
  /// True once the daemon stops: waits end.
  [[nodiscard]] virtual bool stopping() const = 0;

 protected:
  ~Daemon() = default;
};

/// Answers each request on the connection it came on (on several request threads at once:
/// thread-safe).
class ControlHandlers {
 public:
  explicit ControlHandlers(Daemon& daemon) : daemon_(daemon) {}

  void handle(const control::Request& request, control::Connection& conn);

 private:
  void handle_submit(const control::Request& request, control::Connection& conn);
  void handle_status(const control::Request& request, control::Connection& conn);
  void handle_pause(const control::Request& request, control::Connection& conn, bool pause);
  void handle_cancel(const control::Request& request, control::Connection& conn);
  void handle_results(const control::Request& request, control::Connection& conn);
  void handle_wait(const control::Request& request, control::Connection& conn);
  void handle_reload(control::Connection& conn);
  /// The batch a request names ("ID" or "POOL/ID") in its pool's store, or null once an error
  /// reply has been written (unknown, in more than one pool, a store that cannot be asked).
  std::unique_ptr<FoundBatch> locate(const std::string& ref, control::Connection& conn) const;

  Daemon& daemon_;
};

}  // namespace barista::runtime
