#include "daemon/control/replies_read.hpp"

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

namespace barista::control {
namespace {

const ReplyJson* member(const ReplyJson& obj, std::string_view key) {
  if (!obj.is_object()) {
    return nullptr;
  }
  const auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

std::string text(const ReplyJson& obj, std::string_view key) {
  const auto* v = member(obj, key);
  return v != nullptr && v->is_string() ? v->get<std::string>() : std::string();
}

// nlohmann-json keeps every integer >= 0 as unsigned: negative and fractional numbers fail.
std::optional<std::uint64_t> count_if_any(const ReplyJson& obj, std::string_view key) {
  const auto* v = member(obj, key);
  if (v != nullptr && v->is_number_unsigned()) {
    return v->get<std::uint64_t>();
  }
  return std::nullopt;
}

std::uint64_t count(const ReplyJson& obj, std::string_view key) {
  return count_if_any(obj, key).value_or(0);
}

bool flag(const ReplyJson& obj, std::string_view key, bool fallback) {
  const auto* v = member(obj, key);
  return v != nullptr && v->is_boolean() ? v->get<bool>() : fallback;
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
  b.read_all = flag(obj, "read_all", false);
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
    row.pending = count_if_any(p, "pending");
    row.storage_error = text(p, "storage_error");
    out.pools.push_back(std::move(row));
  }
  for (const auto& b : *batches) {
    if (b.is_object()) {
      auto row = progress_of(b);
      row.read_all = flag(b, "read_all", true);  // a daemon that does not say: total as it is
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
  out.ok = flag(reply, "ok", false);
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
