#include "daemon/runtime/metrics.hpp"

#include "daemon/batch/batch.hpp"
#include "daemon/common/error_text.hpp"

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <prometheus/client_metric.h>
#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/metric_family.h>
#include <prometheus/metric_type.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <limits>
#include <optional>
#include <stdexcept>
#include <thread>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace barista::runtime {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;
using Labels = std::vector<ClientMetric::Label>;

// ---- scrape side --------------------------------------------------------------------------

void add_counter(MetricFamily& family, Labels labels, std::uint64_t value) {
  ClientMetric m;
  m.label = std::move(labels);
  m.counter.value = static_cast<double>(value);
  family.metric.push_back(std::move(m));
}

void add_gauge(MetricFamily& family, Labels labels, double value) {
  ClientMetric m;
  m.label = std::move(labels);
  m.gauge.value = value;
  family.metric.push_back(std::move(m));
}

std::uint64_t load(const std::atomic<std::uint64_t>& value) {
  return value.load(std::memory_order_relaxed);
}

// JobCounters keeps its buckets apart; Prometheus wants them cumulative, ending with +Inf.
void add_durations(MetricFamily& family, Labels labels, const batch::JobCounters& c) {
  ClientMetric m;
  m.label = std::move(labels);
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < batch::JobCounters::kBuckets.size(); ++i) {
    cumulative += load(c.duration_buckets[i]);
    m.histogram.bucket.push_back({cumulative, batch::JobCounters::kBuckets[i]});
  }
  cumulative += load(c.duration_buckets.back());
  m.histogram.bucket.push_back({cumulative, std::numeric_limits<double>::infinity()});
  // The count is the +Inf bucket rather than duration_count, read a moment apart: a job that
  // finishes during the scrape must not make _count disagree with le="+Inf".
  m.histogram.sample_count = cumulative;
  m.histogram.sample_sum = static_cast<double>(load(c.duration_sum_us)) / 1e6;
  family.metric.push_back(std::move(m));
}

}  // namespace

/// Builds the metric families from the pools' own numbers each time /metrics is scraped.
class Metrics::Collector final : public prometheus::Collectable {
 public:
  Collector(PoolSource pools, std::uint64_t generation)
      : pools_(std::move(pools)), generation_(generation) {}

  void reload_applied(std::uint64_t generation) {
    generation_.store(generation, std::memory_order_relaxed);
    reloads_ok_.fetch_add(1, std::memory_order_relaxed);
  }
  void reload_rejected() { reloads_rejected_.fetch_add(1, std::memory_order_relaxed); }

  [[nodiscard]] std::vector<MetricFamily> Collect() const override {
    std::vector<MetricFamily> out;
    try {
      out = collect_pools();
    } catch (const std::exception& e) {
      // An exception must not reach the HTTP server's C code; the daemon-wide metrics still go.
      spdlog::error("metrics: cannot read the pools: {}", e.what());
    }
    MetricFamily reloads{"barista_reloads_total",
                         "Config reloads, by result: ok (applied) or rejected (the old config "
                         "kept running).",
                         MetricType::Counter,
                         {}};
    add_counter(reloads, {{"result", "ok"}}, load(reloads_ok_));
    add_counter(reloads, {{"result", "rejected"}}, load(reloads_rejected_));
    out.push_back(std::move(reloads));
    MetricFamily generation{"barista_config_generation",
                            "Generation of the config running now: 1 at start, +1 per applied "
                            "reload.",
                            MetricType::Gauge,
                            {}};
    add_gauge(generation, {}, static_cast<double>(load(generation_)));
    out.push_back(std::move(generation));
    return out;
  }

