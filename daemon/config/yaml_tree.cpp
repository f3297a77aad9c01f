#include "daemon/config/yaml_tree.hpp"

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/mark.h>
#include <yaml-cpp/parser.h>

#include <sstream>

#include <fmt/format.h>

namespace barista::config::detail {
namespace {

using Kind = YamlNode::Kind;

// Error messages quote values; a huge scalar must not make a huge message.
constexpr std::size_t kQuoteLimit = 60;

// Builds the tree from parser events. Events arrive in document order, so the open collections
// form a stack; a map keeps its pending key until the value arrives.
class TreeBuilder final : public YAML::EventHandler {
 public:
  // Thrown out of the parser to stop at a problem that makes the rest meaningless.
  struct Stop {};

  explicit TreeBuilder(std::string_view text) : text_(text) {}

  void OnDocumentStart(const YAML::Mark& mark) override {
    if (++documents_ > 1) {
      fatal(mark, "more than one YAML document ('---'): a config file holds exactly one");
    }
  }
  void OnDocumentEnd() override {}

  void OnNull(const YAML::Mark& mark, YAML::anchor_t /*anchor*/) override {
    attach(make(mark, Kind::kNull));
  }

  // An alias shares a node, so a few lines can expand into billions of nodes once walked (an
  // "alias bomb"); a config file never needs one, so refuse them outright.
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t /*anchor*/) override {
    problems_.push_back(
        {mark.line + 1, mark.column + 1,
         "YAML aliases are not supported (" + alias_text(mark) + "): write the value out in full"});
    attach(make(mark, Kind::kNull));
  }

  void OnScalar(const YAML::Mark& mark, const std::string& /*tag*/, YAML::anchor_t /*anchor*/,
                const std::string& value) override {
    auto node = make(mark, Kind::kScalar);
    node.text = value;
    attach(std::move(node));
  }

  void OnSequenceStart(const YAML::Mark& mark, const std::string& /*tag*/,
                       YAML::anchor_t /*anchor*/, YAML::EmitterStyle::value /*style*/) override {
    open(mark, Kind::kList);
  }
  void OnSequenceEnd() override { close(); }

  void OnMapStart(const YAML::Mark& mark, const std::string& /*tag*/, YAML::anchor_t /*anchor*/,
                  YAML::EmitterStyle::value /*style*/) override {
    open(mark, Kind::kMap);
  }
  void OnMapEnd() override { close(); }

  std::vector<YamlProblem> take_problems() { return std::move(problems_); }
  std::optional<YamlNode> take_root() { return std::move(root_); }

 private:
  struct Frame {
    YamlNode node;
    std::optional<YamlNode> key;  // a map's key waiting for its value
  };

  static YamlNode make(const YAML::Mark& mark, Kind kind) {
    YamlNode node;
    node.kind = kind;
    node.line = mark.line + 1;
    node.column = mark.column + 1;
    return node;
  }

  [[noreturn]] void fatal(const YAML::Mark& mark, std::string message) {
    problems_.push_back({mark.line + 1, mark.column + 1, std::move(message)});
    throw Stop{};
  }

  void open(const YAML::Mark& mark, Kind kind) {
    if (stack_.size() >= static_cast<std::size_t>(kMaxYamlDepth)) {
      fatal(mark,
            "nesting deeper than " + std::to_string(kMaxYamlDepth) + " levels is not supported");
    }
    stack_.push_back({make(mark, kind), std::nullopt});
  }

  void close() {
    auto node = std::move(stack_.back().node);
    stack_.pop_back();
    attach(std::move(node));
  }

  void attach(YamlNode node) {
    if (stack_.empty()) {
      root_ = std::move(node);
      return;
    }
    auto& top = stack_.back();
    if (top.node.kind == Kind::kList) {
      top.node.items.push_back(std::move(node));
      return;
    }
    if (!top.key) {
      top.key = std::move(node);
      return;
    }
    // An empty value is marked where the next token starts, often the next line: point at its
    // key instead, which is where the user looks.
    if (node.kind == Kind::kNull) {
      node.line = top.key->line;
      node.column = top.key->column;
    }
    top.node.entries.push_back(YamlEntry{std::move(*top.key), std::move(node)});
    top.key.reset();
  }

  // The alias as written (`*name`), read back from the text at the parser's mark.
  [[nodiscard]] std::string alias_text(const YAML::Mark& mark) const {
    if (mark.pos < 0 || static_cast<std::size_t>(mark.pos) >= text_.size()) {
      return "*";
    }
    auto rest = text_.substr(static_cast<std::size_t>(mark.pos));
    auto end = rest.find_first_of(" \t\r\n,]}");
    auto alias = rest.substr(0, std::min(end, kQuoteLimit));
    return std::string(alias);
  }

  std::string_view text_;
  int documents_ = 0;
  std::vector<Frame> stack_;
  std::optional<YamlNode> root_;
  std::vector<YamlProblem> problems_;
};

}  // namespace

YamlParse parse_yaml(std::string_view text) {
  YamlParse out;
  TreeBuilder builder(text);
  try {
    std::istringstream in{std::string(text)};
    YAML::Parser parser(in);
    while (parser.HandleNextDocument(builder)) {
    }
  } catch (const TreeBuilder::Stop&) {
    // the problem is recorded
  } catch (const YAML::DeepRecursion& e) {
    // yaml-cpp's own guard, for nesting that produces no events before it recurses
    out.problems.push_back(
        {e.mark.line + 1, e.mark.column + 1,
         "nesting deeper than " + std::to_string(kMaxYamlDepth) + " levels is not supported"});
  } catch (const YAML::Exception& e) {
    const bool known = !e.mark.is_null();
    out.problems.push_back({known ? e.mark.line + 1 : 0, known ? e.mark.column + 1 : 0,
                            "YAML syntax error: " + e.msg});
  }
  auto problems = builder.take_problems();
  problems.insert(problems.end(), std::make_move_iterator(out.problems.begin()),
                  std::make_move_iterator(out.problems.end()));
  out.problems = std::move(problems);
  if (out.problems.empty()) {
    out.root = builder.take_root();
  }
  return out;
}

std::string describe(const YamlNode& node) {
  switch (node.kind) {
    case Kind::kNull:
      return "nothing";
    case Kind::kList:
      return "a list";
    case Kind::kMap:
      return "a map";
    case Kind::kScalar:
      break;
  }
  return quote_text(node.text);
}

std::string quote_text(std::string_view text) {
  std::string out = "'";
  for (const char c : text.substr(0, kQuoteLimit)) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) {
      // Keep the terminal sane whatever bytes the file holds.
      out += fmt::format("\\x{:02x}", byte);
    } else {
      out += c;
    }
  }
  out += text.size() > kQuoteLimit ? "...'" : "'";
  return out;
}

}  // namespace barista::config::detail
