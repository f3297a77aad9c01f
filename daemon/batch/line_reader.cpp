#include "daemon/batch/line_reader.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>

namespace barista::batch {
namespace {
constexpr std::size_t kReadBlock = 256UL * 1024;
}

LineReader::LineReader(int fd, std::uint64_t max_line, std::size_t padding)
    : fd_(fd), max_line_(max_line), padding_(padding) {
  // Room for one maximal line (plus its "\r\n") and a read block behind it.
  size_ = static_cast<std::size_t>(max_line_) + 2 + kReadBlock + padding_;
  buffer_.reset(new char[size_]);
}

LineReader::~LineReader() { ::close(fd_); }

bool LineReader::fill() {
  if (eof_) {
    return false;
  }
  if (begin_ > 0) {
    std::memmove(buffer_.get(), buffer_.get() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  const std::size_t room = size_ - padding_ - end_;
  if (room == 0) {
    return true;  // full: the caller handles an oversize line
  }
  for (;;) {
    const ssize_t n = ::read(fd_, buffer_.get() + end_, std::min(room, kReadBlock));
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      throw std::system_error(errno, std::generic_category(), "read batch");
    }
    if (n == 0) {
      eof_ = true;
      return false;
    }
    end_ += static_cast<std::size_t>(n);
    return true;
  }
}

bool LineReader::next(Line& out) {
  for (;;) {
    const char* start = buffer_.get() + begin_;
    const auto* nl = static_cast<const char*>(std::memchr(start, '\n', end_ - begin_));
    std::size_t length = nl != nullptr ? static_cast<std::size_t>(nl - start) : end_ - begin_;
    const bool complete = nl != nullptr || (eof_ && end_ > begin_);
    std::size_t content = length;
    if (content > 0 && start[content - 1] == '\r') {
      --content;
    }
    if (complete && content <= max_line_) {
      out.number = ++line_number_;
      out.text = std::string_view(start, content);
      out.length = content;
      out.oversize = false;
      begin_ += length + (nl != nullptr ? 1 : 0);
      return true;
    }
    if (!complete && length <= max_line_ + 1) {
      // Not yet the whole line, and it may still fit: read more.
      if (!fill() && end_ == begin_) {
        return false;
      }
      continue;
    }
    // Longer than the limit: skip to its end without keeping it.
    std::uint64_t total = length;
    begin_ += length;
    bool found = nl != nullptr;
    if (found) {
      ++begin_;
    }
    char last = length > 0 ? start[length - 1] : '\0';
    while (!found) {
      begin_ = end_ = 0;
      if (!fill()) {
        break;
      }
      const auto* p = static_cast<const char*>(std::memchr(buffer_.get(), '\n', end_));
      const std::size_t chunk = p != nullptr ? static_cast<std::size_t>(p - buffer_.get()) : end_;
      total += chunk;
      if (chunk > 0) {
        last = buffer_[chunk - 1];
      }
      begin_ = chunk;
      if (p != nullptr) {
        ++begin_;
        found = true;
      }
    }
    out.number = ++line_number_;
    out.text = {};
    out.length = last == '\r' && total > 0 ? total - 1 : total;
    out.oversize = true;
    return true;
  }
}

}  // namespace barista::batch
