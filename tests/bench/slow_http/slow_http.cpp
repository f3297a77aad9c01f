// slow_http: the web site of the scrape benchmark. It listens on a free loopback port
// (127.0.0.1:0), prints that port as its first stdout line, and answers every request -delay
// (10ms by default) after it was read, with 200 and a small body: never earlier, and late only by
// the time it takes to wake up and write. HTTP/1.1 keep-alive and pipelining; one thread, epoll,
// a timerfd for the first answer due. It stops on SIGTERM, SIGINT or when its standard input (a
// pipe) is closed, so that it never outlives the benchmark script. Each line on its standard
// input, and its stop, print on stderr how long after its request was read each answer since
// the last such report was written, and the client's turnaround: on a connection with nothing
// else pending, how long after an answer was written the next request was read (the client's
// own time per job, plus this server's wake-up).
//
// It stands for a web site on another machine, so its clients must not make it late: it runs
// at real-time priority (SCHED_FIFO) when it may, and a client's runnable threads then never
// hold up its wake-up. Without the privilege it says so on stderr and runs as any process.
// -realtime=false keeps the normal priority.
//
// -throttle-for D answers 429 with Retry-After: 1 (at once, not after -delay) to every request
// read in its first D: a site that rate-limits its clients for a while.
//
// Usage: slow_http [-delay 10ms] [-throttle-for 0s] [-realtime=false]   (units ns, us, ms, s;
//        also --delay, -delay=10ms)
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;  // CLOCK_MONOTONIC, the timerfd's clock
using std::chrono::nanoseconds;

constexpr std::string_view kResponse =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 17\r\n\r\n"
    "barista bench ok\n";
constexpr std::string_view kThrottled =
    "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n";
constexpr std::size_t kMaxHead = 16UL * 1024;
constexpr int kBacklog = 4096;  // the kernel caps it at net.core.somaxconn
// epoll tags below kFirstConnection; connections count up from it and are never reused, so a
// due answer for a connection that has closed (and whose fd was reused) finds nothing.
constexpr std::uint64_t kListener = 0;
constexpr std::uint64_t kTimer = 1;
constexpr std::uint64_t kSignals = 2;
constexpr std::uint64_t kStdin = 3;
constexpr std::uint64_t kFirstConnection = 16;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "slow_http: %s\n", what.c_str());
  std::exit(1);
}

[[noreturn]] void die_errno(const std::string& what) { die(what + ": " + std::strerror(errno)); }

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr, "slow_http: %s\nusage: slow_http [-delay 10ms] [-realtime=false]\n",
               why.c_str());
  std::exit(2);  // as Go's flag package
}

nanoseconds parse_duration(const std::string& text) {
  char* end = nullptr;
  errno = 0;
  const double value = std::strtod(text.c_str(), &end);
  const std::string_view unit(end);
  double scale = 0;
  if (unit == "ns") {
    scale = 1;
  } else if (unit == "us" || unit == "µs") {
    scale = 1e3;
  } else if (unit == "ms") {
    scale = 1e6;
  } else if (unit == "s") {
    scale = 1e9;
  }
  if (end == text.c_str() || errno != 0 || scale == 0 || value < 0) {
    usage("-delay: not a duration (like 10ms): " + text);
  }
  return nanoseconds(static_cast<std::int64_t>(value * scale));
}

struct Options {
  nanoseconds delay = std::chrono::milliseconds(10);
  nanoseconds throttle_for{0};
  bool realtime = true;
};

Options parse_args(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.starts_with("--")) {
      arg.erase(0, 1);
    }
    if (arg == "-delay" && i + 1 < argc) {
      options.delay = parse_duration(argv[++i]);
    } else if (arg.starts_with("-delay=")) {
      options.delay = parse_duration(arg.substr(7));
    } else if (arg == "-throttle-for" && i + 1 < argc) {
      options.throttle_for = parse_duration(argv[++i]);
    } else if (arg == "-realtime" || arg == "-realtime=true") {
      options.realtime = true;
    } else if (arg == "-realtime=false") {
      options.realtime = false;
    } else if (arg == "-h" || arg == "-help") {
      usage("answers every HTTP request -delay after reading it");
    } else {
      usage("unknown or incomplete option: " + std::string(argv[i]));
    }
  }
  return options;
}

