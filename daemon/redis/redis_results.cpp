// A pool shared through Redis, as its pool's sink: each worker gathers its chunk's results and
// records them in one round trip on its own connection (Recorder: result stored, counted and
// the stream entry acknowledged in one script); a failure is recorded at once, so that under
// cancel_all it cancels the batch on every daemon. And the backend's life: start, stop, state.
#include "daemon/redis/key_leases.hpp"
#include "daemon/redis/recorder.hpp"
#include "daemon/redis/redis_backend.hpp"
#include "daemon/redis/redis_internal.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace barista::redis {

using namespace internal;

RedisBackend::RedisBackend(std::string pool, const std::filesystem::path& spool)
    : name_(std::move(pool)), spool_(spool, name_) {
  spool_.ensure();
}

RedisBackend::~RedisBackend() { stop(); }

void RedisBackend::attach(pool::Pool& pool) {
  pool_ = &pool;
  leases_ = std::make_shared<KeyLeases>(name_, *pool.settings()->config.redis);
  pool.share_keys(leases_);
}

void RedisBackend::start() {
  leases_->start();
  feeder_ = std::thread([this] { feeder_loop(); });
  listener_ = std::thread([this] { cancel_listener_loop(); });
}

void RedisBackend::stop() {
  if (feeder_.joinable()) {
    feeder_.join();
  }
  if (listener_.joinable()) {
    listener_.join();
  }
  if (leases_) {
    leases_->stop();
  }
}

void RedisBackend::interrupt() {
  std::lock_guard lock(mutex_);
  for (const auto& [id, known] : batches_) {
    known.batch->interrupt();
  }
}

std::string RedisBackend::state() const { return redis_ok_.load() ? "connected" : "unavailable"; }

std::optional<std::string> RedisBackend::claim(std::string_view name) {
  if (!name.starts_with('.')) {  // dot-files are ignored in every inbox (submissions' temp files)
    spdlog::warn(
        "pool '{}': inbox/{} is not read: the pool takes its jobs from redis (use "
        "barista submit)",
        name_, name);
  }
  return std::nullopt;
}

void RedisBackend::recover() {
  // Its unfinished jobs are pending in Redis; only submissions cut short are left here.
  spool_.remove_abandoned_submissions();
}

void RedisBackend::note_redis_down(const std::string& why) {
  if (redis_ok_.exchange(false)) {
    spdlog::error("pool '{}': redis unavailable: {}; retrying with backoff", name_, why);
  }
}

void RedisBackend::note_redis_up() {
  if (!redis_ok_.exchange(true)) {
    spdlog::info("pool '{}': redis reachable again", name_);
  }
}

/// One worker's results and its connection (made when first used, remade when a reload points
/// the pool at another server). Results gathered by a worker the pool abandons are recorded by
/// the monitor; if that fails their entries stay pending and run again.
class RedisBackend::Writer final : public pool::ResultWriter {
 public:
  explicit Writer(RedisBackend& backend) : backend_(backend) {}

  void add(const pool::JobChunk& /*chunk*/, std::size_t index, batch::JobStatus status,
           int attempts, double ms, std::string_view text, int throttled) override {
    results_.push_back({index, status, attempts, ms, std::string(text), throttled});
  }
  void flush(const pool::JobChunk& chunk, bool patient) override {
    backend_.record(connection_, chunk, results_, patient);
    results_.clear();
  }

 private:
  RedisBackend& backend_;
  Connection connection_;
  std::vector<Gathered> results_;
};

std::unique_ptr<pool::ResultWriter> RedisBackend::writer() {
  return std::make_unique<Writer>(*this);
}

bool RedisBackend::record(Connection& conn, const pool::JobChunk& chunk,
                          const std::vector<Gathered>& results, bool patient) {
  if (results.empty()) {
    return true;
  }
  // Recorded or not, this daemon lets the entries go: not recorded, they run again (here after
  // a restart, or elsewhere once claim_after has passed).
  struct LetGo {
    RedisBackend& backend;
    const pool::JobChunk& chunk;
    const std::vector<Gathered>& results;
    ~LetGo() { backend.let_go(chunk, &results); }
  } let_go{*this, chunk, results};
  const auto settings = pool_->settings();
  const auto& cfg = settings->config;
  std::vector<Entry> entries(results.size());
  std::vector<std::string> lines(results.size());
  std::vector<Recorder::Result> calls;
  calls.reserve(results.size());
  batch::JobTally tally;
  for (std::size_t k = 0; k < results.size(); ++k) {
    const auto& r = results[k];
    auto& entry = entries[k];
    entry.stream_id = std::string(chunk.tag(r.index));
    entry.batch = chunk.batch->id();
    entry.id = std::string(chunk.id(r.index));
    entry.deliveries = chunk.line(r.index);
    lines[k] = result_line(entry.id, r.status, r.attempts, r.ms, r.text, r.throttled);
    calls.push_back({&entry, batch::to_string(r.status),
                     batch::is_failure(r.status) ? std::string_view(r.text) : std::string_view(),
                     lines[k]});
    ++tally.jobs[static_cast<std::size_t>(r.status)];
    if (r.attempts > 0) {
      tally.observe_duration(r.ms / 1000.0);
    }
  }
  auto backoff = kFirstBackoff;
  for (;;) {
    try {
      if (conn.recorder && conn.made_for != *cfg.redis) {
        conn.recorder.reset();  // a reload changed `redis:`: results go where the pool now points
      }
      if (!conn.recorder) {
        conn.recorder = std::make_unique<Recorder>(*cfg.redis, kRedisTimeout);
        conn.made_for = *cfg.redis;
      }
      const auto outcomes = conn.recorder->record_many(
          calls, cfg.on_error == config::OnError::kCancelAll, now_iso(), ttl_of(*cfg.redis));
      if (std::any_of(outcomes.begin(), outcomes.end(),
                      [](const auto& o) { return o.cancelled; })) {
        chunk.batch->cancel();  // this daemon's other jobs of the batch stop at once
      }
      pool_->shared_counters()->add(tally);
      return true;
    } catch (const RedisError& e) {
      conn.recorder.reset();
      note_redis_down(e.what());
      if (!patient || pool_->stopping()) {
        return false;  // pending in Redis: they run again, here after a restart or elsewhere
      }
      pause(backoff, [&] { return pool_->stopping(); });
      backoff = std::min(backoff * 2, kMaxBackoff);
    }
  }
}

}  // namespace barista::redis
