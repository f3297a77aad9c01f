// barista-worker: hosts one plugin in a worker process of its own, for a pool with
// `isolation: process` (docs/workers.md). It loads the plugin file, makes one processor from the
// pool's `config:` (BARISTA_PLUGIN_CONFIG, JSON) and speaks the exec protocol on stdin and
// stdout: the same protocol as any `plugin: exec` program, so that one RemoteProcessor in the
// daemon serves both.
//
//   barista-worker PLUGIN.so           serve jobs (and frames: frames.hpp) until end of input
//   barista-worker --check PLUGIN.so   load it and make a processor; exit 0, or say why
//
// What the plugin writes to stdout goes to stderr (the daemon's log): stdout is the protocol's.
#include "daemon/isolation/exec_protocol.hpp"
#include "daemon/isolation/frames.hpp"
#include "daemon/isolation/hosting.hpp"
#include "daemon/plugin/plugin_library.hpp"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <iostream>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace barista;

// Work for the main thread: a job, or a frame's jobs.
struct Work {
  std::vector<isolation::JobMessage> jobs;
  bool frame = false;
  bool cancelled = false;  // a frame cancelled before it started
};

// What the reader thread hands the main one: work in order; a cancellation of the running job
// (and of the rest of its frame).
struct Inbox {
  std::mutex mutex;
  std::condition_variable cv;
  std::deque<Work> work;
  bool closed = false;
  std::string running;    // the id of the job being processed
  bool in_frame = false;  // it is a frame's
  std::atomic<bool> cancel{false};
  std::atomic<bool> skip_rest{false};  // the rest of the frame is cancelled
};

// Appends what stdin holds next to `buffer`, read with read(2): no stdio lock is held while it
// waits, so a plugin that calls exit() (which flushes stdio) is not held up by this thread.
bool read_more(std::string& buffer) {
  for (;;) {
    char chunk[65536];
    const auto n = ::read(0, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return false;
    }
    buffer.append(chunk, static_cast<std::size_t>(n));
    return true;
  }
}

// The next line of stdin (from `buffer` first); false at end of input.
bool next_line(std::string& buffer, std::size_t& start, std::string& line) {
  for (std::size_t searched = start;;) {
    if (const auto nl = buffer.find('\n', searched); nl != std::string::npos) {
      line.assign(buffer, start, nl - start);
      start = nl + 1;
      return true;
    }
    searched = buffer.size();
    if (!read_more(buffer)) {
      return false;
    }
  }
}

// The next `n` bytes of stdin; false at end of input.
bool next_bytes(std::string& buffer, std::size_t& start, std::size_t n, std::string& out) {
  while (buffer.size() - start < n) {
    if (!read_more(buffer)) {
      return false;
    }
  }
  out.assign(buffer, start, n);
  start += n;
  return true;
}

// A frame's header has been read: its body, decoded.
bool read_frame(std::string& buffer, std::size_t& start, const isolation::FrameHeader& header,
                Work& work) {
  std::string body;
  if (!next_bytes(buffer, start, header.bytes, body)) {
    return false;
  }
  std::string why;
  if (!isolation::decode_frame(body, header.count, work.jobs, why)) {
    // The daemon hears no results and restarts this worker: a clear account in its log.
    std::cerr << "barista-worker: a frame that does not decode: " << why << "\n";
    return false;
  }
  work.frame = true;
  return true;
}

void cancel(Inbox& inbox, const isolation::InboundMessage& message) {
  if (message.cancel && *message.cancel == inbox.running && !inbox.in_frame) {
    inbox.cancel.store(true, std::memory_order_relaxed);
  }
  if (!message.cancel_frame) {
    return;
  }
  if (!inbox.work.empty() && inbox.work.back().frame) {
    // Read before its frame started: all of it, then.
    inbox.work.back().cancelled = *message.cancel_frame;
  } else if (inbox.in_frame) {
    inbox.cancel.store(true, std::memory_order_relaxed);
    if (*message.cancel_frame) {
      inbox.skip_rest.store(true, std::memory_order_relaxed);
    }
  }
}

void read_stdin(Inbox& inbox) {
  std::string buffer;
  std::size_t start = 0;  // what of `buffer` is read
  std::string line;
  while (next_line(buffer, start, line)) {
    Work work;
    if (const auto header = isolation::parse_frame_header(line, "frame")) {
      if (!read_frame(buffer, start, *header, work)) {
        break;
      }
    } else {
      std::string why;
      auto message = isolation::parse_inbound(line, why);
      if (!message) {
        std::cerr << "barista-worker: ignored a line that is not a job: " << why << "\n";
        continue;
      }
      if (!message->job) {
        std::lock_guard lock(inbox.mutex);
        cancel(inbox, *message);
        continue;
      }
      work.jobs.push_back(std::move(*message->job));
    }
    if (start > buffer.size() / 2) {
      buffer.erase(0, start);
      start = 0;
    }
    std::lock_guard lock(inbox.mutex);
    inbox.work.push_back(std::move(work));
    inbox.cv.notify_one();
  }
  std::lock_guard lock(inbox.mutex);
  inbox.closed = true;
  inbox.cancel.store(true, std::memory_order_relaxed);  // the daemon has let go of this worker
  inbox.cv.notify_one();
}

