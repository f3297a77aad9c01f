#include "tests/unit/plugins/bundled_plugin_support.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <sstream>

namespace barista::bundled_plugins_test {
namespace {

using Kind = Outcome::Kind;

plugin::ProcessorHandle shell(const std::vector<std::string>& command) {
  return make_processor("shell", Config().list("command", command));
}

plugin::ProcessorHandle sh(const std::string& script) { return shell({"sh", "-c", script}); }

// The pid the script wrote to `file`: the command's own pid, which is its process group id.
pid_t pid_written_to(const std::filesystem::path& file) {
  pid_t pid = 0;
  eventually([&] {
    std::istringstream(read_file(file)) >> pid;
    return pid > 0;
  });
  return pid;
}

TEST_CASE("shell outputs the command's stdout, with {} replaced by the payload",
          "[plugins][shell]") {
  auto p = shell({"printf", "%s|%s", "{}", "<{}-{}>"});
  auto out = run(p, "abc");
  CHECK(out.kind() == Kind::kOk);
  CHECK(out.text() == "abc|<abc-abc>");
  // No shell parses the payload unless the command names one.
  auto quoted = run(p, "a b; echo no");
  CHECK(quoted.text() == "a b; echo no|<a b; echo no-a b; echo no>");
}

TEST_CASE("shell finds the program on PATH and gives it /dev/null as stdin", "[plugins][shell]") {
  auto p = sh("cat; echo done");
  auto out = run(p, "not on stdin");
  CHECK(out.kind() == Kind::kOk);
  CHECK(out.text() == "done\n");
}

TEST_CASE("shell writes the payload to stdin with stdin: true", "[plugins][shell]") {
  SECTION("a short payload") {
    auto p = make_processor("shell",
                            Config().list("command", {"tr", "a-z", "A-Z"}).set("stdin", "true"));
    auto out = run(p, "hello");
    CHECK(out.kind() == Kind::kOk);
    CHECK(out.text() == "HELLO");
  }
  SECTION("megabytes both ways, which deadlocks unless reading and writing interleave") {
    auto p = make_processor(
        "shell", Config().list("command", {"cat"}).set("stdin", "true").set("max_output", "8MiB"));
    const auto payload = std::string(3 << 20, 'z') + "end";
    auto out = run(p, payload);
    CHECK(out.kind() == Kind::kOk);
    CHECK(out.text() == payload);
  }
  SECTION("a command that does not read its input") {
    auto p = make_processor("shell", Config().list("command", {"true"}).set("stdin", "yes"));
    auto out = run(p, std::string(1 << 20, 'x'));
    CHECK(out.kind() == Kind::kOk);
    CHECK(out.text().empty());
  }
}

TEST_CASE("shell fails on a non-zero exit with the tail of stderr", "[plugins][shell]") {
  SECTION("short stderr") {
    auto out = run(sh("echo partial; echo 'disk on fire' >&2; exit 3"), "x");
    CHECK(out.kind() == Kind::kFailed);
    CHECK(out.text() == "exit status 3: disk on fire");
  }
  SECTION("long stderr: only the last KiB or so") {
    auto out = run(sh("head -c 20000 /dev/zero | tr '\\0' x >&2; echo THE-END >&2; exit 1"), "x");
    CHECK(out.kind() == Kind::kFailed);
    CHECK_THAT(out.text(), Catch::StartsWith("exit status 1: xxx") && Catch::EndsWith("xTHE-END"));
    CHECK(out.text().size() <= 1100);
  }
  SECTION("no stderr") {
    auto out = run(shell({"false"}), "x");
    CHECK(out.text() == "exit status 1");
  }
}

TEST_CASE("shell names the signal that killed the command", "[plugins][shell]") {
  // TERM rather than SEGV: no core file.
  auto out = run(sh("echo bye >&2; kill -TERM $$"), "x");
  CHECK(out.kind() == Kind::kFailed);
  CHECK(out.text() == "killed by signal 15 (SIGTERM): bye");
}

TEST_CASE("shell refuses output beyond max_output", "[plugins][shell]") {
  auto p = make_processor(
      "shell",
      Config().list("command", {"head", "-c", "{}", "/dev/zero"}).set("max_output", "1KiB"));
  auto at_limit = run(p, "1024");
  CHECK(at_limit.kind() == Kind::kOk);
  CHECK(at_limit.text().size() == 1024);
  auto beyond = run(p, "1025");
  CHECK(beyond.kind() == Kind::kFatal);
  CHECK(beyond.text() == "output exceeds max_output (1024 bytes)");
  // A command that would never stop writing is killed, not waited for.
  auto endless = make_processor(
      "shell", Config().list("command", {"cat", "/dev/zero"}).set("max_output", "64KiB"));
  const auto start = Clock::now();
  CHECK(run(endless, "x").kind() == Kind::kFatal);
  CHECK(ms_since(start) < 2000.0);
}

TEST_CASE("shell kills the whole process group at the deadline", "[plugins][shell]") {
  TempDir dir;
  const auto pid_file = dir / "pid";
  auto p = shell({"sh", "-c", "echo $$ > \"$0\"; sleep 30 & sleep 30 & wait", pid_file.string()});
  Attempt attempt(200ms);
  const auto start = Clock::now();
  auto out = run(p, "x", attempt);
  CHECK(out.kind() == Kind::kFailed);
  CHECK(out.text() == "deadline exceeded");
  CHECK(ms_since(start) >= 200.0);
  CHECK(ms_since(start) < 1000.0);
  const pid_t group = pid_written_to(pid_file);
  REQUIRE(group > 0);
  // The shell and both of its sleeps: none may outlive the job.
  CHECK(eventually([&] { return live_group_members(group).empty(); }));
  CHECK(zombie_children().empty());
}

TEST_CASE("shell kills the whole process group on cancellation", "[plugins][shell]") {
  TempDir dir;
  const auto pid_file = dir / "pid";
  auto p = shell({"sh", "-c", "echo $$ > \"$0\"; sleep 30 & sleep 30", pid_file.string()});
  Attempt attempt;
  attempt.cancel_after(150ms);
  auto out = run(p, "x", attempt);
  const auto returned = Clock::now();
  CHECK(out.kind() == Kind::kFailed);
  CHECK(out.text() == "cancelled");
  CHECK(returned - attempt.cancelled_at() < 150ms);
  const pid_t group = pid_written_to(pid_file);
  REQUIRE(group > 0);
  CHECK(eventually([&] { return live_group_members(group).empty(); }));
}

TEST_CASE("shell ends what the command left running in the background", "[plugins][shell]") {
  TempDir dir;
  const auto pid_file = dir / "pid";
  // The background sleep keeps stdout open: without the group kill the job would take 30 s.
  auto p = shell({"sh", "-c", "echo $$ > \"$0\"; sleep 30 & echo started", pid_file.string()});
  const auto start = Clock::now();
  auto out = run(p, "x");
  CHECK(out.kind() == Kind::kOk);
  CHECK(out.text() == "started\n");
  CHECK(ms_since(start) < 2000.0);
  const pid_t group = pid_written_to(pid_file);
  CHECK(eventually([&] { return live_group_members(group).empty(); }));
}

TEST_CASE("shell leaks no fds or zombies, and passes no fds on", "[plugins][shell]") {
  // An fd the host forgot to mark close-on-exec must not reach the command either.
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  const int stray = ::fcntl(null_fd, F_DUPFD, 10);  // F_DUPFD: without FD_CLOEXEC
  ::close(null_fd);
  REQUIRE(stray >= 10);
  auto p = shell({"ls", "/proc/self/fd"});
  const int before = open_fd_count();
  for (int i = 0; i < 20; ++i) {
    auto out = run(p, "x");
    REQUIRE(out.kind() == Kind::kOk);
    // ls sees 0, 1, 2 and the fd it reads the folder with.
    CHECK(out.text() == "0\n1\n2\n3\n");
  }
  run(sh("exit 4"), "x");
  CHECK(open_fd_count() == before);
  CHECK(zombie_children().empty());
  ::close(stray);
}

TEST_CASE("shell reports a command that cannot be run", "[plugins][shell]") {
  auto out = run(shell({"barista-no-such-command-{}"}), "x");
  CHECK(out.kind() == Kind::kFatal);
  CHECK(out.text() == "cannot run 'barista-no-such-command-x': command not found");
}

TEST_CASE("shell refuses a bad config", "[plugins][shell]") {
  SECTION("command missing") {
    CHECK_THAT(config_error("shell", Config().set("stdin", "true")),
               Catch::StartsWith("is required"));
  }
  SECTION("a misspelt key") {
    CHECK(config_error("shell", Config().list("comand", {"cat"})) ==
          "unknown key 'comand' (did you mean 'command'?)");
  }
  SECTION("an empty command") {
    CHECK(config_error("shell", Config().list("command", {})) == "must name a program");
  }
  SECTION("a command line instead of an argv list") {
    CHECK_THAT(config_error("shell", Config().set("command", "wc -c")),
               Catch::Contains("[wc, -c]"));
  }
  SECTION("a single word is a list of one") {
    CHECK(config_error("shell", Config().set("command", "cat")).empty());
  }
  SECTION("stdin that is not a boolean") {
    CHECK_THAT(config_error("shell", Config().list("command", {"cat"}).set("stdin", "maybe")),
               Catch::Contains("expected true or false"));
  }
  SECTION("max_output that is not a size") {
    CHECK_THAT(config_error("shell", Config().list("command", {"cat"}).set("max_output", "lots")),
               Catch::Contains("expected a size"));
  }
}

}  // namespace
}  // namespace barista::bundled_plugins_test
