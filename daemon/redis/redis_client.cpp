#include "daemon/redis/redis_client.hpp"

#include "daemon/common/error_text.hpp"

#include <fmt/format.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <sys/time.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

namespace barista::redis {
namespace {

timeval to_timeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

// The config keeps an IPv6 address in brackets, as written in the url; getaddrinfo wants it bare.
std::string bare_host(const std::string& host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    return host.substr(1, host.size() - 2);
  }
  return host;
}

struct Argv {
  std::vector<const char*> ptrs;
  std::vector<std::size_t> lengths;

  template <typename Range>
  explicit Argv(const Range& args) {
    ptrs.reserve(args.size());
    lengths.reserve(args.size());
    for (const auto& a : args) {
      ptrs.push_back(a.data());
      lengths.push_back(a.size());
    }
  }
  [[nodiscard]] int argc() const { return static_cast<int>(ptrs.size()); }
};

struct ReplyDeleter {
  void operator()(void* r) const noexcept { freeReplyObject(r); }
};
using RawReply = std::unique_ptr<void, ReplyDeleter>;

}  // namespace

Reply::Reply(const redisReply& reply) {
  switch (reply.type) {
    case REDIS_REPLY_STRING:
      type_ = Type::kString;
      str_.assign(reply.str, reply.len);
      break;
    case REDIS_REPLY_STATUS:
      type_ = Type::kStatus;
      str_.assign(reply.str, reply.len);
      break;
    case REDIS_REPLY_ERROR:
      type_ = Type::kError;
      str_.assign(reply.str, reply.len);
      break;
    case REDIS_REPLY_INTEGER:
      type_ = Type::kInteger;
      integer_ = reply.integer;
      break;
    case REDIS_REPLY_ARRAY:
      type_ = Type::kArray;
      elements_.reserve(reply.elements);
      for (std::size_t i = 0; i < reply.elements; ++i) {
        elements_.emplace_back(*reply.element[i]);
      }
      break;
    default:
      type_ = Type::kNil;
      break;
  }
}

const Reply& Reply::at(std::size_t i) const {
  if (i >= elements_.size()) {
    throw RedisError(fmt::format("unexpected reply from Redis: element {} of an array of {}", i,
                                 elements_.size()));
  }
  return elements_[i];
}

void Client::ContextDeleter::operator()(redisContext* c) const noexcept { redisFree(c); }

Client::Client(const config::RedisConfig& cfg, std::chrono::milliseconds timeout)
    : endpoint_(fmt::format("{}:{}", cfg.host, cfg.port)), timeout_(timeout) {
  const std::string host = bare_host(cfg.host);
  redisContext* raw = timeout.count() > 0
                          ? redisConnectWithTimeout(host.c_str(), cfg.port, to_timeval(timeout))
                          : redisConnect(host.c_str(), cfg.port);
  if (raw == nullptr) {
    throw RedisError(fmt::format("redis {}: cannot allocate a connection", endpoint_));
  }
  ctx_.reset(raw);
  if (ctx_->err != 0) {
    fail("cannot connect");
  }
  if (timeout.count() > 0 && redisSetTimeout(ctx_.get(), to_timeval(timeout)) != REDIS_OK) {
    fail("cannot set the timeout");
  }
  // Keepalive probes let a silent peer (a crashed host) be noticed on an idle subscriber.
  (void)redisEnableKeepAlive(ctx_.get());
  if (!cfg.password.empty()) {
    command({"AUTH", cfg.password});
  }
  if (cfg.db != 0) {
    command({"SELECT", std::to_string(cfg.db)});
  }
}

Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&&) noexcept = default;
Client::~Client() = default;

bool Client::connected() const noexcept { return ctx_ != nullptr && ctx_->err == 0; }

void Client::set_timeout(std::chrono::milliseconds timeout) {
  ensure_connected();
  if (redisSetTimeout(ctx_.get(), to_timeval(timeout)) != REDIS_OK) {
    fail("cannot set the timeout");
  }
  timeout_ = timeout;
}

void Client::ensure_connected() const {
  if (!connected()) {
    throw RedisError(fmt::format("redis {}: not connected (the connection was lost)", endpoint_));
  }
}

void Client::fail(std::string_view doing) {
  std::string message = fmt::format("redis {}: {}", endpoint_, doing);
  if (ctx_ != nullptr && ctx_->err != 0) {
    message += fmt::format(": {}", ctx_->errstr);
  }
  // hiredis leaves the context unusable after an I/O error: free the socket now.
  ctx_.reset();
  throw RedisError(message);
}

void Client::throw_reply_error(const Reply& reply) const {
  throw ReplyError(fmt::format("redis {}: {}", endpoint_, reply.str()), reply.str());
}

Reply Client::send(int argc, const char** argv, const std::size_t* lengths) {
  ensure_connected();
  RawReply raw(redisCommandArgv(ctx_.get(), argc, argv, lengths));
  if (!raw) {
    fail(fmt::format("{} failed", argc > 0 ? std::string_view(argv[0], lengths[0]) : ""));
  }
  Reply reply(*static_cast<redisReply*>(raw.get()));
  if (reply.is_error()) {
    throw_reply_error(reply);
  }
  return reply;
}

