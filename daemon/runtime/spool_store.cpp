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
constexpr auto kProgressInterval = std::chrono::milliseconds(200);
// How often a waiting client's handler looks whether the daemon is stopping.
constexpr auto kStopCheck = std::chrono::milliseconds(50);

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

  void wait(const std::string& ref, const std::function<bool()>& stopping,
            control::Connection& conn) override {
    for (;;) {
      if (!place_.active) {
        const auto summary = trimmed(common::read_file(place_.dir / "summary.json"));
        conn.write(control::summary_line(summary));
        return;
      }
      if (place_.active->finished()) {
        // Ended since it was found: found again in done/ or failed/.
        const auto* spool = spool_of(*pool_);
        auto now = spool != nullptr ? place_of(*spool, id_) : std::nullopt;
        if (!now) {
          conn.write(error_reply(kUnknown, fmt::format("unknown batch '{}'", ref)));
          return;
        }
        place_ = std::move(*now);
        continue;
      }
      const auto& b = *place_.active;
      const auto c = b.counts();
      const auto line = control::progress_line(
          {{}, {}, c.total(), b.jobs_read(), c.failed + c.timeout + c.invalid, b.read_all()});
      if (!conn.write(line) || conn.client_gone()) {
        return;  // the client stopped waiting: nothing else to do
      }
      if (stopping()) {
        conn.write(error_reply(kRefused, "baristad is stopping"));
        return;
      }
      // Progress every 200 ms, but the end at once: the batch wakes this wait as it ends, so a
      // one-job batch is answered as soon as its summary is written, not at a progress interval.
      const auto next_progress = std::chrono::steady_clock::now() + kProgressInterval;
      for (auto now = std::chrono::steady_clock::now(); now < next_progress && !stopping();
           now = std::chrono::steady_clock::now()) {
        if (b.wait_finished(
                std::min<std::chrono::steady_clock::duration>(next_progress - now, kStopCheck))) {
          break;
        }
      }
    }
  }

 private:
  std::shared_ptr<pool::Pool> pool_;  // kept while the request runs
  std::string id_;
  Place place_;
};

class SpoolStore final : public BatchStore {
 public:
  SpoolStore(std::shared_ptr<pool::Pool> pool, spool::SpoolBackend& spool)
      : pool_(std::move(pool)), spool_(spool) {}

  void submit(const fs::path& tmp, const std::string& name, std::uint64_t bytes,
              const std::function<bool()>& /*stopping*/, control::Connection& conn) override {
    try {
      const auto id = spool_.accept_submission(tmp, name);
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
