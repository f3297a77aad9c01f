// latency_probe: times 1-line batches end to end, for the latency benchmark. It prints one
// sample per line, in milliseconds, and exits 1 at the first batch that does not end with its
// one job ok.
//
//   latency_probe inbox SPOOL POOL RUNS PREFIX
//       writes SPOOL/POOL/inbox/.PREFIX-i.tmp, then times from its rename to PREFIX-i.txt until
//       SPOOL/POOL/done/PREFIX-i/summary.json exists. The wait is inotify on done/ (and on the
//       batch's folder once it shows up there), so a sample is not rounded up to a poll period.
//   latency_probe submit BARISTA SOCKET POOL RUNS DIR PREFIX
//       times `BARISTA --socket SOCKET submit POOL DIR/PREFIX-i.txt --wait` from its spawn to
//       its exit, the round trip a user's script sees (the process start included).
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;
constexpr int kWaitLimitMs = 20000;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "latency_probe: %s\n", what.c_str());
  std::exit(1);
}

[[noreturn]] void die_errno(const std::string& what) { die(what + ": " + std::strerror(errno)); }

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

std::string read_file(const std::string& path) {
  std::string text;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    die_errno("cannot open " + path);
  }
  std::array<char, 4096> buf{};
  for (;;) {
    const auto n = ::read(fd, buf.data(), buf.size());
    if (n <= 0) {
      break;
    }
    text.append(buf.data(), static_cast<std::size_t>(n));
  }
  ::close(fd);
  return text;
}

void write_file(const std::string& path, std::string_view text) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0 || ::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    die_errno("cannot write " + path);
  }
  ::close(fd);
}

bool one_ok(std::string_view summary) {
  return summary.find(R"("jobs":1,)") != std::string_view::npos &&
         summary.find(R"("ok":1,)") != std::string_view::npos;
}

void print_sample(Clock::time_point start, Clock::time_point end) {
  std::printf("%.4f\n", std::chrono::duration<double, std::milli>(end - start).count());
  std::fflush(stdout);
}

// Reads whatever inotify has queued, without blocking; returns whether one event names `name`.
bool drain_events(int ifd, const std::string& name) {
  alignas(inotify_event) std::array<char, 16384> buf{};
  bool seen = false;
  for (;;) {
    const auto n = ::read(ifd, buf.data(), buf.size());
    if (n <= 0) {
      return seen;
    }
    for (std::size_t off = 0; off < static_cast<std::size_t>(n);) {
      const auto* ev = reinterpret_cast<const inotify_event*>(buf.data() + off);
      if (ev->len > 0 && name == ev->name) {
        seen = true;
      }
      off += sizeof(inotify_event) + ev->len;
    }
  }
}

int probe_inbox(const std::string& spool, const std::string& pool, int runs,
                const std::string& prefix) {
  const std::string root = spool + "/" + pool;
  const int ifd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (ifd < 0) {
    die_errno("inotify_init1");
  }
  const auto dir_events = IN_CREATE | IN_MOVED_TO | IN_ONLYDIR;
  if (::inotify_add_watch(ifd, (root + "/done").c_str(), dir_events) < 0 ||
      ::inotify_add_watch(ifd, (root + "/failed").c_str(), dir_events) < 0) {
    die_errno("inotify_add_watch " + root + "/{done,failed}");
  }
  for (int i = 1; i <= runs; ++i) {
    // Every path built before the clock starts.
    const std::string name = prefix + "-" + std::to_string(i);
    const std::string tmp = root + "/inbox/." + name + ".tmp";
    const std::string dropped = root + "/inbox/" + name + ".txt";
    const std::string failed = root + "/failed/" + name;
    const std::string folder = root + "/done/" + name;
    const std::string summary = folder + "/summary.json";
    write_file(tmp, "x\n");
    drain_events(ifd, name);
    int batch_watch = -1;
    bool watching_batch = false;
    const auto start = Clock::now();
    if (::rename(tmp.c_str(), dropped.c_str()) != 0) {
      die_errno("cannot rename " + tmp);
    }
    for (;;) {
      if (exists(summary)) {
        break;
      }
      if (exists(failed)) {
        die("batch " + name + " ended in failed/");
      }
      // The batch's folder may appear before its summary does: then watch inside it too.
      if (!watching_batch && exists(folder)) {
        watching_batch = true;
        batch_watch =
            ::inotify_add_watch(ifd, folder.c_str(), IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE);
        continue;
      }
      pollfd p{ifd, POLLIN, 0};
      if (::poll(&p, 1, kWaitLimitMs) == 0) {
        die("no summary.json for batch " + name + " after 20 s");
      }
      drain_events(ifd, name);
    }
    const auto end = Clock::now();
    if (batch_watch >= 0) {
      ::inotify_rm_watch(ifd, batch_watch);
    }
    if (!one_ok(read_file(summary))) {
      die("batch " + name + " did not end with its one job ok: " + read_file(summary));
    }
    print_sample(start, end);
  }
  ::close(ifd);
  return 0;
}

int probe_submit(const std::string& barista, const std::string& socket, const std::string& pool,
                 int runs, const std::string& dir, const std::string& prefix) {
  for (int i = 1; i <= runs; ++i) {
    const std::string file = dir + "/" + prefix + "-" + std::to_string(i) + ".txt";
    write_file(file, "x\n");
    std::vector<std::string> args = {barista, "--socket", socket, "submit", pool, file, "--wait"};
    std::vector<char*> argv;
    argv.reserve(args.size() + 1);
    for (auto& a : args) {
      argv.push_back(a.data());
    }
    argv.push_back(nullptr);
    std::array<int, 2> out{};
    if (::pipe2(out.data(), O_CLOEXEC) != 0) {
      die_errno("pipe2");
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    const auto start = Clock::now();
    pid_t pid = 0;
    if (const int rc =
            ::posix_spawn(&pid, barista.c_str(), &actions, nullptr, argv.data(), environ);
        rc != 0) {
      errno = rc;
      die_errno("cannot start " + barista);
    }
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    std::string text;
    std::array<char, 4096> buf{};
    for (;;) {
      const auto n = ::read(out[0], buf.data(), buf.size());
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n <= 0) {
        break;
      }
      text.append(buf.data(), static_cast<std::size_t>(n));
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    const auto end = Clock::now();
    ::close(out[0]);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !one_ok(text)) {
      die("`barista submit --wait` for " + file + " exited " + std::to_string(status) +
          " with: " + text);
    }
    print_sample(start, end);
  }
  return 0;
}

int runs_of(const char* text) {
  const int runs = std::atoi(text);
  if (runs <= 0) {
    die(std::string("RUNS must be a positive number, not ") + text);
  }
  return runs;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  if (args.size() == 5 && args[0] == "inbox") {
    return probe_inbox(args[1], args[2], runs_of(argv[4]), args[4]);
  }
  if (args.size() == 7 && args[0] == "submit") {
    return probe_submit(args[1], args[2], args[3], runs_of(argv[5]), args[5], args[6]);
  }
  std::fprintf(stderr,
               "usage: latency_probe inbox SPOOL POOL RUNS PREFIX\n"
               "       latency_probe submit BARISTA SOCKET POOL RUNS DIR PREFIX\n");
  return 64;
}
