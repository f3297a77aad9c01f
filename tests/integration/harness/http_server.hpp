#pragma once

// A tiny HTTP/1.1 server for the http_fetch tests: 127.0.0.1, a port picked by the kernel, one
// canned response per path (404 for the others), a thread per connection, `Connection: close`.
// It stands for one web site: it counts the requests it answers at once, and can answer a
// path's first requests with another status (429 and Retry-After, say).

#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace barista::itest {

class HttpServer {
 public:
  struct Response {
    Response() = default;
    Response(int status_code, std::string text, int delay = 0, int early = 0, int early_code = 429,
             std::string early_extra = {})
        : status(status_code),
          body(std::move(text)),
          delay_ms(delay),
          early_hits(early),
          early_status(early_code),
          early_headers(std::move(early_extra)) {}
    int status = 200;
    std::string body;
    int delay_ms = 0;  ///< answered this long after the request was read
    /// The first `early_hits` requests of the path get `early_status` and `early_headers`
    /// ("Retry-After: 1\r\n", say) instead.
    int early_hits = 0;
    int early_status = 429;
    std::string early_headers;
  };

  explicit HttpServer(std::map<std::string, Response> routes);
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;
  ~HttpServer();

  [[nodiscard]] int port() const noexcept { return port_; }
  /// http://127.0.0.1:PORT/PATH
  [[nodiscard]] std::string url(const std::string& path) const;
  /// How many requests asked for `path`.
  [[nodiscard]] int hits(const std::string& path) const;
  /// The most requests it was answering at once.
  [[nodiscard]] int most_in_flight() const;

 private:
  void serve();
  void answer(int fd);

  std::map<std::string, Response> routes_;
  int listen_fd_ = -1;
  int stop_fd_ = -1;  // an eventfd: written to stop the thread
  int port_ = 0;
  mutable std::mutex mutex_;
  std::map<std::string, int> hits_;
  int in_flight_ = 0;
  int most_in_flight_ = 0;
  std::vector<std::thread> connections_;  // joined at the end
  std::thread thread_;
};

}  // namespace barista::itest
