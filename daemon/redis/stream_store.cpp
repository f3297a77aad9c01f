#include "daemon/redis/stream_store.hpp"

#include "daemon/batch/job_parser.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace barista::redis {
namespace {

// KEYS: batch. ARGV: pool, cancel_all, now. Returns 1 when the id was free (and is now taken).
constexpr const char* kBeginLua = R"lua(
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'pool', ARGV[1], 'state', 'running', 'cancel_all', ARGV[2],
           'started', ARGV[3], 'ok', 0, 'failed', 0, 'timeout', 0, 'cancelled', 0, 'invalid', 0,
           'done', 0)
return 1
)lua";

// KEYS: batch, results, lines. ARGV: total, now, ttl. Returns 1 when it ended the batch, 0 when
// not, -1 when there is no such batch.
constexpr const char* kEndLua = R"lua(
if redis.call('EXISTS', KEYS[1]) == 0 then
  return -1
end
redis.call('HSET', KEYS[1], 'total', ARGV[1])
return finish_if_complete(ARGV[2], ARGV[3])
)lua";

constexpr std::size_t kLinesPage = 1000;

// One entry of an XREADGROUP/XAUTOCLAIM answer; nullopt when it was deleted from the stream
// (its fields are nil).
std::optional<Entry> parse_entry(const Reply& item, std::uint64_t max_job_bytes) {
  const Reply& fields = item.at(1);
  if (fields.is_nil()) {
    return std::nullopt;
  }
  Entry e;
  e.stream_id = item.at(0).str();
  bool has_id = false;
  bool has_payload = false;
  for (std::size_t i = 0; i + 1 < fields.size(); i += 2) {
    const std::string& name = fields.at(i).str();
    const std::string& value = fields.at(i + 1).str();
    if (name == "batch") {
      e.batch = value;
    } else if (name == "id") {
      e.id = value;
      has_id = true;
    } else if (name == "payload") {
      e.payload = value;
      has_payload = true;
    } else if (name == "key") {
      e.key = value;
    }
  }
  if (e.batch.empty()) {
    e.malformed = R"(entry has no "batch" field)";
  } else if (!has_id) {
    // Named after the entry, so that its invalid result is still one line with a unique id.
    e.id = e.stream_id;
    e.malformed = R"(entry has no "id" field)";
  } else if (!has_payload) {
    e.malformed = R"(missing "payload")";
  } else if (e.payload.size() > max_job_bytes) {
    e.malformed = fmt::format("payload of {} bytes exceeds max_job_bytes ({})", e.payload.size(),
                              max_job_bytes);
  } else if (auto bad = batch::key_problem(e.key)) {
    e.malformed = *bad;
  }
  if (!e.malformed.empty()) {
    e.payload.clear();
    e.key.clear();
  }
  return e;
}

bool starts_with(const std::string& s, std::string_view prefix) {
  return std::string_view(s).starts_with(prefix);
}

}  // namespace

StreamStore::StreamStore(const config::RedisConfig& cfg, std::uint64_t max_job_bytes,
                         std::chrono::milliseconds timeout)
    : recorder_(cfg, timeout),
      consumer_(cfg.consumer),
      claim_after_(cfg.claim_after),
      max_job_bytes_(max_job_bytes),
      begin_script_(kBeginLua),
      end_script_(std::string(kFinishLua) + kEndLua) {}

void StreamStore::ensure_group() {
  try {
    client().command({"XGROUP", "CREATE", recorder_.stream(), recorder_.group(), "0", "MKSTREAM"});
  } catch (const ReplyError& e) {
    if (!starts_with(e.reply(), "BUSYGROUP")) {
      throw;
    }
  }
}

template <typename Fn>
auto StreamStore::with_group(Fn&& read) {
  try {
    return read();
  } catch (const ReplyError& e) {
    if (!starts_with(e.reply(), "NOGROUP")) {
      throw;
    }
  }
  ensure_group();
  return read();
}

std::vector<Entry> StreamStore::entries_from(const Reply& list) {
  std::vector<Entry> entries;
  std::vector<std::vector<std::string>> gone;
  for (const auto& item : list.elements()) {
    if (auto e = parse_entry(item, max_job_bytes_)) {
      entries.push_back(std::move(*e));
    } else {
      // Deleted while pending: there is nothing to run; acknowledge it so it stops coming back.
      const std::string& id = item.at(0).str();
      gone.push_back({"XACK", recorder_.stream(), recorder_.group(), id});
      gone.push_back({"XDEL", recorder_.stream(), id});
    }
  }
  if (!gone.empty()) {
    client().pipeline(gone);
  }
  return entries;
}

void StreamStore::set_deliveries(std::vector<Entry>& entries) {
  if (entries.empty()) {
    return;
  }
  // One exact query per entry, in one round trip: a range over the returned ids could also
  // hold other entries of this consumer and crowd some of them out of the COUNT.
  std::vector<std::vector<std::string>> queries;
  queries.reserve(entries.size());
  for (const auto& e : entries) {
    queries.push_back({"XPENDING", recorder_.stream(), recorder_.group(), e.stream_id, e.stream_id,
                       "1", consumer_});
  }
  const auto replies = client().pipeline(queries);
  std::vector<Entry> kept;
  kept.reserve(entries.size());
  for (std::size_t i = 0; i < entries.size(); ++i) {
    // [[id, consumer, idle ms, deliveries]]; empty when no longer pending for this consumer
    // (acknowledged or taken over since it was read): then it is someone else's to run.
    if (replies[i].size() == 0) {
      continue;
    }
    entries[i].deliveries = static_cast<std::uint64_t>(replies[i].at(0).at(3).integer());
    kept.push_back(std::move(entries[i]));
  }
  entries = std::move(kept);
}

