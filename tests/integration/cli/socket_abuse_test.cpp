// The control socket under abuse (issue: nothing lost, item 4): garbage, oversized requests,
// 1,000 idle connections and a daemon out of descriptors: none stalls or crashes baristad.

#include "tests/integration/cli/cli_support.hpp"

#include <catch2/catch.hpp>

#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

namespace barista::itest::cli {
namespace {

// A connection to the daemon's control socket; -1 when it could not be made.
int connect_to(const std::filesystem::path& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Sends `bytes` and returns what the daemon answers until it closes the connection (5 s at most).
std::string exchange(const std::filesystem::path& path, const std::string& bytes) {
  const int fd = connect_to(path);
  REQUIRE(fd >= 0);
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    const auto n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) {
      break;  // the daemon stopped reading: its answer is waiting
    }
    sent += static_cast<std::size_t>(n);
  }
  std::string reply;
  char buf[4096];
  pollfd p{fd, POLLIN, 0};
  while (::poll(&p, 1, 5000) == 1) {
    const auto n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      break;
    }
    reply.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return reply;
}

// `barista status` answers, and quickly.
void check_serving(const Daemon& d) {
  const auto start = Clock::now();
  const auto r = run_cli(with_socket(d, {"status"}));
  INFO(r.err << "\nbaristad's log:\n" << d.log_tail());
  CHECK(r.exit_code == 0);
  CHECK(Clock::now() - start < seconds(5));
}

TEST_CASE("garbage and oversized requests get an error reply", "[integration][cli][socket]") {
  Daemon d(pool("echo", "echo", 1));
  d.start();
  CHECK(exchange(d.socket(), "not json at all\n")
            .starts_with(R"({"ok":false,"code":3,"error":"malformed request: )"));
  CHECK(exchange(d.socket(), std::string("\0\xff\xfe{{\n", 6))
            .starts_with(R"({"ok":false,"code":3,"error":"malformed request)"));
  CHECK(exchange(d.socket(), "{\"cmd\":\"brew\"}\n") ==
        R"({"ok":false,"code":3,"error":"unknown command 'brew'"})"
        "\n");
  CHECK(exchange(d.socket(), "{\"cmd\":7}\n") ==
        R"({"ok":false,"code":3,"error":"malformed request: \"cmd\" must be a string"})"
        "\n");
  // 1 MiB without a newline: refused once it passes the limit, not read to the end.
  CHECK(exchange(d.socket(), std::string(1 << 20, 'a')) ==
        R"({"ok":false,"code":3,"error":"request exceeds 65536 bytes"})"
        "\n");
  // A submit whose body is not framed stores nothing.
  CHECK(exchange(d.socket(), "{\"cmd\":\"submit\",\"pool\":\"echo\",\"name\":\"x.txt\"}\nzz\nab")
            .find("malformed batch body: bad chunk header 'zz'") != std::string::npos);
  CHECK(std::filesystem::is_empty(d.inbox("echo")));
  check_serving(d);
  CHECK(d.running());
}

TEST_CASE("1,000 idle connections do not stall the daemon", "[integration][cli][socket]") {
  rlimit limit{};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &limit) == 0);
  if (limit.rlim_max < 1200) {
    WARN("skipped: this test needs 1,200 descriptors, the hard limit is " << limit.rlim_max);
    return;
  }
  const rlimit saved = limit;
  limit.rlim_cur = limit.rlim_max;
  REQUIRE(::setrlimit(RLIMIT_NOFILE, &limit) == 0);
  Daemon d(pool("echo", "echo", 1));
  d.start();
  std::vector<int> idle;
  for (int i = 0; i < 1000; ++i) {
    const int fd = connect_to(d.socket());
    REQUIRE(fd >= 0);
    idle.push_back(fd);
  }
  check_serving(d);
  TempDir tmp;
  write_file(tmp.path() / "jobs.txt", "a\nb\n");
  CHECK(run_cli(with_socket(d, {"submit", "echo", (tmp.path() / "jobs.txt").string(), "--wait"}))
            .exit_code == 0);
  for (const int fd : idle) {
    ::close(fd);
  }
  ::setrlimit(RLIMIT_NOFILE, &saved);
  check_serving(d);
}

TEST_CASE("a daemon out of descriptors closes the oldest idle connection and keeps serving",
          "[integration][cli][socket]") {
  if (kSanitized) {
    // The sanitizer runtimes need descriptors of their own (UBSan probes memory through a pipe):
    // starved of them they report errors that are not the daemon's.
    WARN("skipped under a sanitizer");
    return;
  }
  Daemon d(pool("echo", "echo", 1));
  d.start();
  // The daemon gets 64 descriptors; 200 idle clients would take them all.
  const rlimit small{64, 64};
  if (::prlimit(d.pid(), RLIMIT_NOFILE, &small, nullptr) != 0) {
    WARN("skipped: cannot lower baristad's descriptor limit: " << std::strerror(errno));
    return;
  }
  std::vector<int> idle;
  for (int i = 0; i < 200; ++i) {
    const int fd = connect_to(d.socket());
    if (fd >= 0) {
      idle.push_back(fd);
    }
  }
  check_serving(d);
  CHECK(d.wait_log("control socket: out of file descriptors with", seconds(5)));
  for (const int fd : idle) {
    ::close(fd);
  }
  check_serving(d);
  CHECK(d.running());
}

}  // namespace
}  // namespace barista::itest::cli
