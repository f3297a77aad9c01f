#pragma once

// A small synchronous Redis client over hiredis, for the pools shared by several daemons
// (docs/several-machines.md). One Client is one TCP connection; it is not thread-safe, so each
// thread that talks to Redis owns its own Client. A Client does not reconnect by itself: once the
// connection is lost every call throws RedisError and the owner makes a new Client (with its own
// backoff), so a half-sent pipeline can never be mistaken for a fresh one.
// hiredis writes with plain write(): the process must ignore SIGPIPE (baristad does), or a
// server that goes away mid-write kills it.

#include "daemon/config/config.hpp"

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

struct redisContext;
struct redisReply;

namespace barista::redis {

/// A Redis failure: the connection could not be made or was lost (the Client is then
/// unusable), or the server answered with an error (ReplyError). The message names host:port.
class RedisError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The server answered a command with an error reply; the connection is still usable.
class ReplyError : public RedisError {
 public:
  ReplyError(const std::string& what, std::string reply)
      : RedisError(what), reply_(std::move(reply)) {}
  /// The server's error text as sent, e.g. "NOSCRIPT No matching script. ...".
  [[nodiscard]] const std::string& reply() const noexcept { return reply_; }

 private:
  std::string reply_;
};

/// One reply, copied out of hiredis's redisReply tree when it arrives. Owning plain values
/// (rather than keeping the redisReply* alive) lets elements of an array outlive their parent
/// and keeps Reply cheap to move and safe to copy.
class Reply {
 public:
  enum class Type { kNil, kString, kStatus, kInteger, kArray, kError };

  Reply() = default;  ///< nil
  /// Copies `reply` (not taking ownership).
  explicit Reply(const redisReply& reply);

  [[nodiscard]] Type type() const noexcept { return type_; }
  [[nodiscard]] bool is_nil() const noexcept { return type_ == Type::kNil; }
  [[nodiscard]] bool is_error() const noexcept { return type_ == Type::kError; }
  [[nodiscard]] bool is_array() const noexcept { return type_ == Type::kArray; }
  [[nodiscard]] bool is_integer() const noexcept { return type_ == Type::kInteger; }
  /// A bulk string or a status ("OK").
  [[nodiscard]] bool is_string() const noexcept {
    return type_ == Type::kString || type_ == Type::kStatus;
  }
  /// The text of a string, status or error reply ("" for the other types).
  [[nodiscard]] const std::string& str() const noexcept { return str_; }
  /// The value of an integer reply (0 for the other types).
  [[nodiscard]] long long integer() const noexcept { return integer_; }
  /// The elements of an array reply (none for the other types).
  [[nodiscard]] const std::vector<Reply>& elements() const noexcept { return elements_; }
  [[nodiscard]] std::size_t size() const noexcept { return elements_.size(); }
  /// Element `i` of an array reply; throws RedisError when out of range (a reply of an
  /// unexpected shape is a protocol error, not undefined behaviour).
  [[nodiscard]] const Reply& at(std::size_t i) const;

 private:
  Type type_ = Type::kNil;
  std::string str_;
  long long integer_ = 0;
  std::vector<Reply> elements_;
};

/// One connection to the server of a pool's `redis:` section.
class Client {
 public:
  /// Connects over TCP to cfg.host:cfg.port (brackets of an IPv6 host stripped), then AUTH with
  /// cfg.password when set and SELECT cfg.db when not 0. `timeout` bounds the connect and every
  /// read and write after it (0: no limit). Throws RedisError.
  Client(const config::RedisConfig& cfg, std::chrono::milliseconds timeout);
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  Client(Client&&) noexcept;
  Client& operator=(Client&&) noexcept;
  ~Client();

  /// Sends one command (each argument binary-safe) and returns its reply. Throws ReplyError for
  /// an error reply, RedisError when the connection is (or was already) lost.
  Reply command(std::initializer_list<std::string_view> args);
  Reply command(const std::vector<std::string>& args);

  /// Sends every command, then reads every reply: one round trip. All replies are read even
  /// when one of them is an error, so the connection stays in step; then the first error reply
  /// is thrown as ReplyError. Throws RedisError when the connection is lost.
  std::vector<Reply> pipeline(const std::vector<std::vector<std::string>>& commands);

  /// False once the connection is lost (or was moved away).
  [[nodiscard]] bool connected() const noexcept;
  /// "host:port", for messages.
  [[nodiscard]] const std::string& endpoint() const noexcept { return endpoint_; }

  /// The read/write timeout (0: none). A blocking command (XREADGROUP BLOCK) raises it for
  /// its duration: see TimeoutScope.
  [[nodiscard]] std::chrono::milliseconds timeout() const noexcept { return timeout_; }
  void set_timeout(std::chrono::milliseconds timeout);

 private:
  friend class Subscriber;

  Reply send(int argc, const char** argv, const std::size_t* lengths);
  Reply read_one();
  // Marks the connection lost and throws RedisError with hiredis's error text.
  [[noreturn]] void fail(std::string_view doing);
  [[noreturn]] void throw_reply_error(const Reply& reply) const;
  void ensure_connected() const;

  struct ContextDeleter {
    void operator()(redisContext* c) const noexcept;
  };
  std::unique_ptr<redisContext, ContextDeleter> ctx_;
  std::string endpoint_;
  std::chrono::milliseconds timeout_{0};
};

/// Raises a Client's timeout by `extra` until the end of the scope, for a command that blocks
/// on the server for that long.
class TimeoutScope {
 public:
  TimeoutScope(Client& client, std::chrono::milliseconds extra);
  TimeoutScope(const TimeoutScope&) = delete;
  TimeoutScope& operator=(const TimeoutScope&) = delete;
  ~TimeoutScope();

 private:
  Client& client_;
  std::chrono::milliseconds saved_;
};

/// A connection of its own in subscriber mode on one channel (a subscribed connection can send
/// nothing but (UN)SUBSCRIBE and PING, hence separate from any Client). Not thread-safe.
class Subscriber {
 public:
  /// A message published on one of the channels.
  struct Message {
    std::string channel;
    std::string payload;
  };

  /// Connects as Client does, SUBSCRIBEs to `channel` and waits for the confirmation.
  /// Throws RedisError.
  Subscriber(const config::RedisConfig& cfg, std::chrono::milliseconds timeout,
             std::string channel);
  /// The same for several channels at once.
  Subscriber(const config::RedisConfig& cfg, std::chrono::milliseconds timeout,
             std::vector<std::string> channels);

  /// The next message published on a channel, or nullopt when none arrived within `wait`:
  /// poll() on the socket bounds the wait, so a thread that loops on this with a short `wait`
  /// notices a stop request in time. Throws RedisError when the connection is lost.
  std::optional<Message> next(std::chrono::milliseconds wait);
  /// The payload of next(wait).
  std::optional<std::string> next_message(std::chrono::milliseconds wait);

  [[nodiscard]] bool connected() const noexcept { return client_.connected(); }
  [[nodiscard]] const std::string& channel() const noexcept { return channels_.front(); }

 private:
  // A message already read off the socket, if any, without reading more.
  std::optional<Message> buffered_message();

  Client client_;
  std::vector<std::string> channels_;
};

}  // namespace barista::redis
