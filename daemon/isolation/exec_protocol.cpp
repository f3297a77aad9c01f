#include "daemon/isolation/exec_protocol.hpp"

#include <algorithm>
#include <cstdint>
#include <limits>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace barista::isolation {
namespace {

using nlohmann::json;

std::string dump(const json& j) {
  // replace: bytes that are not UTF-8 become U+FFFD rather than an exception.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

// nlohmann's "[json.exception.parse_error.101] parse error at …": without the bracket.
std::string reason_of(const json::exception& e) {
  std::string_view text = e.what();
  if (const auto close = text.find("] ");
      text.starts_with('[') && close != std::string_view::npos) {
    text.remove_prefix(close + 2);
  }
  return std::string(text);
}

std::optional<json> parse_object(std::string_view line, std::string& why) {
  json j;
  try {
    j = json::parse(line);
  } catch (const json::exception& e) {
    why = "not JSON: " + reason_of(e);
    return std::nullopt;
  }
  if (!j.is_object()) {
    why = "not a JSON object";
    return std::nullopt;
  }
  return j;
}

const std::string* string_field(const json& j, const char* name) {
  const auto it = j.find(name);
  return it != j.end() && it->is_string() ? it->get_ptr<const std::string*>() : nullptr;
}

}  // namespace

std::string job_message(std::string_view id, std::string_view payload, int attempt,
                        std::string_view key, std::optional<std::chrono::milliseconds> left) {
  json j = {{"id", id}, {"payload", payload}, {"attempt", attempt}};
  if (!key.empty()) {
    j["key"] = key;
  }
  if (left) {
    j["deadline_ms"] = std::max<std::int64_t>(left->count(), 0);
  }
  return dump(j);
}

std::string cancel_message(std::string_view id) { return dump(json{{"cancel", id}}); }

std::optional<InboundMessage> parse_inbound(std::string_view line, std::string& why) {
  auto j = parse_object(line, why);
  if (!j) {
    return std::nullopt;
  }
  InboundMessage out;
  if (const auto* id = string_field(*j, "cancel")) {
    out.cancel = *id;
    return out;
  }
  if (const auto* which = string_field(*j, "cancel_frame")) {
    out.cancel_frame = *which == "rest";
    return out;
  }
  const auto* id = string_field(*j, "id");
  const auto* payload = string_field(*j, "payload");
  if (id == nullptr || payload == nullptr) {
    why = R"(a job needs a string "id" and a string "payload")";
    return std::nullopt;
  }
  JobMessage job;
  job.id = *id;
  job.payload = *payload;
  if (const auto it = j->find("attempt"); it != j->end() && it->is_number_integer()) {
    job.attempt = static_cast<int>(std::clamp<std::int64_t>(it->get<std::int64_t>(), 1, INT32_MAX));
  }
  if (const auto* key = string_field(*j, "key")) {
    job.key = *key;
  }
  if (const auto it = j->find("deadline_ms"); it != j->end() && it->is_number()) {
    job.deadline = std::chrono::milliseconds(std::max<std::int64_t>(it->get<std::int64_t>(), 0));
  }
  out.job = std::move(job);
  return out;
}

std::optional<ResultMessage> parse_result(std::string_view line, std::string& why) {
  auto j = parse_object(line, why);
  if (!j) {
    return std::nullopt;
  }
  const auto* id = string_field(*j, "id");
  if (id == nullptr) {
    why = "a result needs a string \"id\"";
    return std::nullopt;
  }
  const auto* status = string_field(*j, "status");
  if (status == nullptr) {
    why = "a result needs a string \"status\" (ok, fail, fatal or throttle)";
    return std::nullopt;
  }
  const auto text_of = [&](const char* name) -> std::optional<std::string> {
    const auto it = j->find(name);
    if (it == j->end() || it->is_null()) {
      return std::string();
    }
    if (!it->is_string()) {
      why = fmt::format("\"{}\" must be a string", name);
      return std::nullopt;
    }
    return it->get<std::string>();
  };
  ResultMessage out;
  out.id = *id;
  if (*status == "ok") {
    auto output = text_of("output");
    if (!output) {
      return std::nullopt;
    }
    out.outcome = Outcome::ok(std::move(*output));
    return out;
  }
  auto error = text_of("error");
  if (!error) {
    return std::nullopt;
  }
  if (*status == "fail") {
    out.outcome = Outcome::fail(std::move(*error));
  } else if (*status == "fatal") {
    out.outcome = Outcome::fatal(std::move(*error));
  } else if (*status == "throttle") {
    std::int64_t ms = 0;
    if (const auto it = j->find("retry_after_ms"); it != j->end()) {
      if (!it->is_number()) {
        why = "\"retry_after_ms\" must be a number";
        return std::nullopt;
      }
      const double value = it->get<double>();
      ms = value <= 0 ? 0
           : value >= static_cast<double>(std::numeric_limits<std::uint32_t>::max())
               ? std::numeric_limits<std::uint32_t>::max()
               : static_cast<std::int64_t>(value);
    }
    out.outcome = Outcome::throttle(std::chrono::milliseconds(ms), std::move(*error));
  } else {
    why = fmt::format("unknown status \"{}\" (ok, fail, fatal or throttle)", *status);
    return std::nullopt;
  }
  return out;
}

std::string result_message(std::string_view id, const Outcome& outcome) {
  json j = {{"id", id}};
  switch (outcome.kind()) {
    case Outcome::Kind::kOk:
      j["status"] = "ok";
      j["output"] = outcome.text();
      break;
    case Outcome::Kind::kFailed:
      j["status"] = "fail";
      j["error"] = outcome.text();
      break;
    case Outcome::Kind::kFatal:
      j["status"] = "fatal";
      j["error"] = outcome.text();
      break;
    case Outcome::Kind::kThrottled:
      j["status"] = "throttle";
      j["retry_after_ms"] = outcome.retry_after().count();
      j["error"] = outcome.text();
      break;
  }
  return dump(j);
}

}  // namespace barista::isolation
