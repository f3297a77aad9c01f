// The answers to control-socket requests (the `barista` CLI's verbs).
#include "daemon/common/fs.hpp"
#include "daemon/common/json.hpp"
#include "daemon/control/exit_codes.hpp"
#include "daemon/runtime/backends.hpp"
#include "daemon/runtime/supervisor.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
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
constexpr std::uint64_t kWriteBehindBytes = 1024 * 1024;

constexpr int kUnknown = control::kExitFailed;  // unknown batch, rejected reload
constexpr int kRefused = control::kExitRefused;
constexpr auto kProgressInterval = std::chrono::milliseconds(200);
// How often a waiting client's handler looks whether the daemon is stopping.
constexpr auto kStopCheck = std::chrono::milliseconds(50);

std::string json_quoted(std::string_view s) {
  std::string out;
  common::append_json_string(out, s);
  return out;
}

// A batch's folder, wherever it is in its pool's spool: active/, done/ or failed/.
struct Located {
  std::shared_ptr<pool::Pool> pool;
  std::shared_ptr<batch::Batch> active;  // while it runs
  fs::path dir;
};

bool valid_batch_id(std::string_view id) {
  return !id.empty() && id.find('/') == std::string_view::npos && id != "." && id != "..";
}

std::optional<Located> locate_in(const std::shared_ptr<pool::Pool>& p, const std::string& id) {
  const auto* spool = spool_of(*p);
  if (spool == nullptr) {
    return std::nullopt;  // its batches are in Redis
  }
  if (auto b = spool->find_batch(id); b && !b->finished()) {
    return Located{p, b, b->dir()};
  }
  for (const auto& dir : {spool->spool().done() / id, spool->spool().failed() / id}) {
    std::error_code ec;
    if (fs::exists(dir / "summary.json", ec)) {
      return Located{p, nullptr, dir};
    }
  }
  return std::nullopt;
}

// A batch named `ref`: "ID", or "POOL/ID" where ids repeat across pools (they are unique only
// within a pool). nullopt with `error` set when there is none, or more than one. `in`: the
// pools holding it (for the Redis pools' lookup, which may find it too).
std::optional<Located> locate(const std::map<std::string, std::shared_ptr<pool::Pool>>& pools,
                              const std::string& ref, std::string& error,
                              std::vector<std::string>& in) {
  error = fmt::format("unknown batch '{}'", ref);
  const auto slash = ref.find('/');
  if (slash != std::string::npos) {
    const auto id = ref.substr(slash + 1);
    const auto p = pools.find(ref.substr(0, slash));
    if (p == pools.end() || !valid_batch_id(id)) {
      return std::nullopt;
    }
    auto where = locate_in(p->second, id);
    if (where) {
      in.push_back(p->first);
    }
    return where;
  }
  if (!valid_batch_id(ref)) {
    return std::nullopt;
  }
  std::optional<Located> found;
  for (const auto& [name, p] : pools) {
    if (auto where = locate_in(p, ref)) {
      found = std::move(where);
      in.push_back(name);
    }
  }
  if (in.size() > 1) {
    error = fmt::format("batch '{}' is in more than one pool ({}): name it as POOL/{}", ref,
                        fmt::join(in, ", "), ref);
    return std::nullopt;
  }
  return found;
}

bool valid_batch_name(std::string_view name) {
  return !name.empty() && name.size() <= 200 && name.front() != '.' &&
         name.find('/') == std::string_view::npos && name.find('\0') == std::string_view::npos;
}

// A summary for a batch that is still running: the counts so far.
std::string running_summary(const batch::Batch& b) {
  const auto c = b.counts();
  return fmt::format(
      R"({{"batch":{},"pool":{},"state":"running","jobs":{},"ok":{},"failed":{},"timeout":{},"cancelled":{},"invalid":{},"read_all":{}}})",
      json_quoted(b.id()), json_quoted(b.info().pool), b.jobs_read(), c.ok, c.failed, c.timeout,
      c.cancelled, c.invalid, b.read_all() ? "true" : "false");
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) {
    s.pop_back();
  }
  return s;
}

}  // namespace