Reply Client::command(std::initializer_list<std::string_view> args) {
  Argv argv(args);
  return send(argv.argc(), argv.ptrs.data(), argv.lengths.data());
}

Reply Client::command(const std::vector<std::string>& args) {
  Argv argv(args);
  return send(argv.argc(), argv.ptrs.data(), argv.lengths.data());
}

Reply Client::read_one() {
  void* out = nullptr;
  if (redisGetReply(ctx_.get(), &out) != REDIS_OK || out == nullptr) {
    fail("reading a reply failed");
  }
  const RawReply raw(out);
  return Reply(*static_cast<redisReply*>(out));
}

std::vector<Reply> Client::pipeline(const std::vector<std::vector<std::string>>& commands) {
  ensure_connected();
  for (const auto& cmd : commands) {
    Argv argv(cmd);
    if (redisAppendCommandArgv(ctx_.get(), argv.argc(), argv.ptrs.data(), argv.lengths.data()) !=
        REDIS_OK) {
      fail("queueing a command failed");
    }
  }
  std::vector<Reply> replies;
  replies.reserve(commands.size());
  for (std::size_t i = 0; i < commands.size(); ++i) {
    replies.push_back(read_one());
  }
  for (const auto& r : replies) {
    if (r.is_error()) {
      throw_reply_error(r);
    }
  }
  return replies;
}

TimeoutScope::TimeoutScope(Client& client, std::chrono::milliseconds extra)
    : client_(client), saved_(client.timeout()) {
  if (saved_.count() > 0) {
    client_.set_timeout(saved_ + extra);
  }
}

TimeoutScope::~TimeoutScope() {
  if (saved_.count() > 0 && client_.connected()) {
    try {
      client_.set_timeout(saved_);
    } catch (const RedisError&) {
      // The connection is gone; the next call on it reports that.
    }
  }
}

Subscriber::Subscriber(const config::RedisConfig& cfg, std::chrono::milliseconds timeout,
                       std::string channel)
    : Subscriber(cfg, timeout, std::vector<std::string>{std::move(channel)}) {}

Subscriber::Subscriber(const config::RedisConfig& cfg, std::chrono::milliseconds timeout,
                       std::vector<std::string> channels)
    : client_(cfg, timeout), channels_(std::move(channels)) {
  std::vector<std::string> subscribe{"SUBSCRIBE"};
  subscribe.insert(subscribe.end(), channels_.begin(), channels_.end());
  // One confirmation per channel, in order.
  for (std::size_t i = 0; i < channels_.size(); ++i) {
    const Reply confirm = i == 0 ? client_.command(subscribe) : client_.read_one();
    if (!confirm.is_array() || confirm.size() < 1 || confirm.at(0).str() != "subscribe") {
      throw RedisError(fmt::format("redis {}: SUBSCRIBE {}: unexpected reply", client_.endpoint(),
                                   channels_[i]));
    }
  }
}

std::optional<Subscriber::Message> Subscriber::buffered_message() {
  for (;;) {
    void* out = nullptr;
    if (redisGetReplyFromReader(client_.ctx_.get(), &out) != REDIS_OK) {
      client_.fail("reading a message failed");
    }
    if (out == nullptr) {
      return std::nullopt;
    }
    const RawReply raw(out);
    const Reply reply(*static_cast<redisReply*>(out));
    // Anything else (a (un)subscribe confirmation) is not a message to hand out.
    if (reply.is_array() && reply.size() == 3 && reply.at(0).str() == "message" &&
        std::find(channels_.begin(), channels_.end(), reply.at(1).str()) != channels_.end()) {
      return Message{reply.at(1).str(), reply.at(2).str()};
    }
  }
}

std::optional<std::string> Subscriber::next_message(std::chrono::milliseconds wait) {
  if (auto m = next(wait)) {
    return std::move(m->payload);
  }
  return std::nullopt;
}

std::optional<Subscriber::Message> Subscriber::next(std::chrono::milliseconds wait) {
  client_.ensure_connected();
  const auto deadline = std::chrono::steady_clock::now() + wait;
  for (;;) {
    if (auto message = buffered_message()) {
      return message;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd pfd{client_.ctx_->fd, POLLIN, 0};
    const int ready = ::poll(&pfd, 1, static_cast<int>(std::max<long long>(0, left.count())));
    if (ready < 0) {
      if (errno == EINTR) {
        continue;
      }
      throw RedisError(
          fmt::format("redis {}: poll: {}", client_.endpoint(), common::error_text(errno)));
    }
    if (ready == 0) {
      return std::nullopt;
    }
    // Readable, or hung up: either way read() tells, and a hang-up becomes an EOF error.
    if (redisBufferRead(client_.ctx_.get()) != REDIS_OK) {
      client_.fail("reading a message failed");
    }
  }
}

}  // namespace barista::redis
