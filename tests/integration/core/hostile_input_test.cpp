// Hostile input never crashes the daemon (issue 4, item 3): huge lines without a newline, NUL
// bytes, invalid UTF-8, deeply nested JSON, files truncated or deleted while being read,
// directories, FIFOs, sockets and symlinks in the inbox, and 100,000 batch files at once.
// Each test checks that every job line still gets exactly one result, that results.jsonl stays
// valid JSON (the harness parses every line), and that the daemon keeps serving afterwards.
// docs/hostile-input.md lists each input, what Barista does with it, and the test below.

#include "tests/integration/core/core_support.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <simdjson.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace barista::itest {
namespace {

namespace fs = std::filesystem;
using namespace std::string_literals;

constexpr std::uint64_t kMiB = 1024 * 1024;

void write_repeated(std::FILE* f, char c, std::uint64_t n) {
  const std::string block(kMiB, c);
  while (n > 0) {
    const auto k = std::min<std::uint64_t>(n, block.size());
    if (std::fwrite(block.data(), 1, k, f) != k) {
      throw HarnessError("short write");
    }
    n -= k;
  }
}

// The daemon still takes a batch and runs it: what "still serving" means to a user.
void check_still_serving(Daemon& d, const std::string& pool, const std::string& id) {
  d.drop(pool, id + ".txt", "still here\n");
  const auto end = d.wait_batch(pool, id, seconds(20));
  REQUIRE(end.results.size() == 1);
  CHECK(end.results[0].status == "ok");
  CHECK(end.results[0].output == "still here");
}

// How many workers of `pool` are running a job, from `barista status --json`.
std::int64_t busy_workers(const Daemon& d, const std::string& pool) {
  const auto r = run_barista({"--socket", d.socket().string(), "status", "--json"});
  if (r.exit_code != 0) {
    throw HarnessError("barista status failed: " + r.err);
  }
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(r.out).get(doc) != simdjson::SUCCESS) {
    throw HarnessError("barista status --json printed no JSON: " + r.out);
  }
  for (auto p : doc["pools"].get_array()) {
    std::string_view name;
    std::int64_t busy = 0;
    if (p["name"].get_string().get(name) == simdjson::SUCCESS && name == pool &&
        p["busy"].get_int64().get(busy) == simdjson::SUCCESS) {
      return busy;
    }
  }
  return -1;
}

// The one result of `id`, or a failed REQUIRE naming it.
const JobResult& result_of(const std::map<std::string, JobResult>& results, const std::string& id) {
  INFO("id " << id);
  REQUIRE(results.count(id) == 1);
  return results.at(id);
}

void check_invalid(const JobResult& r, const std::string& error_part) {
  INFO(r.line.substr(0, 300));
  CHECK(r.status == "invalid");
  CHECK(r.attempts == 0);
  CHECK_FALSE(r.output);
  REQUIRE(r.error);
  CHECK_THAT(*r.error, Catch::Contains(error_part));
}

void check_ok(const JobResult& r, const std::string& output) {
  INFO(r.line.substr(0, 300));
  CHECK(r.status == "ok");
  CHECK(r.output == output);
  CHECK_FALSE(r.error);
}

// The names in a folder (empty when it is missing).
std::set<std::string> names_in(const fs::path& dir) {
  std::set<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    out.insert(e.path().filename().string());
  }
  return out;
}