 private:
  [[nodiscard]] std::vector<MetricFamily> collect_pools() const {
    auto pools = pools_();
    std::sort(pools.begin(), pools.end(),
              [](const PoolView& a, const PoolView& b) { return a.name < b.name; });
    MetricFamily jobs{
        "barista_jobs_total", "Jobs finished, by final status.", MetricType::Counter, {}};
    MetricFamily queued{
        "barista_queue_depth", "Jobs waiting in the pool's queue.", MetricType::Gauge, {}};
    MetricFamily workers{
        "barista_workers", "Workers the pool runs (its `workers` setting).", MetricType::Gauge, {}};
    MetricFamily busy{"barista_workers_busy", "Workers running a job now.", MetricType::Gauge, {}};
    MetricFamily abandoned{"barista_workers_abandoned_total",
                           "Workers abandoned (and replaced) because their job ignored its "
                           "deadline.",
                           MetricType::Counter,
                           {}};
    MetricFamily storage_failing{"barista_storage_failing",
                                 "1 while the pool's storage fails (no job starts and no batch "
                                 "is claimed until it works again), else 0.",
                                 MetricType::Gauge,
                                 {}};
    MetricFamily storage_errors{"barista_storage_errors_total",
                                "Storage calls of the pool that failed (each is tried again).",
                                MetricType::Counter,
                                {}};
    MetricFamily throttled{"barista_jobs_throttled_total",
                           "Attempts throttled (Outcome::throttle, HTTP 429), since the start.",
                           MetricType::Counter,
                           {}};
    MetricFamily keys_blocked{"barista_keys_blocked",
                              "Keys throttled, paused or at their per_key limit now.",
                              MetricType::Gauge,
                              {}};
    MetricFamily oldest{"barista_oldest_queued_seconds",
                        "How long the job waiting longest to start has waited, about.",
                        MetricType::Gauge,
                        {}};
    MetricFamily restarts{"barista_worker_restarts_total",
                          "Worker processes started again after one ended (isolation: process, "
                          "plugin: exec).",
                          MetricType::Counter,
                          {}};
    MetricFamily workers_failing{"barista_workers_failing",
                                 "1 while the pool's worker processes are no longer started "
                                 "(they died at start for a minute), else 0.",
                                 MetricType::Gauge,
                                 {}};
    MetricFamily durations{
        "barista_job_duration_seconds",
        "Seconds from a job's first attempt to its result (retries and backoff included), "
        "for jobs that ran.",
        MetricType::Histogram,
        {}};
    MetricFamily batches{
        "barista_batches_total", "Batches ended, by state.", MetricType::Counter, {}};
    for (const auto& p : pools) {
      const Labels pool{{"pool", p.name}};
      add_gauge(queued, pool, static_cast<double>(p.status.queued));
      add_gauge(workers, pool, p.status.workers);
      add_gauge(busy, pool, p.status.busy);
      add_counter(abandoned, pool, p.status.abandoned);
      add_gauge(storage_failing, pool, p.status.storage_error.empty() ? 0 : 1);
      add_counter(storage_errors, pool, p.status.storage_errors);
      add_counter(throttled, pool, p.status.throttles);
      add_gauge(keys_blocked, pool, static_cast<double>(p.status.keys_blocked));
      add_gauge(oldest, pool, p.status.oldest_queued_seconds);
      add_counter(restarts, pool, p.status.worker_restarts);
      add_gauge(workers_failing, pool, p.status.workers_failing.empty() ? 0 : 1);
      if (p.counters == nullptr) {
        continue;
      }
      const auto& c = *p.counters;
      for (std::size_t i = 0; i < c.jobs.size(); ++i) {
        const auto status = batch::to_string(static_cast<batch::JobStatus>(i));
        add_counter(jobs, {{"pool", p.name}, {"status", std::string(status)}}, load(c.jobs[i]));
      }
      add_durations(durations, pool, c);
      add_counter(batches, {{"pool", p.name}, {"state", "done"}}, load(c.batches_done));
      add_counter(batches, {{"pool", p.name}, {"state", "cancelled"}}, load(c.batches_cancelled));
    }
    std::vector<MetricFamily> out;
    for (auto* f :
         {&jobs, &queued, &workers, &busy, &abandoned, &storage_failing, &storage_errors,
          &throttled, &keys_blocked, &oldest, &restarts, &workers_failing, &durations, &batches}) {
      // Without pools there are no samples, and a family without samples says nothing.
      if (!f->metric.empty()) {
        out.push_back(std::move(*f));
      }
    }
    return out;
  }

