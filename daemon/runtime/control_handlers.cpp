// The answers to control-socket requests (the `barista` CLI's verbs): each asks the daemon for
// its pools, and a pool's store for its batches (batch_store.hpp).
#include "daemon/runtime/control_handlers.hpp"
#include "daemon/batch/job_parser.hpp"
#include "daemon/batch/spool.hpp"
#include "daemon/common/fs.hpp"
#include "daemon/common/json.hpp"
#include "daemon/control/exit_codes.hpp"
#include "daemon/control/replies.hpp"
#include "daemon/runtime/backends.hpp"
#include "daemon/runtime/batch_store.hpp"
#include "daemon/runtime/pauses.hpp"
#include "daemon/runtime/redis_control.hpp"

#include "daemon/common/error_text.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <memory>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

namespace barista::runtime {
namespace {

using control::error_reply;
namespace fs = std::filesystem;

/// A submission's bytes are handed to the disk in steps of this size as they arrive.
constexpr std::uint64_t kWriteBehindBytes = 1024UL * 1024;

constexpr int kUnknown = control::kExitFailed;  // unknown batch, rejected reload
constexpr int kRefused = control::kExitRefused;

using common::json_quoted;

bool valid_batch_id(std::string_view id) {
  return !id.empty() && id.find('/') == std::string_view::npos && id != "." && id != "..";
}

// A storage fault that passes makes a refusal "busy": the CLI sends the batch again for a while.
std::string busy_prefix(int error) {
  return common::is_storage_fault(error) ? "baristad is busy: " : "";
}

bool valid_batch_name(std::string_view name) {
  return !name.empty() && name.size() <= 200 && name.front() != '.' &&
         name.find('/') == std::string_view::npos && name.find('\0') == std::string_view::npos;
}

// The keys that hold a pool's jobs up, most blocked first, as `status POOL` shows them.
std::vector<control::KeyInfo> key_rows(const pool::Pool& p) {
  constexpr std::size_t kMaxKeys = 20;
  const auto now = std::chrono::steady_clock::now();
  const auto wall = std::chrono::system_clock::now();
  std::vector<control::KeyInfo> out;
  for (const auto& k : p.blocked_keys(kMaxKeys)) {
    control::KeyInfo info;
    info.key = k.key;
    info.in_flight = static_cast<std::uint64_t>(std::max(k.in_flight, 0));
    info.waiting = k.waiting;
    info.paused = k.paused;
    info.at_limit = k.at_limit;
    if (k.throttled_until > now) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(k.throttled_until - now);
      info.throttled_ms = static_cast<std::uint64_t>(left.count());
      info.throttled_until = common::iso8601_utc(
          std::chrono::time_point_cast<std::chrono::system_clock::duration>(wall + left));
    }
    out.push_back(std::move(info));
  }
  return out;
}

}  // namespace

void ControlHandlers::handle(const control::Request& request, control::Connection& conn) {
  const auto& cmd = request.cmd;
  if (cmd == "submit") {
    handle_submit(request, conn);
  } else if (cmd == "status") {
    handle_status(request, conn);
  } else if (cmd == "pause" || cmd == "resume") {
    handle_pause(request, conn, cmd == "pause");
  } else if (cmd == "cancel") {
    handle_cancel(request, conn);
  } else if (cmd == "results") {
    handle_results(request, conn);
  } else if (cmd == "wait") {
    handle_wait(request, conn);
  } else if (cmd == "reload") {
    handle_reload(conn);
  } else {
    conn.write(error_reply(kRefused, fmt::format("unknown command '{}'", cmd)));
  }
}

