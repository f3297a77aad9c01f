// The control requests' view of a spool pool's batches: a running batch is asked itself (its
// counts, its results file so far); an ended one is read from done/ID or failed/ID.
#include "daemon/common/fs.hpp"
#include "daemon/common/json.hpp"
#include "daemon/control/exit_codes.hpp"
#include "daemon/control/replies.hpp"
#include "daemon/runtime/backends.hpp"
#include "daemon/runtime/batch_store.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace barista::runtime {
namespace {

using control::error_reply;
namespace fs = std::filesystem;

constexpr int kUnknown = control::kExitFailed;
constexpr int kRefused = control::kExitRefused;

using common::json_quoted;

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) {
    s.pop_back();
  }
  return s;
}

// Where a batch of the pool is now: running (`active`), or ended in `dir`.
struct Place {
  std::shared_ptr<batch::Batch> active;
  fs::path dir;
};

std::optional<Place> place_of(const spool::SpoolBackend& spool, const std::string& id) {
  if (auto b = spool.find_batch(id); b && !b->finished()) {
    return Place{b, b->dir()};
  }
  for (const auto& dir : {spool.spool().done() / id, spool.spool().failed() / id}) {
    std::error_code ec;
    if (fs::exists(dir / "summary.json", ec)) {
      return Place{nullptr, dir};
    }
  }
  return std::nullopt;
}

class SpoolBatch final : public FoundBatch {
 public:
  SpoolBatch(std::shared_ptr<pool::Pool> pool, std::string id, Place place)
      : pool_(std::move(pool)), id_(std::move(id)), place_(std::move(place)) {}

  void cancel(const std::string& ref, control::Connection& conn) override {
    if (!place_.active) {
      conn.write(error_reply(kUnknown, fmt::format("batch '{}' has already finished", ref)));
      return;
    }
    // The mark makes the cancellation outlive a restart: recovery reads it.
    common::write_file_durably(place_.dir / "cancelled", "cancelled by barista cancel\n");
    place_.active->cancel();
    spdlog::warn("batch '{}' (pool '{}') cancelled on request", ref, pool_->name());
    conn.write(control::ok_line());
  }

  void results(bool summary, control::Connection& conn) override {
    if (summary) {
      // A running batch's counts so far; an ended one's summary.json as it is.
      const std::string text = place_.active
                                   ? place_.active->summary("running").json()
                                   : trimmed(common::read_file(place_.dir / "summary.json")) + "\n";
      conn.write(control::ok_line() + text);
      return;
    }
    if (place_.active) {
      place_.active->flush(false);  // what has been recorded so far
    }
    conn.write(control::ok_line());
    const int fd = ::open((place_.dir / "results.jsonl").c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      return;  // moved between the look and the open: the client sees what it got
    }
    constexpr std::size_t kStep = 256UL * 1024;
    const auto buf = std::make_unique_for_overwrite<char[]>(kStep);  // not zeroed
    for (;;) {
      const ssize_t n = ::read(fd, buf.get(), kStep);
      if (n <= 0 || !conn.write(std::string_view(buf.get(), static_cast<std::size_t>(n)))) {
        break;
      }
    }
    ::close(fd);
  }

  std::unique_ptr<control::Watch> wait(const std::string& ref) override;

 private:
  std::shared_ptr<pool::Pool> pool_;  // kept while the request runs
  std::string id_;
  Place place_;
};

// `barista wait` on a spool batch: its progress at each tick, and its summary as soon as it ends
// (the batch wakes the watch).
class SpoolWatch final : public control::Watch {
 public:
  SpoolWatch(std::shared_ptr<pool::Pool> pool, std::string id, std::string ref, Place place)
      : pool_(std::move(pool)),
        id_(std::move(id)),
        ref_(std::move(ref)),
        place_(std::move(place)),
        watched_(place_.active) {}
  SpoolWatch(const SpoolWatch&) = delete;
  SpoolWatch& operator=(const SpoolWatch&) = delete;
  ~SpoolWatch() override {
    if (watched_ && wake_id_ != 0) {
      watched_->forget_finished(wake_id_);
    }
  }

  void start(const control::Wake& wake) override {
    if (watched_) {
      wake_id_ = watched_->when_finished(wake);
    }
  }

  Step step() override {
    if (place_.active && place_.active->finished()) {
      // Ended since it was found: found again in done/ or failed/.
      const auto* spool = spool_of(*pool_);
      auto now = spool != nullptr ? place_of(*spool, id_) : std::nullopt;
      if (!now) {
        return {error_reply(kUnknown, fmt::format("unknown batch '{}'", ref_)), true};
      }
      place_ = std::move(*now);
    }
    if (!place_.active) {
      return {control::summary_line(trimmed(common::read_file(place_.dir / "summary.json"))), true};
    }
    const auto& b = *place_.active;
    const auto c = b.counts();
    return {control::progress_line(
                {{}, {}, c.total(), b.jobs_read(), c.failed + c.timeout + c.invalid, b.read_all()}),
            false};
  }

 private:
  std::shared_ptr<pool::Pool> pool_;  // kept while the client waits
  std::string id_;
  std::string ref_;
  Place place_;
  std::shared_ptr<batch::Batch> watched_;  // the running batch whose end wakes this watch
  std::uint64_t wake_id_ = 0;
};

std::unique_ptr<control::Watch> SpoolBatch::wait(const std::string& ref) {
  return std::make_unique<SpoolWatch>(pool_, id_, ref, std::move(place_));
}

class SpoolStore final : public BatchStore {
 public:
  SpoolStore(std::shared_ptr<pool::Pool> pool, spool::SpoolBackend& spool)
      : pool_(std::move(pool)), spool_(spool) {}

  void submit(const fs::path& tmp, const std::string& name, std::uint64_t bytes, int weight,
              const std::function<bool()>& /*stopping*/, control::Connection& conn) override {
    try {
      const auto id = spool_.accept_submission(tmp, name, weight);
      spdlog::info("pool '{}': batch '{}' submitted ({} bytes)", pool_->name(), id, bytes);
      conn.write(control::to_line(control::SubmitReply{id, pool_->name(), {}}));
    } catch (const std::exception& e) {
      ::unlink(tmp.c_str());
      conn.write(error_reply(kRefused, e.what()));
    }
  }

  std::unique_ptr<FoundBatch> find(const std::string& id) override {
    auto place = place_of(spool_, id);
    if (!place) {
      return nullptr;
    }
    return std::make_unique<SpoolBatch>(pool_, id, std::move(*place));
  }

  void describe(const pool::PoolStatus& /*status*/, control::PoolRow& /*row*/) override {}

 private:
  std::shared_ptr<pool::Pool> pool_;
  spool::SpoolBackend& spool_;  // pool_'s source: alive as long as pool_
};

}  // namespace

std::unique_ptr<BatchStore> spool_store(std::shared_ptr<pool::Pool> pool) {
  auto* spool = spool_of(*pool);
  return std::make_unique<SpoolStore>(std::move(pool), *spool);
}

}  // namespace barista::runtime
