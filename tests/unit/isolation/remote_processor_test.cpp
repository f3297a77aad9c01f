// RemoteProcessor (docs/workers.md): a job sent to a worker process and its answer read back;
// a worker that ignores its deadline is stopped with its whole process group; workers that die
// at start stop being started.
#include "daemon/isolation/remote_processor.hpp"

#include <catch2/catch.hpp>

#include <signal.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <string>

namespace barista::test {
namespace {

using namespace std::chrono_literals;
using isolation::RemoteProcessor;
using Clock = std::chrono::steady_clock;

// A worker in Python: answers each job with its payload reversed; "hang" starts a grandchild
// (its pid written to PIDFILE) and then ignores everything.
std::string worker_script(const std::string& pidfile) {
  return "import json, subprocess, sys, time\n"
         "for line in sys.stdin:\n"
         "    m = json.loads(line)\n"
         "    if 'cancel' in m: continue\n"
         "    if m['payload'] == 'hang':\n"
         "        p = subprocess.Popen(['sleep', '1000'])\n"
         "        open('" +
         pidfile +
         "', 'w').write(str(p.pid))\n"
         "        time.sleep(1000)\n"
         "    out = {'id': m['id'], 'status': 'ok', 'output': m['payload'][::-1] + m.get('key', "
         "'')}\n"
         "    print(json.dumps(out), flush=True)\n";
}

isolation::WorkerSpec spec_of(std::vector<std::string> argv) {
  isolation::WorkerSpec spec;
  spec.pool = "test";
  spec.command.argv = std::move(argv);
  return spec;
}

// Running, not a zombie waiting for its (new) parent to reap it.
bool alive(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) {
    return false;
  }
  const auto close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() && line[close + 2] != 'Z';
}

TEST_CASE("remote processor: jobs go to one long-lived worker; an overrun kills its group",
          "[isolation]") {
  const std::string pidfile = "/tmp/barista-remote-test-" + std::to_string(::getpid());
  auto health = std::make_shared<plugin::WorkerHealth>();
  RemoteProcessor p(spec_of({"/usr/bin/python3", "-c", worker_script(pidfile)}), health);
  std::atomic<bool> cancel{false};
  Context ctx(&cancel, Clock::now() + 10s);
  auto out = p.process(ctx, Job{"1", "abc", 1, "k"});
  CHECK(out.is_ok());
  CHECK(out.text() == "cbak");
  const int pid = p.pid();
  CHECK(pid > 0);
  out = p.process(ctx, Job{"2", "xy", 1});
  CHECK(out.text() == "yx");
  CHECK(p.pid() == pid);  // the same process
  // Past its deadline: a cancel message, SIGTERM one second later; the job is charged a crash.
  Context short_ctx(&cancel, Clock::now() + 300ms);
  const auto start = Clock::now();
  CHECK_THROWS_AS(p.process(short_ctx, Job{"3", "hang", 1}), plugin::WorkerCrash);
  const auto took = Clock::now() - start;
  CHECK(took >= 1300ms);
  CHECK(took < 4s);
  CHECK_FALSE(alive(pid));
  pid_t grandchild = 0;
  std::ifstream(pidfile) >> grandchild;
  REQUIRE(grandchild > 0);
  CHECK_FALSE(alive(grandchild));  // its process group went with it
  std::remove(pidfile.c_str());
  // The next job starts a new worker (after the restart backoff).
  out = p.process(ctx, Job{"4", "ok", 1});
  CHECK(out.text() == "ko");
  CHECK(p.pid() != pid);
  CHECK(health->restarts() == 1);
}

TEST_CASE("remote processor: workers that die at start are no longer started", "[isolation]") {
  auto health = std::make_shared<plugin::WorkerHealth>(std::chrono::milliseconds(300));
  RemoteProcessor p(spec_of({"/bin/sh", "-c", "echo broken >&2; exit 4"}), health);
  std::atomic<bool> cancel{false};
  Context ctx(&cancel, Clock::time_point::max());
  const auto give_up = Clock::now() + 10s;
  int crashes = 0;
  while (!health->given_up() && Clock::now() < give_up) {
    try {
      (void)p.process(ctx, Job{"1", "x", 1});
    } catch (const plugin::WorkerCrash& e) {
      CHECK(std::string(e.what()) == "exited with status 4");
      ++crashes;
    }
  }
  REQUIRE(health->given_up());
  CHECK(crashes >= 2);
  CHECK(health->reason() == "exited with status 4");
  // Given up: a job waits (here cancelled) instead of starting one more.
  cancel = true;
  const auto out = p.process(ctx, Job{"2", "x", 1});
  CHECK_FALSE(out.is_ok());
  CHECK(health->restarts() == static_cast<std::uint64_t>(crashes - 1));
  health->try_again();
  CHECK_FALSE(health->given_up());
}

}  // namespace
}  // namespace barista::test
