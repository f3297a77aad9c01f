#include "daemon/control/protocol.hpp"

#include "daemon/common/json.hpp"

#include <algorithm>
#include <charconv>

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

std::string chunk_header(std::size_t length) { return fmt::format("{:x}\n", length); }

ChunkDecoder::State ChunkDecoder::fail(std::string message) {
  error_ = std::move(message);
  state_ = State::kError;
  return state_;
}

ChunkDecoder::State ChunkDecoder::feed(std::string_view data, const Sink& sink) {
  while (!data.empty() && state_ == State::kMore) {
    if (remaining_ > 0) {
      const auto take = std::min(remaining_, data.size());
      if (!sink(data.substr(0, take))) {
        return fail("the batch could not be stored");
      }
      remaining_ -= take;
      data.remove_prefix(take);
      continue;
    }
    const auto newline = data.find('\n');
    header_.append(data.substr(0, newline));
    if (header_.size() > 16) {
      return fail("malformed batch body: chunk header too long");
    }
    if (newline == std::string_view::npos) {
      return state_;  // the rest of the header comes with the next piece
    }
    data.remove_prefix(newline + 1);
    std::size_t length = 0;
    const auto* end = header_.data() + header_.size();
    const auto [ptr, ec] = std::from_chars(header_.data(), end, length, 16);
    if (header_.empty() || ec != std::errc() || ptr != end || length > kMaxChunkBytes) {
      return fail(fmt::format("malformed batch body: bad chunk header '{}'", header_));
    }
    header_.clear();
    if (length == 0) {
      state_ = State::kDone;
    }
    remaining_ = length;
  }
  if (!data.empty() && state_ == State::kDone) {
    return fail("malformed batch body: bytes after its end marker");
  }
  return state_;
}

std::string error_reply(int code, std::string_view message) {
  std::string out = fmt::format(R"({{"ok":false,"code":{},"error":)", code);
  common::append_json_string(out, message);
  out += "}\n";
  return out;
}

}  // namespace barista::control
