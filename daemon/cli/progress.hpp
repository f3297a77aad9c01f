#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>

namespace barista::cli {

/// How far a batch is, as `wait` reports it every 200 ms.
struct Progress {
  std::uint64_t done = 0;
  std::uint64_t total = 0;  ///< jobs read so far; final once `read_all`
  std::uint64_t failed = 0;
  bool read_all = false;
  /// The jobs the CLI counted in what it submitted, while the daemon's total is not final.
  std::optional<std::uint64_t> expected;
};

/// Counts the jobs in a batch's bytes as the daemon will: one per line that is not empty
/// without its line end (`\n` or `\r\n`), in text and JSONL batches alike.
class JobCounter {
 public:
  void feed(std::string_view bytes);
  /// The jobs counted, the last line included even without a final newline.
  [[nodiscard]] std::uint64_t jobs() const;

 private:
  std::uint64_t jobs_ = 0;
  std::uint64_t line_bytes_ = 0;
  bool last_was_cr_ = false;
};

/// The live one-line progress of `submit --wait` on a terminal, redrawn in place on stderr:
///   jobs  [########------------]  4210/10000  42%  812 jobs/s  3 failed  ETA 0:07
/// While the daemon is still reading the input its total is shown as `N+`; the bar, percentage
/// and ETA then use the jobs the CLI counted in what it sent (`4210/4290+ of 10000`), and are
/// left out when there is no such count.
class ProgressBar {
 public:
  using Clock = std::chrono::steady_clock;

  /// `fd`: a terminal. `label`: the batch id.
  ProgressBar(int fd, std::string label);
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;
  ~ProgressBar();

  void update(const Progress& progress, Clock::time_point now = Clock::now());
  /// Erases the line, so that what follows starts on a clean line.
  void clear();

  /// The line for `progress` at `rate` jobs/s, at most `width` columns wide.
  [[nodiscard]] static std::string render(const std::string& label, const Progress& progress,
                                          std::optional<double> rate, int width);

 private:
  /// Jobs per second over the last few seconds; nullopt until there are two samples.
  [[nodiscard]] std::optional<double> rate() const;

  int fd_;
  std::string label_;
  bool drawn_ = false;
  std::deque<std::pair<Clock::time_point, std::uint64_t>> samples_;
};

}  // namespace barista::cli