TEST_CASE("hostile: a 100 MB line without a newline is invalid and read in bounded memory",
          "[integration][hostile]") {
  Daemon d("  big:\n    plugin: echo\n    workers: 2\n");  // max_job_bytes: the default 1MiB
  d.start();
  constexpr std::uint64_t kHuge = 100 * kMiB;
  const std::string json_head = R"({"id":"h","payload":")";
  d.drop_with("big", "huge-text.txt", [&](std::FILE* f) {
    std::fputs("before\n", f);
    write_repeated(f, 'x', kHuge);  // no newline at the end
  });
  d.drop_with("big", "huge-json.jsonl", [&](std::FILE* f) {
    std::fputs(R"({"id":"a","payload":"before"})"
               "\n",
               f);
    std::fputs(json_head.c_str(), f);
    write_repeated(f, 'x', kHuge);
  });

  const auto text = d.wait_batch("big", "huge-text", seconds(60));
  const auto text_results = by_id(text.results);
  REQUIRE(text_results.size() == 2);
  check_ok(result_of(text_results, "1"), "before");
  check_invalid(result_of(text_results, "2"),
                "line of " + std::to_string(kHuge) + " bytes exceeds max_job_bytes (1048576)");
  CHECK(text.summary.jobs == 2);
  CHECK(text.summary.invalid == 1);

  const auto json = d.wait_batch("big", "huge-json", seconds(60));
  const auto json_results = by_id(json.results);
  REQUIRE(json_results.size() == 2);
  check_ok(result_of(json_results, "a"), "before");
  // Never parsed, so named by its line number.
  check_invalid(result_of(json_results, "2"), "line of " +
                                                  std::to_string(json_head.size() + kHuge) +
                                                  " bytes exceeds max_job_bytes (1048576)");

  // The lines were skipped, not held: the daemon's peak memory stays far below 100 MB. Under a
  // sanitizer, memory is the sanitizer's (shadow, quarantine), so the bound is the plain build's.
  const auto peak_kib = d.vm_hwm_kib();
  REQUIRE(peak_kib);
  INFO("baristad's VmHWM: " << *peak_kib << " KiB");
  if (!kSanitized) {
    CHECK(*peak_kib < 64 * 1024);
  }
  check_still_serving(d, "big", "after");
}

TEST_CASE("hostile: NUL bytes in text and JSONL batches", "[integration][hostile]") {
  Daemon d("  echo:\n    plugin: echo\n");
  d.start();
  d.drop("echo", "nul-text.txt", "a\0b\n\0\nplain\n"s);
  d.drop("echo", "nul-json.jsonl",
         R"({"id":"esc","payload":"a\u0000b"})"
         "\n"s +
             R"({"id":"raw","payload":"a)" + "\0"s + R"(b"})" + "\n" +  // 2: raw NUL in a string
             R"({"id":"trail","payload":"x"})" + "\0"s + "\n" +         // 3: NUL after the object
             "\0\0\0"s + "\n" +                                         // 4: only NULs
             R"({"id":"id\u0000nul","payload":"y"})" + "\n" +           // 5: NUL in the id
             R"({"id":"end","payload":"z"})" + "\n");

  const auto text = d.wait_batch("echo", "nul-text");
  const auto t = by_id(text.results);
  REQUIRE(t.size() == 3);
  check_ok(result_of(t, "1"), "a\0b"s);
  check_ok(result_of(t, "2"), "\0"s);  // a NUL is not a blank line: it is a payload
  check_ok(result_of(t, "3"), "plain");
  CHECK_THAT(result_of(t, "1").line, Catch::Contains(R"(a\u0000b)"));  // escaped, not raw

  const auto json = d.wait_batch("echo", "nul-json");
  const auto j = by_id(json.results);
  REQUIRE(j.size() == 6);
  check_ok(result_of(j, "esc"), "a\0b"s);
  check_invalid(result_of(j, "2"), "malformed JSON");
  check_invalid(result_of(j, "3"), "malformed JSON");
  check_invalid(result_of(j, "4"), "malformed JSON");
  check_ok(result_of(j, "id\0nul"s), "y");
  check_ok(result_of(j, "end"), "z");
  CHECK(json.summary.ok == 3);
  CHECK(json.summary.invalid == 3);
  check_still_serving(d, "echo", "after");
}