void Supervisor::handle(const control::Request& request, control::Connection& conn) {
  const auto& cmd = request.cmd;
  if (cmd == "submit") {
    handle_submit(request, conn);
  } else if (cmd == "status") {
    handle_status(conn);
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

void Supervisor::handle_submit(const control::Request& request, control::Connection& conn) {
  auto p = find_pool(request.pool);
  if (!p) {
    std::vector<std::string> names;
    for (const auto& [name, pool] : pools()) {
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
  // Temp file, fsync, rename, fsync the folder: the batch survives a crash once we answer.
  const auto& folders = folders_of(*p);
  const auto tmp = folders.submission_temp();
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    conn.write(error_reply(kRefused, fmt::format("cannot store the batch in {}: {}",
                                                 folders.inbox().string(), std::strerror(errno))));
    return;
  }
  std::string write_error;
  std::uint64_t bytes = 0;
  std::uint64_t flushing = 0;  // bytes whose write-back has been started
  const bool received = conn.read_body([&](std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::write(fd, data.data(), data.size());
      if (n < 0) {
        if (errno == EINTR) {
          continue;
        }
        write_error = std::strerror(errno);
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
    write_error = std::strerror(errno);
  }
  ::close(fd);
  if (!received || !write_error.empty()) {
    ::unlink(tmp.c_str());
    conn.write(error_reply(kRefused, write_error.empty()
                                         ? conn.body_error()
                                         : "cannot store the batch: " + write_error));
    spdlog::warn("pool '{}': submitted batch '{}' not stored: {}", p->name(), request.name,
                 write_error.empty() ? conn.body_error() : write_error);
    return;
  }
  auto* spool = spool_of(*p);
  if (spool == nullptr) {
    submit_to_redis(p, tmp, request.name, conn);
    return;
  }
  try {
    const auto id = spool->accept_submission(tmp, request.name);
    spdlog::info("pool '{}': batch '{}' submitted ({} bytes)", p->name(), id, bytes);
    conn.write(fmt::format(R"({{"ok":true,"batch":{},"pool":{}}})", json_quoted(id),
                           json_quoted(p->name())) +
               "\n");
  } catch (const std::exception& e) {
    ::unlink(tmp.c_str());
    conn.write(error_reply(kRefused, e.what()));
  }
}

void Supervisor::handle_status(control::Connection& conn) {
  std::string out = R"({"ok":true,"pools":[)";
  std::string batches;
  bool first = true;
  bool first_batch = true;
  for (const auto& [name, p] : pools()) {
    const auto s = p->status();
    fmt::format_to(
        std::back_inserter(out),
        R"({}{{"name":{},"plugin":{},"workers":{},"busy":{},"queued":{},"on_error":"{}","abandoned":{}{}}})",
        first ? "" : ",", json_quoted(s.name), json_quoted(s.plugin), s.workers, s.busy, s.queued,
        s.on_error == config::OnError::kCancelAll ? "cancel_all" : "continue", s.abandoned,
        redis_status_json(*p, s));
    first = false;
    for (const auto& b : p->batches()) {
      fmt::format_to(std::back_inserter(batches),
                     R"({}{{"batch":{},"pool":{},"done":{},"total":{},"failed":{},"read_all":{}}})",
                     first_batch ? "" : ",", json_quoted(b.batch), json_quoted(b.pool), b.done,
                     b.total, b.failed, b.read_all ? "true" : "false");
      first_batch = false;
    }
  }
  fmt::format_to(std::back_inserter(out), R"(],"batches":[{}],"generation":{}}})", batches,
                 generation_.load());
  conn.write(out + "\n");
}

void Supervisor::handle_cancel(const control::Request& request, control::Connection& conn) {
  std::string error;
  std::vector<std::string> in;
  auto where = locate(pools(), request.batch, error, in);
  if (answer_from_redis(request, in, conn)) {
    return;
  }
  if (!where) {
    conn.write(error_reply(kUnknown, error));
    return;
  }
  if (!where->active) {
    conn.write(
        error_reply(kUnknown, fmt::format("batch '{}' has already finished", request.batch)));
    return;
  }
  // The mark makes the cancellation outlive a restart: recovery reads it.
  common::write_file_durably(where->dir / "cancelled", "cancelled by barista cancel\n");
  where->active->cancel();
  spdlog::warn("batch '{}' (pool '{}') cancelled on request", request.batch, where->pool->name());
  conn.write(R"({"ok":true})"
             "\n");
}

void Supervisor::handle_results(const control::Request& request, control::Connection& conn) {
  std::string error;
  std::vector<std::string> in;
  auto where = locate(pools(), request.batch, error, in);
  if (answer_from_redis(request, in, conn)) {
    return;
  }
  if (!where) {
    conn.write(error_reply(kUnknown, error));
    return;
  }
  if (request.summary) {
    const std::string summary = where->active
                                    ? running_summary(*where->active)
                                    : trimmed(common::read_file(where->dir / "summary.json"));
    conn.write(R"({"ok":true})"
               "\n" +
               summary + "\n");
    return;
  }
  if (where->active) {
    where->active->flush(false);  // what has been recorded so far
  }
  conn.write(R"({"ok":true})"
             "\n");
  const int fd = ::open((where->dir / "results.jsonl").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return;  // moved between the look and the open: the client sees what it got
  }
  constexpr std::size_t kStep = 256 * 1024;
  const auto buf = std::make_unique_for_overwrite<char[]>(kStep);  // not zeroed
  for (;;) {
    const ssize_t n = ::read(fd, buf.get(), kStep);
    if (n <= 0 || !conn.write(std::string_view(buf.get(), static_cast<std::size_t>(n)))) {
      break;
    }
  }
  ::close(fd);
}

void Supervisor::handle_wait(const control::Request& request, control::Connection& conn) {
  {
    std::string error;
    std::vector<std::string> in;
    locate(pools(), request.batch, error, in);
    if (answer_from_redis(request, in, conn)) {
      return;
    }
  }
  for (;;) {
    std::string error;
    std::vector<std::string> in;
    auto where = locate(pools(), request.batch, error, in);
    if (!where) {
      conn.write(error_reply(kUnknown, error));
      return;
    }
    if (!where->active) {
      const auto summary = trimmed(common::read_file(where->dir / "summary.json"));
      conn.write(R"({"ok":true,"summary":)" + summary + "}\n");
      return;
    }
    if (where->active->finished()) {
      continue;  // ended since it was found: found again in done/ or failed/
    }
    const auto c = where->active->counts();
    const auto line =
        fmt::format(R"({{"progress":{{"done":{},"total":{},"failed":{},"read_all":{}}}}})",
                    c.total(), where->active->jobs_read(), c.failed + c.timeout + c.invalid,
                    where->active->read_all() ? "true" : "false");
    if (!conn.write(line + "\n") || conn.client_gone()) {
      return;  // the client stopped waiting: nothing else to do
    }
    if (control_->stopping()) {
      conn.write(error_reply(kRefused, "baristad is stopping"));
      return;
    }
    // Progress every 200 ms, but the end at once: the batch wakes this wait as it ends, so a
    // one-job batch is answered as soon as its summary is written, not at a progress interval.
    const auto next_progress = std::chrono::steady_clock::now() + kProgressInterval;
    for (auto now = std::chrono::steady_clock::now(); now < next_progress && !control_->stopping();
         now = std::chrono::steady_clock::now()) {
      if (where->active->wait_finished(
              std::min<std::chrono::steady_clock::duration>(next_progress - now, kStopCheck))) {
        break;
      }
    }
  }
}

void Supervisor::handle_reload(control::Connection& conn) {
  const auto outcome = wait_reload(request_reload());
  std::string out =
      fmt::format(R"({{"ok":{},"generation":{},"code":{},"changes":[)",
                  outcome.ok ? "true" : "false", outcome.generation, outcome.ok ? 0 : kUnknown);
  for (std::size_t i = 0; i < outcome.changes.size(); ++i) {
    out += (i == 0 ? "" : ",") + json_quoted(outcome.changes[i]);
  }
  out += R"(],"errors":[)";
  for (std::size_t i = 0; i < outcome.errors.size(); ++i) {
    out += (i == 0 ? "" : ",") + json_quoted(outcome.errors[i]);
  }
  out += "]}\n";
  conn.write(out);
}

}  // namespace barista::runtime
