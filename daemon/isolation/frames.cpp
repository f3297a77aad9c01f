#include "daemon/isolation/frames.hpp"

#include <charconv>
#include <cstdint>
#include <cstring>

#include <fmt/format.h>

namespace barista::isolation {
namespace {

using plugin::FrameResult;

enum Status : std::uint8_t { kOk, kFail, kFatal, kThrottle, kSkipped, kStatuses };

template <class T>
void put(std::string& out, T value) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));
  out.append(bytes, sizeof(T));
}

// Reads what a body holds, in order, never past its end.
class Cursor {
 public:
  explicit Cursor(std::string_view body) : rest_(body) {}
  template <class T>
  bool get(T& value) {
    if (rest_.size() < sizeof(T)) {
      return false;
    }
    std::memcpy(&value, rest_.data(), sizeof(T));
    rest_.remove_prefix(sizeof(T));
    return true;
  }
  bool bytes(std::size_t n, std::string& out) {
    if (rest_.size() < n) {
      return false;
    }
    out.assign(rest_.data(), n);
    rest_.remove_prefix(n);
    return true;
  }
  [[nodiscard]] bool empty() const noexcept { return rest_.empty(); }

 private:
  std::string_view rest_;
};

bool parse_size(std::string_view text, std::size_t& out) {
  const auto* end = text.data() + text.size();
  const auto r = std::from_chars(text.data(), end, out);
  return r.ec == std::errc() && r.ptr == end && !text.empty();
}

}  // namespace

std::string frame_message(std::span<const plugin::FrameJob> jobs,
                          std::optional<std::chrono::milliseconds> timeout) {
  std::size_t size = 0;
  for (const auto& j : jobs) {
    size += 3 * sizeof(std::uint32_t) + sizeof(std::int64_t) + j.id.size() + j.payload.size() +
            j.key.size();
  }
  std::string out = fmt::format("frame {} {}\n", jobs.size(), size);
  out.reserve(out.size() + size);
  const std::int64_t deadline_ms = timeout ? timeout->count() : -1;
  for (const auto& j : jobs) {
    put(out, static_cast<std::uint32_t>(j.id.size()));
    put(out, static_cast<std::uint32_t>(j.payload.size()));
    put(out, static_cast<std::uint32_t>(j.key.size()));
    put(out, deadline_ms);
    out.append(j.id);
    out.append(j.payload);
    out.append(j.key);
  }
  return out;
}

std::optional<FrameHeader> parse_frame_header(std::string_view line, std::string_view word) {
  if (!line.starts_with(word) || line.size() <= word.size() || line[word.size()] != ' ') {
    return std::nullopt;
  }
  line.remove_prefix(word.size() + 1);
  const auto space = line.find(' ');
  FrameHeader h;
  if (space == std::string_view::npos || !parse_size(line.substr(0, space), h.count) ||
      !parse_size(line.substr(space + 1), h.bytes) || h.count == 0 || h.count > kMaxFrameJobs ||
      h.bytes > kMaxLineBytes) {
    return std::nullopt;
  }
  return h;
}

bool decode_frame(std::string_view body, std::size_t count, std::vector<JobMessage>& out,
                  std::string& why) {
  Cursor in(body);
  for (std::size_t i = 0; i < count; ++i) {
    std::uint32_t id = 0;
    std::uint32_t payload = 0;
    std::uint32_t key = 0;
    std::int64_t deadline_ms = 0;
    JobMessage job;
    if (!in.get(id) || !in.get(payload) || !in.get(key) || !in.get(deadline_ms) ||
        !in.bytes(id, job.id) || !in.bytes(payload, job.payload) || !in.bytes(key, job.key)) {
      why = fmt::format("the frame's body ends within job {} of {}", i + 1, count);
      return false;
    }
    if (deadline_ms >= 0) {
      job.deadline = std::chrono::milliseconds(deadline_ms);
    }
    out.push_back(std::move(job));
  }
  if (!in.empty()) {
    why = fmt::format("the frame's body holds more than its {} jobs", count);
    return false;
  }
  return true;
}

void append_result(std::string& body, const FrameResult& result) {
  Status status = kSkipped;
  if (result.kind == FrameResult::Kind::kDone) {
    switch (result.outcome.kind()) {
      case Outcome::Kind::kOk:
        status = kOk;
        break;
      case Outcome::Kind::kFailed:
        status = kFail;
        break;
      case Outcome::Kind::kFatal:
        status = kFatal;
        break;
      case Outcome::Kind::kThrottled:
        status = kThrottle;
        break;
    }
  }
  const auto& text = result.outcome.text();
  put(body, static_cast<std::uint8_t>(status));
  put(body, static_cast<std::uint32_t>(result.outcome.retry_after().count()));
  put(body, static_cast<std::uint64_t>(result.elapsed.count()));
  put(body, static_cast<std::uint32_t>(text.size()));
  body.append(text);
}

std::string results_message(std::size_t count, std::string_view body) {
  auto out = fmt::format("results {} {}\n", count, body.size());
  out.append(body);
  return out;
}

bool decode_results(std::string_view body, std::size_t count, std::vector<FrameResult>& out,
                    std::string& why) {
  Cursor in(body);
  for (std::size_t i = 0; i < count; ++i) {
    std::uint8_t status = 0;
    std::uint32_t retry_after_ms = 0;
    std::uint64_t elapsed_us = 0;
    std::uint32_t length = 0;
    std::string text;
    if (!in.get(status) || !in.get(retry_after_ms) || !in.get(elapsed_us) || !in.get(length) ||
        !in.bytes(length, text)) {
      why = fmt::format("the results' body ends within result {} of {}", i + 1, count);
      return false;
    }
    if (status >= kStatuses) {
      why = fmt::format("result {} has an unknown status {}", i + 1, status);
      return false;
    }
    FrameResult r;
    r.kind = status == kSkipped ? FrameResult::Kind::kSkipped : FrameResult::Kind::kDone;
    r.elapsed = std::chrono::microseconds(static_cast<std::int64_t>(elapsed_us));
    switch (status) {
      case kOk:
        r.outcome = Outcome::ok(std::move(text));
        break;
      case kFail:
        r.outcome = Outcome::fail(std::move(text));
        break;
      case kFatal:
        r.outcome = Outcome::fatal(std::move(text));
        break;
      case kThrottle:
        r.outcome = Outcome::throttle(std::chrono::milliseconds(retry_after_ms), std::move(text));
        break;
      default:
        break;
    }
    out.push_back(std::move(r));
  }
  if (!in.empty()) {
    why = fmt::format("the results' body holds more than its {} results", count);
    return false;
  }
  return true;
}

std::string cancel_frame_message(bool rest) {
  return rest ? R"({"cancel_frame":"rest"})" : R"({"cancel_frame":"running"})";
}

}  // namespace barista::isolation
