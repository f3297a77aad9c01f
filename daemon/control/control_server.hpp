#pragma once

#include "daemon/control/protocol.hpp"
#include "daemon/control/wait_loop.hpp"

#include <sys/socket.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <tbb/concurrent_queue.h>

namespace barista::control {

/// One client connection, once its request line has arrived.
class Connection {
 public:
  Connection(int fd, ucred peer, std::string pending);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  [[nodiscard]] const ucred& peer() const noexcept { return peer_; }
  /// Writes all of `data`; false when the client has gone.
  bool write(std::string_view data);
  /// Hands the chunked body after the request line (see protocol.hpp) to `sink` until its end
  /// marker. False when the body was malformed, the client vanished or stalled for 30 s before
  /// the end marker, or `sink` returned false; body_error() then says which.
  bool read_body(const std::function<bool(std::string_view)>& sink);
  [[nodiscard]] const std::string& body_error() const noexcept { return body_error_; }
  /// True once the client has hung up (checked without blocking).
  [[nodiscard]] bool client_gone() const;
  /// Ends the handler's part: the rest of the answer is `watch`'s, sent from the wait loop
  /// (wait_loop.hpp) without holding a thread.
  void keep_waiting(std::unique_ptr<Watch> watch) { watch_ = std::move(watch); }

 private:
  friend class ControlServer;

  int fd_;
  ucred peer_;
  std::string pending_;
  std::string body_error_;
  std::unique_ptr<Watch> watch_;
};

/// The control socket: accepts connections, reads one request line from each (many idle or slow
/// clients cost a file descriptor each, never a thread), and runs the handler for each complete
/// request on one of a fixed set of request threads (kRequestThreads), queued until one is free.
/// A handler answering a wait hands the connection to the wait loop, where a waiting client
/// costs no thread either.
class ControlServer {
 public:
  using Handler = std::function<void(const Request&, Connection&)>;
  /// Requests handled at once; more wait their turn in a queue of kMaxQueued.
  static constexpr std::size_t kRequestThreads = 16;
  static constexpr std::size_t kMaxQueued = 4096;

  /// Creates the socket (mode 0660; its folder is created if missing). A stale socket file from
  /// a dead daemon is replaced; a live daemon's is not. Throws std::runtime_error.
  ControlServer(std::filesystem::path path, Handler handler);
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;
  ~ControlServer();

  /// Stops accepting, ends running handlers' connections, waits for them, removes the socket.
  void stop();
  [[nodiscard]] bool stopping() const noexcept { return stopping_.load(); }
  /// The clients waiting for a batch now.
  [[nodiscard]] std::size_t waiting() const { return waits_.size(); }

 private:
  struct Task {
    int fd = -1;  // -1: the request thread ends
    ucred peer{};
    Request request;
    std::string rest;  // what came after the request line
  };

  void loop();
  void dispatch(int fd, ucred peer, const std::string& line, std::string pending);
  void serve();
  void run(Task task);

  std::filesystem::path path_;
  Handler handler_;
  int listen_fd_ = -1;
  int wake_fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
  WaitLoop waits_;
  tbb::concurrent_bounded_queue<Task> tasks_;
  std::vector<std::thread> request_threads_;
  std::mutex mutex_;
  std::condition_variable idle_cv_;
  std::set<int> busy_fds_;  // connections whose handler runs
};

}  // namespace barista::control