// On a 2-core machine its 50 clients' threads are runnable at once after each wave of answers;
// at normal priority the server then waits its turn among them (0.3 ms on average, measured
// with perf sched), and every answer and every next request read is late by that much.
void take_realtime_priority() {
  sched_param param{};
  param.sched_priority = std::min(10, ::sched_get_priority_max(SCHED_FIFO));
  if (::sched_setscheduler(0, SCHED_FIFO, &param) != 0) {
    std::fprintf(stderr,
                 "slow_http: cannot take real-time priority (%s): running at normal priority, "
                 "its answers may go out late while its clients keep the CPUs busy\n",
                 std::strerror(errno));
  }
}

// A distribution of durations: 10 µs buckets up to 100 ms, plus the exact mean and maximum.
// Bounded memory however long the server runs.
class Durations {
 public:
  void add(nanoseconds d) {
    const auto ns = std::max<std::int64_t>(0, d.count());
    ++counts_[std::min<std::size_t>(static_cast<std::size_t>(ns / kBucketNs), kBuckets)];
    ++total_;
    sum_ns_ += static_cast<double>(ns);
    max_ns_ = std::max(max_ns_, ns);
  }

  [[nodiscard]] std::uint64_t total() const { return total_; }

  // "mean 10.112 ms, p50 10.11 ms, p99 10.42 ms, max 12.000 ms"
  [[nodiscard]] std::string summary() const {
    std::array<char, 160> text{};
    std::snprintf(text.data(), text.size(), "mean %.3f ms, p50 %.2f ms, p99 %.2f ms, max %.3f ms",
                  total_ == 0 ? 0.0 : sum_ns_ / static_cast<double>(total_) / 1e6,
                  percentile(50) / 1e6, percentile(99) / 1e6, static_cast<double>(max_ns_) / 1e6);
    return text.data();
  }

 private:
  static constexpr std::size_t kBuckets = 10'000;
  static constexpr std::int64_t kBucketNs = 10'000;

  // Nearest rank, reported as the top of its bucket: rounded up, never down.
  [[nodiscard]] double percentile(std::uint64_t p) const {
    const std::uint64_t rank = std::max<std::uint64_t>(1, (total_ * p + 99) / 100);
    std::uint64_t seen = 0;
    for (std::size_t b = 0; b < kBuckets; ++b) {
      seen += counts_[b];
      if (seen >= rank) {
        return static_cast<double>(std::min(static_cast<std::int64_t>(b + 1) * kBucketNs, max_ns_));
      }
    }
    return static_cast<double>(max_ns_);
  }

  std::vector<std::uint64_t> counts_ = std::vector<std::uint64_t>(kBuckets + 1);
  std::uint64_t total_ = 0;
  double sum_ns_ = 0;
  std::int64_t max_ns_ = 0;
};

struct Connection {
  int fd = -1;
  std::string in;
  std::size_t scanned = 0;  // bytes of `in` already searched for the end of a head
  std::string out;
  int pending = 0;        // requests read and not yet answered
  bool reading = true;    // false after the peer's EOF or a request that asks to close
  bool want_out = false;  // EPOLLOUT registered
  // When the last answer left with no request pending: the start of a turnaround.
  std::optional<Clock::time_point> idle_since;
};

struct Due {
  Clock::time_point at;
  Clock::time_point read_at;
  std::uint64_t id;
  bool operator>(const Due& other) const { return at > other.at; }
};

class Server {
 public:
  Server(nanoseconds delay, nanoseconds throttle_for)
      : delay_(delay), throttle_until_(Clock::now() + throttle_for) {}

  int listen_and_announce();
  void serve();
  // One line on stderr: how long after its request was read each answer since the last report
  // was written.
  void report();
  [[nodiscard]] bool unreported() const { return answered_.total() > 0; }

