// libFuzzer harness: any bytes as a batch file, read line by line and parsed as JSONL and as
// text, must give jobs or `invalid` reasons, never a crash.
#include "daemon/batch/job_parser.hpp"
#include "daemon/batch/line_reader.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  for (auto format : {barista::batch::InputFormat::kJsonl, barista::batch::InputFormat::kText}) {
    const int fd = ::memfd_create("batch", MFD_CLOEXEC);
    if (fd < 0) {
      return 0;
    }
    if (size > 0 && ::write(fd, data, size) != static_cast<ssize_t>(size)) {
      ::close(fd);
      return 0;
    }
    ::lseek(fd, 0, SEEK_SET);
    // A small limit so that the oversize path is exercised too.
    barista::batch::LineReader reader(fd, 256, simdjson::SIMDJSON_PADDING);
    barista::batch::JobParser parser(format, 256);
    barista::batch::Line line;
    while (reader.next(line)) {
      auto job = parser.parse(line);
      if (job.valid && job.id.empty() && format == barista::batch::InputFormat::kText) {
        __builtin_trap();  // a text job always has its line number as id
      }
    }
  }
  return 0;
}
