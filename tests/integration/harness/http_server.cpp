#include "tests/integration/harness/http_server.hpp"

#include "tests/integration/harness/daemon_harness.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <thread>

namespace barista::itest {
namespace {

std::string reason_of(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 404:
      return "Not Found";
    case 429:
      return "Too Many Requests";
    case 503:
      return "Service Unavailable";
    default:
      return "Status";
  }
}

void send_all(int fd, const std::string& data) {
  std::size_t sent = 0;
  while (sent < data.size()) {
    const ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return;  // the client went away: nothing to do about it
    }
    sent += static_cast<std::size_t>(n);
  }
}

}  // namespace

HttpServer::HttpServer(std::map<std::string, Response> routes) : routes_(std::move(routes)) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  stop_fd_ = ::eventfd(0, EFD_CLOEXEC);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;  // the kernel picks a free port
  socklen_t len = sizeof addr;
  if (listen_fd_ < 0 || stop_fd_ < 0 ||
      ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd_, 16) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const std::string why = std::strerror(errno);
    if (listen_fd_ >= 0) {
      ::close(listen_fd_);
    }
    if (stop_fd_ >= 0) {
      ::close(stop_fd_);
    }
    throw HarnessError("cannot start the test HTTP server: " + why);
  }
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this] { serve(); });
}

HttpServer::~HttpServer() {
  const std::uint64_t one = 1;
  (void)!::write(stop_fd_, &one, sizeof one);
  thread_.join();
  for (auto& t : connections_) {
    t.join();
  }
  ::close(listen_fd_);
  ::close(stop_fd_);
}

std::string HttpServer::url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + path;
}

int HttpServer::most_in_flight() const {
  std::lock_guard lock(mutex_);
  return most_in_flight_;
}

int HttpServer::hits(const std::string& path) const {
  std::lock_guard lock(mutex_);
  auto it = hits_.find(path);
  return it == hits_.end() ? 0 : it->second;
}

void HttpServer::serve() {
  for (;;) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) {
        continue;
      }
      return;
    }
    if ((fds[1].revents & POLLIN) != 0) {
      return;
    }
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0) {
      connections_.emplace_back([this, fd] {
        answer(fd);
        ::close(fd);
      });
    }
  }
}

void HttpServer::answer(int fd) {
  // Read the request head (the clients under test send no body), giving up after 2 s.
  std::string request;
  char buf[4096];
  while (request.find("\r\n\r\n") == std::string::npos && request.size() < 64 * 1024) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 2000) <= 0) {
      return;
    }
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      return;
    }
    request.append(buf, static_cast<std::size_t>(n));
  }
  // "GET /path HTTP/1.1"
  const auto sp1 = request.find(' ');
  const auto sp2 = request.find(' ', sp1 + 1);
  const std::string path = sp1 == std::string::npos || sp2 == std::string::npos
                               ? std::string()
                               : request.substr(sp1 + 1, sp2 - sp1 - 1);
  Response response{404, "not found"};
  std::string headers;
  {
    std::lock_guard lock(mutex_);
    const int hit = ++hits_[path];
    if (auto it = routes_.find(path); it != routes_.end()) {
      response = it->second;
    }
    if (hit <= response.early_hits) {
      response.status = response.early_status;
      headers = response.early_headers;
    }
    most_in_flight_ = std::max(most_in_flight_, ++in_flight_);
  }
  if (response.delay_ms > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(response.delay_ms));
  }
  {
    std::lock_guard lock(mutex_);
    --in_flight_;  // before the answer: the client may send its next request at once
  }
  send_all(fd, "HTTP/1.1 " + std::to_string(response.status) + " " + reason_of(response.status) +
                   "\r\nContent-Type: text/plain\r\nContent-Length: " +
                   std::to_string(response.body.size()) + "\r\nConnection: close\r\n" + headers +
                   "\r\n" + response.body);
}

}  // namespace barista::itest
