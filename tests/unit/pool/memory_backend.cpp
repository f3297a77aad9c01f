#include "tests/unit/pool/memory_backend.hpp"

#include <barista/sdk.hpp>

#include <algorithm>
#include <charconv>
#include <stdexcept>
#include <string_view>
#include <thread>

namespace barista::test {

std::shared_ptr<MemoryBatch> MemoryBackend::add(const std::string& id,
                                                const std::vector<std::string>& payloads) {
  auto b = std::make_shared<MemoryBatch>(id);
  {
    std::lock_guard lock(mutex_);
    batches_.push_back(b);
    pending_.push_back({b, payloads, 0});
    unread_ += payloads.size();
  }
  if (pool_ != nullptr) {
    pool_->input_ready();
  }
  return b;
}

pool::JobChunk* MemoryBackend::next_chunk(std::size_t want) {
  std::lock_guard lock(mutex_);
  while (!pending_.empty() && pending_.front().next == pending_.front().payloads.size()) {
    pending_.pop_front();
  }
  if (pending_.empty()) {
    return nullptr;
  }
  auto& p = pending_.front();
  auto* chunk = pool_->take_free_chunk();
  chunk->batch = p.batch;
  while (chunk->size() < want && p.next < p.payloads.size()) {
    ++p.next;
    // "@KEY PAYLOAD": a job with a key, as a JSONL line's "key" gives it.
    std::string_view payload = p.payloads[p.next - 1];
    std::string_view key;
    if (payload.starts_with('@')) {
      const auto space = payload.find(' ');
      key = payload.substr(1, space - 1);
      payload = payload.substr(space + 1);
    }
    chunk->add(std::to_string(p.next), payload, p.next, {}, key);
    --unread_;
  }
  return chunk;
}

void MemoryBackend::interrupt() {
  std::lock_guard lock(mutex_);
  for (const auto& b : batches_) {
    b->interrupt();
  }
}

namespace {

class MemoryWriter final : public pool::ResultWriter {
 public:
  explicit MemoryWriter(MemoryBackend& backend) : backend_(backend) {}
  void add(const pool::JobChunk& chunk, std::size_t index, batch::JobStatus status, int attempts,
           double ms, std::string_view text, int throttled) override {
    gathered_.push_back({chunk.batch->id(), std::string(chunk.id(index)), status, attempts, ms,
                         std::string(text), throttled});
  }
  void flush(const pool::JobChunk& /*chunk*/, bool /*patient*/) override {
    if (!gathered_.empty()) {
      backend_.deliver(std::exchange(gathered_, {}));
    }
  }