Outcome run(Processor& processor, const isolation::JobMessage& m, const std::atomic<bool>& cancel) {
  const auto deadline =
      m.deadline ? Context::Clock::now() + *m.deadline : Context::Clock::time_point::max();
  Context ctx(&cancel, deadline);
  const Job job{m.id, m.payload, m.attempt, m.key};
  try {
    return processor.process(ctx, job);
  } catch (const std::bad_alloc&) {
    // Past memory_max, most likely: a crash of this worker, not a failure of the job.
    static constexpr char kOut[] = "barista-worker: out of memory\n";
    (void)!::write(2, kOut, sizeof kOut - 1);
    ::_exit(3);
  } catch (const std::exception& e) {
    return Outcome::fail(e.what());
  } catch (...) {
    return Outcome::fail("the processor threw an exception that is not a std::exception");
  }
}

// Marks `job` as the one running (a cancellation names it); false when the rest of its frame
// is cancelled.
bool start(Inbox& inbox, const isolation::JobMessage& job) {
  std::lock_guard lock(inbox.mutex);
  inbox.running = job.id;
  const bool skip = inbox.skip_rest.load(std::memory_order_relaxed);
  inbox.cancel.store(inbox.closed || skip, std::memory_order_relaxed);
  return !skip;
}

void finish(Inbox& inbox) {
  std::lock_guard lock(inbox.mutex);
  inbox.running.clear();
}

bool send(std::FILE* out, std::string_view data) {
  std::fwrite(data.data(), 1, data.size(), out);
  return std::fflush(out) == 0;
}

bool serve_job(Processor& processor, const isolation::JobMessage& job, Inbox& inbox,
               std::FILE* out) {
  start(inbox, job);
  const auto outcome = run(processor, job, inbox.cancel);
  finish(inbox);
  auto line = isolation::result_message(job.id, outcome);
  line.push_back('\n');
  return send(out, line);
}

// A frame's jobs in order, their results sent at least every millisecond while jobs end (the
// daemon's measure of its progress) or once they hold a MiB, and at its end.
bool serve_frame(Processor& processor, const std::vector<isolation::JobMessage>& jobs, Inbox& inbox,
                 std::FILE* out) {
  using Clock = std::chrono::steady_clock;
  constexpr auto kSendEvery = std::chrono::milliseconds(1);
  constexpr std::size_t kSendAtBytes = 1U << 20;
  std::string body;
  std::size_t pending = 0;
  auto sent_at = Clock::now();
  for (std::size_t k = 0; k < jobs.size(); ++k) {
    plugin::FrameResult result;
    result.kind = plugin::FrameResult::Kind::kSkipped;
    if (start(inbox, jobs[k])) {
      const auto began = Clock::now();
      result.outcome = run(processor, jobs[k], inbox.cancel);
      result.kind = plugin::FrameResult::Kind::kDone;
      result.elapsed = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - began);
    }
    finish(inbox);
    isolation::append_result(body, result);
    ++pending;
    const auto now = Clock::now();
    if (k + 1 == jobs.size() || now - sent_at >= kSendEvery || body.size() >= kSendAtBytes) {
      if (!send(out, isolation::results_message(pending, body))) {
        return false;
      }
      body.clear();
      pending = 0;
      sent_at = now;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  bool check = false;
  std::string file;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--check") {
      check = true;
    } else {
      file = arg;
    }
  }
  if (file.empty()) {
    std::cerr << "usage: barista-worker [--check] PLUGIN.so (started by baristad)\n";
    return 2;
  }
  // The protocol keeps stdout; the plugin's own writes to it go to stderr.
  const int protocol = ::dup(1);
  ::dup2(2, 1);
  FILE* out = ::fdopen(protocol, "w");
  if (out == nullptr) {
    std::perror("barista-worker: stdout");
    return 2;
  }
  std::shared_ptr<const plugin::PluginLibrary> library;
  plugin::ProcessorHandle processor;
  try {
    PluginConfig cfg;
    if (const char* text = std::getenv("BARISTA_PLUGIN_CONFIG")) {  // NOLINT(concurrency-mt-unsafe)
      cfg = PluginConfig(isolation::config_from_json(text));
    }
    library = plugin::PluginLibrary::open(file);
    processor = library->create(cfg);
  } catch (const ConfigError& e) {
    // Read back by the daemon (check_worker_start) to report the key's location.
    std::cerr << "config-error\t" << e.key() << "\t" << e.line() << "\t" << e.column() << "\t"
              << e.what() << "\n";
    return 3;
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 2;
  }
  if (check) {
    return 0;
  }
  Inbox inbox;
  std::thread reader([&] { read_stdin(inbox); });
  reader.detach();  // it may sit in a read of stdin when main returns
  for (;;) {
    Work work;
    {
      std::unique_lock lock(inbox.mutex);
      inbox.cv.wait(lock, [&] { return !inbox.work.empty() || inbox.closed; });
      if (inbox.work.empty()) {
        break;  // end of input: the daemon is done with this worker
      }
      work = std::move(inbox.work.front());
      inbox.work.pop_front();
      inbox.in_frame = work.frame;
      inbox.skip_rest.store(work.cancelled, std::memory_order_relaxed);
    }
    const bool sent = work.frame ? serve_frame(*processor, work.jobs, inbox, out)
                                 : serve_job(*processor, work.jobs.front(), inbox, out);
    if (!sent) {
      return 1;  // the daemon has gone
    }
  }
  processor = {};
  std::fflush(out);
  // No static destructors: the reader thread may still be in a read of stdin.
  std::_Exit(0);
}
