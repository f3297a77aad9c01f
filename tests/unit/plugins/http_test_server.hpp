#pragma once

// A small HTTP/1.1 server for the http_fetch tests, on 127.0.0.1 at a port the kernel picks.
// One thread accepts, one thread serves each connection (keep-alive); everything stops and is
// joined, and every socket closed, when the server is destroyed.
//
// Routes (GET):
//   /hello          200 "hello world\n"
//   /missing        404        /busy        429        /unavailable    503
//   /busy-for/S     429, Retry-After: S      /unavailable-for/S   503, Retry-After: S
//   /busy-until-date  429, Retry-After: an HTTP date 120 s from now
//   /slow/MS        200 "late" after MS milliseconds (cut short when the server stops)
//   /bytes/N        200 with N bytes (pattern: 'a' + i % 26), Content-Length set
//   /stream/N       200 with N bytes, no Content-Length: the body ends when the connection closes
//   /drip           200 with Content-Length 10 MB, 100 bytes every 20 ms, never finishing
//   /redirect       302 to /hello
//   anything else   404

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace barista::bundled_plugins_test {

/// The body /bytes/N and /stream/N send.
std::string pattern_body(std::size_t size);

class HttpTestServer {
 public:
  HttpTestServer();
  HttpTestServer(const HttpTestServer&) = delete;
  HttpTestServer& operator=(const HttpTestServer&) = delete;
  ~HttpTestServer();

  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
  /// "http://127.0.0.1:PORT" + path.
  [[nodiscard]] std::string url(std::string_view path) const;

  /// The User-Agent of every request received so far, in order ("" when absent).
  [[nodiscard]] std::vector<std::string> user_agents() const;
  /// Requests received so far.
  [[nodiscard]] int requests() const;
  /// Connections accepted so far.
  [[nodiscard]] int connections() const { return connections_.load(); }

 private:
  void accept_loop();
  void serve(int fd);
  // Waits until `fd` is ready for `events` or the server stops; false when stopping.
  bool wait_for(int fd, short events, int timeout_ms = -1) const;
  bool send_all(int fd, std::string_view data) const;
  // False when the connection must close.
  bool respond(int fd, const std::string& path);

  int listen_fd_ = -1;
  int stop_fd_ = -1;  // an eventfd, readable once the server stops
  std::uint16_t port_ = 0;
  std::thread acceptor_;
  std::vector<std::thread> handlers_;  // only the acceptor touches it until it is joined
  std::atomic<int> connections_{0};
  mutable std::mutex mutex_;
  std::vector<std::string> user_agents_;
};

}  // namespace barista::bundled_plugins_test
