#include "daemon/runtime/inbox_watcher.hpp"

#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <system_error>

#include <spdlog/spdlog.h>

namespace barista::runtime {
namespace {

// An entry made in place (mkdir, mkfifo, symlink, bind) sends IN_CREATE and nothing else, so
// it is reported then, to be refused with a log line. A regular file is created empty: it is
// reported when it is closed after writing (IN_CLOSE_WRITE) or renamed in (IN_MOVED_TO).
bool created_not_regular(const inotify_event& ev, const std::filesystem::path& inbox) {
  if ((ev.mask & IN_ISDIR) != 0) {
    return true;
  }
  if (ev.name[0] == '.') {
    return false;  // dot-names are never batches: no need to look
  }
  struct stat st {};
  return ::lstat((inbox / ev.name).c_str(), &st) == 0 && !S_ISREG(st.st_mode);
}

}  // namespace

InboxWatcher::InboxWatcher(Handler handler) : handler_(std::move(handler)) {
  fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd_ < 0) {
    throw std::system_error(errno, std::generic_category(), "inotify_init1");
  }
}

InboxWatcher::~InboxWatcher() { ::close(fd_); }

void InboxWatcher::watch(const std::string& pool, const std::filesystem::path& inbox) {
  Found found;
  {
    std::lock_guard lock(mutex_);
    const int wd = ::inotify_add_watch(fd_, inbox.c_str(),
                                       IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_ONLYDIR);
    if (wd < 0) {
      throw std::system_error(errno, std::generic_category(), "watch " + inbox.string());
    }
    pools_by_watch_[wd] = pool;
    watches_[pool] = {wd, inbox};
    scan(pool, inbox, found);
  }
  for (const auto& [p, name] : found) {
    handler_(p, name);
  }
}

void InboxWatcher::unwatch(const std::string& pool) {
  std::lock_guard lock(mutex_);
  auto it = watches_.find(pool);
  if (it == watches_.end()) {
    return;
  }
  ::inotify_rm_watch(fd_, it->second.first);
  pools_by_watch_.erase(it->second.first);
  watches_.erase(it);
}

void InboxWatcher::scan(const std::string& pool, const std::filesystem::path& inbox, Found& out) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(inbox, ec)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  for (auto& name : names) {
    out.emplace_back(pool, std::move(name));
  }
}

void InboxWatcher::handle_events() {
  alignas(inotify_event) char buf[64 * 1024];
  Found found;
  {
    std::lock_guard lock(mutex_);
    bool overflow = false;
    for (;;) {
      const ssize_t n = ::read(fd_, buf, sizeof buf);
      if (n < 0) {
        if (errno == EINTR) {
          continue;
        }
        if (errno == EAGAIN) {
          break;
        }
        throw std::system_error(errno, std::generic_category(), "read inotify");
      }
      for (char* p = buf; p < buf + n;) {
        auto* ev = reinterpret_cast<inotify_event*>(p);
        p += sizeof(inotify_event) + ev->len;
        if ((ev->mask & IN_Q_OVERFLOW) != 0) {
          overflow = true;
          continue;
        }
        auto it = pools_by_watch_.find(ev->wd);
        if (it == pools_by_watch_.end() || ev->len == 0) {
          continue;
        }
        if ((ev->mask & IN_CREATE) != 0) {
          auto watch = watches_.find(it->second);
          if (watch == watches_.end() || !created_not_regular(*ev, watch->second.second)) {
            continue;
          }
        }
        found.emplace_back(it->second, std::string(ev->name));
      }
    }
    if (overflow) {
      // Events were lost: look at every inbox again.
      spdlog::warn("inotify queue overflowed: rescanning every inbox");
      found.clear();
      for (const auto& [pool, watch] : watches_) {
        scan(pool, watch.second, found);
      }
    }
  }
  for (const auto& [pool, name] : found) {
    handler_(pool, name);
  }
}

}  // namespace barista::runtime
