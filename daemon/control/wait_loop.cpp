#include "daemon/control/wait_loop.hpp"

#include "daemon/common/error_text.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

namespace barista::control {
namespace {

using Clock = std::chrono::steady_clock;
/// A client that reads nothing of its answer for this long is let go.
constexpr auto kSendTimeout = std::chrono::seconds(30);

/// Sends what it can of `out` without blocking; false when the client has gone.
bool send_some(int fd, std::string& out) {
  while (!out.empty()) {
    const ssize_t n = ::send(fd, out.data(), out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return errno == EAGAIN || errno == EWOULDBLOCK;
    }
    out.erase(0, static_cast<std::size_t>(n));
  }
  return true;
}

}  // namespace

struct WaitLoop::Shared {
  Shared() : event_fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}
  Shared(const Shared&) = delete;
  Shared& operator=(const Shared&) = delete;
  ~Shared() { ::close(event_fd); }

  void wake(std::uint64_t id) {
    {
      std::lock_guard lock(mutex);
      woken.insert(id);
    }
    const std::uint64_t one = 1;
    (void)!::write(event_fd, &one, sizeof one);
  }

  const int event_fd;
  mutable std::mutex mutex;  // guards all below
  std::vector<std::pair<int, std::unique_ptr<Watch>>> added;
  std::set<std::uint64_t> woken;
  std::size_t waiting = 0;  // clients the loop serves
  bool stopping = false;
  std::string last_words;
};

struct WaitLoop::Client {
  int fd = -1;
  std::unique_ptr<Watch> watch;
  std::string out;                    // sent as the client reads it
  bool last = false;                  // the answer is complete once `out` is sent
  bool due = true;                    // asked for its next step at the next turn
  Clock::time_point stalled_since{};  // when `out` last stopped draining
};

WaitLoop::WaitLoop() : shared_(std::make_shared<Shared>()) {
  thread_ = std::thread([this] { loop(); });
}

WaitLoop::~WaitLoop() { stop({}); }

void WaitLoop::add(int fd, std::unique_ptr<Watch> watch) {
  {
    std::lock_guard lock(shared_->mutex);
    if (!shared_->stopping) {
      shared_->added.emplace_back(fd, std::move(watch));
      fd = -1;
    }
  }
  if (fd >= 0) {
    ::close(fd);  // too late: the loop has ended
    return;
  }
  const std::uint64_t one = 1;
  (void)!::write(shared_->event_fd, &one, sizeof one);
}

std::size_t WaitLoop::size() const {
  std::lock_guard lock(shared_->mutex);
  return shared_->waiting + shared_->added.size();
}

void WaitLoop::stop(const std::string& last_words) {
  {
    std::lock_guard lock(shared_->mutex);
    if (shared_->stopping) {
      return;
    }
    shared_->stopping = true;
    shared_->last_words = last_words;
  }
  const std::uint64_t one = 1;
  (void)!::write(shared_->event_fd, &one, sizeof one);
  thread_.join();
}

void WaitLoop::loop() {
  Clients clients;
  next_tick_ = Clock::now() + kTick;
  while (take_news(clients)) {
    serve(clients);
    await(clients);
  }
}

bool WaitLoop::take_news(Clients& clients) {
  std::vector<std::pair<int, std::unique_ptr<Watch>>> added;
  std::set<std::uint64_t> woken;
  bool stopping = false;
  std::string last_words;
  {
    std::lock_guard lock(shared_->mutex);
    added.swap(shared_->added);
    woken.swap(shared_->woken);
    stopping = shared_->stopping;
    last_words = shared_->last_words;
  }
  for (auto& [fd, watch] : added) {
    const auto id = ++next_id_;
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    // Outside the lock: a watch whose answer is ready wakes the loop from start() itself.
    watch->start([weak = std::weak_ptr<Shared>(shared_), id] {
      if (auto shared = weak.lock()) {
        shared->wake(id);
      }
    });
    clients.emplace(id, Client{fd, std::move(watch), {}, false, true, {}});
  }
  if (stopping) {
    for (auto& [id, c] : clients) {
      c.out += last_words;
      send_some(c.fd, c.out);  // best effort: the daemon stops
      ::close(c.fd);
    }
    clients.clear();
    return false;
  }
  for (const auto id : woken) {
    if (auto it = clients.find(id); it != clients.end()) {
      it->second.due = true;
    }
  }
  return true;
}

void WaitLoop::serve(Clients& clients) {
  const auto now = Clock::now();
  if (now >= next_tick_) {
    for (auto& [id, c] : clients) {
      c.due = true;
    }
    next_tick_ = now + kTick;
  }
  for (auto it = clients.begin(); it != clients.end();) {
    auto& c = it->second;
    // A client that has not read what it was sent is not asked for more: its progress lines
    // would only pile up.
    if (c.due && c.out.empty() && !c.last) {
      auto step = c.watch->step();
      c.out += step.text;
      c.last = step.last;
      c.stalled_since = now;
    }
    c.due = false;
    const bool had_output = !c.out.empty();
    const std::size_t before = c.out.size();
    bool keep = send_some(c.fd, c.out) && !(c.out.empty() && c.last);
    if (keep && c.out.size() != before) {
      c.stalled_since = now;
    } else if (keep && had_output && now - c.stalled_since > kSendTimeout) {
      spdlog::warn("control: a waiting client read nothing for {} s: let go",
                   std::chrono::duration_cast<std::chrono::seconds>(kSendTimeout).count());
      keep = false;
    }
    if (keep) {
      ++it;
    } else {
      ::close(c.fd);
      it = clients.erase(it);  // the watch goes: it forgets what it asked to be woken for
    }
  }
  std::lock_guard lock(shared_->mutex);
  shared_->waiting = clients.size();
}

void WaitLoop::await(Clients& clients) {
  std::vector<pollfd> fds;
  std::vector<std::uint64_t> polled;  // the client of each of fds[1...]
  fds.reserve(clients.size() + 1);
  polled.reserve(clients.size());
  fds.push_back({shared_->event_fd, POLLIN, 0});
  for (const auto& [id, c] : clients) {
    fds.push_back({c.fd, static_cast<short>(POLLRDHUP | (c.out.empty() ? 0 : POLLOUT)), 0});
    polled.push_back(id);
  }
  const auto wait =
      std::chrono::duration_cast<std::chrono::milliseconds>(next_tick_ - Clock::now()).count();
  if (::poll(fds.data(), fds.size(), static_cast<int>(std::max<std::int64_t>(wait, 0))) < 0 &&
      errno != EINTR) {
    spdlog::error("control: wait loop: poll: {}", common::error_text(errno));
  }
  if ((fds[0].revents & POLLIN) != 0) {
    std::uint64_t n = 0;
    (void)!::read(shared_->event_fd, &n, sizeof n);
  }
  for (std::size_t i = 1; i < fds.size(); ++i) {
    if ((fds[i].revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0) {
      auto it = clients.find(polled[i - 1]);
      ::close(it->second.fd);
      clients.erase(it);  // the client stopped waiting
    }
  }
}

}  // namespace barista::control
