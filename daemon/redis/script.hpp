#pragma once

#include "daemon/redis/redis_client.hpp"

#include <string>
#include <vector>

namespace barista::redis {

/// A Lua script run with EVALSHA, so that its text crosses the network once per connection
/// rather than once per call. Loaded with SCRIPT LOAD at first use, and again when the server
/// answers NOSCRIPT (it restarted, or SCRIPT FLUSH ran). The SHA does not depend on the
/// connection, so one Script may serve several Clients, one at a time.
class Script {
 public:
  explicit Script(std::string source) : source_(std::move(source)) {}

  /// EVALSHA with `keys` and `args`; throws RedisError (ReplyError for an error the script
  /// raised).
  Reply run(Client& client, const std::vector<std::string>& keys,
            const std::vector<std::string>& args);

  /// One EVALSHA per (keys, args) call, pipelined: one round trip for all. Calls are run in
  /// order; a NOSCRIPT answer loads the script and runs the calls again (so a script run this
  /// way must be idempotent). Throws RedisError (the first error reply as ReplyError).
  std::vector<Reply> run_many(
      Client& client,
      const std::vector<std::pair<std::vector<std::string>, std::vector<std::string>>>& calls);

  /// The SHA1 the server gave at the last SCRIPT LOAD ("" before the first run).
  [[nodiscard]] const std::string& sha() const noexcept { return sha_; }

 private:
  void load(Client& client);

  std::string source_;
  std::string sha_;
};

}  // namespace barista::redis
