#include "tests/integration/cli/cli_support.hpp"

#include "tests/integration/harness/process.hpp"

#include <fcntl.h>
#include <grp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <sstream>

namespace barista::itest::cli {
namespace {

constexpr uid_t kNobody = 65534;

[[noreturn]] void fail(const std::string& what) {
  throw HarnessError(what + ": " + std::strerror(errno));
}

std::vector<std::string> environment(const CliOptions& o) {
  return detail::merged_environment(o.env, o.unset);
}

std::string read_all_from(int fd) {
  std::string out;
  char buf[8192];
  off_t at = 0;
  for (;;) {
    const ssize_t n = ::pread(fd, buf, sizeof buf, at);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return out;
    }
    out.append(buf, static_cast<std::size_t>(n));
    at += n;
  }
}

}  // namespace

struct CliProcess::Shared {
  std::mutex mutex;
  std::string terminal;  // what the pseudo-terminal showed
};

CliProcess::CliProcess(const std::vector<std::string>& args, const CliOptions& o)
    : shared_(std::make_shared<Shared>()) {
  std::vector<std::string> argv{BARISTA_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  auto envs = environment(o);
  auto arg_ptrs = detail::pointers(argv);
  auto env_ptrs = detail::pointers(envs);

  out_fd_ = ::memfd_create("stdout", MFD_CLOEXEC);
  if (out_fd_ < 0) {
    fail("memfd_create");
  }
  int err_child = -1;
  if (o.stderr_tty) {
    pty_fd_ = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (pty_fd_ < 0 || ::grantpt(pty_fd_) != 0 || ::unlockpt(pty_fd_) != 0) {
      fail("posix_openpt");
    }
    char name[128];
    if (::ptsname_r(pty_fd_, name, sizeof name) != 0) {
      fail("ptsname_r");
    }
    winsize ws{};
    ws.ws_col = 120;
    ws.ws_row = 40;
    ::ioctl(pty_fd_, TIOCSWINSZ, &ws);
    err_child = ::open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (err_child < 0) {
      fail(std::string("open ") + name);
    }
  } else {
    err_fd_ = ::memfd_create("stderr", MFD_CLOEXEC);
    if (err_fd_ < 0) {
      fail("memfd_create");
    }
    err_child = err_fd_;
  }
  int in_child = -1;
  int in_writer = -1;
  if (o.stdin_writer) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) {
      fail("pipe2");
    }
    in_child = p[0];
    in_writer = p[1];
  } else {
    const auto path = o.stdin_file.empty() ? std::filesystem::path("/dev/null") : o.stdin_file;
    in_child = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (in_child < 0) {
      fail("open " + path.string());
    }
  }
  const bool drop_to_nobody = o.as_nobody && ::geteuid() == 0;
  const pid_t parent = ::getpid();
  pid_ = ::fork();
  if (pid_ < 0) {
    fail("fork");
  }
  if (pid_ == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) {
      ::_exit(127);
    }
    ::dup2(in_child, 0);
    ::dup2(out_fd_, 1);
    ::dup2(err_child, 2);
    if (!o.cwd.empty() && ::chdir(o.cwd.c_str()) != 0) {
      ::_exit(127);
    }
    if (drop_to_nobody &&
        (::setgroups(0, nullptr) != 0 || ::setgid(kNobody) != 0 || ::setuid(kNobody) != 0)) {
      ::_exit(127);
    }
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    ::execve(arg_ptrs[0], arg_ptrs.data(), env_ptrs.data());
    ::_exit(127);
  }
  ::close(in_child);
  if (o.stderr_tty) {
    ::close(err_child);  // the master sees EIO once the child's copy is closed too
    threads_.emplace_back([fd = pty_fd_, shared = shared_] {
      char buf[4096];
      for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) {
          continue;
        }
        if (n <= 0) {
          return;
        }
        std::lock_guard lock(shared->mutex);
        shared->terminal.append(buf, static_cast<std::size_t>(n));
      }
    });
  }
  if (o.stdin_writer) {
    threads_.emplace_back([fd = in_writer, writer = o.stdin_writer] {
      // A CLI that exits before reading everything makes the writes fail with EPIPE; the signal
      // must not end the test.
      sigset_t pipe_set;
      sigemptyset(&pipe_set);
      sigaddset(&pipe_set, SIGPIPE);
      ::pthread_sigmask(SIG_BLOCK, &pipe_set, nullptr);
      try {
        writer(fd);
      } catch (const std::exception&) {
      }
      ::close(fd);
      const timespec zero{0, 0};
      while (::sigtimedwait(&pipe_set, nullptr, &zero) > 0) {
      }
    });
  }
}

CliProcess::~CliProcess() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }
  stop_readers();
  for (int fd : {out_fd_, err_fd_, pty_fd_}) {
    if (fd >= 0) {
      ::close(fd);
    }
  }
}

void CliProcess::stop_readers() {
  for (auto& t : threads_) {
    if (t.joinable()) {
      t.join();
    }
  }
  threads_.clear();
}

std::string CliProcess::out() const { return read_all_from(out_fd_); }

std::string CliProcess::err() const {
  if (err_fd_ >= 0) {
    return read_all_from(err_fd_);
  }
  std::lock_guard lock(shared_->mutex);
  return shared_->terminal;
}

bool CliProcess::running() const {
  if (pid_ <= 0) {
    return false;
  }
  siginfo_t info{};
  // WNOWAIT: look without reaping, so that wait() still gets the exit status and rusage.
  if (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
    return false;
  }
  return info.si_pid == 0;
}

void CliProcess::signal(int sig) const {
  if (pid_ > 0) {
    ::kill(pid_, sig);
  }
}

CliRun CliProcess::wait(std::chrono::milliseconds timeout) {
  CliRun run;
  const auto until = Clock::now() + timeout;
  bool timed_out = false;
  while (pid_ > 0) {
    int status = 0;
    rusage usage{};
    const pid_t r = ::wait4(pid_, &status, WNOHANG, &usage);
    if (r == pid_) {
      run.exit_code = timed_out ? -1 : detail::exit_code_of(status);
      run.max_rss_kib = usage.ru_maxrss;
      pid_ = -1;
      break;
    }
    if (r < 0 && errno != EINTR) {
      fail("wait4");
    }
    if (!timed_out && Clock::now() >= until) {
      timed_out = true;
      ::kill(pid_, SIGKILL);
    }
    std::this_thread::sleep_for(milliseconds(5));
  }
  stop_readers();
  run.out = out();
  run.err = err();
  return run;
}

CliRun run_cli(const std::vector<std::string>& args, const CliOptions& options) {
  CliProcess p(args, options);
  auto run = p.wait(options.timeout);
  if (run.exit_code == -1) {
    std::string cmd = "barista";
    for (const auto& a : args) {
      cmd += " " + a;
    }
    throw HarnessError(cmd + " did not exit within " + std::to_string(options.timeout.count()) +
                       " s; stderr:\n" + run.err);
  }
  return run;
}

std::vector<std::string> with_socket(const Daemon& d, std::vector<std::string> args) {
  args.insert(args.begin(), {"--socket", d.socket().string()});
  return args;
}

std::string pool(const std::string& name, const std::string& plugin, int workers,
                 const std::string& more) {
  return "  " + name + ":\n    plugin: " + plugin + "\n    workers: " + std::to_string(workers) +
         "\n" + more;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') {
      line.pop_back();
    }
    if (!line.empty()) {
      out.push_back(line);
    }
  }
  return out;
}

}  // namespace barista::itest::cli
