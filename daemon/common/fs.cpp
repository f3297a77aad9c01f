#include "daemon/common/fs.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <limits>
#include <system_error>
#include <utility>

#include <fmt/format.h>

namespace barista::common {
namespace {

[[noreturn]] void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  [[nodiscard]] int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

void write_all(int fd, std::string_view data, const std::filesystem::path& file) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      throw_errno("write " + file.string());
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

// Creates or truncates `file` and writes `content`; the open descriptor, for a caller to sync.
Fd create_with(const std::filesystem::path& file, std::string_view content) {
  Fd fd(::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (fd.get() < 0) {
    throw_errno("create " + file.string());
  }
  write_all(fd.get(), content, file);
  return fd;
}

}  // namespace

void fsync_dir(const std::filesystem::path& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) {
    throw_errno("open " + dir.string());
  }
  if (::fsync(fd.get()) != 0) {
    throw_errno("fsync " + dir.string());
  }
}

DurableWrite::DurableWrite(std::filesystem::path file, std::string_view content)
    : file_(std::move(file)),
      tmp_(file_.parent_path() / fmt::format(".{}.{}.tmp", file_.filename().string(), ::getpid())) {
  try {
    Fd fd = create_with(tmp_, content);
    // Only a start: the write-back runs while the caller goes on. Whether it worked is for
    // commit()'s fsync to say.
    ::sync_file_range(fd.get(), 0, 0, SYNC_FILE_RANGE_WRITE);
    fd_ = fd.release();
  } catch (...) {
    ::unlink(tmp_.c_str());
    throw;
  }
}

DurableWrite::~DurableWrite() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(tmp_.c_str());
  }
}

void DurableWrite::commit() {
  const Fd fd(std::exchange(fd_, -1));
  const auto fail = [&](const char* what) {
    const int error = errno;
    ::unlink(tmp_.c_str());
    errno = error;
    throw_errno(what + tmp_.string());
  };
  if (::fsync(fd.get()) != 0) {
    fail("fsync ");
  }
  if (::rename(tmp_.c_str(), file_.c_str()) != 0) {
    fail("rename ");
  }
  fsync_dir(file_.parent_path());
}

void write_file_durably(const std::filesystem::path& file, std::string_view content) {
  DurableWrite(file, content).commit();
}

void write_file(const std::filesystem::path& file, std::string_view content) {
  create_with(file, content);
}

void rename_durably(const std::filesystem::path& from, const std::filesystem::path& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) {
    throw_errno(fmt::format("rename {} to {}", from.string(), to.string()));
  }
  fsync_dir(to.parent_path());
  if (from.parent_path() != to.parent_path()) {
    fsync_dir(from.parent_path());
  }
}

std::string read_file(const std::filesystem::path& file) {
  Fd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    throw_errno("open " + file.string());
  }
  return read_up_to(fd.get(), std::numeric_limits<std::size_t>::max(), file.string());
}

std::string read_up_to(int fd, std::size_t limit, const std::string& what) {
  std::string out;
  char buf[65536];
  while (out.size() < limit) {
    const ssize_t n = ::read(fd, buf, std::min(sizeof buf, limit - out.size()));
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      throw_errno("read " + what);
    }
    if (n == 0) {
      break;
    }
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

std::string iso8601_utc(std::chrono::system_clock::time_point t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch());
  const auto secs = static_cast<std::time_t>(ms.count() / 1000);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms.count() % 1000);
}

}  // namespace barista::common
