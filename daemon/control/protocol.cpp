#include "daemon/control/protocol.hpp"

#include "daemon/common/json.hpp"

#include <simdjson.h>

#include <fmt/format.h>

namespace barista::control {

std::optional<Request> parse_request(std::string_view line, std::string& error) {
  if (line.size() > kMaxRequestBytes) {
    error = fmt::format("request of {} bytes exceeds {} bytes", line.size(), kMaxRequestBytes);
    return std::nullopt;
  }
  simdjson::dom::parser parser;
  simdjson::dom::object obj;
  if (auto err = parser.parse(line.data(), line.size(), true).get_object().get(obj)) {
    error = fmt::format("malformed request: {}", simdjson::error_message(err));
    return std::nullopt;
  }
  Request req;
  for (auto [key, value] : obj) {
    std::string_view text;
    if (key == "summary") {
      bool flag = false;
      if (value.get_bool().get(flag) != simdjson::SUCCESS) {
        error = "malformed request: \"summary\" must be true or false";
        return std::nullopt;
      }
      req.summary = flag;
      continue;
    }
    if (value.get_string().get(text) != simdjson::SUCCESS) {
      error = fmt::format("malformed request: \"{}\" must be a string", key);
      return std::nullopt;
    }
    if (key == "cmd") {
      req.cmd = text;
    } else if (key == "pool") {
      req.pool = text;
    } else if (key == "name") {
      req.name = text;
    } else if (key == "batch") {
      req.batch = text;
    } else if (key == "weight") {
      req.weight = std::string(text);
    } else if (key == "key") {
      req.key = std::string(text);
    } else {
      error = fmt::format("malformed request: unknown key \"{}\"", key);
      return std::nullopt;
    }
  }
  if (req.cmd.empty()) {
    error = "malformed request: missing \"cmd\"";
    return std::nullopt;
  }
  return req;
}

std::string error_reply(int code, std::string_view message) {
  std::string out = fmt::format(R"({{"ok":false,"code":{},"error":)", code);
  common::append_json_string(out, message);
  out += "}\n";
  return out;
}

}  // namespace barista::control
