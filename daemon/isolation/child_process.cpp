#include "daemon/isolation/child_process.hpp"

#include "daemon/common/error_text.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <thread>

#include <fmt/format.h>

extern char** environ;

namespace barista::isolation {
namespace {

constexpr auto kStopSlice = std::chrono::milliseconds(20);

void close_fd(int& fd) {
  if (fd >= 0) {
    ::close(fd);
    fd = -1;
  }
}

std::string errno_text(const char* what) {
  return fmt::format("{}: {}", what, common::error_text(errno));
}

// The environment: the daemon's, with `extra` added or replacing.
std::vector<std::string> environment(const std::map<std::string, std::string>& extra) {
  std::vector<std::string> out;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    const auto eq = entry.find('=');
    if (eq != std::string_view::npos && extra.contains(std::string(entry.substr(0, eq)))) {
      continue;
    }
    out.emplace_back(entry);
  }
  for (const auto& [name, value] : extra) {
    auto& entry = out.emplace_back(name);
    entry.append("=").append(value);
  }
  return out;
}

}  // namespace

std::string describe_wait_status(int status) {
  if (WIFEXITED(status)) {
    return fmt::format("exited with status {}", WEXITSTATUS(status));
  }
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* abbrev = ::sigabbrev_np(sig);
    return fmt::format("killed by signal {} (SIG{})", sig, abbrev != nullptr ? abbrev : "?");
  }
  return fmt::format("ended with wait status {}", status);
}

ChildProcess::ChildProcess(const Command& command) {
  if (command.argv.empty()) {
    throw SpawnError("no command to run");
  }
  // Everything the child needs is made before fork: after it, in a threaded program, only
  // async-signal-safe calls may run.
  std::vector<char*> argv;
  argv.reserve(command.argv.size() + 1);
  for (const auto& a : command.argv) {
    argv.push_back(const_cast<char*>(a.c_str()));
  }
  argv.push_back(nullptr);
  const auto env_strings = environment(command.env);
  std::vector<char*> envp;
  envp.reserve(env_strings.size() + 1);
  for (const auto& e : env_strings) {
    envp.push_back(const_cast<char*>(e.c_str()));
  }
  envp.push_back(nullptr);
  // execvpe looks argv[0] up in PATH (the daemon's: the child's own comes from envp).
  std::array<int, 2> in{-1, -1};
  std::array<int, 2> out{-1, -1};
  std::array<int, 2> err{-1, -1};
  const auto close_pipes = [&] {
    for (int* fd : {&in[0], &in[1], &out[0], &out[1], &err[0], &err[1]}) {
      close_fd(*fd);
    }
  };
  if (::pipe2(in.data(), O_CLOEXEC) != 0 || ::pipe2(out.data(), O_CLOEXEC) != 0 ||
      ::pipe2(err.data(), O_CLOEXEC) != 0) {
    const auto why = errno_text("pipe2");
    close_pipes();
    throw SpawnError(why);
  }
  rlimit limit{};
  if (command.memory_max) {
    limit.rlim_cur = limit.rlim_max = static_cast<rlim_t>(*command.memory_max);
  }
  const bool limited = command.memory_max.has_value();
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    const auto why = errno_text("fork");
    close_pipes();
    throw SpawnError(why);
  }
  if (pid == 0) {
    // The child: its own process group; dies with the daemon; the pipes as 0, 1, 2.
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) {
      ::_exit(127);  // the daemon died before prctl
    }
    sigset_t none;
    sigemptyset(&none);
    // The daemon blocks some; the program may not. (The child has one thread.)
    ::sigprocmask(SIG_SETMASK, &none, nullptr);  // NOLINT(concurrency-mt-unsafe)
    ::signal(SIGPIPE, SIG_DFL);
    if (limited) {
      ::setrlimit(RLIMIT_AS, &limit);
    }
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    ::close_range(3, ~0U, 0);
    ::execvpe(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  ::setpgid(pid, pid);  // as the child does: whichever runs first, the group exists
  pid_ = pid;
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  in_ = in[1];
  out_ = out[0];
  err_ = err[0];
  for (int fd : {in_, out_, err_}) {
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  }
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !status_) {
    ::kill(-pid_, SIGKILL);
    reap(/*wait=*/true);
  }
  close_fd(in_);
  close_fd(out_);
  close_fd(err_);
}

