#include "tests/unit/redis/redis_server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace barista::testing {
namespace {

constexpr std::chrono::seconds kStartTimeout{10};
constexpr int kStartAttempts = 5;

// Closes a descriptor at the end of a scope.
struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) {
      ::close(fd);
    }
  }
};

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

// A port nobody listens on right now: the kernel picks one for a socket bound to port 0. Another
// process may take it before the server binds it; start() notices and the caller tries again.
std::uint16_t free_port() {
  const Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (s.fd < 0) {
    throw std::system_error(errno, std::generic_category(), "socket");
  }
  sockaddr_in addr = loopback(0);
  if (::bind(s.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    throw std::system_error(errno, std::generic_category(), "bind 127.0.0.1:0");
  }
  socklen_t len = sizeof addr;
  if (::getsockname(s.fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    throw std::system_error(errno, std::generic_category(), "getsockname");
  }
  return ntohs(addr.sin_port);
}

std::filesystem::path make_temp_dir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "barista-redis-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) {
    throw std::system_error(errno, std::generic_category(), "mkdtemp");
  }
  return tmpl;
}

}  // namespace

bool RedisServer::available() { return ::access(kBinary, X_OK) == 0; }

RedisServer::RedisServer(std::string appendfsync)
    : dir_(make_temp_dir()), appendfsync_(std::move(appendfsync)) {
  for (int attempt = 0; attempt < kStartAttempts; ++attempt) {
    port_ = free_port();
    if (start()) {
      return;
    }
  }
  const std::string tail = log();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
  throw std::runtime_error("redis-server did not start; its log:\n" + tail);
}

RedisServer::~RedisServer() {
  try {
    stop();
  } catch (...) {
    // A destructor must not throw; the child was killed or is already gone.
  }
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

std::string RedisServer::url() const { return "redis://127.0.0.1:" + std::to_string(port_) + "/0"; }

std::string RedisServer::log() const {
  std::ifstream in(dir_ / "redis.log", std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

bool RedisServer::start() {
  // Everything the child needs is built before fork(): after it, only exec-safe calls.
  const std::string port = std::to_string(port_);
  const std::string dir = dir_.string();
  const std::string log_file = (dir_ / "redis.log").string();
  const std::vector<std::pair<std::string, std::string>> options = {
      {"--port", port},
      {"--bind", "127.0.0.1"},
      {"--dir", dir},
      {"--appendonly", "yes"},
      {"--appendfsync", appendfsync_},
      {"--save", ""},  // no RDB snapshots: the append-only file alone carries the data
      {"--daemonize", "no"},
      {"--logfile", ""},  // stdout, which goes to redis.log
  };
  std::vector<std::string> args = {kBinary};
  for (const auto& [name, value] : options) {
    args.push_back(name);
    args.push_back(value);
  }
  std::vector<char*> argv;
  for (auto& a : args) {
    argv.push_back(a.data());
  }
  argv.push_back(nullptr);
  const pid_t parent = ::getpid();

  const pid_t pid = ::fork();
  if (pid < 0) {
    throw std::system_error(errno, std::generic_category(), "fork");
  }
  if (pid == 0) {
    // Die with the test process, so that a crashed test leaves no server behind.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) {
      ::_exit(127);
    }
    const int null_fd = ::open("/dev/null", O_RDONLY);
    const int log_fd = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (null_fd < 0 || log_fd < 0) {
      ::_exit(127);
    }
    ::dup2(null_fd, STDIN_FILENO);
    ::dup2(log_fd, STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    ::execv(kBinary, argv.data());
    ::_exit(127);
  }
  pid_ = pid;

  const auto deadline = std::chrono::steady_clock::now() + kStartTimeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;  // it exited: most likely the port was taken meanwhile
      return false;
    }
    if (ping(std::chrono::milliseconds(200))) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  reap(std::chrono::milliseconds(0));
  return false;
}

bool RedisServer::ping(std::chrono::milliseconds timeout) const {
  const Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (s.fd < 0) {
    return false;
  }
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  ::setsockopt(s.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(s.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in addr = loopback(port_);
  if (::connect(s.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return false;
  }
  constexpr std::string_view kPing = "PING\r\n";
  if (::send(s.fd, kPing.data(), kPing.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(kPing.size())) {
    return false;
  }
  // "+PONG\r\n" once ready; "-LOADING ..." while the append-only file is being read.
  char buf[64];
  const ssize_t n = ::recv(s.fd, buf, sizeof buf, 0);
  return n >= 5 && std::string_view(buf, static_cast<std::size_t>(n)).starts_with("+PONG");
}

void RedisServer::reap(std::chrono::milliseconds grace) {
  if (pid_ <= 0) {
    return;
  }
  const auto deadline = std::chrono::steady_clock::now() + grace;
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_ || (r < 0 && errno == ECHILD)) {
      pid_ = -1;
      return;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(pid_, SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

void RedisServer::kill9() {
  if (pid_ <= 0) {
    return;
  }
  ::kill(pid_, SIGKILL);
  reap(std::chrono::milliseconds(0));
}

void RedisServer::stop() {
  if (pid_ <= 0) {
    return;
  }
  ::kill(pid_, SIGTERM);
  reap(std::chrono::seconds(5));
}

void RedisServer::restart() {
  stop();
  // The server binds with SO_REUSEADDR, so the port is normally free again at once; a few tries
  // ride out a server that is slow to let go of it.
  for (int attempt = 0; attempt < kStartAttempts; ++attempt) {
    if (start()) {
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  throw std::runtime_error("redis-server did not restart on port " + std::to_string(port_) +
                           "; its log:\n" + log());
}

}  // namespace barista::testing
