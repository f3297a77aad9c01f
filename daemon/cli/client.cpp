#include "daemon/cli/client.hpp"

#include "daemon/cli/cli_error.hpp"
#include "daemon/common/error_text.hpp"
#include "daemon/common/json.hpp"
#include "daemon/control/framing.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>
#include <vector>

#include <fmt/format.h>

namespace barista::cli {
namespace {

constexpr std::size_t kChunkBytes = 256UL * 1024;

// Why connect() failed, in the words an operator needs to fix it.
std::string connect_problem(int error, const std::filesystem::path& socket) {
  switch (error) {
    case ENOENT:
      return "no such file (is the service running?)";
    case EACCES:
    case EPERM:
      return "permission denied (run as a user who may use the socket: root or a member of its "
             "group)";
    case ENOTDIR:
      return "a part of the path is not a folder";
    case ECONNREFUSED: {
      struct stat st {};
      if (::lstat(socket.c_str(), &st) == 0 && !S_ISSOCK(st.st_mode)) {
        return "not a socket (is that the right path?)";
      }
      return "connection refused (a stale socket: baristad is not running)";
    }
    case EAGAIN:
      return "baristad is too busy to accept the connection (try again)";
    default:
      return common::error_text(error);
  }
}

[[noreturn]] void lost(const std::filesystem::path& socket, int error) {
  throw CliError(kExitRefused, fmt::format("lost the connection to baristad at {}: {}",
                                           socket.string(), common::error_text(error)));
}

}  // namespace

ControlClient::ControlClient(std::filesystem::path socket) : socket_(std::move(socket)) {
  const auto reach_error = [&](const std::string& why) {
    return CliError(kExitRefused,
                    fmt::format("cannot reach baristad at {}: {}", socket_.string(), why));
  };
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_.native().size() >= sizeof addr.sun_path) {
    throw reach_error(fmt::format("the path is longer than the {} bytes a socket path may have",
                                  sizeof addr.sun_path - 1));
  }
  std::memcpy(addr.sun_path, socket_.c_str(), socket_.native().size() + 1);
  fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    throw reach_error(common::error_text(errno));
  }
  if (::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    const int error = errno;
    ::close(fd_);
    fd_ = -1;
    throw reach_error(connect_problem(error, socket_));
  }
}

ControlClient::~ControlClient() {
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

void ControlClient::set_read_timeout(std::chrono::seconds timeout) {
  timeval tv{static_cast<time_t>(timeout.count()), 0};
  ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

void ControlClient::send_request(std::string_view json) {
  std::string line(json);
  line += '\n';
  if (!send_all(line)) {
    lost(socket_, EPIPE);
  }
}

bool ControlClient::send_all(std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      if (errno == EPIPE || errno == ECONNRESET) {
        return false;  // the daemon refused and stopped reading; its answer is waiting
      }
      lost(socket_, errno);
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

bool ControlClient::send_body(int fd, std::string_view source,
                              const std::function<void(std::string_view)>& observe) {
  std::vector<char> chunk(kChunkBytes);
  for (;;) {
    const ssize_t got = ::read(fd, chunk.data(), chunk.size());
    if (got < 0 && errno == EINTR) {
      continue;
    }
    if (got < 0) {
      // Thrown before the end marker: the daemon discards the part already sent.
      throw CliError(kExitRefused,
                     fmt::format("cannot read {}: {}", source, common::error_text(errno)));
    }
    const std::string_view data(chunk.data(), static_cast<std::size_t>(got));
    if (observe) {
      observe(data);
    }
    if (!send_all(control::chunk_header(data.size())) || !send_all(data)) {
      return false;
    }
    if (got == 0) {
      return true;  // that was the end marker
    }
  }
}

bool ControlClient::receive_more() {
  char buf[64 * 1024];
  for (;;) {
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n > 0) {
      buffer_.append(buf, static_cast<std::size_t>(n));
      return true;
    }
    if (n == 0) {
      return false;
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      throw CliError(kExitRefused,
                     fmt::format("baristad at {} stopped answering", socket_.string()));
    }
    // The daemon closed with our bytes unread (it refused early): what it sent is read already.
    if (errno == ECONNRESET) {
      return false;
    }
    lost(socket_, errno);
  }
}

std::optional<std::string> ControlClient::read_line() {
  std::size_t searched = 0;
  for (;;) {
    const auto nl = buffer_.find('\n', searched);
    if (nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      return line;
    }
    searched = buffer_.size();
    if (!receive_more()) {
      if (buffer_.empty()) {
        return std::nullopt;
      }
      std::string line = std::move(buffer_);
      buffer_.clear();
      return line;
    }
  }
}

void ControlClient::copy_rest_to(int fd) {
  do {
    write_all(fd, buffer_);
    buffer_.clear();
  } while (receive_more());
}

Json parse_reply(const std::string& line) {
  auto reply = Json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!reply.is_object()) {
    throw CliError(kExitRefused, "baristad sent a reply that is not a JSON object: " + line);
  }
  return reply;
}

void check_ok(const Json& reply) {
  if (value_or(reply, "ok", false)) {
    return;
  }
  const auto code = value_or<std::int64_t>(reply, "code", kExitRefused);
  const auto message = value_or<std::string_view>(reply, "error", "baristad refused the request");
  throw CliError(static_cast<int>(code), std::string(message));
}

Json expect_ok(ControlClient& client, std::string& line, std::string_view what) {
  auto got = client.read_line();
  if (!got) {
    throw CliError(kExitRefused, fmt::format("baristad at {} closed the connection without "
                                             "answering the {} request",
                                             client.socket().string(), what));
  }
  line = std::move(*got);
  auto reply = parse_reply(line);
  check_ok(reply);
  return reply;
}

void write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      if (errno == EPIPE) {
        return;
      }
      throw CliError(kExitFailed,
                     fmt::format("cannot write the output: {}", common::error_text(errno)));
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

std::string request_json(
    std::string_view cmd,
    std::initializer_list<std::pair<std::string_view, std::string_view>> fields) {
  std::string out = R"({"cmd":)";
  common::append_json_string(out, cmd);
  for (const auto& [key, value] : fields) {
    out += ',';
    common::append_json_string(out, key);
    out += ':';
    common::append_json_string(out, value);
  }
  out += '}';
  return out;
}

JitteredBackoff::JitteredBackoff(std::chrono::milliseconds first, std::chrono::milliseconds max)
    : next_(first),
      max_(max),
      random_(static_cast<unsigned>(::getpid()) ^
              static_cast<unsigned>(std::chrono::steady_clock::now().time_since_epoch().count())) {}

void JitteredBackoff::sleep() {
  const auto half = next_.count() / 2;
  std::this_thread::sleep_for(std::chrono::milliseconds(
      half + static_cast<std::int64_t>(random_() % static_cast<unsigned>(half + 1))));
  next_ = std::min(next_ * 2, max_);
}

}  // namespace barista::cli
