#pragma once

#include <cstring>
#include <string>

namespace barista::common {

/// The text of an errno value, thread-safe (std::strerror may share one buffer between threads).
inline std::string error_text(int error) {
  char buf[256];
  // The GNU strerror_r: returns the text, in `buf` or a static string.
  return ::strerror_r(error, buf, sizeof buf);
}

}  // namespace barista::common
