#pragma once

/// @file units.hpp
/// Parsing of the duration and size notations used in Barista's configuration.
///
/// Durations: an unsigned integer followed by `ms`, `s`, `m`, `h` or `d` (`250ms`, `30s`, `5m`).
/// Sizes: an unsigned integer, optionally followed by `B`, `KiB`, `MiB` or `GiB` (`512`, `64KiB`).

#include <charconv>
#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>
#include <string_view>

namespace barista::units {

namespace detail {
/// Splits "123abc" into 123 and "abc"; nullopt when there are no leading digits or on overflow.
inline std::optional<std::pair<std::uint64_t, std::string_view>> split_number(std::string_view s) {
  std::uint64_t value = 0;
  const auto* first = s.data();
  const auto* last = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(first, last, value);
  if (ec != std::errc() || ptr == first) {
    return std::nullopt;
  }
  return std::pair{value, std::string_view(ptr, static_cast<std::size_t>(last - ptr))};
}

inline std::optional<std::uint64_t> checked_mul(std::uint64_t a, std::uint64_t b) {
  if (b != 0 && a > std::numeric_limits<std::uint64_t>::max() / b) {
    return std::nullopt;
  }
  return a * b;
}
}  // namespace detail

/// Parses a duration such as `250ms`, `30s`, `5m`, `1h`, `7d`. nullopt when malformed.
inline std::optional<std::chrono::milliseconds> parse_duration(std::string_view s) {
  auto split = detail::split_number(s);
  if (!split) {
    return std::nullopt;
  }
  auto [n, unit] = *split;
  std::uint64_t factor = 0;
  if (unit == "ms") {
    factor = 1;
  } else if (unit == "s") {
    factor = 1000;
  } else if (unit == "m") {
    factor = 60'000;
  } else if (unit == "h") {
    factor = 3'600'000;
  } else if (unit == "d") {
    factor = 86'400'000;
  } else {
    return std::nullopt;
  }
  auto ms = detail::checked_mul(n, factor);
  // Bounded to ~292 years so that adding it to a steady_clock time point cannot overflow.
  constexpr std::uint64_t kMax = 1ULL << 53;
  if (!ms || *ms > kMax) {
    return std::nullopt;
  }
  return std::chrono::milliseconds(static_cast<std::int64_t>(*ms));
}

/// Parses a size such as `512`, `512B`, `64KiB`, `1MiB`, `2GiB` into bytes. nullopt when malformed.
inline std::optional<std::uint64_t> parse_size(std::string_view s) {
  auto split = detail::split_number(s);
  if (!split) {
    return std::nullopt;
  }
  auto [n, unit] = *split;
  std::uint64_t factor = 0;
  if (unit.empty() || unit == "B") {
    factor = 1;
  } else if (unit == "KiB") {
    factor = 1ULL << 10;
  } else if (unit == "MiB") {
    factor = 1ULL << 20;
  } else if (unit == "GiB") {
    factor = 1ULL << 30;
  } else {
    return std::nullopt;
  }
  return detail::checked_mul(n, factor);
}

}  // namespace barista::units
