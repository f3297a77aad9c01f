#include "daemon/control/control_server.hpp"

#include "daemon/common/error_text.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <stdexcept>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace barista::control {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kRequestTimeout = std::chrono::seconds(30);
constexpr int kBodyTimeoutSeconds = 30;

std::string errno_text() { return common::error_text(errno); }

sockaddr_un address_of(const std::filesystem::path& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.native().size() >= sizeof(addr.sun_path)) {
    throw std::runtime_error(fmt::format("control socket path {} is too long", path.string()));
  }
  std::memcpy(addr.sun_path, path.c_str(), path.native().size() + 1);
  return addr;
}

// A socket file left behind by a daemon that died is replaced; one a live daemon answers on is not.
void clear_stale_socket(const std::filesystem::path& path, const sockaddr_un& addr) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    return;
  }
  if (!S_ISSOCK(st.st_mode)) {
    throw std::runtime_error(
        fmt::format("control socket {} exists and is not a socket: remove it", path.string()));
  }
  const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const bool live = ::connect(probe, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
  ::close(probe);
  if (live) {
    throw std::runtime_error(fmt::format(
        "another baristad is already listening on {}: not taking it over", path.string()));
  }
  spdlog::info("replacing the stale control socket {}", path.string());
  ::unlink(path.c_str());
}

struct Pending {
  ucred peer{};
  std::string buffer;
  Clock::time_point since;
};

}  // namespace

Connection::Connection(int fd, ucred peer, std::string pending)
    : fd_(fd), peer_(peer), pending_(std::move(pending)) {
  // Handlers block: the connection leaves the poll loop's non-blocking mode.
  ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) & ~O_NONBLOCK);
  timeval tv{kBodyTimeoutSeconds, 0};
  ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

Connection::~Connection() {
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

bool Connection::write(std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

bool Connection::read_body(const std::function<bool(std::string_view)>& sink) {
  ChunkDecoder decoder;
  if (!pending_.empty()) {
    decoder.feed(pending_, sink);
    pending_.clear();
  }
  // Not zeroed: a one-line batch would otherwise pay for clearing all of it.
  constexpr std::size_t kStep = 256UL * 1024;
  const auto buf = std::make_unique_for_overwrite<char[]>(kStep);
  while (decoder.state() == ChunkDecoder::State::kMore) {
    const ssize_t n = ::recv(fd_, buf.get(), kStep, 0);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      body_error_ = n == 0 ? "the client went away before the end of the batch"
                           : "the batch stopped arriving: " + errno_text();
      return false;
    }
    decoder.feed(std::string_view(buf.get(), static_cast<std::size_t>(n)), sink);
  }
  if (decoder.state() == ChunkDecoder::State::kError) {
    body_error_ = decoder.error();
    return false;
  }
  return true;
}

bool Connection::client_gone() const {
  pollfd p{fd_, POLLIN | POLLRDHUP, 0};
  if (::poll(&p, 1, 0) <= 0) {
    return false;
  }
  return (p.revents & (POLLHUP | POLLRDHUP | POLLERR)) != 0;
}

ControlServer::ControlServer(std::filesystem::path path, Handler handler)
    : path_(std::move(path)), handler_(std::move(handler)) {
  std::error_code ec;
  if (!path_.parent_path().empty()) {
    std::filesystem::create_directories(path_.parent_path(), ec);
  }
  const auto addr = address_of(path_);
  clear_stale_socket(path_, addr);
  listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (listen_fd_ < 0) {
    throw std::runtime_error("socket: " + errno_text());
  }
  // Created with 0660 from the start: no moment where others could connect.
  const mode_t old_mask = ::umask(0117);
  const int rc = ::bind(listen_fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  ::umask(old_mask);
  if (rc != 0 || ::listen(listen_fd_, 128) != 0) {
    const std::string why = errno_text();
    ::close(listen_fd_);
    throw std::runtime_error(fmt::format("cannot listen on {}: {}", path_.string(), why));
  }
  ::chmod(path_.c_str(), 0660);
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  tasks_.set_capacity(static_cast<std::ptrdiff_t>(kMaxQueued));
  for (std::size_t i = 0; i < kRequestThreads; ++i) {
    request_threads_.emplace_back([this] { serve(); });
  }
  thread_ = std::thread([this] { loop(); });
  spdlog::info("control socket listening on {}", path_.string());
}

ControlServer::~ControlServer() { stop(); }

void ControlServer::stop() {
  if (stopping_.exchange(true)) {
    return;
  }
  const std::uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof one);
  if (thread_.joinable()) {
    thread_.join();
  }
  // Requests still queued are not begun.
  Task queued;
  while (tasks_.try_pop(queued)) {
    const auto reply = error_reply(3, "baristad is stopping");
    (void)!::send(queued.fd, reply.data(), reply.size(), MSG_NOSIGNAL);
    ::close(queued.fd);
  }
  std::unique_lock lock(mutex_);
  for (int fd : busy_fds_) {
    ::shutdown(fd, SHUT_RDWR);  // a handler blocked on its client returns
  }
  // Handler threads use this object: wait for every one of them, however long they take.
  if (!idle_cv_.wait_for(lock, std::chrono::seconds(5), [&] { return busy_fds_.empty(); })) {
    spdlog::warn("control: waiting for {} requests to end", busy_fds_.size());
    idle_cv_.wait(lock, [&] { return busy_fds_.empty(); });
  }
  lock.unlock();
  for (std::size_t i = 0; i < request_threads_.size(); ++i) {
    tasks_.push(Task{});
  }
  for (auto& t : request_threads_) {
    t.join();
  }
  waits_.stop(error_reply(3, "baristad is stopping"));
  ::close(listen_fd_);
  ::close(wake_fd_);
  ::unlink(path_.c_str());
}

void ControlServer::loop() {
  std::map<int, Pending> pending;
  std::vector<pollfd> fds;
  while (!stopping_.load()) {
    fds.clear();
    fds.push_back({wake_fd_, POLLIN, 0});
    fds.push_back({listen_fd_, POLLIN, 0});
    for (const auto& [fd, p] : pending) {
      fds.push_back({fd, POLLIN, 0});
    }
    if (::poll(fds.data(), fds.size(), 1000) < 0 && errno != EINTR) {
      spdlog::error("control socket: poll: {}", errno_text());
      continue;
    }
    if ((fds[1].revents & POLLIN) != 0) {
      for (;;) {
        const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
          if ((errno == EMFILE || errno == ENFILE) && !pending.empty()) {
            // Out of descriptors: the client that has waited longest without a request makes
            // room, so that idle connections cannot lock everyone out (nor spin this loop).
            auto oldest = std::min_element(pending.begin(), pending.end(), [](auto& a, auto& b) {
              return a.second.since < b.second.since;
            });
            spdlog::warn(
                "control socket: out of file descriptors with {} connections idle: closing the "
                "oldest (uid {} pid {})",
                pending.size(), oldest->second.peer.uid, oldest->second.peer.pid);
            ::close(oldest->first);
            pending.erase(oldest);
            continue;
          }
          if (errno == EMFILE || errno == ENFILE) {
            spdlog::error("control socket: out of file descriptors");
          }
          break;
        }
        Pending p;
        socklen_t len = sizeof p.peer;
        ::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &p.peer, &len);
        p.since = Clock::now();
        pending.emplace(fd, std::move(p));
      }
    }
    const auto now = Clock::now();
    for (std::size_t i = 2; i < fds.size(); ++i) {
      const int fd = fds[i].fd;
      auto it = pending.find(fd);
      if (it == pending.end()) {
        continue;  // closed above to make room for a new connection
      }
      bool close_it = false;
      if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
        char buf[16 * 1024];
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0 && !(n < 0 && (errno == EAGAIN || errno == EINTR))) {
          close_it = true;  // gone before sending a whole request
        } else if (n > 0) {
          it->second.buffer.append(buf, static_cast<std::size_t>(n));
          const auto nl = it->second.buffer.find('\n');
          if (nl != std::string::npos) {
            std::string line = it->second.buffer.substr(0, nl);
            std::string rest = it->second.buffer.substr(nl + 1);
            const ucred peer = it->second.peer;
            pending.erase(it);
            dispatch(fd, peer, line, std::move(rest));
            continue;
          }
          if (it->second.buffer.size() > kMaxRequestBytes) {
            const auto reply =
                error_reply(3, fmt::format("request exceeds {} bytes", kMaxRequestBytes));
            (void)!::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
            spdlog::warn("control: oversized request from uid {} pid {}: refused",
                         it->second.peer.uid, it->second.peer.pid);
            close_it = true;
          }
        }
      }
      if (!close_it && now - it->second.since > kRequestTimeout) {
        close_it = true;  // an idle client does not keep its descriptor forever
      }
      if (close_it) {
        ::close(fd);
        pending.erase(fd);
      }
    }
  }
  for (const auto& [fd, p] : pending) {
    ::close(fd);
  }
}

