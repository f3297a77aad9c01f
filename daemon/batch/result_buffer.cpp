#include "daemon/batch/result_buffer.hpp"

#include "daemon/common/json.hpp"

#include <charconv>
#include <cmath>

namespace barista::batch {
namespace {

template <class Int>
void append_int(std::string& out, Int value) {
  char digits[24];
  const auto end = std::to_chars(digits, digits + sizeof digits, value).ptr;
  out.append(digits, end);
}

// `ms` with three decimals, as "%.3f" would print it, without the cost of a float formatter.
void append_ms(std::string& out, double ms) {
  const auto us = ms > 0 && std::isfinite(ms) ? std::llround(ms * 1000.0) : 0LL;
  append_int(out, us / 1000);
  const auto frac = static_cast<int>(us % 1000);
  const char three[3] = {static_cast<char>('0' + frac / 100),
                         static_cast<char>('0' + frac / 10 % 10),
                         static_cast<char>('0' + frac % 10)};
  out += '.';
  out.append(three, 3);
}

}  // namespace

std::string_view to_string(JobStatus status) {
  switch (status) {
    case JobStatus::kOk:
      return "ok";
    case JobStatus::kFailed:
      return "failed";
    case JobStatus::kTimeout:
      return "timeout";
    case JobStatus::kCancelled:
      return "cancelled";
    case JobStatus::kInvalid:
      return "invalid";
  }
  return "failed";
}

std::optional<JobStatus> parse_status(std::string_view word) {
  for (auto s : {JobStatus::kOk, JobStatus::kFailed, JobStatus::kTimeout, JobStatus::kCancelled,
                 JobStatus::kInvalid}) {
    if (to_string(s) == word) {
      return s;
    }
  }
  return std::nullopt;
}

void Counts::add(JobStatus s) {
  switch (s) {
    case JobStatus::kOk:
      ++ok;
      break;
    case JobStatus::kFailed:
      ++failed;
      break;
    case JobStatus::kTimeout:
      ++timeout;
      break;
    case JobStatus::kCancelled:
      ++cancelled;
      break;
    case JobStatus::kInvalid:
      ++invalid;
      break;
  }
}

void Counts::add(const Counts& other) {
  ok += other.ok;
  failed += other.failed;
  timeout += other.timeout;
  cancelled += other.cancelled;
  invalid += other.invalid;
}

void append_result_line(std::string& out, std::string_view id, JobStatus status, int attempts,
                        double ms, std::string_view text, int throttled) {
  out += R"({"id":)";
  common::append_json_string(out, id);
  out += R"(,"status":")";
  out += to_string(status);
  out += R"(","attempts":)";
  append_int(out, attempts);
  if (throttled > 0) {
    out += R"(,"throttled":)";
    append_int(out, throttled);
  }
  out += R"(,"ms":)";
  append_ms(out, ms);
  if (status == JobStatus::kOk) {
    if (!text.empty()) {
      out += R"(,"output":)";
      common::append_json_string(out, text);
    }
  } else {
    out += R"(,"error":)";
    common::append_json_string(out, text);
  }
  out += "}\n";
}

void ResultBuffer::add(std::string_view id, JobStatus status, int attempts, double ms,
                       std::string_view text, int throttled) {
  append_result_line(lines_, id, status, attempts, ms, text, throttled);
  counts_.add(status);
  ++tally_.jobs[static_cast<std::size_t>(status)];
  if (attempts > 0) {
    tally_.observe_duration(ms / 1000.0);
  }
  if (is_failure(status) && !first_error_) {
    first_error_ = FirstError{std::string(id), std::string(text)};
  }
  ++jobs_;
}

void ResultBuffer::clear() {
  lines_.clear();
  counts_ = {};
  first_error_.reset();
  tally_ = {};
  jobs_ = 0;
}

}  // namespace barista::batch
