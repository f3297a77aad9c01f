// io_floor: the I/O floor of the dispatch benchmark. One thread reads a text batch and writes
// the result line Barista's echo pool would write for each job, and does nothing else: no
// queue, no worker, no durability. Whatever Barista spends beyond this is its own overhead.
//
//   {"id":"17","status":"ok","attempts":1,"ms":0.001,"output":"17"}
//
// A job is a non-empty line (without its \r\n), its id the 1-based line number, as in
// docs/reference.md#input-formats. `ms` is measured around the job (a string copy), so that the
// line holds what Barista's does. Usage: io_floor BATCH_FILE RESULTS_FILE
#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

namespace {

constexpr std::size_t kChunk = std::size_t{1} << 20;

[[noreturn]] void die(const char* what, const char* path) {
  std::fprintf(stderr, "io_floor: %s %s: %s\n", what, path, std::strerror(errno));
  std::exit(1);
}

void write_all(int fd, std::string_view bytes, const char* path) {
  while (!bytes.empty()) {
    const auto n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      die("cannot write", path);
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

std::size_t utf8_length(std::string_view s, std::size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  std::size_t n = 0;
  std::uint32_t min = 0;
  std::uint32_t cp = 0;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2, min = 0x80, cp = c & 0x1Fu;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3, min = 0x800, cp = c & 0x0Fu;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4, min = 0x10000, cp = c & 0x07u;
  } else {
    return 0;
  }
  if (i + n > s.size()) {
    return 0;
  }
  for (std::size_t k = 1; k < n; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0u) != 0x80u) {
      return 0;
    }
    cp = (cp << 6) | (b & 0x3Fu);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    return 0;
  }
  return n;
}

// Quoted and escaped as Barista's results are: invalid UTF-8 becomes U+FFFD.
void append_json_string(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7F && c != '"' && c != '\\') {
      out += static_cast<char>(c);
      ++i;
      continue;
    }
    if (c >= 0x80) {
      const auto n = utf8_length(s, i);
      if (n == 0) {
        out += "\xEF\xBF\xBD";
        ++i;
      } else {
        out.append(s.data() + i, n);
        i += n;
      }
      continue;
    }
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        out += "\\u00";
        out += kHex[c >> 4];
        out += kHex[c & 0x0F];
    }
    ++i;
  }
  out += '"';
}

void append_ms(std::string& out, double ms) {
  const auto us = ms > 0 ? std::llround(ms * 1000.0) : 0LL;
  std::array<char, 24> digits{};
  out.append(digits.data(),
             std::to_chars(digits.data(), digits.data() + digits.size(), us / 1000).ptr);
  const auto frac = static_cast<int>(us % 1000);
  out += '.';
  out += static_cast<char>('0' + frac / 100);
  out += static_cast<char>('0' + frac / 10 % 10);
  out += static_cast<char>('0' + frac % 10);
}

void append_result(std::string& out, std::size_t id, std::string_view payload) {
  const auto start = std::chrono::steady_clock::now();
  const std::string output(payload);
  const std::chrono::duration<double, std::milli> ms = std::chrono::steady_clock::now() - start;
  std::array<char, 24> digits{};
  out += R"({"id":")";
  out.append(digits.data(), std::to_chars(digits.data(), digits.data() + digits.size(), id).ptr);
  out += R"(","status":"ok","attempts":1,"ms":)";
  append_ms(out, ms.count());
  out += R"(,"output":)";
  append_json_string(out, output);
  out += "}\n";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: io_floor BATCH_FILE RESULTS_FILE\n");
    return 64;
  }
  const int in = ::open(argv[1], O_RDONLY | O_CLOEXEC);
  if (in < 0) {
    die("cannot open", argv[1]);
  }
  const int out = ::open(argv[2], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0) {
    die("cannot create", argv[2]);
  }
  std::string pending;  // the start of a line cut by the end of a chunk
  std::string results;
  results.reserve(kChunk + 4096);
  std::string chunk(kChunk, '\0');
  std::size_t line_number = 0;
  auto one_line = [&](std::string_view line) {
    ++line_number;
    if (!line.empty() && line.back() == '\r') {
      line.remove_suffix(1);
    }
    if (line.empty()) {
      return;
    }
    append_result(results, line_number, line);
    if (results.size() >= kChunk) {
      write_all(out, results, argv[2]);
      results.clear();
    }
  };
  for (;;) {
    const auto n = ::read(in, chunk.data(), chunk.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      die("cannot read", argv[1]);
    }
    if (n == 0) {
      break;
    }
    std::string_view data(chunk.data(), static_cast<std::size_t>(n));
    for (auto nl = data.find('\n'); nl != std::string_view::npos; nl = data.find('\n')) {
      if (pending.empty()) {
        one_line(data.substr(0, nl));
      } else {
        pending.append(data.data(), nl);
        one_line(pending);
        pending.clear();
      }
      data.remove_prefix(nl + 1);
    }
    pending.append(data);
  }
  if (!pending.empty()) {
    one_line(pending);
  }
  write_all(out, results, argv[2]);
  if (::close(out) != 0) {
    die("cannot close", argv[2]);
  }
  ::close(in);
  return 0;
}
