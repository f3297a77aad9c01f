// `barista submit` (docs/reference.md#barista-submit): a batch handed over from a file or stdin,
// its id printed first, and each way it is refused (exit 3) leaving nothing behind.

#include "tests/integration/cli/cli_support.hpp"

#include <catch2/catch.hpp>

#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <functional>
#include <future>
#include <string>
#include <utility>

namespace barista::itest::cli {
namespace {

namespace fs = std::filesystem;

// Nothing arrived in the pool: no file in its inbox, no batch in active/, done/ or failed/.
bool pool_untouched(const Daemon& d, const std::string& pool) {
  for (const char* folder : {"inbox", "active", "done", "failed"}) {
    std::error_code ec;
    if (!fs::is_empty(d.pool_dir(pool) / folder, ec) || ec) {
      return false;
    }
  }
  return true;
}

TEST_CASE("submit FILE prints the batch id and the batch runs", "[integration][cli]") {
  Daemon d(pool("echo", "echo", 2));
  d.start();
  TempDir tmp;
  const auto file = tmp.path() / "orders.txt";
  write_file(file, "alpha\nbeta\n\ngamma\n");

  auto r = run_cli(with_socket(d, {"submit", "echo", file.string()}));
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  REQUIRE(r.out == "orders\n");
  CHECK(r.err.empty());

  const auto end = d.wait_batch("echo", "orders");
  CHECK(end.folder == "done");
  CHECK(end.summary.jobs == 3);
  CHECK(end.summary.ok == 3);
  const auto results = by_id(end.results);
  CHECK(results.at("1").output == "alpha");
  CHECK(results.at("2").output == "beta");
  CHECK(results.at("4").output == "gamma");
  CHECK(slurp(end.dir / "input.txt") == "alpha\nbeta\n\ngamma\n");

  // The same name again: the daemon picks the next free id, and the CLI prints that one.
  r = run_cli(with_socket(d, {"submit", "echo", file.string()}));
  REQUIRE(r.exit_code == 0);
  CHECK(r.out == "orders-2\n");
  CHECK(d.wait_batch("echo", "orders-2").summary.ok == 3);
}

TEST_CASE("submit - reads the batch from stdin", "[integration][cli]") {
  Daemon d(pool("echo", "echo", 2));
  d.start();

  SECTION("default name stdin.txt: a text batch with id 'stdin'") {
    CliOptions o;
    o.stdin_writer = [](int fd) { (void)!::write(fd, "one\ntwo\n", 8); };
    const auto r = run_cli(with_socket(d, {"submit", "echo", "-"}), o);
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(r.out == "stdin\n");
    const auto end = d.wait_batch("echo", "stdin");
    CHECK(end.summary.ok == 2);
    CHECK(by_id(end.results).at("2").output == "two");
  }
  SECTION("--name picks the file name, hence the id and the format (JSONL)") {
    CliOptions o;
    o.stdin_writer = [](int fd) {
      const std::string jobs = R"({"id":"a7","payload":"x"})"
                               "\n"
                               R"({"id":9,"payload":{"k":1}})"
                               "\n";
      (void)!::write(fd, jobs.data(), jobs.size());
    };
    const auto r = run_cli(with_socket(d, {"submit", "--name", "night.jsonl", "echo", "-"}), o);
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(r.out == "night\n");
    const auto results = by_id(d.wait_batch("echo", "night").results);
    CHECK(results.at("a7").output == "x");
    CHECK(results.at("9").output == R"({"k":1})");
  }
}

TEST_CASE("submit streams its input: a big batch does not grow the CLI", "[integration][cli]") {
  // 128 MiB of 4 MiB lines: each line is over max_job_bytes, so the daemon records 32 `invalid`
  // results without running anything, and the test stays quick.
  constexpr std::size_t kLine = 4 << 20;
  constexpr int kLines = 32;
  Daemon d(pool("echo", "echo", 1));
  d.start();
  CliOptions o;
  o.stdin_writer = [](int fd) {
    std::string line(kLine - 1, 'x');
    line += '\n';
    for (int i = 0; i < kLines; ++i) {
      std::string_view rest = line;
      while (!rest.empty()) {
        const ssize_t n = ::write(fd, rest.data(), rest.size());
        if (n <= 0) {
          return;
        }
        rest.remove_prefix(static_cast<std::size_t>(n));
      }
    }
  };
  const auto r = run_cli(with_socket(d, {"submit", "--name", "big.txt", "echo", "-"}), o);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(r.out == "big\n");
  // A client holding the input in memory would peak above 128 MiB.
  INFO("peak RSS of barista: " << r.max_rss_kib << " KiB");
  CHECK(r.max_rss_kib > 0);
  if (!kSanitized) {
    CHECK(r.max_rss_kib < 32 * 1024);
  }
  const auto end = d.wait_batch("echo", "big");
  CHECK(end.summary.invalid == kLines);
  CHECK(fs::file_size(end.dir / "input.txt") == kLine * kLines);
}

TEST_CASE("submit is refused with exit 3 and leaves nothing behind", "[integration][cli]") {
  Daemon d(pool("echo", "echo", 1));
  d.start();
  TempDir tmp;
  const auto file = tmp.path() / "jobs.txt";
  write_file(file, "a\n");

  SECTION("unknown pool") {
    const auto r = run_cli(with_socket(d, {"submit", "nope", file.string()}));
    CHECK(r.exit_code == 3);
    CHECK(r.out.empty());
    CHECK(r.err == "barista: unknown pool 'nope' (pools: echo)\n");
  }
  SECTION("unknown pool, with a body bigger than the socket buffers") {
    // The daemon answers before reading the body: the CLI must still show its answer.
    const auto big = tmp.path() / "big.txt";
    write_file(big, std::string(8 << 20, 'y'));
    const auto r = run_cli(with_socket(d, {"submit", "nope", big.string()}));
    CHECK(r.exit_code == 3);
    CHECK(r.err == "barista: unknown pool 'nope' (pools: echo)\n");
  }
  SECTION("missing file") {
    const auto missing = tmp.path() / "missing.txt";
    const auto r = run_cli(with_socket(d, {"submit", "echo", missing.string()}));
    CHECK(r.exit_code == 3);
    CHECK(r.out.empty());
    CHECK(r.err == "barista: cannot read " + missing.string() + ": No such file or directory\n");
  }
  SECTION("a folder") {
    const auto r = run_cli(with_socket(d, {"submit", "echo", tmp.path().string()}));
    CHECK(r.exit_code == 3);
    CHECK(r.err == "barista: cannot read " + tmp.path().string() + ": is a folder\n");
  }
  SECTION("a file the user may not read") {
    if (::geteuid() != 0) {
      fs::permissions(file, fs::perms::none);
    }
    CliOptions o;
    o.as_nobody = true;  // root reads anything: run as nobody, who cannot even enter tmp
    const auto r = run_cli(with_socket(d, {"submit", "echo", file.string()}), o);
    CHECK(r.exit_code == 3);
    CHECK(r.err == "barista: cannot read " + file.string() + ": Permission denied\n");
  }
  SECTION("an invalid batch name") {
    const auto r = run_cli(with_socket(d, {"submit", "--name", ".hidden", "echo", file.string()}));
    CHECK(r.exit_code == 3);
    CHECK(r.err == "barista: invalid batch name '.hidden'\n");
  }
  CHECK(pool_untouched(d, "echo"));
}

// Lets a stdin writer go however the test ends, or the CLI process's destructor would wait for
// it forever.
struct Release {
  std::promise<void>& p;
  bool done = false;
  void now() {
    if (!std::exchange(done, true)) {
      p.set_value();
    }
  }
  ~Release() { now(); }
};

// Any file in `folder` (hidden ones too) that has some bytes in it.
bool holds_a_partial_file(const fs::path& folder) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(folder, ec)) {
    if (entry.is_regular_file(ec) && entry.file_size(ec) > 0) {
      return true;
    }
  }
  return false;
}

