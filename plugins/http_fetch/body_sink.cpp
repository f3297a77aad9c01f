#include "body_sink.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

namespace barista_http {
namespace {

constexpr int kCreateFlags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
constexpr mode_t kFileMode = 0644;

// Several workers may fetch the same URL at once: each writes its own temporary file.
std::atomic<std::uint64_t> temp_counter{0};

// The name has no slash, so only a symlink planted under that name could lead elsewhere:
// O_EXCL | O_NOFOLLOW refuse it, and openat2 also refuses any resolution leaving the folder.
int create_beneath(int dir_fd, const std::string& name) {
#ifdef SYS_openat2
  open_how how{};
  how.flags = kCreateFlags;
  how.mode = kFileMode;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  const long created = ::syscall(SYS_openat2, dir_fd, name.c_str(), &how, sizeof(how));
  if (created >= 0 || errno != ENOSYS) {
    return created >= 0 ? static_cast<int>(created) : -errno;
  }
#endif
  const int fd = ::openat(dir_fd, name.c_str(), kCreateFlags, kFileMode);
  return fd >= 0 ? fd : -errno;
}

}  // namespace

std::string body_file_name(std::string_view url) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(url.data(), url.size(), digest, &size, EVP_sha256(), nullptr);
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(static_cast<std::size_t>(size) * 2);
  for (unsigned int i = 0; i < size; ++i) {
    out += kDigits[digest[i] >> 4U];
    out += kDigits[digest[i] & 0x0FU];
  }
  return out;
}

int BodySink::begin(std::string_view url) {
  abort();
  bytes_ = 0;
  if (dir_fd_ < 0) {
    return 0;
  }
  final_name_ = body_file_name(url);
  // A leading dot: tools that watch the folder skip it, as Barista's own inbox does.
  temp_name_ = "." + final_name_ + "." + std::to_string(::getpid()) + "." +
               std::to_string(temp_counter.fetch_add(1, std::memory_order_relaxed)) + ".tmp";
  const int fd = create_beneath(dir_fd_, temp_name_);
  if (fd < 0) {
    temp_name_.clear();
    return -fd;
  }
  file_fd_ = fd;
  return 0;
}

int BodySink::write(const char* data, std::size_t size) {
  bytes_ += size;
  while (file_fd_ >= 0 && size > 0) {
    const ssize_t n = ::write(file_fd_, data, size);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return errno;
    }
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return 0;
}

int BodySink::commit() {
  if (file_fd_ < 0) {
    return 0;
  }
  const int close_rc = ::close(file_fd_);
  file_fd_ = -1;
  if (close_rc != 0) {
    const int err = errno;
    abort();
    return err;
  }
  // rename() replaces whatever has the final name (even a symlink) without following it.
  if (::renameat(dir_fd_, temp_name_.c_str(), dir_fd_, final_name_.c_str()) != 0) {
    const int err = errno;
    abort();
    return err;
  }
  temp_name_.clear();
  return 0;
}

void BodySink::abort() {
  if (file_fd_ >= 0) {
    ::close(file_fd_);
    file_fd_ = -1;
  }
  if (!temp_name_.empty()) {
    ::unlinkat(dir_fd_, temp_name_.c_str(), 0);
    temp_name_.clear();
  }
}

}  // namespace barista_http