  PoolSource pools_;
  std::atomic<std::uint64_t> generation_;
  std::atomic<std::uint64_t> reloads_ok_{0};
  std::atomic<std::uint64_t> reloads_rejected_{0};
};

namespace {

// ---- listening side -----------------------------------------------------------------------

[[noreturn]] void refuse(const std::string& address, const std::string& why) {
  throw std::runtime_error(fmt::format("metrics: cannot listen on {}: {}", address, why));
}

struct HostPort {
  std::string host;
  std::string port;
};

HostPort split(const std::string& address) {
  const auto colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    refuse(address, "expected HOST:PORT such as 127.0.0.1:9464");
  }
  HostPort out{address.substr(0, colon), address.substr(colon + 1)};
  if (out.host.front() == '[') {
    if (out.host.size() < 3 || out.host.back() != ']') {
      refuse(address, "an IPv6 address is written [ADDRESS]:PORT, as [::1]:9464");
    }
    out.host = out.host.substr(1, out.host.size() - 2);
  } else if (out.host.find(':') != std::string::npos) {
    refuse(address, "an IPv6 address is written [ADDRESS]:PORT, as [::1]:9464");
  }
  const bool digits =
      !out.port.empty() && out.port.size() <= 5 &&
      std::all_of(out.port.begin(), out.port.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
  if (!digits || std::stoul(out.port) > 65535) {
    refuse(address, fmt::format("'{}' is not a port (0-65535)", out.port));
  }
  return out;
}

/// A local address that was free to bind a moment ago.
struct Bindable {
  sockaddr_storage addr{};
  socklen_t len = 0;
  std::string host;  // numeric; IPv6 in brackets
};

bool try_bind(const addrinfo& ai, std::string& why) {
  const int fd = ::socket(ai.ai_family, ai.ai_socktype | SOCK_CLOEXEC, ai.ai_protocol);
  if (fd < 0) {
    why = common::error_text(errno);
    return false;
  }
  // The options civetweb binds with, so that the probe agrees with it.
  const int on = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  if (ai.ai_family == AF_INET6) {
    ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
  }
  const bool ok = ::bind(fd, ai.ai_addr, ai.ai_addrlen) == 0;
  why = ok ? "" : common::error_text(errno);
  ::close(fd);
  return ok;
}

// civetweb's own error for a failed bind is "null context when constructing CivetServer": bind
// once ourselves first to tell the user why (port in use, not a local address, ...). This also
// turns a host name into the numeric address civetweb wants.
Bindable probe(const std::string& address) {
  const auto hp = split(address);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (const int rc = ::getaddrinfo(hp.host.c_str(), hp.port.c_str(), &hints, &found); rc != 0) {
    refuse(address, ::gai_strerror(rc));
  }
  std::vector<const addrinfo*> candidates;
  for (const addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    if (ai->ai_family == AF_INET || ai->ai_family == AF_INET6) {
      candidates.push_back(ai);
    }
  }
  // `localhost` resolves to ::1 and 127.0.0.1: prefer the address every client tries.
  std::stable_partition(candidates.begin(), candidates.end(),
                        [](const addrinfo* ai) { return ai->ai_family == AF_INET; });
  std::string why = "no IPv4 or IPv6 address";
  std::optional<Bindable> out;
  for (const auto* ai : candidates) {
    if (try_bind(*ai, why)) {
      out.emplace();
      std::memcpy(&out->addr, ai->ai_addr, ai->ai_addrlen);
      out->len = ai->ai_addrlen;
      char host[NI_MAXHOST] = {};
      ::getnameinfo(ai->ai_addr, ai->ai_addrlen, host, sizeof host, nullptr, 0, NI_NUMERICHOST);
      out->host = ai->ai_family == AF_INET6 ? fmt::format("[{}]", host) : host;
      break;
    }
  }
  ::freeaddrinfo(found);
  if (!out) {
    refuse(address, why);
  }
  return *out;
}

// Where to knock to reach the listener: its address and port, loopback for a wildcard.
Bindable knock_address(Bindable where, std::uint16_t port) {
  if (where.addr.ss_family == AF_INET6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&where.addr);
    in6->sin6_port = htons(port);
    if (IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr)) {
      in6->sin6_addr = in6addr_loopback;
    }
  } else {
    auto* in4 = reinterpret_cast<sockaddr_in*>(&where.addr);
    in4->sin_port = htons(port);
    if (in4->sin_addr.s_addr == htonl(INADDR_ANY)) {
      in4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    }
  }
  return where;
}

