#pragma once

// The YAML text of a config file as a plain tree with 1-based locations. Internal to
// daemon/config/: built from yaml-cpp's parser events rather than YAML::Node so that the limits
// (one document, bounded depth, no aliases) are enforced while parsing, before anything recurses.

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace barista::config::detail {

/// Collections nested deeper than this are refused.
inline constexpr int kMaxYamlDepth = 64;

struct YamlEntry;

/// One node of a YAML document.
struct YamlNode {
  enum class Kind { kNull, kScalar, kList, kMap };

  Kind kind = Kind::kNull;
  std::string text;                ///< a scalar's text
  std::vector<YamlNode> items;     ///< a list's elements
  std::vector<YamlEntry> entries;  ///< a map's entries, in file order
  int line = 0;                    ///< 1-based
  int column = 0;                  ///< 1-based
};

/// One entry of a map. (Not a std::pair: a pair of an incomplete type inside YamlNode is
/// refused by some standard libraries.)
struct YamlEntry {
  YamlNode key;
  YamlNode value;
};

/// A problem with the YAML itself (not with what it says).
struct YamlProblem {
  int line = 0;  ///< 1-based; 0 when unknown
  int column = 0;
  std::string message;
};

/// The outcome of parsing: a root (absent for an empty document or when there are problems).
struct YamlParse {
  std::optional<YamlNode> root;
  std::vector<YamlProblem> problems;
};

/// Parses `text` as a single YAML document. Refuses a second document, nesting deeper than
/// kMaxYamlDepth and aliases; reports syntax errors at yaml-cpp's mark. Duplicate keys are kept
/// (as separate entries) for the caller to report.
YamlParse parse_yaml(std::string_view text);

/// How a node reads in an error message: `'TEXT'` for a scalar, `a list`, `a map`, `nothing`.
std::string describe(const YamlNode& node);

/// `text` quoted for an error message: `'TEXT'`, control characters escaped, cut after 60 bytes.
std::string quote_text(std::string_view text);

}  // namespace barista::config::detail
