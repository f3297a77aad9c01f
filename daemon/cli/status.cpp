// barista status [--json]
#include "daemon/cli/cli_error.hpp"
#include "daemon/cli/client.hpp"
#include "daemon/cli/verbs.hpp"
#include "daemon/common/json.hpp"

#include <unistd.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace barista::cli {
namespace {

constexpr auto kAnswerTimeout = std::chrono::seconds(30);

using control::StatusReply;

StatusReply fetch_status(const std::filesystem::path& socket, const std::string& pool) {
  ControlClient client(socket);
  client.set_read_timeout(kAnswerTimeout);
  client.send_request(pool.empty() ? request_json("status", {})
                                   : request_json("status", {{"pool", pool}}));
  std::string line;
  auto reply = control::read_status(expect_ok(client, line, "status"));
  if (!reply) {
    throw CliError(kExitRefused, "baristad's answer to status lacks pools or batches: " + line);
  }
  return std::move(*reply);
}

// Exactly the documented keys (docs/reference.md#barista-status), whatever else the daemon
// reports; a pool shared through Redis adds "redis" (and "pending" when known), a pool whose
// storage fails "storage_error", a paused pool "paused", one with paused keys "paused_keys", one
// whose jobs were throttled "throttles", and `status POOL` its blocked "keys".
std::string status_json(const StatusReply& s) {
  std::string out = R"({"pools":[)";
  for (std::size_t i = 0; i < s.pools.size(); ++i) {
    const auto& p = s.pools[i];
    out += i == 0 ? "" : ",";
    out += R"({"name":)";
    common::append_json_string(out, p.name);
    out += R"(,"plugin":)";
    common::append_json_string(out, p.plugin);
    out += fmt::format(R"(,"workers":{},"busy":{},"queued":{},"on_error":)", p.workers, p.busy,
                       p.queued);
    common::append_json_string(out, p.on_error);
    if (!p.redis.empty()) {
      out += R"(,"redis":)";
      common::append_json_string(out, p.redis);
      if (p.pending) {
        out += fmt::format(R"(,"pending":{})", *p.pending);
      }
    }
    if (!p.storage_error.empty()) {
      out += R"(,"storage_error":)";
      common::append_json_string(out, p.storage_error);
    }
    if (p.paused) {
      out += R"(,"paused":true)";
    }
    if (!p.paused_keys.empty()) {
      out += R"(,"paused_keys":[)";
      for (std::size_t k = 0; k < p.paused_keys.size(); ++k) {
        out += k == 0 ? "" : ",";
        common::append_json_string(out, p.paused_keys[k]);
      }
      out += ']';
    }
    if (p.throttles > 0) {
      out += fmt::format(R"(,"throttles":{})", p.throttles);
    }
    if (p.worker_restarts > 0) {
      out += fmt::format(R"(,"worker_restarts":{})", p.worker_restarts);
    }
    if (!p.workers_failing.empty()) {
      out += R"(,"workers_failing":)";
      common::append_json_string(out, p.workers_failing);
    }
    if (!p.keys.empty()) {
      out += R"(,"keys":[)";
      for (std::size_t k = 0; k < p.keys.size(); ++k) {
        const auto& key = p.keys[k];
        out += k == 0 ? R"({"key":)" : R"(,{"key":)";
        common::append_json_string(out, key.key);
        out += fmt::format(R"(,"in_flight":{},"waiting":{},"paused":{},"at_limit":{})",
                           key.in_flight, key.waiting, key.paused ? "true" : "false",
                           key.at_limit ? "true" : "false");
        if (!key.throttled_until.empty()) {
          out += R"(,"throttled_until":)";
          common::append_json_string(out, key.throttled_until);
        }
        out += '}';
      }
      out += ']';
    }
    out += '}';
  }
  out += R"(],"batches":[)";
  for (std::size_t i = 0; i < s.batches.size(); ++i) {
    const auto& b = s.batches[i];
    out += i == 0 ? "" : ",";
    out += R"({"batch":)";
    common::append_json_string(out, b.batch);
    out += R"(,"pool":)";
    common::append_json_string(out, b.pool);
    out += fmt::format(R"(,"done":{},"total":{},"failed":{}}})", b.done, b.total, b.failed);
  }
  out += "]}\n";
  return out;
}

// Columns as wide as their widest cell; numbers right-aligned.
std::string table(const std::vector<std::string>& header, const std::vector<bool>& numeric,
                  const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width(header.size());
  for (std::size_t c = 0; c < header.size(); ++c) {
    width[c] = header[c].size();
    for (const auto& row : rows) {
      width[c] = std::max(width[c], row[c].size());
    }
  }
  std::string out;
  const auto add_row = [&](const std::vector<std::string>& cells) {
    std::string line;
    for (std::size_t c = 0; c < cells.size(); ++c) {
      line += c == 0 ? "" : "  ";
      line += numeric[c] ? fmt::format("{:>{}}", cells[c], width[c])
                         : fmt::format("{:<{}}", cells[c], width[c]);
    }
    while (!line.empty() && line.back() == ' ') {
      line.pop_back();
    }
    out += line + '\n';
  };
  add_row(header);
  for (const auto& row : rows) {
    add_row(row);
  }
  return out;
}

// `status POOL`: the keys that hold its jobs up, most blocked first.
std::string keys_tables(const StatusReply& s) {
  std::string out;
  for (const auto& p : s.pools) {
    if (p.keys.empty()) {
      continue;
    }
    std::vector<std::vector<std::string>> keys;
    for (const auto& k : p.keys) {
      std::vector<std::string> why;
      if (k.paused) {
        why.emplace_back("paused");
      }
      if (k.at_limit) {
        why.emplace_back("at its limit");
      }
      if (!k.throttled_until.empty()) {
        why.push_back(fmt::format("throttled until {}", k.throttled_until));
      }
      keys.push_back({k.key.empty() ? "(no key: the whole pool)" : k.key,
                      std::to_string(k.in_flight), std::to_string(k.waiting),
                      fmt::format("{}", fmt::join(why, ", "))});
    }
    out += table({"KEY", "IN_FLIGHT", "WAITING", "BLOCKED"}, {false, true, true, false}, keys);
    out += '\n';
  }
  return out;
}

std::string status_table(const StatusReply& s) {
  std::vector<std::vector<std::string>> pools;
  bool any_abandoned = false;
  bool any_redis = false;
  bool any_storage = false;
  bool any_paused = false;
  bool any_restarts = false;
  for (const auto& p : s.pools) {
    any_restarts = any_restarts || p.worker_restarts > 0 || !p.workers_failing.empty();
    any_paused = any_paused || p.paused || !p.paused_keys.empty();
    any_abandoned = any_abandoned || p.abandoned > 0;
    any_redis = any_redis || !p.redis.empty();
    any_storage = any_storage || !p.storage_error.empty();
  }
  for (const auto& p : s.pools) {
    std::vector<std::string> row{p.name,
                                 p.plugin,
                                 std::to_string(p.workers),
                                 std::to_string(p.busy),
                                 std::to_string(p.queued),
                                 p.on_error};
    if (any_abandoned) {
      row.push_back(std::to_string(p.abandoned));
    }
    if (any_redis) {
      row.push_back(p.redis.empty() ? "" : "redis: " + p.redis);
    }
    if (any_storage) {
      row.push_back(p.storage_error.empty() ? "ok" : "failing: " + p.storage_error);
    }
    if (any_restarts) {
      row.push_back(p.workers_failing.empty()
                        ? std::to_string(p.worker_restarts)
                        : fmt::format("{}, not started: {}", p.worker_restarts, p.workers_failing));
    }
    if (any_paused) {
      row.push_back(p.paused ? "yes"
                    : p.paused_keys.empty()
                        ? ""
                        : fmt::format("keys: {}", fmt::join(p.paused_keys, ", ")));
    }
    pools.push_back(std::move(row));
  }
  std::vector<std::string> pool_header{"POOL", "PLUGIN", "WORKERS", "BUSY", "QUEUED", "ON_ERROR"};
  std::vector<bool> pool_numeric{false, false, true, true, true, false};
  if (any_abandoned) {
    // Only worth a column when a processor ignored its deadline and its worker was replaced.
    pool_header.emplace_back("ABANDONED");
    pool_numeric.push_back(true);
  }
  if (any_redis) {
    // Only when some pool is shared through Redis (docs/reference.md#redis-pools): it shows
    // `redis: unavailable` there.
    pool_header.emplace_back("SHARED");
    pool_numeric.push_back(false);
  }
  if (any_storage) {
    // Only while some pool's storage fails (docs/crash-safety.md#storage-faults).
    pool_header.emplace_back("STORAGE");
    pool_numeric.push_back(false);
  }
  if (any_restarts) {
    // Only once some pool's worker processes were restarted (docs/workers.md).
    pool_header.emplace_back("RESTARTS");
    pool_numeric.push_back(false);
  }
  if (any_paused) {
    // Only while some pool or key is paused (`barista pause`).
    pool_header.emplace_back("PAUSED");
    pool_numeric.push_back(false);
  }
  std::string out = pools.empty() ? "no pools\n" : table(pool_header, pool_numeric, pools);
  out += '\n';
  out += keys_tables(s);
  if (s.batches.empty()) {
    out += "no active batches\n";
    return out;
  }
  std::vector<std::vector<std::string>> batches;
  for (const auto& b : s.batches) {
    batches.push_back({b.batch, b.pool,
                       fmt::format("{}/{}{}", b.done, b.total, b.read_all ? "" : "+"),
                       std::to_string(b.failed)});
  }
  out += table({"BATCH", "POOL", "DONE/TOTAL", "FAILED"}, {false, false, true, true}, batches);
  return out;
}

}  // namespace

