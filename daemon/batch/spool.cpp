#include "daemon/batch/spool.hpp"

#include "daemon/common/error_text.hpp"
#include "daemon/common/fs.hpp"
#include "daemon/common/json.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstring>
#include <random>

#include <fmt/format.h>
#include <simdjson.h>
#include <spdlog/spdlog.h>

namespace barista::batch {
namespace fs = std::filesystem;

namespace {

std::string_view kind_of(mode_t mode) {
  if (S_ISDIR(mode)) {
    return "a directory";
  }
  if (S_ISLNK(mode)) {
    return "a symbolic link";
  }
  if (S_ISFIFO(mode)) {
    return "a FIFO";
  }
  if (S_ISSOCK(mode)) {
    return "a socket";
  }
  return "not a regular file";
}

// Cuts a torn last line (a crash in the middle of a write) and returns the file's contents.
std::string read_results(const fs::path& file) {
  std::string data;
  try {
    data = common::read_file(file);
  } catch (const std::system_error& e) {
    if (e.code().value() == ENOENT) {
      return {};
    }
    throw;
  }
  const auto last_nl = data.rfind('\n');
  const std::size_t keep = last_nl == std::string::npos ? 0 : last_nl + 1;
  if (keep != data.size()) {
    spdlog::warn("{}: dropping a torn last line of {} bytes", file.string(), data.size() - keep);
    if (::truncate(file.c_str(), static_cast<off_t>(keep)) != 0) {
      throw std::system_error(errno, std::generic_category(), "truncate " + file.string());
    }
    data.resize(keep);
  }
  return data;
}

// What batch.json says of a batch: when it started, and its weight (1 when it does not say).
void read_meta(const fs::path& dir, Batch::Info& info) {
  info.started = std::chrono::system_clock::now();
  info.weight = 1;
  try {
    auto text = common::read_file(dir / "batch.json");
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    if (parser.parse(text).get(doc) != simdjson::SUCCESS) {
      return;
    }
    std::int64_t ms = 0;
    if (doc["started_ms"].get_int64().get(ms) == simdjson::SUCCESS) {
      info.started = std::chrono::system_clock::time_point(std::chrono::milliseconds(ms));
    }
    std::int64_t weight = 1;
    if (doc["weight"].get_int64().get(weight) == simdjson::SUCCESS && weight >= 1 &&
        weight <= kMaxWeight) {
      info.weight = static_cast<int>(weight);
    }
  } catch (const std::exception&) {
  }
}

}  // namespace

PoolSpool::PoolSpool(const fs::path& spool, std::string pool)
    : pool_(std::move(pool)), root_(spool / pool_) {}

void PoolSpool::ensure() const {
  for (const auto& dir : {inbox(), active(), done(), failed()}) {
    fs::create_directories(dir);
  }
}

std::string PoolSpool::unique_id(std::string_view wanted) const {
  std::lock_guard lock(ids_mutex_);
  const std::string name(wanted);
  const auto hint = next_suffix_.find(name);
  // 1 is the name itself; every suffix below the hint was seen taken.
  for (int n = hint == next_suffix_.end() ? 1 : hint->second;; ++n) {
    std::string id = n == 1 ? name : fmt::format("{}-{}", wanted, n);
    std::error_code ec;
    if (!fs::exists(active() / id, ec) && !fs::exists(done() / id, ec) &&
        !fs::exists(failed() / id, ec)) {
      if (n > 1) {  // only names seen more than once are remembered, and not too many
        if (next_suffix_.size() >= kMaxIdHints && hint == next_suffix_.end()) {
          next_suffix_.clear();
        }
        next_suffix_[name] = n;  // taken once the claim makes active/ID: looked at again
      }
      return id;
    }
  }
}

std::optional<Batch::Info> PoolSpool::claim(std::string_view name, bool cancel_all) const {
  if (name.empty() || name.front() == '.') {
    return std::nullopt;
  }
  return claim(inbox() / std::string(name), name, cancel_all);
}

std::optional<Batch::Info> PoolSpool::claim(const fs::path& source, std::string_view name,
                                            bool cancel_all, int weight) const {
  struct stat st {};
  if (::lstat(source.c_str(), &st) != 0) {
    return std::nullopt;  // already gone (claimed or removed)
  }
  if (!S_ISREG(st.st_mode)) {
    spdlog::warn("pool '{}': {} is {}, not a batch file: ignored", pool_, source.string(),
                 kind_of(st.st_mode));
    return std::nullopt;
  }
  const fs::path as_path{std::string(name)};
  const std::string ext = as_path.extension().string();
  std::string stem = as_path.stem().string();
  if (stem.empty()) {
    stem = std::string(name);
  }
  Batch::Info info;
  info.id = unique_id(stem);
  info.pool = pool_;
  info.pool_dir = root_;
  info.input_name = "input" + ext;
  info.format = format_for(std::string(name));
  info.started = std::chrono::system_clock::now();
  info.cancel_all = cancel_all;
  info.weight = weight;

  const auto dir = active() / info.id;
  fs::create_directory(dir);
  std::string meta = R"({"batch":)";
  common::append_json_string(meta, info.id);
  meta += R"(,"pool":)";
  common::append_json_string(meta, pool_);
  meta += R"(,"source":)";
  common::append_json_string(meta, name);
  fmt::format_to(
      std::back_inserter(meta), R"(,"started_ms":{},"weight":{}}})",
      std::chrono::duration_cast<std::chrono::milliseconds>(info.started.time_since_epoch())
          .count(),
      weight);
  meta += '\n';
  // batch.json first, the input last: a claim that fails on the way (a full disk) leaves the
  // file in the inbox, to be claimed again. batch.json holds only the start time, and a
  // recovery that finds it lost or torn (a power cut) uses the time of the recovery: it is not
  // synced on its own, only its folder is, with the input's new name.
  try {
    common::write_file(dir / "batch.json", meta);
  } catch (const std::exception&) {
    std::error_code ec;
    fs::remove_all(dir, ec);
    throw;
  }
  if (::rename(source.c_str(), (dir / info.input_name).c_str()) != 0) {
    const int err = errno;
    std::error_code ec;
    fs::remove_all(dir, ec);
    if (err == ENOENT) {
      return std::nullopt;
    }
    throw std::system_error(err, std::generic_category(), "claim " + source.string());
  }
  // The rename is atomic; syncing the folders it made and filled makes it durable before any
  // result of the batch is written (on a journalling file system that commits the rename as a
  // whole, the source folder's side with it). For a submission these two are all the syncs its
  // new name needs: it never lived in the inbox under a batch name.
  try {
    common::fsync_dir(dir);
    common::fsync_dir(active());
  } catch (const std::exception&) {
    // Not known durable: undone, so that the file is claimed again from where it was. Should
    // the undoing fail too, the batch is in active/ and the next recovery takes it.
    unclaim(info, source);
    throw;
  }
  return info;
}

void PoolSpool::unclaim(const Batch::Info& info, const fs::path& source) const {
  const auto dir = active() / info.id;
  if (::rename((dir / info.input_name).c_str(), source.c_str()) == 0) {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
}

int open_batch_input(const fs::path& file, std::string& error, bool* fault) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, forever.
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) {
    const int err = errno;
    error = common::error_text(err);
    if (fault != nullptr) {
      *fault = common::is_storage_fault(err);
    }
    return -1;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    error = fmt::format("{} (only a regular file is a batch)", kind_of(st.st_mode));
    ::close(fd);
    return -1;
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return fd;
}

namespace {
constexpr std::string_view kSubmissionPrefix = ".submit-";
}  // namespace

fs::path PoolSpool::submission_temp() const {
  return inbox() /
         fmt::format("{}{}-{:x}.tmp", kSubmissionPrefix, ::getpid(), std::random_device{}());
}

std::size_t PoolSpool::remove_abandoned_submissions() const {
  std::size_t removed = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(inbox(), ec)) {
    const auto name = entry.path().filename().string();
    if (!name.starts_with(kSubmissionPrefix) || !name.ends_with(".tmp")) {
      continue;
    }
    const std::string_view rest = std::string_view(name).substr(kSubmissionPrefix.size());
    pid_t pid = 0;
    const auto [end, err] = std::from_chars(rest.data(), rest.data() + rest.size(), pid);
    if (err != std::errc{} || end == rest.data() || *end != '-') {
      continue;  // not one of ours
    }
    if (pid != ::getpid() && ::kill(pid, 0) != 0 && errno == ESRCH) {
      std::error_code gone;
      if (fs::remove(entry.path(), gone)) {
        ++removed;
      }
    }
  }
  if (removed > 0) {
    spdlog::warn(
        "pool '{}': removed {} partly uploaded submission(s) of a daemon that stopped "
        "while receiving them (their clients were never given a batch id)",
        pool_, removed);
  }
  return removed;
}

