#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <type_traits>

#include "daemon/control/replies_read.hpp"

namespace barista::cli {

/// One connection to baristad's control socket (daemon/control/protocol.hpp): one JSON request
/// line, then the daemon's JSON lines and, for some requests, raw bytes.
class ControlClient {
 public:
  /// Connects; throws CliError (exit 3) naming the cause: no such file, permission denied, a
  /// stale socket nobody listens on.
  explicit ControlClient(std::filesystem::path socket);
  ControlClient(const ControlClient&) = delete;
  ControlClient& operator=(const ControlClient&) = delete;
  ~ControlClient();

  [[nodiscard]] const std::filesystem::path& socket() const noexcept { return socket_; }

  /// How long a read may wait for the daemon before the CLI gives up (none by default).
  void set_read_timeout(std::chrono::seconds timeout);

  /// Sends the request line (`json` plus a newline).
  void send_request(std::string_view json);
  /// Streams everything readable from `fd` after the request as a chunked body (see
  /// daemon/control/protocol.hpp), without holding it in memory, and ends it with the end
  /// marker. Returns false when the daemon stopped reading early (it has answered why). Throws
  /// CliError when `fd` cannot be read (`source` names it): no end marker is sent, so the daemon
  /// stores nothing. `observe` sees every byte sent.
  bool send_body(int fd, std::string_view source,
                 const std::function<void(std::string_view)>& observe = {});

  /// The next line from the daemon without its newline; nullopt when it closed the connection.
  std::optional<std::string> read_line();
  /// Copies everything the daemon sends until it closes the connection to `fd`.
  void copy_rest_to(int fd);

 private:
  /// Sends all of `data`; false when the daemon has stopped reading.
  bool send_all(std::string_view data);
  /// Fills buffer_ with more bytes; false at the end of the stream.
  bool receive_more();

  std::filesystem::path socket_;
  int fd_ = -1;
  std::string buffer_;
};

/// A reply as parsed. The CLI parses with header-only nlohmann-json, not the daemon's simdjson,
/// which Debian ships only as a shared library (start time: daemon/cli/sources.cmake). Ordered:
/// an object printed again keeps the daemon's key order.
using Json = control::ReplyJson;

using control::member;
using control::value_or;

/// A reply line parsed; throws CliError (exit 3) when it is not a JSON object.
Json parse_reply(const std::string& line);

/// Throws CliError with the daemon's code and message when `reply` is {"ok":false,...}.
void check_ok(const Json& reply);

/// The next reply line, parsed and checked: throws CliError when the daemon closed the
/// connection without answering or answered with an error. `line` receives the line as sent.
/// `what` names the request.
Json expect_ok(ControlClient& client, std::string& line, std::string_view what);

/// Writes all of `data` to `fd` (stdout, stderr). Throws CliError (exit 1) on a write error
/// other than EPIPE (a reader that went away, as with `| head`, is not an error to report).
void write_all(int fd, std::string_view data);

/// The delays between tries of a request the daemon could not take: `first`, doubling up to
/// `max`, each half fixed and half random, so that clients turned away together do not all
/// come back at the same instant.
class JitteredBackoff {
 public:
  JitteredBackoff(std::chrono::milliseconds first, std::chrono::milliseconds max);
  /// Sleeps for the next delay.
  void sleep();

 private:
  std::chrono::milliseconds next_;
  std::chrono::milliseconds max_;
  std::minstd_rand random_;
};

/// `{"cmd":CMD,KEY:VALUE...}` with each value quoted and escaped.
std::string request_json(
    std::string_view cmd,
    std::initializer_list<std::pair<std::string_view, std::string_view>> fields);

}  // namespace barista::cli
