#include "daemon/cli/progress.hpp"

#include "daemon/cli/client.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace barista::cli {
namespace {

// The rate is measured over this much recent time: long enough to be steady, short enough to
// follow a change (a reload that adds workers).
constexpr auto kRateWindow = std::chrono::seconds(5);
constexpr int kDefaultWidth = 80;
constexpr int kBarCells = 20;
constexpr int kMinBarCells = 5;

int terminal_width(int fd) {
  winsize ws{};
  if (::ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) {
    return ws.ws_col;
  }
  return kDefaultWidth;
}

std::string duration_text(double seconds) {
  const auto s = static_cast<std::uint64_t>(std::llround(seconds));
  if (s >= 3600) {
    return fmt::format("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
  }
  return fmt::format("{}:{:02}", s / 60, s % 60);
}

}  // namespace

void JobCounter::feed(std::string_view bytes) {
  for (const char c : bytes) {
    if (c == '\n') {
      if (line_bytes_ > (last_was_cr_ ? 1U : 0U)) {
        ++jobs_;
      }
      line_bytes_ = 0;
      last_was_cr_ = false;
    } else {
      ++line_bytes_;
      last_was_cr_ = c == '\r';
    }
  }
}

std::uint64_t JobCounter::jobs() const {
  return jobs_ + (line_bytes_ > (last_was_cr_ ? 1U : 0U) ? 1 : 0);
}

ProgressBar::ProgressBar(int fd, std::string label) : fd_(fd), label_(std::move(label)) {}

ProgressBar::~ProgressBar() {
  try {
    clear();
  } catch (const std::exception&) {
    // The terminal went away: nothing left to tidy.
  }
}

std::string ProgressBar::render(const std::string& label, const Progress& p,
                                std::optional<double> rate, int width) {
  // The total the bar measures against: the daemon's once final, else the CLI's own count.
  std::optional<std::uint64_t> known;
  if (p.read_all) {
    known = p.total;
  } else if (p.expected && *p.expected >= p.total) {
    known = p.expected;
  }
  std::string numbers = fmt::format("{}/{}", p.done, p.total);
  if (!p.read_all) {
    numbers += known ? fmt::format("+ of {}", *known) : std::string("+");
  }
  double fraction = 0;
  if (known && *known > 0) {
    fraction = std::min(1.0, static_cast<double>(p.done) / static_cast<double>(*known));
    numbers += fmt::format("  {}%", static_cast<int>(fraction * 100));
  }
  numbers += rate ? fmt::format("  {:.0f} jobs/s", *rate) : std::string("  - jobs/s");
  numbers += fmt::format("  {} failed", p.failed);
  if (known && rate && *rate > 0) {
    numbers +=
        "  ETA " + duration_text(static_cast<double>(*known - std::min(p.done, *known)) / *rate);
  } else {
    numbers += "  ETA -";
  }
  // The bar takes the room the numbers leave, up to its full size; the numbers come first.
  std::string bar;
  const auto room = static_cast<std::int64_t>(width) - 1 -
                    static_cast<std::int64_t>(label.size() + numbers.size()) - 6;
  const int cells = static_cast<int>(std::min<std::int64_t>(kBarCells, room));
  if (known && *known > 0 && cells >= kMinBarCells) {
    const int full = static_cast<int>(fraction * cells);
    bar = '[' + std::string(static_cast<std::size_t>(full), '#') +
          std::string(static_cast<std::size_t>(cells - full), '-') + "]  ";
  }
  std::string line = label + "  " + bar + numbers;
  // Never wider than the terminal: a wrapped line cannot be redrawn in place.
  if (width > 1 && line.size() >= static_cast<std::size_t>(width)) {
    line.resize(static_cast<std::size_t>(width - 1));
  }
  return line;
}

std::optional<double> ProgressBar::rate() const {
  if (samples_.size() < 2) {
    return std::nullopt;
  }
  const auto& [t0, d0] = samples_.front();
  const auto& [t1, d1] = samples_.back();
  const double seconds = std::chrono::duration<double>(t1 - t0).count();
  if (seconds <= 0) {
    return std::nullopt;
  }
  return static_cast<double>(d1 - std::min(d0, d1)) / seconds;
}

void ProgressBar::update(const Progress& progress, Clock::time_point now) {
  samples_.emplace_back(now, progress.done);
  while (samples_.size() > 2 && now - samples_.front().first > kRateWindow) {
    samples_.pop_front();
  }
  // \r and "erase to the end of the line": the line is redrawn in place.
  write_all(fd_, "\r" + render(label_, progress, rate(), terminal_width(fd_)) + "\x1b[K");
  drawn_ = true;
}

void ProgressBar::clear() {
  if (drawn_) {
    write_all(fd_, "\r\x1b[K");
    drawn_ = false;
  }
}

}  // namespace barista::cli
