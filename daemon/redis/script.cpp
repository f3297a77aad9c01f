#include "daemon/redis/script.hpp"

#include <string_view>

namespace barista::redis {

void Script::load(Client& client) { sha_ = client.command({"SCRIPT", "LOAD", source_}).str(); }

Reply Script::run(Client& client, const std::vector<std::string>& keys,
                  const std::vector<std::string>& args) {
  return std::move(run_many(client, {{keys, args}}).front());
}

std::vector<Reply> Script::run_many(
    Client& client,
    const std::vector<std::pair<std::vector<std::string>, std::vector<std::string>>>& calls) {
  if (sha_.empty()) {
    load(client);
  }
  std::vector<std::vector<std::string>> commands;
  commands.reserve(calls.size());
  for (const auto& [keys, args] : calls) {
    auto& argv = commands.emplace_back();
    argv.reserve(3 + keys.size() + args.size());
    argv.emplace_back("EVALSHA");
    argv.push_back(sha_);
    argv.push_back(std::to_string(keys.size()));
    argv.insert(argv.end(), keys.begin(), keys.end());
    argv.insert(argv.end(), args.begin(), args.end());
  }
  try {
    return client.pipeline(commands);
  } catch (const ReplyError& e) {
    if (!std::string_view(e.reply()).starts_with("NOSCRIPT")) {
      throw;
    }
  }
  // The server lost its script cache (restart, SCRIPT FLUSH): load it again, once.
  load(client);
  for (auto& argv : commands) {
    argv[1] = sha_;
  }
  return client.pipeline(commands);
}

}  // namespace barista::redis
