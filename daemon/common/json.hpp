#pragma once

#include <string>
#include <string_view>

namespace barista::common {

/// Appends `s` to `out` as the inside of a JSON string: quotes, backslashes and control
/// characters escaped, invalid UTF-8 replaced by U+FFFD, so that the result is always valid JSON.
void append_json_escaped(std::string& out, std::string_view s);

/// The length of the longest prefix of `s` that is valid UTF-8 (s.size() when all of it is).
std::size_t valid_utf8_prefix(std::string_view s);

/// Appends `"s"` (quoted and escaped).
inline void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  append_json_escaped(out, s);
  out += '"';
}

/// `"s"` (quoted and escaped), as a string of its own.
inline std::string json_quoted(std::string_view s) {
  std::string out;
  append_json_string(out, s);
  return out;
}

}  // namespace barista::common