void ControlHandlers::handle_submit(const control::Request& request, control::Connection& conn) {
  auto p = daemon_.find_pool(request.pool);
  if (!p) {
    std::vector<std::string> names;
    for (const auto& [name, pool] : daemon_.pools()) {
      names.push_back(name);
    }
    conn.write(error_reply(kRefused, fmt::format("unknown pool '{}' (pools: {})", request.pool,
                                                 fmt::join(names, ", "))));
    return;
  }
  if (!valid_batch_name(request.name)) {
    conn.write(error_reply(kRefused, fmt::format("invalid batch name '{}'", request.name)));
    return;
  }
  int weight = 1;
  if (!request.weight.empty()) {
    const auto* end = request.weight.data() + request.weight.size();
    const auto [ptr, ec] = std::from_chars(request.weight.data(), end, weight);
    if (ec != std::errc() || ptr != end || weight < 1 || weight > batch::kMaxWeight) {
      conn.write(error_reply(kUnknown, fmt::format("weight must be 1 to {}, not '{}'",
                                                   batch::kMaxWeight, request.weight)));
      return;
    }
  }
  // Temp file, fsync, rename, fsync the folder: the batch survives a crash once we answer.
  const auto& folders = folders_of(*p);
  const auto tmp = folders.submission_temp();
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    const int err = errno;
    conn.write(
        error_reply(kRefused, fmt::format("{}cannot store the batch in {}: {}", busy_prefix(err),
                                          folders.inbox().string(), common::error_text(err))));
    return;
  }
  std::string write_error;
  int write_errno = 0;
  std::uint64_t bytes = 0;
  std::uint64_t flushing = 0;  // bytes whose write-back has been started
  const bool received = conn.read_body([&](std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::write(fd, data.data(), data.size());
      if (n < 0) {
        if (errno == EINTR) {
          continue;
        }
        write_errno = errno;
        write_error = common::error_text(errno);
        return false;
      }
      data.remove_prefix(static_cast<std::size_t>(n));
      bytes += static_cast<std::uint64_t>(n);
    }
    // Start writing each MiB to disk while the rest arrives, so that the fsync at the end waits
    // for the last part only (a large batch's fsync otherwise took as long as its upload).
    if (bytes - flushing >= kWriteBehindBytes) {
      ::sync_file_range(fd, static_cast<off_t>(flushing), static_cast<off_t>(bytes - flushing),
                        SYNC_FILE_RANGE_WRITE);
      flushing = bytes;
    }
    return true;
  });
  const bool synced = write_error.empty() && ::fsync(fd) == 0;
  if (write_error.empty() && !synced) {
    write_errno = errno;
    write_error = common::error_text(errno);
  }
  ::close(fd);
  if (!received || !write_error.empty()) {
    ::unlink(tmp.c_str());
    conn.write(error_reply(
        kRefused, write_error.empty()
                      ? conn.body_error()
                      : busy_prefix(write_errno) + "cannot store the batch: " + write_error));
    spdlog::warn("pool '{}': submitted batch '{}' not stored: {}", p->name(), request.name,
                 write_error.empty() ? conn.body_error() : write_error);
    return;
  }
  store_of(p)->submit(
      tmp, request.name, bytes, weight, [this] { return daemon_.stopping(); }, conn);
}

void ControlHandlers::handle_pause(const control::Request& request, control::Connection& conn,
                                   bool pause) {
  auto p = daemon_.find_pool(request.pool);
  if (!p) {
    conn.write(error_reply(kUnknown, fmt::format("unknown pool '{}'", request.pool)));
    return;
  }
  const char* verb = pause ? "paused" : "resumed";
  const std::string key = request.key.value_or(std::string());
  if (request.key && (key.empty() || key.size() > batch::kMaxKeyBytes)) {
    conn.write(error_reply(
        kUnknown, fmt::format("a key is 1 to {} bytes, not {}", batch::kMaxKeyBytes, key.size())));
    return;
  }
  try {
    if (change_pause(*p, pause, key) == PauseChange::kNotPaused) {
      conn.write(error_reply(kUnknown,
                             fmt::format("key '{}' of pool '{}' is not paused", key, p->name())));
      return;
    }
  } catch (const redis::RedisError& e) {
    conn.write(error_reply(kRefused, fmt::format("{}cannot save the pause: {}", busy_prefix(EIO),
                                                 redis_control::redis_problem(
                                                     p->name(), *p->settings()->config.redis, e))));
    return;
  } catch (const std::exception& e) {
    conn.write(error_reply(kRefused,
                           fmt::format("{}cannot save the pause: {}", busy_prefix(EIO), e.what())));
    return;
  }
  if (const auto& health = p->settings()->library->health(); !pause && !request.key && health) {
    if (health->given_up()) {
      spdlog::warn("pool '{}': its worker processes are started again on request", p->name());
    }
    health->try_again();  // worker processes that died at start are tried again
  }
  spdlog::warn("pool '{}'{} {} on request", p->name(),
               request.key ? fmt::format(", key '{}',", *request.key) : std::string(), verb);
  conn.write(control::ok_line());
}