TEST_CASE("hostile: invalid UTF-8 in JSONL lines / plugin errors / file names",
          "[integration][hostile]") {
  Daemon d(
      "  echo:\n"
      "    plugin: echo\n"
      "  stderr:\n"
      "    plugin: shell\n"
      "    config:\n"
      "      command: [/bin/sh, -c, 'cat >&2; exit 1']\n"
      "      stdin: true\n");
  d.start();
  d.drop("echo", "utf8.jsonl",
         "{\"id\":\"u\",\"payload\":\"\xff\xfe\"}\n"                  // 1: bad bytes in the payload
         "{\"id\":\"\xc3\",\"payload\":\"x\"}\n"                      // 2: a cut sequence in the id
         "{\"id\":\"s\",\"payload\":\"\\ud800\"}\n"                   // 3: a lone surrogate escape
         "\xff\xff\n"                                                 // 4: no JSON at all
         "{\"id\":\"good\",\"payload\":\"caf\\u00e9 \xc3\xa9\"}\n");  // 5: valid UTF-8
  const auto json = d.wait_batch("echo", "utf8");
  const auto j = by_id(json.results);
  REQUIRE(j.size() == 5);
  check_invalid(result_of(j, "1"), "malformed JSON: The input is not valid UTF-8");
  check_invalid(result_of(j, "2"), "malformed JSON");
  check_invalid(result_of(j, "3"), "malformed JSON");
  check_invalid(result_of(j, "4"), "malformed JSON");
  check_ok(result_of(j, "good"), "caf\xc3\xa9 \xc3\xa9");

  // A plugin's error text with invalid UTF-8 (here: the payload echoed on stderr).
  d.drop("stderr", "err.txt", "bad \xff\xfe bytes\n");
  const auto err = d.wait_batch("stderr", "err");
  REQUIRE(err.results.size() == 1);
  const auto& e = err.results[0];
  INFO(e.line);
  CHECK(e.status == "failed");
  REQUIRE(e.error);
  CHECK_THAT(*e.error, Catch::Contains("bad \xef\xbf\xbd\xef\xbf\xbd bytes"));  // U+FFFD twice

  // A file name that is not UTF-8: the batch runs; summary.json names it with U+FFFD.
  d.drop("echo", "name\xff.txt", "x\n");
  const auto named = d.wait_batch("echo", "name\xff");  // the folder keeps the raw bytes
  CHECK(named.summary.batch == "name\xef\xbf\xbd");
  REQUIRE(named.results.size() == 1);
  check_ok(named.results[0], "x");
  check_still_serving(d, "echo", "after");
}

TEST_CASE("hostile: JSON nested 100000 deep is an invalid job and no crash",
          "[integration][hostile]") {
  Daemon d("  echo:\n    plugin: echo\n");
  d.start();
  constexpr std::size_t kDeep = 100'000;
  std::string objects;
  for (std::size_t i = 0; i < kDeep; ++i) {
    objects += R"({"a":)";
  }
  objects += "1" + std::string(kDeep, '}');
  const std::string fine = std::string(1000, '[') + std::string(1000, ']');
  d.drop("echo", "deep.jsonl",
         R"({"id":"arrays","payload":)" + std::string(kDeep, '[') + std::string(kDeep, ']') +
             "}\n" +                                             // 1
             objects + "\n" +                                    // 2
             std::string(kDeep, '[') + "\n" +                    // 3: never closed
             R"({"id":"1000 deep","payload":)" + fine + "}\n" +  // 4: within the limit
             R"({"id":"flat","payload":"x"})" + "\n");           // 5
  const auto end = d.wait_batch("echo", "deep");
  const auto r = by_id(end.results);
  REQUIRE(r.size() == 5);
  check_invalid(result_of(r, "1"), "malformed JSON: The JSON document was too deep");
  check_invalid(result_of(r, "2"), "malformed JSON: The JSON document was too deep");
  check_invalid(result_of(r, "3"), "malformed JSON");
  check_ok(result_of(r, "1000 deep"), fine);
  check_ok(result_of(r, "flat"), "x");

  // In a text batch the same bytes are only text.
  d.drop("echo", "deep-text.txt", std::string(kDeep, '[') + "\n");
  const auto text = d.wait_batch("echo", "deep-text");
  REQUIRE(text.results.size() == 1);
  check_ok(text.results[0], std::string(kDeep, '['));
  check_still_serving(d, "echo", "after");
}

// fx_slow sleeps 3 s on "sleep" and answers "flaky-1" at once; with 1 worker and queue: 1 the
// pool's reader is stuck after its first block of the file while "sleep" runs, so the file can
// be changed under it. A change made less than kSleep after the drop is made while it is stuck.
constexpr auto kSleep = milliseconds(3000);
std::string slow_pool(const std::string& name) {
  return "  " + name +
         ":\n    plugin: fx_slow\n    workers: 1\n    queue: 1\n    config:\n      ms: 3s\n";
}

