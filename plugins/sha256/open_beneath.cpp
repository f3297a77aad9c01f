#include "open_beneath.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <string_view>

namespace barista_sha256 {
namespace {

// O_NONBLOCK: opening a FIFO must not hang the worker (the caller refuses non-regular files).
constexpr int kOpenFlags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
// openat2 says EAGAIN when a concurrent rename might have let `..` escape; trying again is safe.
constexpr int kRaceRetries = 8;

std::atomic<bool> openat2_missing{false};

int open_with_openat2(int root_fd, const std::string& path) {
#ifdef SYS_openat2
  open_how how{};
  how.flags = kOpenFlags;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  for (int attempt = 0;; ++attempt) {
    const long fd = ::syscall(SYS_openat2, root_fd, path.c_str(), &how, sizeof(how));
    if (fd >= 0) {
      return static_cast<int>(fd);
    }
    if (errno != EAGAIN || attempt == kRaceRetries) {
      return -errno;
    }
  }
#else
  (void)root_fd;
  (void)path;
  return -ENOSYS;
#endif
}

// Without openat2 (Linux < 5.6) we cannot follow symlinks safely, so we follow none: `..`,
// absolute paths and every symlink are refused, and each folder is opened with O_NOFOLLOW.
int open_component_by_component(int root_fd, const std::string& path) {
  if (!path.empty() && path.front() == '/') {
    return -EXDEV;
  }
  int dir = root_fd;
  auto close_dir = [&] {
    if (dir != root_fd) {
      ::close(dir);
    }
  };
  std::string_view rest(path);
  for (;;) {
    const auto slash = rest.find('/');
    const std::string name(rest.substr(0, slash));
    const bool last = slash == std::string_view::npos ||
                      rest.find_first_not_of('/', slash) == std::string_view::npos;
    rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
    if (name == "..") {
      close_dir();
      return -EXDEV;
    }
    if (name.empty() || name == ".") {
      if (!last) {
        continue;
      }
    }
    const char* component = name.empty() ? "." : name.c_str();
    const int flags =
        last ? kOpenFlags | O_NOFOLLOW : O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
    const int fd = ::openat(dir, component, flags);
    int err = fd < 0 ? errno : 0;
    if (err == ENOTDIR && !last) {
      // O_PATH|O_NOFOLLOW on a symlink to a folder says ENOTDIR: report it as a refused link.
      struct stat st {};
      if (::fstatat(dir, component, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) {
        err = ELOOP;
      }
    }
    close_dir();
    if (fd < 0) {
      return -err;
    }
    if (last) {
      return fd;
    }
    dir = fd;
  }
}

}  // namespace

int open_beneath(int root_fd, const std::string& path) {
  if (!openat2_missing.load(std::memory_order_relaxed)) {
    const int fd = open_with_openat2(root_fd, path);
    if (fd != -ENOSYS) {
      return fd;
    }
    openat2_missing.store(true, std::memory_order_relaxed);
  }
  return open_component_by_component(root_fd, path);
}

}  // namespace barista_sha256
