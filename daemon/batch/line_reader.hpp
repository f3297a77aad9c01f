#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string_view>

namespace barista::batch {

/// One physical line of a batch file.
struct Line {
  std::uint64_t number = 0;  ///< 1-based physical line number
  std::string_view text;     ///< without its "\n" or "\r\n"; empty when `oversize`
  std::uint64_t length = 0;  ///< the line's length in bytes (also when oversize)
  bool oversize = false;     ///< longer than the limit: its text was skipped, not kept
};

/// Reads a file line by line in bounded memory: a buffer of about `max_line` plus one read
/// block, whatever the file's size or line lengths. Lines longer than `max_line` are reported
/// as oversize without being held in memory. After each line, at least `padding` readable bytes
/// follow `text` in memory (for parsers that read past the end, such as simdjson).
class LineReader {
 public:
  LineReader(int fd, std::uint64_t max_line, std::size_t padding);
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;
  ~LineReader();

  /// The next line; false at the end of the file. Throws std::system_error on a read error.
  bool next(Line& out);

 private:
  bool fill();  // reads more; false at EOF

  int fd_;
  std::uint64_t max_line_;
  std::size_t padding_;
  // Not zero-filled: pages of a large buffer cost memory only once a long line uses them.
  std::unique_ptr<char[]> buffer_;
  std::size_t size_ = 0;
  std::size_t begin_ = 0;  // start of unconsumed data
  std::size_t end_ = 0;    // end of data read
  std::uint64_t line_number_ = 0;
  bool eof_ = false;
};

}  // namespace barista::batch