 private:
  void watch(int fd, std::uint64_t tag, std::uint32_t events);
  void accept_all();
  void on_stdin();
  void on_connection(std::uint64_t id, std::uint32_t events);
  void read_from(std::uint64_t id, Connection& c);
  void parse_requests(std::uint64_t id, Connection& c, Clock::time_point read_at);
  void answer_due();
  void arm_timer();
  bool flush(std::uint64_t id, Connection& c);  // false when the connection was closed
  void settle(std::uint64_t id, Connection& c);
  void close_connection(std::uint64_t id);

  nanoseconds delay_;
  Clock::time_point throttle_until_;  // requests read before it are answered 429 at once
  int epoll_ = -1;
  int listener_ = -1;
  int timer_ = -1;
  Clock::time_point armed_for_ = Clock::time_point::max();
  bool running_ = true;
  std::uint64_t next_id_ = kFirstConnection;
  std::unordered_map<std::uint64_t, Connection> connections_;
  // A min-heap: requests read late (the server busy elsewhere) come due before some read earlier.
  std::priority_queue<Due, std::vector<Due>, std::greater<>> due_;
  Durations answered_;    // request read to answer written
  Durations turnaround_;  // answer written (nothing pending) to the next request read
};

void Server::watch(int fd, std::uint64_t tag, std::uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = tag;
  if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    die_errno("epoll_ctl");
  }
}

int Server::listen_and_announce() {
  epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
  listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  timer_ = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (epoll_ < 0 || listener_ < 0 || timer_ < 0) {
    die_errno("cannot set up epoll, the socket or the timer");
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(listener_, kBacklog) != 0 ||
      ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    die_errno("cannot listen on 127.0.0.1");
  }
  watch(listener_, kListener, EPOLLIN);
  watch(timer_, kTimer, EPOLLIN);

  sigset_t stops;
  sigemptyset(&stops);
  sigaddset(&stops, SIGTERM);
  sigaddset(&stops, SIGINT);
  if (::pthread_sigmask(SIG_BLOCK, &stops, nullptr) != 0) {
    die_errno("pthread_sigmask");
  }
  const int signals = ::signalfd(-1, &stops, SFD_NONBLOCK | SFD_CLOEXEC);
  if (signals < 0) {
    die_errno("signalfd");
  }
  watch(signals, kSignals, EPOLLIN);
  // A pipe from the script: its end is ours to stop on. A file or /dev/null cannot be watched
  // (EPERM), and then only a signal stops the server.
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kStdin;
  if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, STDIN_FILENO, &ev) != 0 && errno != EPERM) {
    die_errno("epoll_ctl stdin");
  }

  const int port = ntohs(addr.sin_port);
  std::printf("%d\n", port);
  std::fflush(stdout);
  return port;
}

void Server::serve() {
  std::array<epoll_event, 256> events{};
  while (running_) {
    const int n = ::epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), -1);
    if (n < 0 && errno != EINTR) {
      die_errno("epoll_wait");
    }
    for (int i = 0; i < n; ++i) {
      const auto tag = events[static_cast<std::size_t>(i)].data.u64;
      const auto what = events[static_cast<std::size_t>(i)].events;
      if (tag == kListener) {
        accept_all();
      } else if (tag == kTimer) {
        std::uint64_t expirations = 0;
        [[maybe_unused]] auto r = ::read(timer_, &expirations, sizeof(expirations));
        answer_due();
      } else if (tag == kSignals) {
        running_ = false;
      } else if (tag == kStdin) {
        on_stdin();
      } else {
        on_connection(tag, what);
      }
    }
  }
}

// Each line on stdin asks for a report (the script takes one per contender); its end, to stop.
void Server::on_stdin() {
  std::array<char, 512> buf{};
  const auto got = ::read(STDIN_FILENO, buf.data(), buf.size());
  if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN)) {
    running_ = false;
    return;
  }
  for (const char ch :
       std::string_view(buf.data(), static_cast<std::size_t>(std::max<ssize_t>(got, 0)))) {
    if (ch == '\n') {
      report();
    }
  }
}

void Server::report() {
  std::fprintf(stderr,
               "slow_http: %llu answers, delay %.3f ms, written after the request was read: %s; "
               "the next request read after an answer: %s\n",
               static_cast<unsigned long long>(answered_.total()),
               static_cast<double>(delay_.count()) / 1e6, answered_.summary().c_str(),
               turnaround_.summary().c_str());
  std::fflush(stderr);
  answered_ = Durations();
  turnaround_ = Durations();
  // A connection kept open across reports (a client's pool of them) waited for the next
  // contender's turn, not for its client: no turnaround spans two reports.
  for (auto& [id, c] : connections_) {
    c.idle_since.reset();
  }
}