std::vector<Entry> StreamStore::read_own_pending(std::size_t count) {
  const Reply reply = with_group([&] {
    return client().command({"XREADGROUP", "GROUP", recorder_.group(), consumer_, "COUNT",
                             std::to_string(count), "STREAMS", recorder_.stream(), own_cursor_});
  });
  if (reply.size() == 0) {
    return {};
  }
  const Reply& list = reply.at(0).at(1);
  if (list.size() == 0) {
    return {};
  }
  // Continue after this page next time: reading from 0 again would hand out (and count as
  // delivered again) the entries still running.
  own_cursor_ = list.elements().back().at(0).str();
  auto entries = entries_from(list);
  set_deliveries(entries);
  return entries;
}

std::vector<Entry> StreamStore::read_new(std::size_t count, std::chrono::milliseconds block) {
  std::vector<std::string> args = {"XREADGROUP", "GROUP", recorder_.group(),
                                   consumer_,    "COUNT", std::to_string(count)};
  if (block.count() > 0) {
    args.insert(args.end(), {"BLOCK", std::to_string(block.count())});
  }
  args.insert(args.end(), {"STREAMS", recorder_.stream(), ">"});
  // The server holds the answer back for up to `block`: the read must wait that much longer.
  const TimeoutScope longer(client(), block);
  const Reply reply = with_group([&] { return client().command(args); });
  if (reply.is_nil() || reply.size() == 0) {
    return {};
  }
  return entries_from(reply.at(0).at(1));
}

std::vector<Entry> StreamStore::claim_idle(std::size_t count) {
  const Reply reply = with_group([&] {
    return client().command({"XAUTOCLAIM", recorder_.stream(), recorder_.group(), consumer_,
                             std::to_string(claim_after_.count()), claim_cursor_, "COUNT",
                             std::to_string(count)});
  });
  // [next cursor ("0-0" once the scan wrapped), [entries], [ids deleted meanwhile]]
  claim_cursor_ = reply.at(0).str();
  auto entries = entries_from(reply.at(1));
  set_deliveries(entries);
  return entries;
}

std::uint64_t StreamStore::pending_count() {
  const Reply reply = with_group([&] {
    return client().command({"XPENDING", recorder_.stream(), recorder_.group()});
  });
  return static_cast<std::uint64_t>(reply.at(0).integer());
}

std::string StreamStore::begin_batch(std::string_view wanted_id, std::string_view pool,
                                     bool cancel_all, std::string_view now_iso) {
  std::string id(wanted_id);
  for (int n = 2;; ++n) {
    const Reply taken =
        begin_script_.run(client(), {batch_key(id)},
                          {std::string(pool), cancel_all ? "1" : "0", std::string(now_iso)});
    if (taken.integer() == 1) {
      return id;
    }
    id = fmt::format("{}-{}", wanted_id, n);
  }
}

void StreamStore::add_jobs(std::string_view batch,
                           const std::vector<std::pair<std::string, std::string>>& id_payloads,
                           const std::vector<std::string>& keys) {
  if (id_payloads.empty()) {
    return;
  }
  std::vector<std::vector<std::string>> adds;
  adds.reserve(id_payloads.size());
  for (std::size_t i = 0; i < id_payloads.size(); ++i) {
    const auto& [id, payload] = id_payloads[i];
    auto& add = adds.emplace_back(std::vector<std::string>{"XADD", recorder_.stream(), "*", "batch",
                                                           std::string(batch), "id", id, "payload",
                                                           payload});
    if (i < keys.size() && !keys[i].empty()) {
      add.emplace_back("key");
      add.push_back(keys[i]);
    }
  }
  client().pipeline(adds);
}

bool StreamStore::end_batch(std::string_view batch, std::uint64_t total, std::string_view now_iso,
                            std::chrono::seconds ttl) {
  const auto seconds = std::max<std::chrono::seconds::rep>(1, ttl.count());
  const Reply reply =
      end_script_.run(client(), {batch_key(batch), results_key(batch), lines_key(batch)},
                      {std::to_string(total), std::string(now_iso), std::to_string(seconds)});
  if (reply.integer() < 0) {
    throw RedisError(fmt::format("redis {}: batch '{}' has no record ({})", client().endpoint(),
                                 batch, batch_key(batch)));
  }
  return reply.integer() == 1;
}

std::optional<BatchRecord> StreamStore::batch(std::string_view id) {
  return parse_batch_record(id, client().command({"HGETALL", batch_key(id)}));
}

std::vector<std::string> StreamStore::result_lines(std::string_view id, std::size_t from) {
  std::vector<std::string> lines;
  const std::string key = lines_key(id);
  for (std::size_t start = from;; start += kLinesPage) {
    const Reply page = client().command(
        {"LRANGE", key, std::to_string(start), std::to_string(start + kLinesPage - 1)});
    for (const auto& line : page.elements()) {
      lines.push_back(line.str());
    }
    if (page.size() < kLinesPage) {
      return lines;
    }
  }
}

}  // namespace barista::redis