constexpr std::uint64_t kFlakyLines = 131'072;  // 8 bytes each: 1 MiB, 4 read blocks
const std::string kSleepLine = "sleep\n";
const std::string kFlakyLine = "flaky-1\n";

Clock::time_point drop_slow_batch(Daemon& d, const std::string& pool) {
  return d.drop_with(pool, "in.txt", [](std::FILE* f) {
    std::fputs(kSleepLine.c_str(), f);
    for (std::uint64_t i = 0; i < kFlakyLines; ++i) {
      std::fputs(kFlakyLine.c_str(), f);
    }
  });
}

// Adds to `problems` unless the results' ids are exactly the line numbers 1..n, each once.
void check_ids_are_lines(const std::vector<JobResult>& results, std::uint64_t n,
                         Problems& problems) {
  std::vector<int> seen(n + 1, 0);
  for (const auto& r : results) {
    std::uint64_t i = 0;
    try {
      i = std::stoull(r.id);
    } catch (const std::exception&) {
    }
    if (i < 1 || i > n || std::to_string(i) != r.id) {
      problems.add("not a line number of the batch: " + r.line);
      continue;
    }
    if (++seen[i] != 1) {
      problems.add("id twice: " + r.line);
    }
  }
  for (std::uint64_t i = 1; i <= n; ++i) {
    if (seen[i] == 0) {
      problems.add("no result for line " + std::to_string(i));
    }
  }
}

TEST_CASE("hostile: a batch file truncated or deleted while it is being read",
          "[integration][hostile]") {
  Daemon d(slow_pool("cut") + slow_pool("zero") + slow_pool("gone") +
           "  echo:\n    plugin: echo\n");
  d.start();
  const auto dropped = drop_slow_batch(d, "cut");
  drop_slow_batch(d, "zero");
  drop_slow_batch(d, "gone");
  // "sleep" is running: the reader holds the first 256 KiB of the file and waits.
  for (const char* pool : {"cut", "zero", "gone"}) {
    INFO(pool);
    REQUIRE(d.wait_until([&] { return busy_workers(d, pool) == 1; }, seconds(10)));
  }
  // cut: truncated in the middle of a line, past what was read; zero: truncated to nothing;
  // gone: unlinked.
  constexpr std::uint64_t kKeptFull = 65'536;
  const std::uint64_t cut_at = kSleepLine.size() + kKeptFull * kFlakyLine.size() + 6;  // "flaky-"
  REQUIRE(::truncate((d.active("cut", "in") / "input.txt").c_str(), static_cast<off_t>(cut_at)) ==
          0);
  REQUIRE(::truncate((d.active("zero", "in") / "input.txt").c_str(), 0) == 0);
  REQUIRE(::unlink((d.active("gone", "in") / "input.txt").c_str()) == 0);
  REQUIRE(Clock::now() - dropped < kSleep - milliseconds(200));  // "sleep" still running

  {
    // Every line up to the cut has one result; the torn last line is a job of what is left.
    const auto end = d.wait_batch("cut", "in", seconds(30));
    CHECK(end.folder == "done");
    const std::uint64_t n = 1 + kKeptFull + 1;
    CHECK(end.summary.jobs == static_cast<std::int64_t>(n));
    Problems problems;
    check_ids_are_lines(end.results, n, problems);
    for (const auto& r : end.results) {
      const bool first = r.id == "1";
      const bool torn = r.id == std::to_string(n);
      const auto want = first ? "slept" : "ok after 1";
      if (torn) {
        if (r.status != "failed" || r.error != "flaky-N: N must be a number") {
          problems.add("the torn line \"flaky-\" should fail as such: " + r.line);
        }
      } else if (r.status != "ok" || r.output != want) {
        problems.add("expected ok with " + std::string(want) + ": " + r.line);
      }
    }
    INFO(problems.text());
    CHECK(problems.empty());
  }
  {
    // Truncated to nothing: what was read already runs, the rest is gone; one result each.
    const auto end = d.wait_batch("zero", "in", seconds(30));
    CHECK(end.folder == "done");
    const auto n = static_cast<std::uint64_t>(end.summary.jobs);
    CHECK(n >= 2);
    CHECK(n < 1 + kFlakyLines);
    Problems problems;
    check_ids_are_lines(end.results, n, problems);
    INFO(problems.text());
    CHECK(problems.empty());
  }
  {
    // Unlinked: the open file is still read to its end; every line runs.
    const auto end = d.wait_batch("gone", "in", seconds(30));
    CHECK(end.folder == "done");
    CHECK(end.summary.jobs == static_cast<std::int64_t>(1 + kFlakyLines));
    CHECK(end.summary.ok == static_cast<std::int64_t>(1 + kFlakyLines));
    Problems problems;
    check_ids_are_lines(end.results, 1 + kFlakyLines, problems);
    INFO(problems.text());
    CHECK(problems.empty());
    CHECK_FALSE(fs::exists(end.dir / "input.txt"));
  }
  check_still_serving(d, "echo", "after");
}

