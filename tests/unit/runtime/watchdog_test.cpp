// The systemd watchdog keep-alive: WATCHDOG=1 reaches $NOTIFY_SOCKET at half of WATCHDOG_USEC
// while the liveness check passes, and stops while it fails, so that systemd restarts a wedged
// daemon.

#include "daemon/runtime/watchdog.hpp"

#include "tests/unit/config/config_test_util.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

namespace barista::runtime {
namespace {

using config::testing::TempDir;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

/// Plays systemd's part: a datagram socket named by $NOTIFY_SOCKET, and the watchdog variables
/// systemd would set. Everything is unset again on destruction.
class FakeSystemd {
 public:
  FakeSystemd() {
    const auto path = (dir_.path() / "notify").string();
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    REQUIRE(path.size() < sizeof addr.sun_path);
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    REQUIRE(::bind(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
    ::setenv("NOTIFY_SOCKET", path.c_str(), 1);
    ::unsetenv("WATCHDOG_USEC");
    ::unsetenv("WATCHDOG_PID");
  }
  FakeSystemd(const FakeSystemd&) = delete;
  FakeSystemd& operator=(const FakeSystemd&) = delete;
  ~FakeSystemd() {
    ::unsetenv("NOTIFY_SOCKET");
    ::unsetenv("WATCHDOG_USEC");
    ::unsetenv("WATCHDOG_PID");
    ::close(fd_);
  }

  /// As systemd does for a unit with WatchdogSec=: the interval, and the pid it is meant for.
  void enable_watchdog(std::chrono::microseconds interval, pid_t pid = ::getpid()) {
    ::setenv("WATCHDOG_USEC", std::to_string(interval.count()).c_str(), 1);
    ::setenv("WATCHDOG_PID", std::to_string(pid).c_str(), 1);
  }

  /// The next message sent to the socket, or nullopt when none came within `timeout`.
  std::optional<std::string> receive(milliseconds timeout) {
    pollfd pfd{fd_, POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(timeout.count())) != 1) {
      return std::nullopt;
    }
    char buf[4096];
    const auto n = ::recv(fd_, buf, sizeof buf, 0);
    REQUIRE(n >= 0);
    return std::string(buf, static_cast<std::size_t>(n));
  }

  /// Drops the messages already queued.
  void drain() {
    while (receive(milliseconds(0))) {
    }
  }

 private:
  TempDir dir_;
  int fd_ = -1;
};

/// Polls `done` every few milliseconds; false when it did not become true within `timeout`.
template <typename Condition>
bool wait_until(Condition done, milliseconds timeout = milliseconds(5000)) {
  const auto until = Clock::now() + timeout;
  while (!done()) {
    if (Clock::now() > until) {
      return false;
    }
    std::this_thread::sleep_for(milliseconds(2));
  }
  return true;
}

TEST_CASE("without WATCHDOG_USEC the watchdog does nothing", "[watchdog]") {
  FakeSystemd systemd;
  std::atomic<int> calls{0};
  Watchdog watchdog([&] {
    ++calls;
    return true;
  });
  CHECK_FALSE(watchdog.enabled());
  CHECK(watchdog.interval().count() == 0);
  CHECK_FALSE(systemd.receive(milliseconds(300)));
  CHECK(calls == 0);
}

TEST_CASE("a watchdog meant for another process (WATCHDOG_PID) does nothing", "[watchdog]") {
  // A plugin's child process inherits the variables; it must not ping in the daemon's name.
  FakeSystemd systemd;
  systemd.enable_watchdog(milliseconds(100), ::getppid());
  Watchdog watchdog([] { return true; });
  CHECK_FALSE(watchdog.enabled());
  CHECK_FALSE(systemd.receive(milliseconds(300)));
}

TEST_CASE("the watchdog pings at half of WATCHDOG_USEC while the daemon is alive", "[watchdog]") {
  FakeSystemd systemd;
  systemd.enable_watchdog(milliseconds(200));
  Watchdog watchdog([] { return true; });
  REQUIRE(watchdog.enabled());
  CHECK(watchdog.interval() == milliseconds(100));

  // The first ping goes out at once, then one every 100 ms.
  REQUIRE(systemd.receive(milliseconds(2000)) == std::optional<std::string>("WATCHDOG=1"));
  const auto first = Clock::now();
  for (int i = 0; i < 4; ++i) {
    REQUIRE(systemd.receive(milliseconds(2000)) == std::optional<std::string>("WATCHDOG=1"));
  }
  const auto elapsed = Clock::now() - first;
  CHECK(elapsed >= milliseconds(350));
  // Well under the 200 ms systemd would allow per ping, even on a loaded machine.
  CHECK(elapsed < milliseconds(4 * 200));
}

TEST_CASE("the watchdog stops pinging while the liveness check fails", "[watchdog]") {
  FakeSystemd systemd;
  systemd.enable_watchdog(milliseconds(60));
  std::atomic<bool> healthy{true};
  std::atomic<int> calls{0};
  Watchdog watchdog([&] {
    ++calls;
    return healthy.load();
  });
  REQUIRE(systemd.receive(milliseconds(2000)) == std::optional<std::string>("WATCHDOG=1"));

  healthy = false;
  const int flipped = calls;
  // Every check numbered above `flipped` started after the flip and fails. Once one has run,
  // every ping of an earlier check has been sent (one thread: ping, then the next check).
  REQUIRE(wait_until([&] { return calls > flipped; }));
  systemd.drain();
  REQUIRE(wait_until([&] { return calls > flipped + 3; }));
  CHECK_FALSE(systemd.receive(milliseconds(0)));

  healthy = true;
  CHECK(systemd.receive(milliseconds(2000)) == std::optional<std::string>("WATCHDOG=1"));
}

TEST_CASE("a liveness check that throws counts as failed and does not end the thread",
          "[watchdog]") {
  FakeSystemd systemd;
  systemd.enable_watchdog(milliseconds(40));
  std::atomic<int> calls{0};
  Watchdog watchdog([&]() -> bool {
    if (++calls <= 3) {
      throw std::runtime_error("pool map unavailable");
    }
    return true;
  });
  REQUIRE(systemd.receive(milliseconds(2000)) == std::optional<std::string>("WATCHDOG=1"));
  // No ping before the first check that passed.
  CHECK(calls >= 4);
}

TEST_CASE("destroying the watchdog does not wait for the next ping", "[watchdog]") {
  FakeSystemd systemd;
  systemd.enable_watchdog(std::chrono::seconds(20));  // a ping every 10 s
  std::optional<Watchdog> watchdog;
  watchdog.emplace([] { return true; });
  REQUIRE(systemd.receive(milliseconds(2000)) == std::optional<std::string>("WATCHDOG=1"));
  const auto start = Clock::now();
  watchdog.reset();
  CHECK(Clock::now() - start < milliseconds(1000));
  CHECK_FALSE(systemd.receive(milliseconds(0)));
}

}  // namespace
}  // namespace barista::runtime