void ControlHandlers::handle_status(const control::Request& request, control::Connection& conn) {
  if (!request.pool.empty() && !daemon_.find_pool(request.pool)) {
    conn.write(error_reply(kUnknown, fmt::format("unknown pool '{}'", request.pool)));
    return;
  }
  control::StatusReply reply;
  for (const auto& [name, p] : daemon_.pools()) {
    if (!request.pool.empty() && name != request.pool) {
      continue;
    }
    const auto s = p->status();
    control::PoolRow row;
    row.name = s.name;
    row.plugin = s.plugin;
    row.workers = static_cast<std::uint64_t>(std::max(s.workers, 0));
    row.busy = static_cast<std::uint64_t>(std::max(s.busy, 0));
    row.queued = s.queued;
    row.on_error = s.on_error == config::OnError::kCancelAll ? "cancel_all" : "continue";
    row.abandoned = s.abandoned;
    row.storage_error = s.storage_error;
    row.paused = s.paused;
    row.paused_keys = s.paused_keys;
    row.throttles = s.throttles;
    row.keys_blocked = s.keys_blocked;
    row.worker_restarts = s.worker_restarts;
    row.workers_failing = s.workers_failing;
    if (!request.pool.empty()) {
      row.keys = key_rows(*p);
    }
    store_of(p)->describe(s, row);
    reply.pools.push_back(std::move(row));
    for (const auto& b : p->batches()) {
      reply.batches.push_back({b.batch, b.pool, b.done, b.total, b.failed, b.read_all});
    }
  }
  reply.generation = daemon_.generation();
  conn.write(control::to_line(reply));
}

std::unique_ptr<FoundBatch> ControlHandlers::locate(const std::string& ref,
                                                    control::Connection& conn) const {
  // "ID", or "POOL/ID" where ids repeat across pools (they are unique only within a pool).
  const auto all = daemon_.pools();
  const auto slash = ref.find('/');
  const std::string id = slash == std::string::npos ? ref : ref.substr(slash + 1);
  PoolMap where;
  if (slash == std::string::npos) {
    where = all;
  } else if (auto p = all.find(ref.substr(0, slash)); p != all.end()) {
    where.insert(*p);
  }
  std::unique_ptr<FoundBatch> found;
  std::vector<std::string> in;
  std::vector<std::string> problems;  // stores that could not be asked
  if (valid_batch_id(id)) {
    for (const auto& [name, p] : where) {
      try {
        if (auto f = store_of(p)->find(id)) {
          found = std::move(f);
          in.push_back(name);
        }
      } catch (const StoreUnavailable& e) {
        problems.emplace_back(e.what());
      }
    }
  }
  if (in.size() > 1) {
    conn.write(error_reply(
        kUnknown, fmt::format("batch '{}' is in more than one pool ({}): name it as POOL/{}", ref,
                              fmt::join(in, ", "), ref)));
    return nullptr;
  }
  if (!found && !problems.empty()) {
    conn.write(error_reply(
        kRefused, slash != std::string::npos
                      ? problems.front()
                      : fmt::format("batch '{}' is in no spool, and Redis cannot be asked: {}", ref,
                                    fmt::join(problems, "; "))));
    return nullptr;
  }
  if (!found) {
    conn.write(error_reply(kUnknown, fmt::format("unknown batch '{}'", ref)));
  }
  return found;
}

void ControlHandlers::handle_cancel(const control::Request& request, control::Connection& conn) {
  if (auto found = locate(request.batch, conn)) {
    found->cancel(request.batch, conn);
  }
}

void ControlHandlers::handle_results(const control::Request& request, control::Connection& conn) {
  if (auto found = locate(request.batch, conn)) {
    found->results(request.summary, conn);
  }
}

void ControlHandlers::handle_wait(const control::Request& request, control::Connection& conn) {
  if (auto found = locate(request.batch, conn)) {
    conn.keep_waiting(found->wait(request.batch));
  }
}

void ControlHandlers::handle_reload(control::Connection& conn) {
  auto outcome = daemon_.reload_and_wait();
  conn.write(control::to_line(control::ReloadReply{.ok = outcome.ok,
                                                   .generation = outcome.generation,
                                                   .code = outcome.ok ? 0 : kUnknown,
                                                   .changes = std::move(outcome.changes),
                                                   .errors = std::move(outcome.errors)}));
}

}  // namespace barista::runtime