TEST_CASE("hostile: an input deleted or replaced by a symlink before it is read",
          "[integration][hostile]") {
  Daemon d(slow_pool("slow"));
  d.start();
  const auto dropped = d.drop("slow", "first.txt", "sleep\nflaky-1\nflaky-1\nflaky-1\n");
  REQUIRE(d.wait_until([&] { return busy_workers(d, "slow") == 1; }, seconds(10)));
  // The reader is stuck in first.txt while "sleep" runs: these two wait, claimed, not opened.
  d.drop("slow", "deleted.txt", "flaky-1\n");
  d.drop("slow", "swapped.txt", "flaky-1\n");
  const auto deleted_input = d.active("slow", "deleted") / "input.txt";
  const auto swapped_input = d.active("slow", "swapped") / "input.txt";
  REQUIRE(d.wait_until([&] { return fs::exists(deleted_input) && fs::exists(swapped_input); },
                       seconds(5)));
  // A file outside the spool that would give a result if it were read.
  write_file(d.root() / "secret.txt", "flaky-1\n");
  fs::remove(deleted_input);
  fs::remove(swapped_input);
  fs::create_symlink(d.root() / "secret.txt", swapped_input);
  REQUIRE(Clock::now() - dropped < kSleep - milliseconds(200));  // "sleep" still running

  const auto first = d.wait_batch("slow", "first", seconds(20));
  CHECK(first.summary.ok == 4);
  for (const char* id : {"deleted", "swapped"}) {
    INFO(id);
    const auto end = d.wait_batch("slow", id, seconds(20));
    CHECK(end.results.empty());
    CHECK(end.summary.jobs == 0);
    CHECK(d.wait_until(
        [&] {
          return !log_line_with(d.log(), {"'" + std::string(id) + "'", "cannot open its input"})
                      .empty();
        },
        seconds(5)));
  }
  CHECK(slurp(d.root() / "secret.txt") == "flaky-1\n");
  CHECK(log_line_with(d.log(), {"'swapped'", "cannot open its input"}).find("secret") ==
        std::string::npos);
}

// The pool opens inputs without waiting (O_NONBLOCK) and refuses what is not a regular file: a
// FIFO there would otherwise block its reader, holding the pool's lock, for ever.
TEST_CASE("hostile: a FIFO swapped in for an input before it is read does not stop the pool",
          "[integration][hostile]") {
  Daemon d(slow_pool("slow"), "shutdown_timeout: 2s\n");
  d.start();
  const auto dropped = d.drop("slow", "first.txt", "sleep\nflaky-1\nflaky-1\nflaky-1\n");
  REQUIRE(d.wait_until([&] { return busy_workers(d, "slow") == 1; }, seconds(10)));
  d.drop("slow", "pipe.txt", "flaky-1\n");
  const auto input = d.active("slow", "pipe") / "input.txt";
  REQUIRE(d.wait_until([&] { return fs::exists(input); }, seconds(5)));
  fs::remove(input);
  REQUIRE(::mkfifo(input.c_str(), 0600) == 0);
  REQUIRE(Clock::now() - dropped < kSleep - milliseconds(200));  // "sleep" still running

  CHECK(d.wait_batch("slow", "first", seconds(10)).summary.ok == 4);
  const auto pipe = d.wait_batch("slow", "pipe", seconds(10));
  CHECK(pipe.results.empty());
  CHECK_FALSE(log_line_with(d.log(), {"'pipe'", "cannot open its input", "a FIFO"}).empty());
  d.drop("slow", "later.txt", "flaky-1\n");
  CHECK(d.wait_batch("slow", "later", seconds(10)).summary.ok == 1);
  d.signal(SIGTERM);
  CHECK(d.wait_exit(milliseconds(5000)) == 0);
}

