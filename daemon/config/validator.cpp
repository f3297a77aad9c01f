#include "daemon/config/validator.hpp"

#include <barista/plugin_config.hpp>
#include <barista/units.hpp>

#include <algorithm>
#include <charconv>
#include <climits>
#include <unordered_map>

#include <fmt/format.h>

namespace barista::config::detail {
namespace {

using Kind = YamlNode::Kind;

std::string join(std::span<const std::string_view> words, std::string_view last_sep) {
  std::string out;
  for (std::size_t i = 0; i < words.size(); ++i) {
    if (i > 0) {
      out += i + 1 == words.size() ? last_sep : ", ";
    }
    out += words[i];
  }
  return out;
}

std::string format_ms(std::chrono::milliseconds d) {
  return d.count() % 1000 == 0 ? fmt::format("{}s", d.count() / 1000)
                               : fmt::format("{}ms", d.count());
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

void Validator::error(int line, int column, std::string message) {
  if (issues_.size() >= kMaxIssues) {
    ++dropped_;
    return;
  }
  issues_.push_back({Location{file_, line, column}, std::move(message)});
}

std::vector<ConfigIssue> Validator::take_issues() {
  std::stable_sort(issues_.begin(), issues_.end(), [](const auto& a, const auto& b) {
    return std::pair(a.where.line, a.where.column) < std::pair(b.where.line, b.where.column);
  });
  if (dropped_ > 0) {
    issues_.push_back({Location{file_, 0, 0}, fmt::format("{} more problems not shown", dropped_)});
  }
  return std::move(issues_);
}

std::string_view closest_key(std::string_view key, std::span<const std::string_view> known) {
  std::string_view best;
  std::size_t best_distance = 0;
  std::size_t best_prefix = 0;
  for (auto candidate : known) {
    const auto d = PluginConfig::edit_distance(key, candidate);
    // On a tie the longer common prefix wins: 'pool' is 'pools' rather than 'spool'.
    const auto prefix = static_cast<std::size_t>(
        std::mismatch(key.begin(), key.end(), candidate.begin(), candidate.end()).first -
        key.begin());
    // Only close matches are likely typos.
    if (d > 2 || d >= key.size()) {
      continue;
    }
    if (best.empty() || d < best_distance || (d == best_distance && prefix > best_prefix)) {
      best_distance = d;
      best_prefix = prefix;
      best = candidate;
    }
  }
  return best;
}

void Validator::for_each_entry(const YamlNode& map, std::string_view where,
                               std::span<const std::string_view> known,
                               const std::function<void(const YamlNode&, const YamlNode&)>& visit) {
  std::unordered_map<std::string, int> first_line;
  for (const auto& [key, value] : map.entries) {
    if (key.kind != Kind::kScalar) {
      error(key, fmt::format("{}keys must be text, got {}", where, describe(key)));
      continue;
    }
    auto [it, inserted] = first_line.emplace(key.text, key.line);
    if (!inserted) {
      error(key, fmt::format("{}duplicate key {} (first given at line {})", where,
                             quote_text(key.text), it->second));
      continue;
    }
    if (!known.empty() && std::find(known.begin(), known.end(), key.text) == known.end()) {
      auto suggestion = closest_key(key.text, known);
      const auto hint = suggestion.empty() ? fmt::format("valid keys: {}", join(known, ", "))
                                           : fmt::format("did you mean '{}'?", suggestion);
      error(key, fmt::format("{}unknown key {} ({})", where, quote_text(key.text), hint));
      continue;
    }
    visit(key, value);
  }
}

bool Validator::expect_map(const YamlNode& node, std::string_view label) {
  if (node.kind == Kind::kMap || node.kind == Kind::kNull) {
    return true;
  }
  error(node, fmt::format("{}: expected a map, got {}", label, describe(node)));
  return false;
}

std::optional<std::string> Validator::scalar(const YamlNode& node, std::string_view label,
                                             std::string_view expected) {
  if (node.kind != Kind::kScalar) {
    error(node, fmt::format("{}: expected {}, got {}", label, expected, describe(node)));
    return std::nullopt;
  }
  return node.text;
}

std::optional<std::string> Validator::string(const YamlNode& node, std::string_view label) {
  auto text = scalar(node, label, "a string");
  if (text && text->empty()) {
    error(node, fmt::format("{}: must not be empty", label));
    return std::nullopt;
  }
  return text;
}

std::optional<std::int64_t> Validator::integer(const YamlNode& node, std::string_view label,
                                               std::int64_t min, std::int64_t max) {
  auto text = scalar(node, label, "an integer");
  if (!text) {
    return std::nullopt;
  }
  std::string_view digits = *text;
  const bool plus = !digits.empty() && digits.front() == '+';
  if (plus) {
    digits.remove_prefix(1);
  }
  const bool negative = !plus && !digits.empty() && digits.front() == '-';
  if (!all_digits(negative ? digits.substr(1) : digits)) {
    error(node, fmt::format("{}: expected an integer, got {}", label, describe(node)));
    return std::nullopt;
  }
  std::int64_t value = 0;
  auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (ec != std::errc() || value < min || value > max) {
    error(node, max >= INT_MAX
                    ? fmt::format("{}: must be at least {}, got {}", label, min, *text)
                    : fmt::format("{}: must be between {} and {}, got {}", label, min, max, *text));
    return std::nullopt;
  }
  return value;
}

std::optional<std::chrono::milliseconds> Validator::duration(const YamlNode& node,
                                                             std::string_view label,
                                                             std::chrono::milliseconds min) {
  auto text = scalar(node, label, "a duration");
  if (!text) {
    return std::nullopt;
  }
  auto value = units::parse_duration(*text);
  if (!value) {
    error(node, fmt::format("{}: expected a duration such as 250ms, 30s, 5m or 1h, got {}", label,
                            describe(node)));
    return std::nullopt;
  }
  if (*value < min) {
    error(node, fmt::format("{}: must be at least {}, got {}", label, format_ms(min), *text));
    return std::nullopt;
  }
  return value;
}

std::optional<std::uint64_t> Validator::size(const YamlNode& node, std::string_view label,
                                             std::uint64_t min) {
  auto text = scalar(node, label, "a size");
  if (!text) {
    return std::nullopt;
  }
  auto value = units::parse_size(*text);
  if (!value) {
    error(node, fmt::format("{}: expected a size such as 512, 64KiB or 1MiB, got {}", label,
                            describe(node)));
    return std::nullopt;
  }
  if (*value < min) {
    error(node, fmt::format("{}: must be at least {} bytes, got {}", label, min, *text));
    return std::nullopt;
  }
  return value;
}

std::optional<Rate> Validator::rate(const YamlNode& node, std::string_view label) {
  auto text = scalar(node, label, "a rate");
  if (!text) {
    return std::nullopt;
  }
  std::string_view s = *text;
  const auto slash = s.find('/');
  Rate rate;
  const auto count = s.substr(0, std::min(slash, s.size()));
  const auto unit = slash == std::string_view::npos ? std::string_view() : s.substr(slash + 1);
  auto [ptr, ec] = std::from_chars(count.data(), count.data() + count.size(), rate.count);
  const bool count_ok = all_digits(count) && ec == std::errc() && rate.count >= 1;
  if (unit == "s") {
    rate.per = std::chrono::seconds(1);
  } else if (unit == "m") {
    rate.per = std::chrono::minutes(1);
  } else if (unit == "h") {
    rate.per = std::chrono::hours(1);
  }
  if (!count_ok || (unit != "s" && unit != "m" && unit != "h")) {
    error(node, fmt::format("{}: expected N/s, N/m or N/h with N at least 1, got {}", label,
                            describe(node)));
    return std::nullopt;
  }
  return rate;
}

std::optional<std::vector<std::string>> Validator::string_list(const YamlNode& node,
                                                               std::string_view label) {
  if (node.kind == Kind::kScalar) {
    auto one = string(node, label);
    return one ? std::optional(std::vector{*one}) : std::nullopt;
  }
  if (node.kind != Kind::kList) {
    error(node, fmt::format("{}: expected a list of strings, got {}", label, describe(node)));
    return std::nullopt;
  }
  std::vector<std::string> out;
  bool ok = true;
  for (const auto& item : node.items) {
    auto text = string(item, label);
    if (text) {
      out.push_back(std::move(*text));
    } else {
      ok = false;
    }
  }
  return ok ? std::optional(std::move(out)) : std::nullopt;
}

std::optional<std::string> Validator::choice(const YamlNode& node, std::string_view label,
                                             std::span<const std::string_view> allowed) {
  const auto expected =
      allowed.size() == 2 ? join(allowed, " or ") : "one of " + join(allowed, ", ");
  auto text = scalar(node, label, expected);
  if (!text) {
    return std::nullopt;
  }
  if (std::find(allowed.begin(), allowed.end(), *text) == allowed.end()) {
    error(node, fmt::format("{}: expected {}, got {}", label, expected, describe(node)));
    return std::nullopt;
  }
  return text;
}

std::optional<std::pair<std::string, int>> split_host_port(std::string_view text) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    return std::nullopt;
  }
  const auto host = text.substr(0, colon);
  const auto port = text.substr(colon + 1);
  const bool bracketed = host.front() == '[';
  if (bracketed ? (host.size() < 3 || host.back() != ']')
                : host.find_first_of(":[]/@ ") != std::string_view::npos) {
    return std::nullopt;
  }
  int value = 0;
  if (!all_digits(port) || port.size() > 5) {
    return std::nullopt;
  }
  std::from_chars(port.data(), port.data() + port.size(), value);
  if (value > 65535) {
    return std::nullopt;
  }
  return std::pair{std::string(host), value};
}

std::optional<std::string> Validator::host_port(const YamlNode& node, std::string_view label) {
  auto text = scalar(node, label, "HOST:PORT");
  if (!text) {
    return std::nullopt;
  }
  if (!split_host_port(*text)) {
    error(node, fmt::format("{}: expected HOST:PORT such as 127.0.0.1:9464, got {}", label,
                            describe(node)));
    return std::nullopt;
  }
  return text;
}

}  // namespace barista::config::detail