void knock(const Bindable& at) {
  const int fd = ::socket(at.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return;
  }
  timeval tv{};
  tv.tv_usec = 200'000;
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);  // bounds connect()
  // Whether it connects or not, the server's poll() wakes: nothing to look at.
  static_cast<void>(::connect(fd, reinterpret_cast<const sockaddr*>(&at.addr), at.len));
  ::close(fd);
}

}  // namespace

/// One running HTTP server (prometheus::Exposer, i.e. civetweb) and where it listens.
class Metrics::Server {
 public:
  Server(const std::string& bind_address, const std::shared_ptr<Collector>& collector)
      : requested_(bind_address) {
    auto where = probe(bind_address);
    try {
      exposer_ = std::make_unique<prometheus::Exposer>(
          fmt::format("{}:{}", where.host, split(bind_address).port), 2);
    } catch (const std::exception& e) {
      refuse(bind_address, e.what());
    }
    exposer_->RegisterCollectable(collector);
    const auto ports = exposer_->GetListeningPorts();
    port_ = ports.empty() ? 0 : static_cast<std::uint16_t>(ports.front());
    address_ = fmt::format("{}:{}", where.host, port_);
    knock_ = knock_address(std::move(where), port_);
  }
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // civetweb's listener polls in 2 s steps and only notices a stop between two: knocking on
  // its port wakes it, so a stop (or a move to another address) takes milliseconds, not 2 s.
  ~Server() {
    std::atomic<bool> stopped{false};
    std::thread knocker([&] {
      while (!stopped.load()) {
        knock(knock_);
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    });
    exposer_.reset();  // waits for scrapes in progress
    stopped = true;
    knocker.join();
  }

  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
  [[nodiscard]] const std::string& address() const noexcept { return address_; }
  [[nodiscard]] const std::string& requested() const noexcept { return requested_; }

 private:
  std::string requested_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::uint16_t port_ = 0;
  std::string address_;
  Bindable knock_;
};

Metrics::Metrics(const std::string& bind_address, PoolSource pools, std::uint64_t generation)
    : collector_(std::make_shared<Collector>(std::move(pools), generation)) {
  listen(bind_address);
}

Metrics::~Metrics() = default;

void Metrics::listen(const std::string& bind_address) {
  {
    std::lock_guard lock(mutex_);
    // A reload that leaves `metrics:` as it was: binding it again would find it taken.
    if (server_ && server_->requested() == bind_address) {
      return;
    }
  }
  auto next = std::make_unique<Server>(bind_address, collector_);
  spdlog::info("metrics: serving http://{}/metrics", next->address());
  std::unique_ptr<Server> old;
  {
    std::lock_guard lock(mutex_);
    old = std::exchange(server_, std::move(next));
  }
  // `old` stops here, outside the lock: port() need not wait for it.
}

Metrics::PoolView Metrics::view(std::shared_ptr<pool::Pool> pool) {
  PoolView v;
  v.name = pool->name();
  v.status = pool->status();
  v.counters = &pool->counters();
  v.keepalive = std::move(pool);
  return v;
}

void Metrics::reload_applied(std::uint64_t generation) { collector_->reload_applied(generation); }

void Metrics::reload_rejected() { collector_->reload_rejected(); }

std::uint16_t Metrics::port() const {
  std::lock_guard lock(mutex_);
  return server_->port();
}

std::string Metrics::address() const {
  std::lock_guard lock(mutex_);
  return server_->address();
}

}  // namespace barista::runtime
