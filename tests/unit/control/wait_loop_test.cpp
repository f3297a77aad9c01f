#include "daemon/control/wait_loop.hpp"

#include <catch2/catch.hpp>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

using barista::control::WaitLoop;
using barista::control::Wake;
using barista::control::Watch;

namespace {

using namespace std::chrono_literals;

// Counts its steps; ends when told to, through its wake.
struct Script {
  std::atomic<int> steps{0};
  std::atomic<bool> end{false};
  std::atomic<bool> destroyed{false};
  std::mutex mutex;
  Wake wake;
};

class ScriptWatch final : public Watch {
 public:
  explicit ScriptWatch(Script& s) : s_(s) {}
  ScriptWatch(const ScriptWatch&) = delete;
  ScriptWatch& operator=(const ScriptWatch&) = delete;
  ~ScriptWatch() override { s_.destroyed = true; }
  void start(const Wake& wake) override {
    std::lock_guard lock(s_.mutex);
    s_.wake = wake;
  }
  Step step() override {
    const int n = ++s_.steps;
    if (s_.end) {
      return {"end\n", true};
    }
    return {"step " + std::to_string(n) + "\n", false};
  }

 private:
  Script& s_;
};

// Reads from `fd` until `text` has arrived, EOF, or `timeout`.
std::string read_until(int fd, const std::string& text, std::chrono::milliseconds timeout) {
  std::string got;
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (got.find(text) == std::string::npos && std::chrono::steady_clock::now() < until) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) {
      continue;
    }
    char buf[4096];
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) {
      break;
    }
    got.append(buf, static_cast<std::size_t>(n));
  }
  return got;
}

bool at_eof(int fd, std::chrono::milliseconds timeout) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) {
    return false;
  }
  char c = 0;
  return ::read(fd, &c, 1) == 0;
}

// A client connected to `loop`, its answer `script`'s, once its first step has arrived; the
// caller closes it.
int watched_client(WaitLoop& loop, Script& script) {
  int sv[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  loop.add(sv[0], std::make_unique<ScriptWatch>(script));
  CHECK(read_until(sv[1], "step 1\n", 1000ms) == "step 1\n");
  return sv[1];
}

}  // namespace

TEST_CASE("wait loop: progress at each tick, the end at once when woken", "[control]") {
  WaitLoop loop;
  Script script;
  const int client = watched_client(loop, script);  // asked at once, then at the ticks
  const auto got = read_until(client, "step 3\n", 2000ms);
  CHECK(got.find("step 3\n") != std::string::npos);
  CHECK(loop.size() == 1);
  script.end = true;
  const auto woken_at = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(script.mutex);
    script.wake();
  }
  const auto end = read_until(client, "end\n", 1000ms);
  CHECK(end.ends_with("end\n"));
  // The wake answered before the next tick could have.
  CHECK(std::chrono::steady_clock::now() - woken_at < WaitLoop::kTick);
  CHECK(at_eof(client, 1000ms));  // the answer is complete: the connection is closed
  // The loop lets go of the client just after closing it.
  for (int i = 0; i < 100 && (!script.destroyed || loop.size() != 0); ++i) {
    std::this_thread::sleep_for(10ms);
  }
  CHECK(script.destroyed);
  CHECK(loop.size() == 0);
  ::close(client);
}

TEST_CASE("wait loop: a client that hangs up is let go, its watch dropped", "[control]") {
  WaitLoop loop;
  Script script;
  const int client = watched_client(loop, script);
  ::close(client);
  for (int i = 0; i < 100 && (!script.destroyed || loop.size() != 0); ++i) {
    std::this_thread::sleep_for(10ms);
  }
  CHECK(script.destroyed);
  CHECK(loop.size() == 0);
  // A wake after the watch has gone does nothing.
  std::lock_guard lock(script.mutex);
  script.wake();
}

TEST_CASE("wait loop: a client that reads nothing is not sent more, stop says why", "[control]") {
  WaitLoop loop;
  int sv[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  int small = 4096;
  REQUIRE(::setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small) == 0);
  // A watch whose every step is bigger than the socket can hold.
  class Big final : public Watch {
   public:
    explicit Big(std::atomic<int>& steps) : steps_(steps) {}
    Step step() override {
      ++steps_;
      return {std::string(256UL * 1024, 'x') + "\n", false};
    }

   private:
    std::atomic<int>& steps_;
  };
  std::atomic<int> steps{0};
  loop.add(sv[0], std::make_unique<Big>(steps));
  std::this_thread::sleep_for(WaitLoop::kTick * 4);
  CHECK(steps == 1);  // what it was sent has not been read: nothing more was asked
  loop.stop("stopping\n");
  std::string all;
  for (;;) {
    char buf[65536];
    const ssize_t n = ::read(sv[1], buf, sizeof buf);
    if (n <= 0) {
      break;
    }
    all.append(buf, static_cast<std::size_t>(n));
  }
  CHECK(all.size() <= 256UL * 1024 + 1 + 9);
  ::close(sv[1]);
}

TEST_CASE("wait loop: stop ends every wait with its last words", "[control]") {
  WaitLoop loop;
  Script script;
  const int client = watched_client(loop, script);
  loop.stop("stopping\n");
  CHECK(read_until(client, "stopping\n", 1000ms).ends_with("stopping\n"));
  CHECK(at_eof(client, 1000ms));
  ::close(client);
}
