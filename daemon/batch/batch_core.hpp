#pragma once

#include <atomic>
#include <string>

namespace barista::batch {

/// What a worker needs of any batch, wherever its results are kept (the spool's Batch, or a
/// batch of a pool shared through Redis): its id and its cancellation.
class BatchCore {
 public:
  explicit BatchCore(std::string id) : id_(std::move(id)) {}
  BatchCore(const BatchCore&) = delete;
  BatchCore& operator=(const BatchCore&) = delete;

  [[nodiscard]] const std::string& id() const noexcept { return id_; }
  /// The cancellation token handed to running attempts (barista::Context). Raised when the
  /// batch is cancelled, and by the pool at the end of a graceful stop.
  [[nodiscard]] const std::atomic<bool>& cancel_token() const noexcept { return token_; }
  /// True once the batch is cancelled (cancel_all failure or an explicit cancel).
  [[nodiscard]] bool cancelled() const noexcept {
    return cancelled_.load(std::memory_order_acquire);
  }
  /// Cancels the batch: no further job starts, running ones see ctx.cancelled().
  void cancel() noexcept {
    cancelled_.store(true, std::memory_order_release);
    token_.store(true, std::memory_order_release);
  }
  /// Raises the token without cancelling the batch: running attempts stop (daemon stopping).
  void interrupt() noexcept { token_.store(true, std::memory_order_release); }

 protected:
  ~BatchCore() = default;

 private:
  std::string id_;
  std::atomic<bool> token_{false};
  std::atomic<bool> cancelled_{false};
};

}  // namespace barista::batch
