#pragma once

#include <chrono>
#include <string>

#include <fmt/format.h>

namespace barista::common {

/// A duration as the config file writes it, in the largest unit that says it exactly: "10m",
/// "1h", "90s", "1500ms".
inline std::string duration_text(std::chrono::milliseconds d) {
  const auto ms = d.count();
  if (ms != 0 && ms % 3'600'000 == 0) {
    return fmt::format("{}h", ms / 3'600'000);
  }
  if (ms != 0 && ms % 60'000 == 0) {
    return fmt::format("{}m", ms / 60'000);
  }
  if (ms != 0 && ms % 1000 == 0) {
    return fmt::format("{}s", ms / 1000);
  }
  return fmt::format("{}ms", ms);
}

}  // namespace barista::common