std::vector<PoolSpool::Recovered> PoolSpool::recover(
    bool cancel_all, const std::function<bool(const std::string&)>& skip) const {
  std::vector<Recovered> out;
  for (const auto& entry : fs::directory_iterator(active())) {
    // A symlink is never followed out of the spool: not even one planted in active/.
    if (entry.is_symlink() || !entry.is_directory()) {
      if (entry.is_symlink()) {
        spdlog::warn("pool '{}': {} is a symlink, not a batch folder: ignored", pool_,
                     entry.path().string());
      }
      continue;
    }
    const auto& dir = entry.path();
    const std::string id = dir.filename().string();
    if (skip && skip(id)) {
      continue;
    }
    std::string input_name;
    for (const auto& f : fs::directory_iterator(dir)) {
      const auto fname = f.path().filename().string();
      if (fname == "input" || fname.starts_with("input.")) {
        input_name = fname;
      }
    }
    if (input_name.empty()) {
      std::error_code ec;
      fs::remove(dir / "batch.json", ec);
      if (fs::is_empty(dir, ec)) {
        fs::remove(dir, ec);  // a claim interrupted before its input arrived
      } else {
        spdlog::error("pool '{}': {} has no input file: left alone", pool_, dir.string());
      }
      continue;
    }
    if (fs::exists(dir / "summary.json")) {
      // Finished, but the move was interrupted: finish the move.
      const auto summary = common::read_file(dir / "summary.json");
      const bool was_cancelled = summary.find(R"("state":"cancelled")") != std::string::npos;
      common::rename_durably(dir, (was_cancelled ? failed() : done()) / id);
      continue;
    }
    Recovered r;
    r.info.id = id;
    r.info.pool = pool_;
    r.info.pool_dir = root_;
    r.info.input_name = input_name;
    r.info.format = format_for(input_name);
    read_meta(dir, r.info);
    r.info.cancel_all = cancel_all;

    const auto results = read_results(dir / "results.jsonl");
    simdjson::dom::parser parser;
    std::size_t pos = 0;
    while (pos < results.size()) {
      const auto nl = results.find('\n', pos);
      std::string_view line(results.data() + pos, nl - pos);
      pos = nl + 1;
      simdjson::dom::object obj;
      if (parser.parse(line.data(), line.size(), true).get_object().get(obj)) {
        spdlog::warn("{}: unreadable result line skipped", (dir / "results.jsonl").string());
        continue;
      }
      std::string_view rid;
      std::string_view word;
      if (obj["id"].get_string().get(rid) || obj["status"].get_string().get(word)) {
        continue;
      }
      auto status = parse_status(word);
      if (!status) {
        continue;
      }
      r.state.counts.add(*status);
      ++r.recorded[std::string(rid)];
      if (is_failure(*status) && !r.state.first_error) {
        std::string_view error;
        if (obj["error"].get_string().get(error) != simdjson::SUCCESS) {
          error = "";
        }
        r.state.first_error = FirstError{std::string(rid), std::string(error)};
      }
    }
    r.state.cancelled =
        fs::exists(dir / "cancelled") || (cancel_all && r.state.first_error.has_value());
    r.crashes = read_crash_records(dir);
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace barista::batch