namespace {

// SIGPIPE blocked in this thread while it writes to a child that may have exited, so that the
// write fails with EPIPE instead of killing the process (baristad ignores SIGPIPE; a program
// embedding this may not). A SIGPIPE raised meanwhile is taken off before the mask is restored.
class NoSigpipe {
 public:
  NoSigpipe() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
  }
  ~NoSigpipe() {
    if (raised_) {
      const timespec zero{};
      sigtimedwait(&pipe_, nullptr, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  NoSigpipe(const NoSigpipe&) = delete;
  NoSigpipe& operator=(const NoSigpipe&) = delete;
  void raised() { raised_ = true; }

 private:
  sigset_t pipe_{};
  sigset_t old_{};
  bool raised_ = false;
};

}  // namespace

bool ChildProcess::write_line(std::string_view line, Clock::time_point deadline) {
  std::string data;
  data.reserve(line.size() + 1);
  data.append(line);
  data.push_back('\n');
  return write_all(data, deadline);
}

bool ChildProcess::write_all(std::string_view data, Clock::time_point deadline) {
  NoSigpipe no_sigpipe;
  std::size_t done = 0;
  while (done < data.size()) {
    const auto n = ::write(in_, data.data() + done, data.size() - done);
    if (n > 0) {
      done += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0 && errno != EAGAIN) {
      if (errno == EPIPE) {
        no_sigpipe.raised();
      }
      return false;  // EPIPE: it closed its stdin (or exited)
    }
    const auto now = Clock::now();
    if (now >= deadline) {
      return false;
    }
    pollfd p{in_, POLLOUT, 0};
    const auto wait = std::min<Clock::duration>(deadline - now, std::chrono::milliseconds(100));
    ::poll(&p, 1, static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(wait).count()));
  }
  return true;
}

bool ChildProcess::split_stderr(const std::function<void(std::string_view)>& on_stderr) {
  std::array<char, 4096> chunk{};
  bool open = true;
  for (;;) {
    const auto n = ::read(err_, chunk.data(), chunk.size());
    if (n > 0) {
      err_buffer_.append(chunk.data(), static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) {
      continue;
    }
    open = n < 0 && errno == EAGAIN;
    break;
  }
  std::size_t start = 0;
  for (auto nl = err_buffer_.find('\n'); nl != std::string::npos;
       nl = err_buffer_.find('\n', start)) {
    on_stderr(std::string_view(err_buffer_).substr(start, nl - start));
    start = nl + 1;
  }
  err_buffer_.erase(0, start);
  // A line without its end is handed over once it is long, or once stderr closed.
  constexpr std::size_t kLongStderrLine = 4096;
  if (!err_buffer_.empty() && (!open || err_buffer_.size() >= kLongStderrLine)) {
    on_stderr(err_buffer_);
    err_buffer_.clear();
  }
  return open;
}

void ChildProcess::close_input() { close_fd(in_); }

void ChildProcess::drain_stderr(const std::function<void(std::string_view)>& on_stderr) {
  if (err_ >= 0 && !split_stderr(on_stderr)) {
    close_fd(err_);
  }
}

std::optional<ChildProcess::Read> ChildProcess::fill(
    Clock::time_point deadline, const std::function<bool()>& stop,
    const std::function<void(std::string_view)>& on_stderr) {
  std::array<char, 65536> chunk{};
  for (;;) {
    if (out_ < 0) {
      return Read::kClosed;
    }
    const auto n = ::read(out_, chunk.data(), chunk.size());
    if (n > 0) {
      out_buffer_.append(chunk.data(), static_cast<std::size_t>(n));
      return std::nullopt;
    }
    if (n == 0) {
      close_fd(out_);
      drain_stderr(on_stderr);
      return Read::kClosed;
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno != EAGAIN) {
      close_fd(out_);
      return Read::kClosed;
    }
    if (stop && stop()) {
      return Read::kStopped;
    }
    const auto now = Clock::now();
    if (now >= deadline) {
      return Read::kTimeout;
    }
    std::array<pollfd, 2> fds{pollfd{out_, POLLIN, 0}, pollfd{err_, POLLIN, 0}};
    const auto wait = std::min<Clock::duration>(deadline - now, kStopSlice);
    ::poll(fds.data(), err_ >= 0 ? 2 : 1,
           static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(wait).count()));
    if (err_ >= 0 && (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      drain_stderr(on_stderr);
    }
  }
}

ChildProcess::Read ChildProcess::read_line(std::string& line, Clock::time_point deadline,
                                           std::size_t max_bytes, const std::function<bool()>& stop,
                                           const std::function<void(std::string_view)>& on_stderr) {
  std::size_t searched = 0;
  for (;;) {
    if (const auto nl = out_buffer_.find('\n', searched); nl != std::string::npos) {
      if (nl > max_bytes) {
        return Read::kTooLong;
      }
      line.assign(out_buffer_, 0, nl);
      out_buffer_.erase(0, nl + 1);
      return Read::kLine;
    }
    searched = out_buffer_.size();
    if (out_buffer_.size() > max_bytes) {
      return Read::kTooLong;
    }
    if (auto end = fill(deadline, stop, on_stderr)) {
      return *end;
    }
  }
}

ChildProcess::Read ChildProcess::read_bytes(
    std::string& out, std::size_t n, Clock::time_point deadline,
    const std::function<void(std::string_view)>& on_stderr) {
  while (out_buffer_.size() < n) {
    if (auto end = fill(deadline, nullptr, on_stderr)) {
      return *end;
    }
  }
  out.assign(out_buffer_, 0, n);
  out_buffer_.erase(0, n);
  return Read::kLine;
}

void ChildProcess::signal(int sig) const {
  if (pid_ > 0 && !status_) {
    ::kill(-pid_, sig);
  }
}

bool ChildProcess::reap(bool wait) {
  if (status_) {
    return true;
  }
  int status = 0;
  for (;;) {
    const auto r = ::waitpid(pid_, &status, wait ? 0 : WNOHANG);
    if (r == pid_) {
      status_ = status;
      exit_text_ = describe_wait_status(status);
      ::kill(-pid_, SIGKILL);  // what it started, if it left anything behind
      return true;
    }
    if (r < 0 && errno == EINTR) {
      continue;
    }
    return false;
  }
}

bool ChildProcess::running() { return !reap(/*wait=*/false); }

std::string ChildProcess::stop(std::chrono::milliseconds grace) {
  const auto until = Clock::now() + grace;
  while (running() && Clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (!status_) {
    ::kill(-pid_, SIGKILL);
    reap(/*wait=*/true);
  }
  return exit_text_;
}

}  // namespace barista::isolation
