#pragma once

// A private redis-server for a test: its own loopback port and data folder, append-only file
// on (so that restart() after kill9() finds the data again), no RDB snapshots. Started by the
// constructor, stopped (SIGTERM, then SIGKILL) and its folder removed by the destructor.
//
// Self-contained on purpose (POSIX and the standard library only, no Barista code, no Catch2),
// so that it can move to a folder shared by the unit and integration tests as it is.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>

namespace barista::testing {

class RedisServer {
 public:
  static constexpr const char* kBinary = "/usr/bin/redis-server";

  /// False when redis-server is not installed: tests then skip, saying so.
  static bool available();

  /// Starts the server and waits until it answers PING. Throws std::runtime_error (with the
  /// tail of its log) when it cannot start.
  ///
  /// `appendfsync` is the server's setting: "everysec" (as in production) or "always" for a
  /// test that kills the server and expects every acknowledged write to survive. With
  /// everysec, Redis holds the append-only write back (up to 2 s) while a background fsync is
  /// slow, as on a disk shared with other tests, and a kill -9 then loses acknowledged writes.
  explicit RedisServer(std::string appendfsync = "everysec");
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;
  ~RedisServer();

  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
  [[nodiscard]] std::string host() const { return "127.0.0.1"; }
  /// redis://127.0.0.1:PORT/0
  [[nodiscard]] std::string url() const;
  [[nodiscard]] const std::filesystem::path& dir() const noexcept { return dir_; }
  [[nodiscard]] pid_t pid() const noexcept { return pid_; }
  [[nodiscard]] bool running() const noexcept { return pid_ > 0; }

  /// SIGKILL, as a crash: whatever was not yet written to the append-only file is lost.
  void kill9();
  /// Graceful stop: SIGTERM, then SIGKILL after 5 s.
  void stop();
  /// Starts it again on the same port and folder (stopping it first if it runs); it loads its
  /// append-only file. Waits until it answers PING.
  void restart();

  /// The server's log so far (for failure messages).
  [[nodiscard]] std::string log() const;

 private:
  // Starts on port_; false when the process died before answering (the port was taken).
  bool start();
  bool ping(std::chrono::milliseconds timeout) const;
  void reap(std::chrono::milliseconds grace);

  std::filesystem::path dir_;
  std::string appendfsync_;
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace barista::testing