void Server::accept_all() {
  for (;;) {
    const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) {
        continue;
      }
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        // Out of descriptors or memory: the listener stays readable, so going on would spin.
        // The benchmark sees the server stop and says so.
        die_errno("accept");
      }
      return;
    }
    // Pipelined answers go out as separate small writes: Nagle would hold the second one back.
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    const auto id = next_id_++;
    connections_[id].fd = fd;
    watch(fd, id, EPOLLIN | EPOLLRDHUP);
  }
}

void Server::on_connection(std::uint64_t id, std::uint32_t events) {
  const auto it = connections_.find(id);
  if (it == connections_.end()) {
    return;
  }
  Connection& c = it->second;
  if ((events & (EPOLLERR | EPOLLHUP)) != 0) {
    close_connection(id);  // reset, or both directions shut: no answer can be delivered
    return;
  }
  if ((events & EPOLLOUT) != 0) {
    if (!flush(id, c)) {
      return;
    }
    if (!c.reading) {
      settle(id, c);  // the last answers went out: close, or keep waiting for the rest
      return;
    }
  }
  if ((events & (EPOLLIN | EPOLLRDHUP)) != 0 && c.reading) {
    read_from(id, c);
  }
}

void Server::read_from(std::uint64_t id, Connection& c) {
  std::array<char, 16384> buf{};
  const auto got = ::read(c.fd, buf.data(), buf.size());
  if (got < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      close_connection(id);
    }
    return;
  }
  if (got == 0) {
    c.reading = false;  // the peer is done sending; answer what it asked, then close
    settle(id, c);
    return;
  }
  c.in.append(buf.data(), static_cast<std::size_t>(got));
  parse_requests(id, c, Clock::now());
}

bool asks_to_close(std::string_view head) {
  std::string lower(head);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  const auto line_end = lower.find('\n');
  const bool http10 = lower.substr(0, line_end).find("http/1.0") != std::string::npos;
  const auto header = lower.find("\nconnection:");
  if (header == std::string::npos) {
    return http10;
  }
  const auto value = lower.substr(header, lower.find('\n', header + 1) - header);
  return value.find("close") != std::string::npos ||
         (http10 && value.find("keep-alive") == std::string::npos);
}

void Server::parse_requests(std::uint64_t id, Connection& c, Clock::time_point read_at) {
  std::size_t start = 0;
  bool answered_now = false;  // a throttled answer waits in c.out
  while (c.reading) {
    // Empty lines before a request line are allowed (RFC 9112 §2.2).
    while (start < c.in.size() && (c.in[start] == '\r' || c.in[start] == '\n')) {
      ++start;
    }
    // The head ends at an empty line: "\n\r\n" or a bare "\n\n".
    std::size_t end = std::string::npos;
    for (auto lf = c.in.find('\n', std::max(start, c.scanned)); lf != std::string::npos;
         lf = c.in.find('\n', lf + 1)) {
      if (lf + 1 < c.in.size() && c.in[lf + 1] == '\n') {
        end = lf + 2;
        break;
      }
      if (lf + 2 < c.in.size() && c.in[lf + 1] == '\r' && c.in[lf + 2] == '\n') {
        end = lf + 3;
        break;
      }
    }
    if (end == std::string::npos) {
      // Keep the last two bytes unscanned: they may start the empty line.
      c.scanned = c.in.size() >= 2 ? std::max(start, c.in.size() - 2) : start;
      break;
    }
    if (asks_to_close(std::string_view(c.in).substr(start, end - start))) {
      c.reading = false;
    }
    if (read_at < throttle_until_) {
      c.out.append(kThrottled);  // at once: a rate limit answers without doing the work
      answered_now = true;
      start = end;
      c.scanned = end;
      continue;
    }
    if (c.pending == 0 && c.idle_since) {
      turnaround_.add(read_at - *c.idle_since);
    }
    c.idle_since.reset();
    ++c.pending;
    due_.push({read_at + delay_, read_at, id});
    start = end;
    c.scanned = end;
  }
  arm_timer();
  c.in.erase(0, start);
  c.scanned -= std::min(c.scanned, start);
  if (c.reading && c.in.size() > kMaxHead) {
    close_connection(id);  // no head is this long: not a client of this benchmark
    return;
  }
  if (answered_now && !flush(id, c)) {
    return;  // closed
  }
  if (!c.reading) {
    settle(id, c);
  }
}