 private:
  MemoryBackend& backend_;
  std::vector<MemoryResult> gathered_;
};

}  // namespace

std::unique_ptr<pool::ResultWriter> MemoryBackend::writer() {
  return std::make_unique<MemoryWriter>(*this);
}

void MemoryBackend::deliver(std::vector<MemoryResult> results) {
  {
    std::lock_guard lock(mutex_);
    ++flushes_;
    for (auto& r : results) {
      results_.push_back(std::move(r));
    }
  }
  arrived_.notify_all();
}

bool MemoryBackend::wait_results(std::size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return arrived_.wait_for(lock, timeout, [&] { return results_.size() >= n; });
}

std::vector<MemoryResult> MemoryBackend::results() const {
  std::lock_guard lock(mutex_);
  return results_;
}

std::map<std::string, std::vector<MemoryResult>> MemoryBackend::by_id(
    const std::string& batch) const {
  std::map<std::string, std::vector<MemoryResult>> out;
  std::lock_guard lock(mutex_);
  for (const auto& r : results_) {
    if (r.batch == batch) {
      out[r.id].push_back(r);
    }
  }
  return out;
}

std::size_t MemoryBackend::flushes() const {
  std::lock_guard lock(mutex_);
  return flushes_;
}

ScriptStats& script_stats() {
  static ScriptStats stats;
  return stats;
}

namespace {

using std::chrono::milliseconds;

int number_after(std::string_view payload, std::string_view prefix) {
  int n = 0;
  const auto digits = payload.substr(prefix.size());
  std::from_chars(digits.data(), digits.data() + digits.size(), n);
  return n;
}

// Sleeps `ms`; with `cancellable`, returns early (false) once the context is cancelled.
bool nap(const Context& ctx, int ms, bool cancellable) {
  const auto until = std::chrono::steady_clock::now() + milliseconds(ms);
  while (std::chrono::steady_clock::now() < until) {
    if (cancellable && ctx.cancelled()) {
      return false;
    }
    std::this_thread::sleep_for(milliseconds(1));
  }
  return true;
}

class ScriptProcessor final : public Processor {
 public:
  Outcome process(Context& ctx, const Job& job) override {
    auto& stats = script_stats();
    ++stats.started;
    const int now = ++stats.running;
    int most = stats.most.load();
    while (now > most && !stats.most.compare_exchange_weak(most, now)) {
    }
    struct Leave {
      ~Leave() { --script_stats().running; }
    } leave;
    const std::string_view p = job.payload;
    if (p.starts_with("ok:")) {
      return Outcome::ok(std::string(p.substr(3)));
    }
    if (p == "fail") {
      return Outcome::fail("boom");
    }
    if (p == "fatal") {
      return Outcome::fatal("no");
    }
    if (p == "throw") {
      throw std::runtime_error("thrown");
    }
    if (p.starts_with("flaky:")) {
      return job.attempt <= number_after(p, "flaky:") ? Outcome::fail("flaky") : Outcome::ok("ok");
    }
    if (p.starts_with("sleep:")) {
      nap(ctx, number_after(p, "sleep:"), true);
      return Outcome::ok("slept");
    }
    if (p.starts_with("busy:")) {
      nap(ctx, number_after(p, "busy:"), false);
      return Outcome::ok("done");
    }
    if (p.starts_with("hang:")) {
      nap(ctx, number_after(p, "hang:"), false);
      return Outcome::ok("late");
    }
    if (p.starts_with("fail_after:")) {
      nap(ctx, number_after(p, "fail_after:"), false);
      return Outcome::fail("failed late");
    }
    if (p == "wait_cancel") {
      nap(ctx, 5000, true);
      return Outcome::fail("saw cancel");
    }
    if (p.starts_with("throttle:")) {
      // throttle:MS:N: its first N attempts are throttled for MS, then it returns "ok".
      const auto rest = p.substr(9);
      const auto colon = rest.find(':');
      const int ms = number_after(rest.substr(0, colon), "");
      const int times = number_after(rest.substr(colon + 1), "");
      return job.attempt <= times ? Outcome::throttle(milliseconds(ms), "slow down")
                                  : Outcome::ok("ok");
    }
    if (p.starts_with("hold:")) {
      // hold:NAME:MS: sleeps MS, counted as one of NAME's attempts running at once.
      const auto rest = p.substr(5);
      const auto colon = rest.find(':');
      const std::string name(rest.substr(0, colon));
      {
        std::lock_guard lock(stats.mutex);
        const int running = ++stats.running_by[name];
        stats.most_by[name] = std::max(stats.most_by[name], running);
      }
      nap(ctx, number_after(rest.substr(colon + 1), ""), false);
      std::lock_guard lock(stats.mutex);
      --stats.running_by[name];
      return Outcome::ok("held");
    }
    if (p.starts_with("advance:")) {
      ManualClock* clock = script_clock().load();
      if (clock == nullptr) {
        return Outcome::fatal("no script clock");
      }
      clock->advance(milliseconds(number_after(p, "advance:")));
      return Outcome::ok("advanced");
    }
    return Outcome::fatal("unknown script");
  }
};

void script_factory(const PluginConfig& /*config*/, std::unique_ptr<Processor>& out) {
  out = std::make_unique<ScriptProcessor>();
}

}  // namespace

std::atomic<ManualClock*>& script_clock() {
  static std::atomic<ManualClock*> clock{nullptr};
  return clock;
}

std::shared_ptr<const plugin::PluginLibrary> script_plugin() {
  static const auto library = plugin::PluginLibrary::built_in("script", "1.0", &script_factory);
  return library;
}

config::PoolConfig script_pool(int workers, std::size_t queue) {
  config::PoolConfig cfg;
  cfg.name = "engine";
  cfg.plugin = "script";
  cfg.workers = workers;
  cfg.queue = queue;
  cfg.backoff = milliseconds(10);
  return cfg;
}

}  // namespace barista::test