// Makes a UNIX socket file at `path` (the socket itself is closed at once).
void make_socket_file(const fs::path& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  REQUIRE(path.string().size() < sizeof addr.sun_path);
  std::strcpy(addr.sun_path, path.c_str());
  const int rc = ::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  ::close(fd);
  REQUIRE(rc == 0);
}

TEST_CASE("hostile: a directory / FIFO / socket / symlink in the inbox is refused",
          "[integration][hostile][inbox]") {
  Daemon d("  in:\n    plugin: echo\n", "shutdown_timeout: 5s\n");
  d.start();
  const auto inbox = d.inbox("in");
  write_file(d.root() / "outside.txt", "outside\n");
  fs::create_directory(d.root() / "outside_dir");
  write_file(d.root() / "outside_dir" / "x.txt", "x\n");

  // Made in place, as `mkdir`, `mkfifo`, `ln -s` or a server's bind() would.
  fs::create_directory(inbox / "dir.txt");
  REQUIRE(::mkfifo((inbox / "pipe.txt").c_str(), 0600) == 0);
  make_socket_file(inbox / "sock.txt");
  fs::create_symlink(d.root() / "outside.txt", inbox / "link.txt");
  fs::create_symlink(d.root() / "outside_dir", inbox / "dirlink.txt");
  fs::create_symlink(d.root() / "nowhere.txt", inbox / "dangling.txt");
  // Renamed in, as a batch should be.
  REQUIRE(::mkfifo((d.root() / "moved-pipe").c_str(), 0600) == 0);
  fs::rename(d.root() / "moved-pipe", inbox / "moved-pipe.txt");

  const std::vector<std::pair<std::string, std::string>> refused = {
      {"dir.txt", "a directory"},         {"pipe.txt", "a FIFO"},
      {"sock.txt", "a socket"},           {"link.txt", "a symbolic link"},
      {"dirlink.txt", "a symbolic link"}, {"dangling.txt", "a symbolic link"},
      {"moved-pipe.txt", "a FIFO"}};
  const auto check_refused = [&] {
    for (const auto& [name, kind] : refused) {
      INFO(name << " should be refused as " << kind << "; log:\n" << d.log_tail());
      CHECK(d.wait_until(
          [&] {
            return !log_line_with(d.log(), {"/" + name, kind, "ignored"}).empty();
          },
          seconds(5)));
    }
    // Nothing was claimed, moved or followed.
    CHECK(fs::is_directory(fs::symlink_status(inbox / "dir.txt")));
    CHECK(fs::is_fifo(fs::symlink_status(inbox / "pipe.txt")));
    CHECK(fs::is_fifo(fs::symlink_status(inbox / "moved-pipe.txt")));
    CHECK(fs::is_socket(fs::symlink_status(inbox / "sock.txt")));
    for (const char* link : {"link.txt", "dirlink.txt", "dangling.txt"}) {
      CHECK(fs::is_symlink(inbox / link));
    }
    CHECK(slurp(d.root() / "outside.txt") == "outside\n");
    CHECK(names_in(d.root() / "outside_dir") == std::set<std::string>{"x.txt"});
    CHECK_FALSE(fs::exists(d.root() / "nowhere.txt"));
    CHECK(names_in(d.pool_dir("in") / "active").empty());
    CHECK(names_in(d.pool_dir("in") / "failed").empty());
  };
  check_refused();
  check_still_serving(d, "in", "after");
  CHECK(names_in(d.pool_dir("in") / "done") == std::set<std::string>{"after"});

  // At the next start the inbox is scanned: the same entries are refused again, and the daemon
  // comes up (a FIFO opened there would have kept it from starting).
  d.signal(SIGTERM);
  REQUIRE(d.wait_exit(milliseconds(10'000)) == 0);
  d.start();
  check_refused();
  check_still_serving(d, "in", "again");
  CHECK(names_in(d.pool_dir("in") / "done") == std::set<std::string>{"after", "again"});
}

// A folder made with mkdtemp under /dev/shm (tmpfs), removed with everything in it at the end.
class ShmDir {
 public:
  ShmDir() {
    std::string tmpl = "/dev/shm/barista-hostile-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
      throw HarnessError("mkdtemp under /dev/shm: " + std::string(std::strerror(errno)));
    }
    path_ = tmpl;
  }
  ShmDir(const ShmDir&) = delete;
  ShmDir& operator=(const ShmDir&) = delete;
  ~ShmDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  [[nodiscard]] const fs::path& path() const noexcept { return path_; }

 private:
  fs::path path_;
};

TEST_CASE("hostile: 100000 tiny batch files at once each get their one result",
          "[integration][hostile][many]") {
  // Each batch costs about ten fsyncs (claim and finish are durable); on this machine's disk
  // that is some 100 batches a second, a matter of disk speed. The spool is put on tmpfs (a
  // symlink from the usual place) so that the test measures what is asked of the daemon: 100,000
  // files at once, far more events than the inotify queue holds (16,384 by default).
  const ShmDir shm;  // outlives the daemon
  Daemon d("  many:\n    plugin: echo\n    workers: 2\n");
  fs::create_directory(shm.path() / "spool");
  fs::create_directory_symlink(shm.path() / "spool", d.spool());
  d.start();
  // Under the sanitizers (some three times slower here) 40,000: still more than twice the inotify
  // queue, 40 times the claim bound, and above the 35,000 claimed batches at which the ASan run
  // once ran out of descriptors.
  constexpr int kFiles = kSanitized ? 40'000 : 100'000;
  // Written beside the spool, then renamed into the inbox as fast as possible.
  const auto stage = shm.path() / "stage";
  fs::create_directory(stage);
  const auto name = [](int i) { return "b" + std::to_string(i); };
  bool written = true;
  for (int i = 0; i < kFiles && written; ++i) {
    const auto content = "job-" + std::to_string(i) + "\n";
    const int fd = ::open((stage / (name(i) + ".txt")).c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
    written = fd >= 0 &&
              ::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size());
    if (fd >= 0) {
      ::close(fd);
    }
  }
  REQUIRE(written);
  const auto inbox = d.inbox("many");
  const auto start = Clock::now();
  bool moved = true;
  for (int i = 0; i < kFiles && moved; ++i) {
    const auto file = name(i) + ".txt";
    moved = ::rename((stage / file).c_str(), (inbox / file).c_str()) == 0;
  }
  REQUIRE(moved);

  // Counting 100,000 folders is not free: look once a second.
  const auto done = d.pool_dir("many") / "done";
  auto last_look = Clock::now() - seconds(1);
  std::size_t count = 0;
  const bool all = d.wait_until(
      [&] {
        if (Clock::now() - last_look < seconds(1)) {
          return false;
        }
        last_look = Clock::now();
        count = 0;
        for ([[maybe_unused]] const auto& e : fs::directory_iterator(done)) {
          ++count;
        }
        return count >= static_cast<std::size_t>(kFiles);
      },
      seconds(240));  // about 35 s here; sanitizer builds are slower
  INFO(count << " batches in done/ after " << ms_between(start, Clock::now()) << " ms; log:\n"
             << d.log_tail());
  REQUIRE(all);
  CHECK(count == static_cast<std::size_t>(kFiles));

  Problems problems;
  for (int i = 0; i < kFiles; ++i) {
    const auto dir = done / name(i);
    const auto results = read_results(dir / "results.jsonl");
    if (results.size() != 1) {
      problems.add(name(i) + ": " + std::to_string(results.size()) + " results");
      continue;
    }
    const auto& r = results[0];
    if (r.id != "1" || r.status != "ok" || r.output != "job-" + std::to_string(i)) {
      problems.add(name(i) + ": " + r.line);
    }
    if (!fs::exists(dir / "summary.json")) {
      problems.add(name(i) + ": no summary.json");
    }
  }
  INFO(problems.text());
  CHECK(problems.empty());
  CHECK(names_in(inbox).empty());
  CHECK(names_in(d.pool_dir("many") / "active").empty());
  CHECK(names_in(d.pool_dir("many") / "failed").empty());
  check_still_serving(d, "many", "after");
}

}  // namespace
}  // namespace barista::itest
