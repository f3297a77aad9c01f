#include "tests/unit/plugins/http_test_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <ctime>
#include <stdexcept>

namespace barista::bundled_plugins_test {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// The value of header `name` (lowercase) in a request head, "" when absent.
std::string header(std::string_view head, std::string_view name) {
  std::size_t pos = head.find("\r\n");
  while (pos != std::string_view::npos) {
    const auto start = pos + 2;
    const auto end = head.find("\r\n", start);
    const auto line = head.substr(start, end == std::string_view::npos ? end : end - start);
    const auto colon = line.find(':');
    if (colon != std::string_view::npos && lower(line.substr(0, colon)) == name) {
      auto value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') {
        value.remove_prefix(1);
      }
      return std::string(value);
    }
    pos = end;
  }
  return {};
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

std::size_t number_after(std::string_view path, std::string_view prefix) {
  return static_cast<std::size_t>(std::stoull(std::string(path.substr(prefix.size()))));
}

}  // namespace

std::string pattern_body(std::size_t size) {
  std::string body(size, '\0');
  for (std::size_t i = 0; i < size; ++i) {
    body[i] = static_cast<char>('a' + i % 26);
  }
  return body;
}

HttpTestServer::HttpTestServer() {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      ::listen(listen_fd_, 64) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    if (listen_fd_ >= 0) {
      ::close(listen_fd_);
    }
    throw std::runtime_error("test HTTP server: cannot listen on 127.0.0.1");
  }
  port_ = ntohs(addr.sin_port);
  stop_fd_ = ::eventfd(0, EFD_CLOEXEC);
  acceptor_ = std::thread([this] { accept_loop(); });
}

HttpTestServer::~HttpTestServer() {
  const std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(stop_fd_, &one, sizeof(one));
  acceptor_.join();
  ::close(listen_fd_);
  ::close(stop_fd_);
}

std::string HttpTestServer::url(std::string_view path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + std::string(path);
}

std::vector<std::string> HttpTestServer::user_agents() const {
  std::lock_guard lock(mutex_);
  return user_agents_;
}

int HttpTestServer::requests() const {
  std::lock_guard lock(mutex_);
  return static_cast<int>(user_agents_.size());
}

void HttpTestServer::accept_loop() {
  while (wait_for(listen_fd_, POLLIN)) {
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      continue;
    }
    ++connections_;
    handlers_.emplace_back([this, fd] {
      serve(fd);
      ::close(fd);
    });
  }
  for (auto& handler : handlers_) {
    handler.join();
  }
}

bool HttpTestServer::wait_for(int fd, short events, int timeout_ms) const {
  pollfd fds[2] = {{fd, events, 0}, {stop_fd_, POLLIN, 0}};
  int n = 0;
  do {
    n = ::poll(fds, 2, timeout_ms);  // a negative fd is ignored: a plain sleep
  } while (n < 0 && errno == EINTR);
  return fds[1].revents == 0;
}

bool HttpTestServer::send_all(int fd, std::string_view data) const {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<std::size_t>(n));
    } else if (n < 0 && errno == EAGAIN) {
      if (!wait_for(fd, POLLOUT)) {
        return false;
      }
    } else if (n < 0 && errno != EINTR) {
      return false;  // the client went away
    }
  }
  return true;
}

void HttpTestServer::serve(int fd) {
  std::string buffer;
  for (;;) {
    std::size_t end = 0;
    while ((end = buffer.find("\r\n\r\n")) == std::string::npos) {
      if (!wait_for(fd, POLLIN)) {
        return;
      }
      char chunk[4096];
      const ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        return;
      }
      if (n > 0) {
        buffer.append(chunk, static_cast<std::size_t>(n));
      }
    }
    const std::string head = buffer.substr(0, end);
    buffer.erase(0, end + 4);
    // "GET /path HTTP/1.1"
    const auto first_space = head.find(' ');
    const auto second_space = head.find(' ', first_space + 1);
    const auto path = head.substr(first_space + 1, second_space - first_space - 1);
    {
      std::lock_guard lock(mutex_);
      user_agents_.push_back(header(head, "user-agent"));
    }
    if (!respond(fd, path) || lower(header(head, "connection")) == "close") {
      return;
    }
  }
}

bool HttpTestServer::respond(int fd, const std::string& path) {
  auto reply = [&](int status, std::string_view reason, std::string_view body,
                   std::string_view extra_headers = {}) {
    std::string message = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) +
                          "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" +
                          std::string(extra_headers) + "\r\n" + std::string(body);
    return send_all(fd, message);
  };
  if (path == "/hello") {
    return reply(200, "OK", "hello world\n");
  }
  if (path == "/busy") {
    return reply(429, "Too Many Requests", "slow down\n");
  }
  if (path == "/unavailable") {
    return reply(503, "Service Unavailable", "try later\n");
  }
  if (starts_with(path, "/busy-for/")) {
    return reply(429, "Too Many Requests", "slow down\n",
                 "Retry-After: " + path.substr(10) + "\r\n");
  }
  if (starts_with(path, "/unavailable-for/")) {
    return reply(503, "Service Unavailable", "try later\n",
                 "Retry-After: " + path.substr(17) + "\r\n");
  }
  if (path == "/busy-until-date") {
    // An HTTP date two minutes from now.
    const std::time_t later = std::time(nullptr) + 120;
    std::tm tm{};
    ::gmtime_r(&later, &tm);
    char date[64];
    std::strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    return reply(429, "Too Many Requests", "slow down\n",
                 std::string("Retry-After: ") + date + "\r\n");
  }
  if (path == "/redirect") {
    return reply(302, "Found", "", "Location: /hello\r\n");
  }
  if (starts_with(path, "/slow/")) {
    const auto ms = static_cast<int>(number_after(path, "/slow/"));
    // Interrupted only by the server stopping: the client giving up is not noticed here.
    return wait_for(-1, 0, ms) && reply(200, "OK", "late");
  }
  if (starts_with(path, "/bytes/")) {
    return reply(200, "OK", pattern_body(number_after(path, "/bytes/")));
  }
  if (starts_with(path, "/stream/")) {
    send_all(fd, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" +
                     pattern_body(number_after(path, "/stream/")));
    return false;
  }
  if (path == "/drip") {
    if (!send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n")) {
      return false;
    }
    const std::string piece(100, 'd');
    // Bounded, so that a test that forgets to stop the fetch still ends.
    for (int i = 0; i < 1500 && wait_for(-1, 0, 20) && send_all(fd, piece); ++i) {
    }
    return false;
  }
  return reply(404, "Not Found", "no such route\n");
}

}  // namespace barista::bundled_plugins_test
