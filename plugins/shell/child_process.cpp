#include "child_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <csignal>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <ctime>
#include <memory>
#include <utility>

namespace barista_shell {
namespace {

using Clock = std::chrono::steady_clock;

// Cancellation is noticed within this, even when the command is silent.
constexpr auto kPollSlice = std::chrono::milliseconds(50);
constexpr std::size_t kReadChunk = std::size_t{64} * 1024;
// Once the command has exited and its group is killed, only a process that left the group can
// still hold its pipes open; we do not wait for such a process longer than this.
constexpr auto kDrainGrace = std::chrono::seconds(1);

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    reset(std::exchange(other.fd_, -1));
    return *this;
  }
  ~UniqueFd() { reset(); }

  [[nodiscard]] int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }
  void reset(int fd = -1) noexcept {
    if (fd_ >= 0) {
      ::close(fd_);
    }
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// Moves `fd` above 2: the spawn's dup2() onto 0, 1 and 2 must not overwrite a pipe end when the
// host process runs with some of its standard streams closed.
int lift_above_stdio(UniqueFd& fd) {
  if (fd.get() > STDERR_FILENO) {
    return 0;
  }
  const int lifted = ::fcntl(fd.get(), F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
  if (lifted < 0) {
    return errno;
  }
  fd.reset(lifted);
  return 0;
}

int make_pipe(UniqueFd& read_end, UniqueFd& write_end) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return errno;
  }
  read_end.reset(fds[0]);
  write_end.reset(fds[1]);
  if (int err = lift_above_stdio(read_end); err != 0) {
    return err;
  }
  return lift_above_stdio(write_end);
}

void set_nonblocking(const UniqueFd& fd) {
  if (fd) {
    ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) | O_NONBLOCK);
  }
}

class SpawnSettings {
 public:
  SpawnSettings() {
    ::posix_spawn_file_actions_init(&actions_);
    ::posix_spawnattr_init(&attr_);
  }
  SpawnSettings(const SpawnSettings&) = delete;
  SpawnSettings& operator=(const SpawnSettings&) = delete;
  ~SpawnSettings() {
    ::posix_spawnattr_destroy(&attr_);
    ::posix_spawn_file_actions_destroy(&actions_);
  }
  posix_spawn_file_actions_t* actions() { return &actions_; }
  posix_spawnattr_t* attr() { return &attr_; }

 private:
  posix_spawn_file_actions_t actions_{};
  posix_spawnattr_t attr_{};
};

// Starts argv with stdin from `stdin_fd` (-1: /dev/null) and stdout/stderr into the given fds,
// as the leader of a new process group, with default signal dispositions and no blocked signals
// (the daemon's threads may block or ignore some). Returns 0 or an errno.
int spawn(const std::vector<std::string>& argv, int stdin_fd, int out_fd, int err_fd, pid_t& pid) {
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& arg : argv) {
    args.push_back(const_cast<char*>(arg.c_str()));
  }
  args.push_back(nullptr);

  SpawnSettings s;
  int rc = stdin_fd >= 0 ? ::posix_spawn_file_actions_adddup2(s.actions(), stdin_fd, STDIN_FILENO)
                         : ::posix_spawn_file_actions_addopen(s.actions(), STDIN_FILENO,
                                                              "/dev/null", O_RDONLY, 0);
  rc = rc != 0 ? rc : ::posix_spawn_file_actions_adddup2(s.actions(), out_fd, STDOUT_FILENO);
  rc = rc != 0 ? rc : ::posix_spawn_file_actions_adddup2(s.actions(), err_fd, STDERR_FILENO);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
  // Our fds are O_CLOEXEC; this also keeps out any fd the host process opened without it.
  rc = rc != 0 ? rc : ::posix_spawn_file_actions_addclosefrom_np(s.actions(), STDERR_FILENO + 1);
#endif
  sigset_t none;
  sigemptyset(&none);
  sigset_t all;
  sigfillset(&all);
  sigdelset(&all, SIGKILL);
  sigdelset(&all, SIGSTOP);
  rc = rc != 0 ? rc : ::posix_spawnattr_setsigmask(s.attr(), &none);
  rc = rc != 0 ? rc : ::posix_spawnattr_setsigdefault(s.attr(), &all);
  rc = rc != 0 ? rc : ::posix_spawnattr_setpgroup(s.attr(), 0);
  rc = rc != 0
           ? rc
           : ::posix_spawnattr_setflags(
                 s.attr(), POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  if (rc != 0) {
    return rc;
  }
  return ::posix_spawnp(&pid, args[0], s.actions(), s.attr(), args.data(), environ);
}