void add_status(CLI::App& app, const GlobalOptions& globals, Action& action) {
  auto json = std::make_shared<bool>(false);
  auto pool = std::make_shared<std::string>();
  auto* cmd = add_verb(app, "status", "Show the pools and the active batches",
                       "A total shown as N+ is still growing: the daemon has not read the whole "
                       "batch yet. A pool shared through Redis shows `redis: connected` or "
                       "`redis: unavailable` (JSON: \"redis\", and \"pending\": its stream's "
                       "jobs handed out and not yet finished). While a pool's storage fails, a "
                       "STORAGE column says why (JSON: \"storage_error\"). A PAUSED column shows "
                       "paused pools and keys (barista pause). With POOL, only that pool, and "
                       "the keys that hold its jobs up (throttled, paused or at their per_key "
                       "limit), most blocked first, at most 20 (JSON: \"keys\").\nExit: 0; 1 "
                       "unknown pool; 3 no daemon.");
  cmd->add_option("POOL", *pool, "only this pool, with its blocked keys");
  cmd->add_flag("--json", *json,
                R"(print {"pools":[{"name","plugin","workers","busy","queued","on_error"}],)"
                R"("batches":[{"batch","pool","done","total","failed"}]} instead)");
  cmd->callback([&action, &globals, json, pool] {
    action = [&globals, json, pool] {
      const auto s = fetch_status(socket_of(globals), *pool);
      write_all(STDOUT_FILENO, *json ? status_json(s) : status_table(s));
      return kExitOk;
    };
  });
}

}  // namespace barista::cli
