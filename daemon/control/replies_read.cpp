#include "daemon/control/replies_read.hpp"

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

namespace barista::control {
namespace {

std::string text(const ReplyJson& obj, std::string_view key) {
  return std::string(value_or<std::string_view>(obj, key, ""));
}

std::uint64_t count(const ReplyJson& obj, std::string_view key) {
  return value_or<std::uint64_t>(obj, key, 0);
}

std::vector<std::string> strings(const ReplyJson& obj, std::string_view key) {
  std::vector<std::string> out;
  const auto* array = member(obj, key);
  if (array == nullptr || !array->is_array()) {
    return out;
  }
  for (const auto& element : *array) {
    if (element.is_string()) {
      out.push_back(element.get<std::string>());
    }
  }
  return out;
}

BatchProgress progress_of(const ReplyJson& obj) {
  BatchProgress b;
  b.batch = text(obj, "batch");
  b.pool = text(obj, "pool");
  b.done = count(obj, "done");
  b.total = count(obj, "total");
  b.failed = count(obj, "failed");
  b.read_all = value_or(obj, "read_all", false);
  return b;
}

}  // namespace

std::optional<StatusReply> read_status(const ReplyJson& reply) {
  const auto* pools = member(reply, "pools");
  const auto* batches = member(reply, "batches");
  if (pools == nullptr || !pools->is_array() || batches == nullptr || !batches->is_array()) {
    return std::nullopt;
  }
  StatusReply out;
  for (const auto& p : *pools) {
    if (!p.is_object()) {
      continue;
    }
    PoolRow row;
    row.name = text(p, "name");
    row.plugin = text(p, "plugin");
    row.workers = count(p, "workers");
    row.busy = count(p, "busy");
    row.queued = count(p, "queued");
    row.on_error = text(p, "on_error");
    row.abandoned = count(p, "abandoned");
    row.redis = text(p, "redis");
    if (const auto* pending = member(p, "pending");
        pending != nullptr && pending->is_number_unsigned()) {
      row.pending = pending->get<std::uint64_t>();
    }
    row.storage_error = text(p, "storage_error");
    row.paused = value_or(p, "paused", false);
    if (const auto* keys = member(p, "paused_keys"); keys != nullptr && keys->is_array()) {
      for (const auto& k : *keys) {
        if (k.is_string()) {
          row.paused_keys.push_back(k.get<std::string>());
        }
      }
    }
    row.throttles = count(p, "throttles");
    row.keys_blocked = count(p, "keys_blocked");
    row.worker_restarts = count(p, "worker_restarts");
    row.workers_failing = text(p, "workers_failing");
    if (const auto* keys = member(p, "keys"); keys != nullptr && keys->is_array()) {
      for (const auto& k : *keys) {
        if (!k.is_object()) {
          continue;
        }
        KeyInfo info;
        info.key = text(k, "key");
        info.in_flight = count(k, "in_flight");
        info.waiting = count(k, "waiting");
        info.paused = value_or(k, "paused", false);
        info.at_limit = value_or(k, "at_limit", false);
        info.throttled_ms = count(k, "throttled_ms");
        info.throttled_until = text(k, "throttled_until");
        row.keys.push_back(std::move(info));
      }
    }
    out.pools.push_back(std::move(row));
  }
  for (const auto& b : *batches) {
    if (b.is_object()) {
      auto row = progress_of(b);
      row.read_all = value_or(b, "read_all", true);  // a daemon that does not say: total as it is
      out.batches.push_back(std::move(row));
    }
  }
  out.generation = count(reply, "generation");
  return out;
}

std::optional<SubmitReply> read_submit(const ReplyJson& reply) {
  const auto* batch = member(reply, "batch");
  if (batch == nullptr || !batch->is_string()) {
    return std::nullopt;
  }
  return SubmitReply{batch->get<std::string>(), text(reply, "pool"), strings(reply, "warnings")};
}

ReloadReply read_reload(const ReplyJson& reply) {
  ReloadReply out;
  out.ok = value_or(reply, "ok", false);
  out.generation = count(reply, "generation");
  const auto* code = member(reply, "code");
  if (code != nullptr && code->is_number_unsigned() &&
      code->get<std::uint64_t>() <= static_cast<std::uint64_t>(std::numeric_limits<int>::max())) {
    out.code = static_cast<int>(code->get<std::uint64_t>());
  }
  out.changes = strings(reply, "changes");
  out.errors = strings(reply, "errors");
  return out;
}

std::optional<BatchProgress> read_progress(const ReplyJson& reply) {
  const auto* progress = member(reply, "progress");
  if (progress == nullptr || !progress->is_object()) {
    return std::nullopt;
  }
  return progress_of(*progress);
}

}  // namespace barista::control
