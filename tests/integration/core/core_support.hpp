#pragma once

// Small helpers shared by the core integration tests.

#include "tests/integration/harness/daemon_harness.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace barista::itest {

/// Milliseconds between two steady-clock points.
inline double ms_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

/// A text batch of `n` lines, line i (1-based) being `line(i)`.
inline std::string text_batch(int n, const std::function<std::string(int)>& line) {
  std::string out;
  for (int i = 1; i <= n; ++i) {
    out += line(i);
    out += '\n';
  }
  return out;
}

/// Collects problems found while looking at many results, so that one CHECK reports the first
/// few instead of thousands of assertions.
class Problems {
 public:
  void add(const std::string& what) {
    if (list_.size() < 10) {
      list_.push_back(what);
    }
    ++count_;
  }
  [[nodiscard]] bool empty() const { return count_ == 0; }
  [[nodiscard]] std::size_t count() const { return count_; }
  [[nodiscard]] std::string text() const {
    std::string out = std::to_string(count_) + " problem(s):";
    for (const auto& p : list_) {
      out += "\n  " + p;
    }
    return out;
  }

 private:
  std::vector<std::string> list_;
  std::size_t count_ = 0;
};

/// True when `text` is an ISO 8601 UTC timestamp (2026-11-27T18:32:04Z, fractions allowed).
inline bool is_iso8601_utc(const std::string& text) {
  static const std::regex kIso(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z)");
  return std::regex_match(text, kIso);
}

/// The log line that contains every one of `parts`, or "" when none does.
inline std::string log_line_with(const std::string& log, const std::vector<std::string>& parts) {
  std::istringstream in(log);
  std::string line;
  while (std::getline(in, line)) {
    bool all = true;
    for (const auto& p : parts) {
      all = all && line.find(p) != std::string::npos;
    }
    if (all) {
      return line;
    }
  }
  return {};
}

/// Results of a batch wherever its folder is now (active/, done/ or failed/); 0 when none.
/// The file is opened before it is counted, so a batch moving on meanwhile is still counted.
inline std::size_t results_so_far(const Daemon& d, const std::string& pool, const std::string& id) {
  for (const char* folder : {"done", "failed", "active", "done", "failed"}) {
    std::ifstream in(d.pool_dir(pool) / folder / id / "results.jsonl", std::ios::binary);
    if (!in) {
      continue;
    }
    std::size_t n = 0;
    char buf[1 << 16];
    while (in.read(buf, sizeof buf) || in.gcount() > 0) {
      n += static_cast<std::size_t>(std::count(buf, buf + in.gcount(), '\n'));
    }
    return n;
  }
  return 0;
}

}  // namespace barista::itest
