// barista-worker: hosts one plugin in a worker process of its own, for a pool with
// `isolation: process` (docs/workers.md). It loads the plugin file, makes one processor from the
// pool's `config:` (BARISTA_PLUGIN_CONFIG, JSON) and speaks the exec protocol on stdin and
// stdout: the same protocol as any `plugin: exec` program, so that one RemoteProcessor in the
// daemon serves both.
//
//   barista-worker PLUGIN.so           serve jobs until end of input
//   barista-worker --check PLUGIN.so   load it and make a processor; exit 0, or say why
//
// What the plugin writes to stdout goes to stderr (the daemon's log): stdout is the protocol's.
#include "daemon/isolation/exec_protocol.hpp"
#include "daemon/isolation/hosting.hpp"
#include "daemon/plugin/plugin_library.hpp"

#include <unistd.h>

#include <atomic>
#include <cerrno>
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

namespace {

using namespace barista;

// What the reader thread hands the main one: jobs in order; a cancellation of the running one.
struct Inbox {
  std::mutex mutex;
  std::condition_variable cv;
  std::deque<isolation::JobMessage> jobs;
  bool closed = false;
  std::string running;  // the id of the job being processed
  std::atomic<bool> cancel{false};
};

// One line of stdin at a time, read with read(2): no stdio lock is held while it waits, so a
// plugin that calls exit() (which flushes stdio) is not held up by this thread.
bool next_line(std::string& buffer, std::string& line) {
  for (;;) {
    if (const auto nl = buffer.find('\n'); nl != std::string::npos) {
      line.assign(buffer, 0, nl);
      buffer.erase(0, nl + 1);
      return true;
    }
    char chunk[65536];
    const auto n = ::read(0, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return false;
    }
    buffer.append(chunk, static_cast<std::size_t>(n));
  }
}

void read_stdin(Inbox& inbox) {
  std::string buffer;
  std::string line;
  while (next_line(buffer, line)) {
    std::string why;
    auto message = isolation::parse_inbound(line, why);
    if (!message) {
      std::cerr << "barista-worker: ignored a line that is not a job: " << why << "\n";
      continue;
    }
    std::lock_guard lock(inbox.mutex);
    if (message->cancel) {
      if (*message->cancel == inbox.running) {
        inbox.cancel.store(true, std::memory_order_relaxed);
      }
      continue;
    }
    inbox.jobs.push_back(std::move(*message->job));
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
    isolation::JobMessage job;
    {
      std::unique_lock lock(inbox.mutex);
      inbox.cv.wait(lock, [&] { return !inbox.jobs.empty() || inbox.closed; });
      if (inbox.jobs.empty()) {
        break;  // end of input: the daemon is done with this worker
      }
      job = std::move(inbox.jobs.front());
      inbox.jobs.pop_front();
      inbox.running = job.id;
      inbox.cancel.store(inbox.closed, std::memory_order_relaxed);
    }
    const auto outcome = run(*processor, job, inbox.cancel);
    {
      std::lock_guard lock(inbox.mutex);
      inbox.running.clear();
    }
    const auto line = isolation::result_message(job.id, outcome);
    std::fwrite(line.data(), 1, line.size(), out);
    std::fputc('\n', out);
    if (std::fflush(out) != 0) {
      return 1;  // the daemon has gone
    }
  }
  processor = {};
  std::fflush(out);
  // No static destructors: the reader thread may still be in a read of stdin.
  std::_Exit(0);
}