void Server::arm_timer() {
  if (due_.empty() || due_.top().at >= armed_for_) {
    return;  // nothing due, or the timer already fires in time for the first
  }
  armed_for_ = due_.top().at;
  // Absolute CLOCK_MONOTONIC time: the timer cannot fire before the first answer is due.
  const auto ns = std::chrono::duration_cast<nanoseconds>(armed_for_.time_since_epoch());
  itimerspec spec{};
  spec.it_value.tv_sec = static_cast<time_t>(ns.count() / 1'000'000'000);
  spec.it_value.tv_nsec = static_cast<long>(ns.count() % 1'000'000'000);
  if (::timerfd_settime(timer_, TFD_TIMER_ABSTIME, &spec, nullptr) != 0) {
    die_errno("timerfd_settime");
  }
}

void Server::answer_due() {
  armed_for_ = Clock::time_point::max();
  std::vector<std::uint64_t> touched;
  const auto now = Clock::now();
  while (!due_.empty() && due_.top().at <= now) {
    const Due d = due_.top();
    due_.pop();
    const auto it = connections_.find(d.id);
    if (it == connections_.end()) {
      continue;  // closed meanwhile
    }
    it->second.out.append(kResponse);
    if (--it->second.pending == 0) {
      it->second.idle_since = now;
    }
    answered_.add(now - d.read_at);
    touched.push_back(d.id);
  }
  for (const auto id : touched) {
    const auto it = connections_.find(id);
    if (it != connections_.end() && flush(id, it->second)) {
      settle(id, it->second);
    }
  }
  arm_timer();
}

bool Server::flush(std::uint64_t id, Connection& c) {
  while (!c.out.empty()) {
    const auto sent = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
    if (sent < 0) {
      if (errno == EINTR) {
        continue;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        break;
      }
      close_connection(id);
      return false;
    }
    c.out.erase(0, static_cast<std::size_t>(sent));
  }
  const bool want_out = !c.out.empty();
  if (want_out != c.want_out) {
    c.want_out = want_out;
    epoll_event ev{};
    ev.events = (c.reading ? EPOLLIN | EPOLLRDHUP : 0U) | (want_out ? EPOLLOUT : 0U);
    ev.data.u64 = id;
    ::epoll_ctl(epoll_, EPOLL_CTL_MOD, c.fd, &ev);
  }
  return true;
}

// After reading stops: close once every answer has been written; until then, stop watching for
// input (a peer that has sent FIN would keep it readable).
void Server::settle(std::uint64_t id, Connection& c) {
  if (c.reading) {
    return;
  }
  if (c.pending == 0 && c.out.empty()) {
    close_connection(id);
    return;
  }
  epoll_event ev{};
  ev.events = c.want_out ? EPOLLOUT : 0U;
  ev.data.u64 = id;
  ::epoll_ctl(epoll_, EPOLL_CTL_MOD, c.fd, &ev);
}

void Server::close_connection(std::uint64_t id) {
  const auto it = connections_.find(id);
  if (it == connections_.end()) {
    return;
  }
  ::close(it->second.fd);  // also removes it from the epoll set
  connections_.erase(it);
}

void raise_fd_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const auto options = parse_args(argc, argv);
  raise_fd_limit();
  if (options.realtime) {
    take_realtime_priority();
  }
  // The kernel may fire a timer up to the thread's timer slack late (50 us by default), to group
  // wake-ups: a web site that answers 10 ms after each request should not add that to every
  // answer, whichever client is measured.
  ::prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
  Server server(options.delay, options.throttle_for);
  server.listen_and_announce();
  server.serve();
  if (server.unreported()) {
    server.report();
  }
  return 0;
}