// write() to a pipe whose reader is gone raises SIGPIPE, which would kill the daemon unless it
// ignores it: block it for this thread around the write and swallow the one we caused.
ssize_t write_without_sigpipe(int fd, const char* data, std::size_t size, int& err) {
  sigset_t pipe_set;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  sigset_t old_mask;
  ::pthread_sigmask(SIG_BLOCK, &pipe_set, &old_mask);
  sigset_t pending;
  ::sigpending(&pending);
  const bool was_pending = sigismember(&pending, SIGPIPE) == 1;
  const ssize_t n = ::write(fd, data, size);
  err = n < 0 ? errno : 0;
  if (err == EPIPE && !was_pending) {
    const timespec zero{};
    ::sigtimedwait(&pipe_set, nullptr, &zero);
  }
  ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  return n;
}

// Supervises one started command until it and its pipes are done, or until the run is cut short.
class Supervisor {
 public:
  Supervisor(pid_t pid, UniqueFd out, UniqueFd err, UniqueFd in, std::string_view input,
             std::size_t max_output, const barista::Context& ctx)
      : pid_(pid),
        out_(std::move(out)),
        err_(std::move(err)),
        in_(std::move(in)),
        input_(input),
        max_output_(max_output),
        ctx_(ctx),
        buffer_(new char[kReadChunk]) {
#ifdef SYS_pidfd_open
    // Readable once the child exits, so poll() wakes at once; without it the slice bounds it.
    const long fd = ::syscall(SYS_pidfd_open, pid_, 0);
    if (fd >= 0) {
      pidfd_.reset(static_cast<int>(fd));
    }
#endif
    if (in_ && input_.empty()) {
      in_.reset();
    }
  }

  RunResult run() {
    for (;;) {
      if (ctx_.cancelled()) {
        return cut_short(RunEnd::kCancelled);
      }
      const auto now = Clock::now();
      if (now >= ctx_.deadline()) {
        return cut_short(RunEnd::kDeadline);
      }
      if (exited_ && ((!out_ && !err_) || now >= drain_until_)) {
        return finish();
      }
      if (int err = wait_for_events(now); err != 0) {
        return cut_short(RunEnd::kSystemError, err);
      }
      if (!read_stdout()) {
        return cut_short(RunEnd::kOutputTooLarge);
      }
      read_stderr();
      write_stdin();
      if (!exited_ && child_exited()) {
        exited_ = true;
        // Background processes the command left behind would outlive the job: end them now,
        // while the unreaped command still reserves its process group id.
        kill_group();
        drain_until_ = Clock::now() + kDrainGrace;
      }
    }
  }

 private:
  enum Slot { kOut, kErr, kIn, kPid, kSlots };

  int wait_for_events(Clock::time_point now) {
    auto limit = std::min(ctx_.deadline(), now + kPollSlice);
    if (exited_) {
      limit = std::min(limit, drain_until_);
    }
    const auto timeout = std::chrono::ceil<std::chrono::milliseconds>(limit - now);
    pollfd fds[kSlots];
    fds[kOut] = {out_.get(), POLLIN, 0};
    fds[kErr] = {err_.get(), POLLIN, 0};
    fds[kIn] = {in_.get(), POLLOUT, 0};
    // An exited child's pidfd stays readable until it is reaped: stop watching it once seen.
    fds[kPid] = {exited_ ? -1 : pidfd_.get(), POLLIN, 0};
    if (::poll(fds, kSlots, static_cast<int>(std::max<long>(0, timeout.count()))) < 0 &&
        errno != EINTR) {
      return errno;
    }
    for (int i = 0; i < kSlots; ++i) {
      ready_[i] = fds[i].fd >= 0 && fds[i].revents != 0;
    }
    return 0;
  }

