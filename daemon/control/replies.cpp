#include "daemon/control/replies.hpp"

#include "daemon/common/json.hpp"

#include <iterator>

#include <fmt/format.h>

namespace barista::control {
namespace {

using common::json_quoted;

const char* bool_text(bool b) { return b ? "true" : "false"; }

std::string string_array(const std::vector<std::string>& items) {
  std::string out = "[";
  for (std::size_t i = 0; i < items.size(); ++i) {
    out += i == 0 ? "" : ",";
    common::append_json_string(out, items[i]);
  }
  return out + "]";
}

void append_counts(std::string& out, const BatchProgress& b) {
  fmt::format_to(std::back_inserter(out), R"("done":{},"total":{},"failed":{},"read_all":{})",
                 b.done, b.total, b.failed, bool_text(b.read_all));
}

}  // namespace

std::string to_line(const StatusReply& reply) {
  std::string out = R"({"ok":true,"pools":[)";
  for (std::size_t i = 0; i < reply.pools.size(); ++i) {
    const auto& p = reply.pools[i];
    fmt::format_to(
        std::back_inserter(out),
        R"({}{{"name":{},"plugin":{},"workers":{},"busy":{},"queued":{},"on_error":{},"abandoned":{})",
        i == 0 ? "" : ",", json_quoted(p.name), json_quoted(p.plugin), p.workers, p.busy, p.queued,
        json_quoted(p.on_error), p.abandoned);
    if (!p.redis.empty()) {
      out += R"(,"redis":)" + json_quoted(p.redis);
    }
    if (p.pending) {
      fmt::format_to(std::back_inserter(out), R"(,"pending":{})", *p.pending);
    }
    if (!p.storage_error.empty()) {
      out += R"(,"storage_error":)" + json_quoted(p.storage_error);
    }
    fmt::format_to(std::back_inserter(out),
                   R"(,"paused":{},"paused_keys":{},"throttles":{},)"
                   R"("keys_blocked":{})",
                   bool_text(p.paused), string_array(p.paused_keys), p.throttles, p.keys_blocked);
    if (p.worker_restarts > 0) {
      fmt::format_to(std::back_inserter(out), R"(,"worker_restarts":{})", p.worker_restarts);
    }
    if (!p.workers_failing.empty()) {
      out += R"(,"workers_failing":)" + json_quoted(p.workers_failing);
    }
    if (!p.keys.empty()) {
      out += R"(,"keys":[)";
      for (std::size_t k = 0; k < p.keys.size(); ++k) {
        const auto& key = p.keys[k];
        fmt::format_to(std::back_inserter(out),
                       R"({}{{"key":{},"in_flight":{},"waiting":{},"paused":{},"at_limit":{},)"
                       R"("throttled_ms":{})",
                       k == 0 ? "" : ",", json_quoted(key.key), key.in_flight, key.waiting,
                       bool_text(key.paused), bool_text(key.at_limit), key.throttled_ms);
        if (!key.throttled_until.empty()) {
          out += R"(,"throttled_until":)" + json_quoted(key.throttled_until);
        }
        out += '}';
      }
      out += ']';
    }
    out += '}';
  }
  out += R"(],"batches":[)";
  for (std::size_t i = 0; i < reply.batches.size(); ++i) {
    const auto& b = reply.batches[i];
    fmt::format_to(std::back_inserter(out), R"({}{{"batch":{},"pool":{},)", i == 0 ? "" : ",",
                   json_quoted(b.batch), json_quoted(b.pool));
    append_counts(out, b);
    out += '}';
  }
  fmt::format_to(std::back_inserter(out), R"(],"generation":{}}})", reply.generation);
  return out + "\n";
}

std::string to_line(const SubmitReply& reply) {
  std::string out = fmt::format(R"({{"ok":true,"batch":{},"pool":{})", json_quoted(reply.batch),
                                json_quoted(reply.pool));
  if (!reply.warnings.empty()) {
    out += R"(,"warnings":)" + string_array(reply.warnings);
  }
  return out + "}\n";
}

std::string to_line(const ReloadReply& reply) {
  return fmt::format(R"({{"ok":{},"generation":{},"code":{},"changes":{},"errors":{}}})",
                     bool_text(reply.ok), reply.generation, reply.code, string_array(reply.changes),
                     string_array(reply.errors)) +
         "\n";
}

std::string progress_line(const BatchProgress& progress) {
  std::string out = R"({"progress":{)";
  append_counts(out, progress);
  return out + "}}\n";
}

std::string summary_line(std::string_view summary) {
  std::string out(kSummaryLinePrefix);
  out += summary;
  return out + "}\n";
}

std::string ok_line() { return "{\"ok\":true}\n"; }

}  // namespace barista::control
