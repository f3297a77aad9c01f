// sha256: the output is the lowercase hex SHA-256 of a file beneath `root` (the payload is its
// path relative to `root`), or, with `input: payload`, of the payload text itself.
//
// config:
//   root: /abs/folder    required unless `input: payload`; paths leaving it are refused
//   input: file          `file` (default) or `payload`

#include <barista/sdk.hpp>

#include "open_beneath.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace {

using barista::ConfigError;
using barista::Outcome;

constexpr std::size_t kBlockSize = std::size_t{256} * 1024;

std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

std::string to_hex(const unsigned char* digest, unsigned int size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(std::size_t{size} * 2, '\0');
  for (unsigned int i = 0; i < size; ++i) {
    out[2 * i] = kDigits[digest[i] >> 4U];
    out[2 * i + 1] = kDigits[digest[i] & 0x0FU];
  }
  return out;
}

struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxDeleter>;

MdCtx new_md_ctx() {
  MdCtx ctx(EVP_MD_CTX_new());
  if (!ctx) {
    throw std::runtime_error("sha256: out of memory for a digest context");
  }
  return ctx;
}

class PayloadHasher final : public barista::Processor {
 public:
  Outcome process(barista::Context& /*ctx*/, const barista::Job& job) override {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    if (EVP_Digest(job.payload.data(), job.payload.size(), digest, &size, EVP_sha256(), nullptr) !=
        1) {
      return Outcome::fail("SHA-256 computation failed");
    }
    return Outcome::ok(to_hex(digest, size));
  }
};

// A folder fd, closed with its owner.
class RootFd {
 public:
  explicit RootFd(int fd) : fd_(fd) {}
  RootFd(const RootFd&) = delete;
  RootFd& operator=(const RootFd&) = delete;
  RootFd(RootFd&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  RootFd& operator=(RootFd&&) = delete;
  ~RootFd() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  [[nodiscard]] int get() const noexcept { return fd_; }

 private:
  int fd_;
};

class FileHasher final : public barista::Processor {
 public:
  // The folder is opened once, so that every job resolves against the same one even if its path
  // is later renamed or replaced.
  explicit FileHasher(RootFd root)
      : root_(std::move(root)), md_(new_md_ctx()), block_(kBlockSize) {}

  Outcome process(barista::Context& ctx, const barista::Job& job) override {
    if (ctx.cancelled()) {
      return Outcome::fail("cancelled");
    }
    const std::string path(job.payload);
    if (path.empty()) {
      return Outcome::fatal("empty path");
    }
    if (path.find('\0') != std::string::npos) {
      return Outcome::fatal("path contains a NUL byte");
    }
    const int fd = barista_sha256::open_beneath(root_.get(), path);
    if (fd < 0) {
      return open_failure(path, -fd);
    }
    struct FdCloser {
      int fd;
      ~FdCloser() { ::close(fd); }
    } closer{fd};
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      return Outcome::fail("cannot stat " + path + ": " + errno_text(errno));
    }
    if (!S_ISREG(st.st_mode)) {
      return Outcome::fatal("not a regular file: " + path);
    }
    return hash(ctx, fd, path);
  }

 private:
  static Outcome open_failure(const std::string& path, int err) {
    switch (err) {
      case ENOENT:
        return Outcome::fatal("no such file: " + path);
      case EXDEV:
        return Outcome::fatal("path outside root: " + path);
      case ELOOP:
        return Outcome::fatal("symbolic link refused: " + path);
      case EACCES:
      case EPERM:
      case ENOTDIR:
      case ENAMETOOLONG:
        return Outcome::fatal("cannot open " + path + ": " + errno_text(err));
      default:  // out of fds or memory, or a rename race: may well work on a retry
        return Outcome::fail("cannot open " + path + ": " + errno_text(err));
    }
  }

  Outcome hash(const barista::Context& ctx, int fd, const std::string& path) {
    if (EVP_DigestInit_ex(md_.get(), EVP_sha256(), nullptr) != 1) {
      return Outcome::fail("SHA-256 computation failed");
    }
    for (;;) {
      const ssize_t n = ::read(fd, block_.data(), block_.size());
      if (n == 0) {
        break;
      }
      if (n < 0) {
        if (errno == EINTR) {
          continue;
        }
        return Outcome::fail("cannot read " + path + ": " + errno_text(errno));
      }
      if (EVP_DigestUpdate(md_.get(), block_.data(), static_cast<std::size_t>(n)) != 1) {
        return Outcome::fail("SHA-256 computation failed");
      }
      if (ctx.cancelled()) {
        return Outcome::fail("cancelled");
      }
      if (ctx.expired()) {
        return Outcome::fail("deadline exceeded");
      }
    }
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    if (EVP_DigestFinal_ex(md_.get(), digest, &size) != 1) {
      return Outcome::fail("SHA-256 computation failed");
    }
    return Outcome::ok(to_hex(digest, size));
  }

  RootFd root_;
  MdCtx md_;
  std::vector<unsigned char> block_;
};

std::unique_ptr<barista::Processor> make_processor(const barista::PluginConfig& cfg) {
  cfg.expect_only({"root", "input"});
  const auto input = cfg.get_string("input", "file");
  const auto* root_value = cfg.find("root");
  if (input == "payload") {
    if (root_value != nullptr) {
      throw ConfigError("root", "has no use with 'input: payload' (the payload itself is hashed)",
                        root_value->line, root_value->column);
    }
    return std::make_unique<PayloadHasher>();
  }
  if (input != "file") {
    const auto* v = cfg.find("input");
    throw ConfigError("input", "expected 'file' or 'payload', got '" + input + "'", v->line,
                      v->column);
  }
  if (root_value == nullptr) {
    throw ConfigError("root", "is required: the folder that payload paths are relative to");
  }
  const auto root = cfg.get_string("root", "");
  if (root.empty() || root.front() != '/') {
    throw ConfigError("root", "must be an absolute path, got '" + root + "'", root_value->line,
                      root_value->column);
  }
  RootFd fd(::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) {
    throw ConfigError("root", "cannot open folder '" + root + "': " + errno_text(errno),
                      root_value->line, root_value->column);
  }
  return std::make_unique<FileHasher>(std::move(fd));
}

}  // namespace

BARISTA_PLUGIN("sha256", "1.0.0", make_processor)