  // False once stdout has passed max_output.
  bool read_stdout() {
    if (!ready_[kOut] || !out_) {
      return true;
    }
    const std::size_t room = max_output_ - result_.out.size();
    // One byte beyond the limit is enough to know it was passed.
    const std::size_t want = room >= kReadChunk ? kReadChunk : room + 1;
    const ssize_t n = ::read(out_.get(), buffer_.get(), want);
    if (n > 0) {
      result_.out.append(buffer_.get(), static_cast<std::size_t>(n));
      return result_.out.size() <= max_output_;
    }
    if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
      out_.reset();
    }
    return true;
  }

  void read_stderr() {
    if (!ready_[kErr] || !err_) {
      return;
    }
    const ssize_t n = ::read(err_.get(), buffer_.get(), kReadChunk);
    if (n > 0) {
      result_.err_tail.append(buffer_.get(), static_cast<std::size_t>(n));
      if (result_.err_tail.size() > 4 * kStderrTail) {
        result_.err_tail.erase(0, result_.err_tail.size() - kStderrTail);
      }
    } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
      err_.reset();
    }
  }

  void write_stdin() {
    if (!ready_[kIn] || !in_) {
      return;
    }
    int err = 0;
    const ssize_t n =
        write_without_sigpipe(in_.get(), input_.data(), std::min(input_.size(), kReadChunk), err);
    if (n > 0) {
      input_.remove_prefix(static_cast<std::size_t>(n));
      if (input_.empty()) {
        in_.reset();  // EOF for the command
      }
    } else if (err != EAGAIN && err != EINTR) {
      in_.reset();  // EPIPE: the command does not read (all of) its input, which is its business
    }
  }

  [[nodiscard]] bool child_exited() const {
    siginfo_t info{};
    // WNOWAIT: the zombie keeps its pid (and so its process group id) ours until reaped.
    return ::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
           info.si_pid == pid_;
  }

  void kill_group() const { ::kill(-pid_, SIGKILL); }

  int reap() const {  // NOLINT(modernize-use-nodiscard): cut_short() ignores it
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    return status;
  }

  RunResult cut_short(RunEnd end, int code = 0) {
    kill_group();
    reap();
    result_.end = end;
    result_.code = code;
    return take_result();
  }

  RunResult finish() {
    const int status = reap();
    if (WIFSIGNALED(status)) {
      result_.end = RunEnd::kSignalled;
      result_.code = WTERMSIG(status);
    } else {
      result_.end = RunEnd::kExited;
      result_.code = WEXITSTATUS(status);
    }
    return take_result();
  }

  RunResult take_result() {
    auto& tail = result_.err_tail;
    if (tail.size() > kStderrTail) {
      tail.erase(0, tail.size() - kStderrTail);
    }
    return std::move(result_);
  }

  pid_t pid_;
  UniqueFd out_;
  UniqueFd err_;
  UniqueFd in_;
  UniqueFd pidfd_;
  std::string_view input_;
  std::size_t max_output_;
  const barista::Context& ctx_;
  std::unique_ptr<char[]> buffer_;
  bool ready_[kSlots] = {};
  bool exited_ = false;
  Clock::time_point drain_until_{};
  RunResult result_;
};

RunResult failed(RunEnd end, int err) {
  RunResult r;
  r.end = end;
  r.code = err;
  return r;
}

}  // namespace

RunResult run_child(const std::vector<std::string>& argv, std::optional<std::string_view> input,
                    std::size_t max_output, const barista::Context& ctx) {
  UniqueFd out_read;
  UniqueFd out_write;
  UniqueFd err_read;
  UniqueFd err_write;
  UniqueFd in_read;
  UniqueFd in_write;
  int err = make_pipe(out_read, out_write);
  err = err != 0 ? err : make_pipe(err_read, err_write);
  if (err == 0 && input) {
    err = make_pipe(in_read, in_write);
  }
  if (err != 0) {
    return failed(RunEnd::kSystemError, err);
  }
  pid_t pid = -1;
  err = spawn(argv, input ? in_read.get() : -1, out_write.get(), err_write.get(), pid);
  // Only the child may hold these ends, or we would never see EOF.
  out_write.reset();
  err_write.reset();
  in_read.reset();
  if (err != 0) {
    return failed(RunEnd::kSpawnFailed, err);
  }
  set_nonblocking(out_read);
  set_nonblocking(err_read);
  set_nonblocking(in_write);
  Supervisor supervisor(pid, std::move(out_read), std::move(err_read), std::move(in_write),
                        input.value_or(std::string_view()), max_output, ctx);
  return supervisor.run();
}

}  // namespace barista_shell
