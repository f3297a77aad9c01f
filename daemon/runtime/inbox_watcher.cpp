#include "daemon/runtime/inbox_watcher.hpp"

#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <system_error>

#include <spdlog/spdlog.h>

namespace barista::runtime {

InboxWatcher::InboxWatcher(Handler handler) : handler_(std::move(handler)) {
  fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd_ < 0) {
    throw std::system_error(errno, std::generic_category(), "inotify_init1");
  }
}

InboxWatcher::~InboxWatcher() { ::close(fd_); }

void InboxWatcher::watch(const std::string& pool, const std::filesystem::path& inbox) {
  const int wd = ::inotify_add_watch(fd_, inbox.c_str(), IN_CLOSE_WRITE | IN_MOVED_TO | IN_ONLYDIR);
  if (wd < 0) {
    throw std::system_error(errno, std::generic_category(), "watch " + inbox.string());
  }
  pools_by_watch_[wd] = pool;
  watches_[pool] = {wd, inbox};
  scan(pool, inbox);
}

void InboxWatcher::unwatch(const std::string& pool) {
  auto it = watches_.find(pool);
  if (it == watches_.end()) {
    return;
  }
  ::inotify_rm_watch(fd_, it->second.first);
  pools_by_watch_.erase(it->second.first);
  watches_.erase(it);
}

void InboxWatcher::scan(const std::string& pool, const std::filesystem::path& inbox) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(inbox, ec)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  for (const auto& name : names) {
    handler_(pool, name);
  }
}

void InboxWatcher::handle_events() {
  alignas(inotify_event) char buf[64 * 1024];
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
      handler_(it->second, std::string_view(ev->name));
    }
  }
  if (overflow) {
    // Events were lost: look at every inbox again.
    spdlog::warn("inotify queue overflowed: rescanning every inbox");
    for (const auto& [pool, watch] : watches_) {
      scan(pool, watch.second);
    }
  }
}

}  // namespace barista::runtime
