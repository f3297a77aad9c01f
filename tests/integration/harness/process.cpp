#include "tests/integration/harness/process.hpp"

#include "tests/integration/harness/daemon_harness.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <thread>

extern char** environ;

namespace barista::itest {
namespace detail {
namespace {

std::string name_of(const std::string& entry) { return entry.substr(0, entry.find('=')); }

}  // namespace

std::vector<std::string> merged_environment(const std::vector<std::string>& extra,
                                            const std::vector<std::string>& unset) {
  std::vector<std::string> out;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string entry(*e);
    bool drop = false;
    for (const auto& x : extra) {
      drop = drop || name_of(x) == name_of(entry);
    }
    for (const auto& x : unset) {
      drop = drop || x == name_of(entry);
    }
    if (!drop) {
      out.push_back(entry);
    }
  }
  out.insert(out.end(), extra.begin(), extra.end());
  return out;
}

std::vector<char*> pointers(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) {
    out.push_back(s.data());
  }
  out.push_back(nullptr);
  return out;
}

int exit_code_of(int status) {
  if (WIFEXITED(status)) {
    return WEXITSTATUS(status);
  }
  if (WIFSIGNALED(status)) {
    return 128 + WTERMSIG(status);
  }
  return -1;
}

pid_t spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env, int out_fd,
            int err_fd, const std::string& cwd) {
  // Everything the child needs is prepared before fork: between fork and exec only
  // async-signal-safe calls are allowed.
  std::vector<std::string> args = argv;
  std::vector<std::string> envs = merged_environment(env);
  auto arg_ptrs = pointers(args);
  auto env_ptrs = pointers(envs);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    throw HarnessError(std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    // A test binary that dies (crash, ctest timeout) must not leave daemons behind.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) {
      ::_exit(127);
    }
    const int null_fd = ::open("/dev/null", O_RDONLY);
    ::dup2(null_fd, 0);
    ::dup2(out_fd, 1);
    ::dup2(err_fd, 2);
    if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) {
      ::_exit(127);
    }
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execve(arg_ptrs[0], arg_ptrs.data(), env_ptrs.data());
    ::_exit(127);
  }
  return pid;
}

std::optional<int> reap(pid_t pid, std::chrono::milliseconds timeout) {
  const auto until = Clock::now() + timeout;
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      return exit_code_of(status);
    }
    if (r < 0 && errno != EINTR) {
      throw HarnessError(std::string("waitpid: ") + std::strerror(errno));
    }
    if (Clock::now() >= until) {
      return std::nullopt;
    }
    std::this_thread::sleep_for(milliseconds(5));
  }
}

void kill_and_reap(pid_t pid) {
  ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

}  // namespace detail

namespace {

struct OwnedFd {
  explicit OwnedFd(int f) : fd(f) {}
  OwnedFd(const OwnedFd&) = delete;
  OwnedFd& operator=(const OwnedFd&) = delete;
  ~OwnedFd() {
    if (fd >= 0) {
      ::close(fd);
    }
  }
  int fd;
};

std::string read_back(int fd) {
  std::string out;
  ::lseek(fd, 0, SEEK_SET);
  char buf[8192];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      break;
    }
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

}  // namespace

ProgramResult run_program(const std::vector<std::string>& argv, seconds timeout,
                          const std::vector<std::string>& env) {
  // memfds rather than pipes: nothing to drain while waiting, nothing to clean up.
  const OwnedFd out_fd(::memfd_create("stdout", MFD_CLOEXEC));
  const OwnedFd err_fd(::memfd_create("stderr", MFD_CLOEXEC));
  if (out_fd.fd < 0 || err_fd.fd < 0) {
    throw HarnessError(std::string("memfd_create: ") + std::strerror(errno));
  }
  const pid_t pid = detail::spawn(argv, env, out_fd.fd, err_fd.fd);
  const auto code = detail::reap(pid, timeout);
  if (!code) {
    detail::kill_and_reap(pid);
  }
  ProgramResult result;
  result.out = read_back(out_fd.fd);
  result.err = read_back(err_fd.fd);
  if (!code) {
    throw HarnessError(argv.front() + " did not exit within " + std::to_string(timeout.count()) +
                       " s; stderr:\n" + result.err);
  }
  result.exit_code = *code;
  return result;
}

ProgramResult run_barista(const std::vector<std::string>& args, seconds timeout) {
  std::vector<std::string> argv{BARISTA_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_program(argv, timeout);
}

ProgramResult run_baristad(const std::vector<std::string>& args, seconds timeout,
                           const std::vector<std::string>& env) {
  std::vector<std::string> argv{BARISTAD_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_program(argv, timeout, env);
}

}  // namespace barista::itest