// Starts `barista submit` of a batch on stdin that stalls after two and a half lines, waits
// until the daemon holds part of it, then cuts the upload short with `cut` (which kills the CLI
// or the daemon). Returns the CLI's exit code.
int cut_short_upload(Daemon& d, const std::function<void(CliProcess&)>& cut) {
  std::promise<void> release;
  auto released = release.get_future().share();
  CliOptions o;
  o.stdin_writer = [released](int fd) {
    const std::string part = "one\ntwo\nthr";
    (void)!::write(fd, part.data(), part.size());  // a short write shows as a test failure
    released.wait();
  };
  CliProcess cli(with_socket(d, {"submit", "--name", "cut.txt", "echo", "-"}), o);
  Release let_go{release};
  REQUIRE(d.wait_until([&] { return holds_a_partial_file(d.inbox("echo")); },
                       std::chrono::seconds(10)));
  cut(cli);
  let_go.now();  // wait() collects the writer thread too
  return cli.wait(std::chrono::seconds(10)).exit_code;
}

TEST_CASE("a submit killed before its batch is whole stores nothing", "[integration][cli]") {
  Daemon d(pool("echo", "echo", 1));
  d.start();
  CHECK(cut_short_upload(d, [](CliProcess& cli) { cli.signal(SIGKILL); }) == 128 + SIGKILL);
  REQUIRE(
      d.wait_log("submitted batch 'cut.txt' not stored: the client went away before the end "
                 "of the batch",
                 std::chrono::seconds(10)));
  CHECK(pool_untouched(d, "echo"));
  // The daemon goes on taking whole batches.
  TempDir tmp;
  write_file(tmp.path() / "whole.txt", "a\nb\n");
  const auto r = run_cli(with_socket(d, {"submit", "echo", (tmp.path() / "whole.txt").string()}));
  REQUIRE(r.exit_code == 0);
  CHECK(d.wait_batch("echo", "whole").summary.ok == 2);
}

TEST_CASE("an upload cut short by kill -9 of the daemon is removed at its next start",
          "[integration][cli]") {
  Daemon d(pool("echo", "echo", 1));
  d.start();
  // The CLI was never given a batch id.
  CHECK(cut_short_upload(d, [&d](CliProcess&) { d.kill9(); }) == 3);
  CHECK(holds_a_partial_file(d.inbox("echo")));  // what the killed daemon had received
  d.start();
  REQUIRE(d.wait_log("removed 1 partly uploaded submission(s)", std::chrono::seconds(10)));
  CHECK(pool_untouched(d, "echo"));
}

TEST_CASE("submit without its arguments is a usage error", "[integration][cli]") {
  const auto r = run_cli({"submit", "echo"});
  CHECK(r.exit_code == 64);
  CHECK(r.err.find("FILE") != std::string::npos);
  const auto help = run_cli({"submit", "--help"});
  CHECK(help.exit_code == 0);
  CHECK(help.out.find("--wait") != std::string::npos);
  CHECK(help.out.find("--name") != std::string::npos);
}

}  // namespace
}  // namespace barista::itest::cli
