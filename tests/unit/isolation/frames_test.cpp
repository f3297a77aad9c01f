// Frames (docs/workers.md#frames): several jobs to a worker process in one message, and their
// results back; what a worker that breaks down, overruns or is cancelled mid-frame leaves.
#include "daemon/isolation/frames.hpp"
#include "daemon/isolation/remote_processor.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <string>
#include <vector>

namespace barista::test {
namespace {

using namespace std::chrono_literals;
using plugin::FrameJob;
using plugin::FrameResult;
using Kind = FrameResult::Kind;
using Clock = std::chrono::steady_clock;

TEST_CASE("frames: jobs and results travel as they are", "[isolation][frames]") {
  const std::string binary("a\nb\0c\xff", 6);
  const std::vector<FrameJob> jobs = {{"1", "one", ""}, {"2", binary, "example.org"}};
  const auto message = isolation::frame_message(jobs, 250ms);
  const auto nl = message.find('\n');
  const auto header = isolation::parse_frame_header(message.substr(0, nl), "frame");
  REQUIRE(header);
  CHECK(header->count == 2);
  CHECK(header->bytes == message.size() - nl - 1);
  std::vector<isolation::JobMessage> back;
  std::string why;
  REQUIRE(isolation::decode_frame(message.substr(nl + 1), 2, back, why));
  REQUIRE(back.size() == 2);
  CHECK(back[1].id == "2");
  CHECK(back[1].payload == binary);
  CHECK(back[1].key == "example.org");
  CHECK(back[1].deadline == 250ms);
  CHECK(back[0].key.empty());

  // A body cut short, or with bytes beyond its jobs, is refused.
  back.clear();
  CHECK_FALSE(isolation::decode_frame(message.substr(nl + 1, header->bytes - 1), 2, back, why));
  CHECK(why.find("ends within job 2") != std::string::npos);
  CHECK_FALSE(isolation::decode_frame(message.substr(nl + 1) + "x", 2, back, why));

  std::string body;
  FrameResult ok;
  ok.kind = Kind::kDone;
  ok.outcome = Outcome::ok(binary);
  ok.elapsed = 1234us;
  FrameResult throttle;
  throttle.kind = Kind::kDone;
  throttle.outcome = Outcome::throttle(1500ms, "slow down");
  FrameResult skipped;
  skipped.kind = Kind::kSkipped;
  for (const auto* r : {&ok, &throttle, &skipped}) {
    isolation::append_result(body, *r);
  }
  std::vector<FrameResult> results;
  REQUIRE(isolation::decode_results(body, 3, results, why));
  REQUIRE(results.size() == 3);
  CHECK(results[0].outcome.text() == binary);
  CHECK(results[0].elapsed == 1234us);
  CHECK(results[1].outcome.kind() == Outcome::Kind::kThrottled);
  CHECK(results[1].outcome.retry_after() == 1500ms);
  CHECK(results[2].kind == Kind::kSkipped);
  CHECK_FALSE(isolation::decode_results(body.substr(0, body.size() - 1) + "\x09", 3, results, why));
  body[0] = '\x07';
  CHECK_FALSE(isolation::decode_results(body, 3, results, why));
  CHECK(why.find("unknown status") != std::string::npos);

  for (const char* bad : {"frame", "frame 0 10", "frame 2", "frame x 3", "frame 5000 10",
                          "results 1 10", "frame 1 99999999999"}) {
    INFO(bad);
    CHECK_FALSE(isolation::parse_frame_header(bad, "frame"));
  }
  CHECK(isolation::parse_frame_header("results 1 10", "results"));
}

// A frame worker in Python. MODE: "ok" answers every job (its payload reversed) in two
// messages; "die" answers two jobs, then exits 4; "garbage" writes a line that is no header;
// "hang" answers the first job, then ignores everything; "cancel" answers the first job, then
// skips the rest once it reads {"cancel_frame":"rest"}.
std::string frame_worker(const std::string& mode) {
  return "import json, struct, sys, time\n"
         "MODE = '" +
         mode +
         "'\n"
         "out = sys.stdout.buffer\n"
         "def send(results):\n"
         "    body = b''.join(struct.pack('=BIQI', s, 0, 0, len(t)) + t for s, t in results)\n"
         "    out.write(b'results %d %d\\n' % (len(results), len(body)) + body); out.flush()\n"
         "while True:\n"
         "    line = sys.stdin.buffer.readline()\n"
         "    if not line: break\n"
         "    if not line.startswith(b'frame '): continue\n"
         "    n, size = map(int, line.split()[1:])\n"
         "    body = sys.stdin.buffer.read(size); jobs = []; at = 0\n"
         "    for _ in range(n):\n"
         "        i, p, k, d = struct.unpack_from('=IIIq', body, at); at += 20\n"
         "        jobs.append(body[at + i:at + i + p]); at += i + p + k\n"
         "    done = [(0, j[::-1]) for j in jobs]\n"
         "    if MODE == 'ok': send(done[:1]); send(done[1:])\n"
         "    if MODE == 'die': send(done[:2]); sys.exit(4)\n"
         "    if MODE == 'garbage': out.write(b'hello\\n'); out.flush()\n"
         "    if MODE == 'hang': send(done[:1]); time.sleep(1000)\n"
         "    if MODE == 'cancel':\n"
         "        send(done[:1])\n"
         "        while json.loads(sys.stdin.buffer.readline()).get('cancel_frame') != 'rest': "
         "pass\n"
         "        send([(4, b'')] * (n - 1))\n";
}

struct Run {
  std::vector<FrameResult> results;
  std::string lost_why;
  std::chrono::milliseconds took{};
};

Run run_frame(const std::string& mode, std::optional<std::chrono::milliseconds> timeout,
              std::atomic<bool>* cancel = nullptr) {
  isolation::WorkerSpec spec;
  spec.pool = "test";
  spec.command.argv = {"/usr/bin/python3", "-c", frame_worker(mode)};
  spec.frames = true;
  isolation::RemoteProcessor processor(spec, std::make_shared<plugin::WorkerHealth>());
  const std::vector<FrameJob> jobs = {
      {"1", "abc", ""}, {"2", "de", ""}, {"3", "f", ""}, {"4", "gh", ""}};
  Run run;
  const auto start = Clock::now();
  processor.process_frame(jobs, {cancel, timeout}, run.results, run.lost_why);
  run.took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  REQUIRE(run.results.size() == jobs.size());
  return run;
}

TEST_CASE("frames: a worker process's results come back in order", "[isolation][frames]") {
  const auto run = run_frame("ok", std::nullopt);
  CHECK(run.lost_why.empty());
  CHECK(run.results[0].outcome.text() == "cba");
  CHECK(run.results[3].outcome.text() == "hg");
  for (const auto& r : run.results) {
    CHECK(r.kind == Kind::kDone);
  }
}

TEST_CASE("frames: a breakdown loses only the results not yet back", "[isolation][frames]") {
  auto run = run_frame("die", std::nullopt);
  CHECK(run.results[1].kind == Kind::kDone);
  CHECK(run.results[2].kind == Kind::kLost);
  CHECK(run.results[3].kind == Kind::kLost);
  CHECK(run.lost_why.find("exited with status 4") != std::string::npos);

  run = run_frame("garbage", std::nullopt);
  CHECK(run.results[0].kind == Kind::kLost);
  CHECK(run.lost_why.find("not a frame's results: hello") != std::string::npos);
}

TEST_CASE("frames: no progress past the timeout: cancel, SIGTERM, the rest lost",
          "[isolation][frames]") {
  const auto run = run_frame("hang", 200ms);
  CHECK(run.results[0].kind == Kind::kDone);
  CHECK(run.results[1].kind == Kind::kLost);
  CHECK(run.lost_why.find("did not end a job within 1 s of its deadline") != std::string::npos);
  // 200 ms and a little, then 1 s for the cancel message, then SIGTERM ends it.
  CHECK(run.took >= 1200ms);
  CHECK(run.took < 3500ms);
}

TEST_CASE("frames: a cancelled batch's frame skips what had not started", "[isolation][frames]") {
  std::atomic<bool> cancel{true};
  const auto run = run_frame("cancel", std::nullopt, &cancel);
  CHECK(run.lost_why.empty());
  CHECK(run.results[0].kind == Kind::kDone);
  CHECK(run.results[1].kind == Kind::kSkipped);
  CHECK(run.results[3].kind == Kind::kSkipped);
  CHECK(run.took < 1000ms);
}

}  // namespace
}  // namespace barista::test
