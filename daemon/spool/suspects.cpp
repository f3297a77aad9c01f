// After a crash: the jobs that were in flight run first, one at a time, each alone.
#include "daemon/batch/line_reader.hpp"
#include "daemon/spool/spool_backend.hpp"

#include <algorithm>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>

#include <simdjson.h>
#include <spdlog/spdlog.h>

namespace barista::spool {
namespace {

constexpr auto kPoll = std::chrono::milliseconds(2);

// The lines of `crashes` that may run again: those not given up.
std::set<std::uint64_t> suspect_lines(const batch::CrashRecords& crashes, int max_crashes) {
  std::set<std::uint64_t> out;
  for (const auto& [line, r] : crashes) {
    if (!r.given_up(max_crashes)) {
      out.insert(line);
    }
  }
  return out;
}

}  // namespace

bool SpoolBackend::run_alone(const std::shared_ptr<batch::Batch>& b, std::string_view id,
                             std::string_view payload, std::uint64_t line) {
  const auto before = b->counts().total();
  pool::JobChunk* chunk = pool_->take_free_chunk();
  chunk->add(id, payload, line);
  chunk->batch = b;
  b->add_jobs_read(1);  // the intake skips it later as recorded, without counting it
  b->add_pending(1);
  try {
    pool_->feed(chunk);
  } catch (const tbb::user_abort&) {
    pool_->recycle(chunk);
    return false;  // stopping
  }
  // Its result (or the timeout the monitor gives a stuck job) is its end.
  while (b->counts().total() == before) {
    if (pool_->stopping()) {
      return false;
    }
    std::this_thread::sleep_for(kPoll);
  }
  return true;
}

std::size_t SpoolBackend::run_suspects() {
  std::vector<std::pair<std::shared_ptr<batch::Batch>, std::set<std::uint64_t>>> todo;
  const auto settings = pool_->settings();
  const auto max_job_bytes = settings->config.max_job_bytes;
  {
    std::lock_guard lock(mutex_);
    for (const auto& w : waiting_) {
      if (auto lines = suspect_lines(w.crashes, settings->config.max_crashes); !lines.empty()) {
        todo.emplace_back(w.batch, std::move(lines));
      }
    }
  }
  std::size_t ran = 0;
  for (auto& entry : todo) {
    const auto& b = entry.first;  // named, not a structured binding: lambdas below capture it
    auto& lines = entry.second;
    // The batch's results so far, as the intake will see them (mutex_ held).
    const auto recorded_of = [&]() -> std::unordered_map<std::string, std::uint32_t>* {
      auto w = std::find_if(waiting_.begin(), waiting_.end(),
                            [&](const Waiting& x) { return x.batch == b; });
      return w == waiting_.end() ? nullptr : &w->recorded;
    };
    std::string why;
    const int fd = batch::open_batch_input(b->input_path(), why);
    if (fd < 0) {
      continue;  // the intake reports it
    }
    spdlog::warn(
        "batch '{}' (pool '{}'): {} jobs were running when baristad last stopped unexpectedly: "
        "running each alone first",
        b->id(), name_, lines.size());
    batch::LineReader reader(fd, max_job_bytes, simdjson::SIMDJSON_PADDING);
    batch::JobParser parser(b->info().format, max_job_bytes);
    batch::Line line;
    try {
      while (!lines.empty() && reader.next(line)) {
        if (lines.erase(line.number) == 0) {
          continue;
        }
        auto parsed = parser.parse(line);
        if (parsed.skip || !parsed.valid || b->cancelled()) {
          continue;  // the intake gives it its result as usual
        }
        const std::string id(parsed.id);
        {
          std::lock_guard lock(mutex_);
          const auto* recorded = recorded_of();
          if (recorded == nullptr || recorded->contains(id)) {
            continue;  // the intake has it already, or it has its result
          }
        }
        if (!run_alone(b, id, parsed.payload, line.number)) {
          return ran;
        }
        ++ran;
        std::lock_guard lock(mutex_);
        if (auto* recorded = recorded_of()) {
          ++(*recorded)[id];  // so that the intake does not run it again
        }
      }
    } catch (const std::exception& e) {
      spdlog::error("batch '{}' (pool '{}'): reading its input failed: {}", b->id(), name_,
                    e.what());
    }
  }
  return ran;
}

}  // namespace barista::spool
