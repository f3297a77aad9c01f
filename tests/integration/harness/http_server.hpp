#pragma once

// A tiny HTTP/1.1 server for the http_fetch tests: 127.0.0.1, a port picked by the kernel, one
// canned response per path (404 for the others), one connection at a time, `Connection: close`.

#include <map>
#include <mutex>
#include <string>
#include <thread>

namespace barista::itest {

class HttpServer {
 public:
  struct Response {
    int status = 200;
    std::string body;
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

 private:
  void serve();
  void answer(int fd);

  std::map<std::string, Response> routes_;
  int listen_fd_ = -1;
  int stop_fd_ = -1;  // an eventfd: written to stop the thread
  int port_ = 0;
  mutable std::mutex mutex_;
  std::map<std::string, int> hits_;
  std::thread thread_;
};

}  // namespace barista::itest
