#include "daemon/redis/model.hpp"

#include "daemon/batch/summary.hpp"
#include "daemon/common/json.hpp"

#include <fmt/format.h>

#include <array>
#include <charconv>
#include <ctime>
#include <iterator>

namespace barista::redis {
namespace {

constexpr std::array<std::string_view, 5> kStatuses = {"ok", "failed", "timeout", "cancelled",
                                                       "invalid"};

std::uint64_t parse_count(std::string_view id, const std::string& field, const std::string& v) {
  std::uint64_t n = 0;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || end != v.data() + v.size()) {
    throw RedisError(
        fmt::format("batch record {}: field '{}' is not a count: '{}'", batch_key(id), field, v));
  }
  return n;
}

// Reads `width` digits at `pos`; nullopt unless they are all digits.
std::optional<int> digits(std::string_view s, std::size_t pos, std::size_t width) {
  if (pos + width > s.size()) {
    return std::nullopt;
  }
  int v = 0;
  const auto [end, ec] = std::from_chars(s.data() + pos, s.data() + pos + width, v);
  if (ec != std::errc() || end != s.data() + pos + width) {
    return std::nullopt;
  }
  return v;
}

}  // namespace

std::string batch_key(std::string_view batch) { return fmt::format("barista:batch:{}", batch); }

std::string results_key(std::string_view batch) { return fmt::format("barista:results:{}", batch); }

std::string lines_key(std::string_view batch) {
  return fmt::format("barista:results:{}:lines", batch);
}

bool is_status(std::string_view status) {
  for (const auto s : kStatuses) {
    if (s == status) {
      return true;
    }
  }
  return false;
}

bool is_failure_status(std::string_view status) {
  return status == "failed" || status == "timeout" || status == "invalid";
}

std::optional<BatchRecord> parse_batch_record(std::string_view id, const Reply& hgetall) {
  if (hgetall.size() == 0) {
    return std::nullopt;
  }
  BatchRecord r;
  r.id = std::string(id);
  const auto& f = hgetall.elements();
  for (std::size_t i = 0; i + 1 < f.size(); i += 2) {
    const std::string& key = f[i].str();
    const std::string& value = f[i + 1].str();
    if (key == "pool") {
      r.pool = value;
    } else if (key == "state") {
      r.state = value;
    } else if (key == "total") {
      r.total = parse_count(id, key, value);
    } else if (key == "ok") {
      r.counts.ok = parse_count(id, key, value);
    } else if (key == "failed") {
      r.counts.failed = parse_count(id, key, value);
    } else if (key == "timeout") {
      r.counts.timeout = parse_count(id, key, value);
    } else if (key == "cancelled") {
      r.counts.cancelled = parse_count(id, key, value);
    } else if (key == "invalid") {
      r.counts.invalid = parse_count(id, key, value);
    } else if (key == "done") {
      r.counts.done = parse_count(id, key, value);
    } else if (key == "first_error_id") {
      r.first_error_id = value;
    } else if (key == "first_error") {
      r.first_error = value;
    } else if (key == "started") {
      r.started = value;
    } else if (key == "finished") {
      r.finished = value;
    } else if (key == "cancel_all") {
      r.cancel_all = value == "1";
    }
  }
  return r;
}

std::optional<std::chrono::system_clock::time_point> parse_iso8601_utc(std::string_view text) {
  // 2026-11-27T18:32:04[.123]Z
  if (text.size() < 20 || text[4] != '-' || text[7] != '-' || text[10] != 'T' || text[13] != ':' ||
      text[16] != ':' || text.back() != 'Z') {
    return std::nullopt;
  }
  const auto year = digits(text, 0, 4);
  const auto month = digits(text, 5, 2);
  const auto day = digits(text, 8, 2);
  const auto hour = digits(text, 11, 2);
  const auto minute = digits(text, 14, 2);
  const auto second = digits(text, 17, 2);
  if (!year || !month || !day || !hour || !minute || !second) {
    return std::nullopt;
  }
  std::chrono::milliseconds fraction{0};
  const std::string_view rest = text.substr(19, text.size() - 20);
  if (!rest.empty()) {
    if (rest.front() != '.' || rest.size() < 2) {
      return std::nullopt;
    }
    // Milliseconds from the first three digits; finer digits are below what we print.
    const std::string_view frac = rest.substr(1);
    int ms = 0;
    for (std::size_t i = 0; i < frac.size(); ++i) {
      if (frac[i] < '0' || frac[i] > '9') {
        return std::nullopt;
      }
      if (i < 3) {
        ms = ms * 10 + (frac[i] - '0');
      }
    }
    for (std::size_t i = frac.size(); i < 3; ++i) {
      ms *= 10;
    }
    fraction = std::chrono::milliseconds(ms);
  }
  std::tm tm{};
  tm.tm_year = *year - 1900;
  tm.tm_mon = *month - 1;
  tm.tm_mday = *day;
  tm.tm_hour = *hour;
  tm.tm_min = *minute;
  tm.tm_sec = *second;
  const std::time_t secs = ::timegm(&tm);
  return std::chrono::system_clock::from_time_t(secs) + fraction;
}

std::string summary_json(const BatchRecord& record) {
  const auto& c = record.counts;
  batch::Summary out;
  out.batch = record.id;
  out.pool = record.pool;
  out.state = record.state;
  out.counts = {c.ok, c.failed, c.timeout, c.cancelled, c.invalid};
  out.jobs = out.counts.total();
  if (record.first_error_id) {
    out.first_error = batch::FirstError{*record.first_error_id, record.first_error};
  }
  out.started = record.started;
  if (record.ended()) {
    out.finished = record.finished;
    const auto start = parse_iso8601_utc(record.started);
    const auto end = parse_iso8601_utc(record.finished);
    out.seconds = start && end ? std::chrono::duration<double>(*end - *start).count() : 0.0;
  }
  return out.json();
}

}  // namespace barista::redis