void ControlServer::dispatch(int fd, ucred peer, const std::string& line, std::string rest) {
  std::string error;
  auto request = parse_request(line, error);
  if (!request) {
    spdlog::warn("control: uid {} pid {}: {}", peer.uid, peer.pid, error);
    const auto reply = error_reply(3, error);
    (void)!::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
    ::close(fd);
    return;
  }
  spdlog::info("control: uid {} pid {}: {}{}{}", peer.uid, peer.pid, request->cmd,
               request->pool.empty() ? "" : " " + request->pool,
               request->batch.empty() ? "" : " " + request->batch);
  if (!tasks_.try_push(Task{fd, peer, std::move(*request), std::move(rest)})) {
    const auto reply = error_reply(3, "baristad is busy: too many requests at once");
    (void)!::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
    ::close(fd);
  }
}

void ControlServer::serve() {
  for (;;) {
    Task task;
    tasks_.pop(task);
    if (task.fd < 0) {
      return;
    }
    run(std::move(task));
  }
}

void ControlServer::run(Task task) {
  const int fd = task.fd;
  {
    std::lock_guard guard(mutex_);
    busy_fds_.insert(fd);
  }
  Connection conn(fd, task.peer, std::move(task.rest));
  try {
    handler_(task.request, conn);
  } catch (const std::exception& e) {
    spdlog::error("control: {} failed: {}", task.request.cmd, e.what());
    conn.write(error_reply(3, e.what()));
    conn.watch_.reset();
  }
  {
    std::lock_guard guard(mutex_);
    busy_fds_.erase(fd);  // before the descriptor is closed and its number reused
    idle_cv_.notify_all();
  }
  if (conn.watch_) {
    waits_.add(std::exchange(conn.fd_, -1), std::move(conn.watch_));
  }
}

}  // namespace barista::control
