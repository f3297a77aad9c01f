// http_fetch: fetches the payload's URL (http or https) and outputs {"status":S,"bytes":N}.
//
// config:
//   save_dir: /abs/folder   bodies of successful fetches saved there, named sha256(URL) in hex
//   max_bytes: SIZE         a longer body fails the job (fatal); default: no limit
//   user_agent: TEXT        default barista/1.0
//
// 429, and 503 with a Retry-After header, are throttles (docs/plugins.md#http_fetch): the job's
// key waits for Retry-After (seconds or an HTTP date), or without one for the pool's backoff.
// Other 5xx and network errors are retryable failures; other 4xx are fatal. Redirects are
// followed (at most 10, http and https only).

#include <barista/sdk.hpp>

#include "body_sink.hpp"

#include <curl/curl.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

namespace {

using barista::ConfigError;
using barista::Outcome;
using Clock = std::chrono::steady_clock;

// How often the transfer loop looks at ctx.cancelled() when the connection is quiet.
constexpr int kPollSliceMs = 50;
constexpr long kMaxRedirects = 10;
constexpr auto kDeadlineSlack = std::chrono::milliseconds(20);

std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

// curl_global_init is not thread-safe: once per process image of this plugin.
void init_curl_once() {
  static std::once_flag once;
  static CURLcode rc = CURLE_OK;
  std::call_once(once, [] { rc = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (rc != CURLE_OK) {
    throw std::runtime_error(std::string("curl_global_init failed: ") + curl_easy_strerror(rc));
  }
}

bool has_http_scheme(std::string_view url) {
  auto starts_with = [&](std::string_view prefix) {
    return url.size() >= prefix.size() &&
           std::equal(prefix.begin(), prefix.end(), url.begin(), [](char a, char b) {
             return a == std::tolower(static_cast<unsigned char>(b));
           });
  };
  return starts_with("http://") || starts_with("https://");
}

class SaveDir {
 public:
  explicit SaveDir(int fd) : fd_(fd) {}
  SaveDir(const SaveDir&) = delete;
  SaveDir& operator=(const SaveDir&) = delete;
  ~SaveDir() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  [[nodiscard]] int get() const noexcept { return fd_; }

 private:
  int fd_;
};

int open_save_dir(const barista::PluginConfig& cfg) {
  const auto* v = cfg.find("save_dir");
  if (v == nullptr) {
    return -1;
  }
  const auto dir = cfg.get_string("save_dir", "");
  if (dir.empty() || dir.front() != '/') {
    throw ConfigError("save_dir", "must be an absolute path, got '" + dir + "'", v->line,
                      v->column);
  }
  const int fd = ::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    throw ConfigError("save_dir", "cannot open folder '" + dir + "': " + errno_text(errno), v->line,
                      v->column);
  }
  return fd;
}

class HttpFetch final : public barista::Processor {
 public:
  explicit HttpFetch(const barista::PluginConfig& cfg)
      : save_dir_(open_save_dir(cfg)),
        sink_(save_dir_.get()),
        user_agent_(cfg.get_string("user_agent", "barista/1.0")) {
    if (cfg.has("max_bytes")) {
      max_bytes_ = cfg.get_size("max_bytes", 0);
    }
    easy_.reset(curl_easy_init());
    multi_.reset(curl_multi_init());
    if (!easy_ || !multi_) {
      throw std::runtime_error("cannot create a curl handle");
    }
    configure();
  }

  Outcome process(barista::Context& ctx, const barista::Job& job) override {
    if (job.payload.empty()) {
      return Outcome::fatal("empty URL");
    }
    if (!has_http_scheme(job.payload) || job.payload.find('\0') != std::string_view::npos) {
      return Outcome::fatal("not an http or https URL: " + std::string(job.payload));
    }
    if (ctx.cancelled()) {
      return Outcome::fail("cancelled");
    }
    if (ctx.expired()) {
      return Outcome::fail("deadline exceeded");
    }
    if (int err = sink_.begin(job.payload); err != 0) {
      return Outcome::fail("cannot create a file in save_dir: " + errno_text(err));
    }
    const std::string url(job.payload);
    curl_easy_setopt(easy_.get(), CURLOPT_URL, url.c_str());
    curl_easy_setopt(easy_.get(), CURLOPT_TIMEOUT_MS, timeout_ms(ctx));
    error_[0] = '\0';
    ctx_ = &ctx;
    too_large_ = false;
    write_error_ = 0;
    const auto end = transfer(ctx);
    ctx_ = nullptr;
    auto outcome = classify(ctx, end);
    if (!outcome) {
      return Outcome::ok(R"({"status":)" + std::to_string(status_) + R"(,"bytes":)" +
                         std::to_string(sink_.bytes()) + "}");
    }
    sink_.abort();
    return std::move(*outcome);
  }

 private:
  struct EasyDeleter {
    void operator()(CURL* h) const { curl_easy_cleanup(h); }
  };
  struct MultiDeleter {
    void operator()(CURLM* h) const { curl_multi_cleanup(h); }
  };
  enum class Stop { kNone, kCancelled, kDeadline };
  struct TransferEnd {
    CURLcode code = CURLE_OK;
    Stop stop = Stop::kNone;
  };

  void configure() {
    CURL* h = easy_.get();
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, user_agent_.c_str());
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, kMaxRedirects);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(h, CURLOPT_PROTOCOLS, CURLPROTO_HTTP | CURLPROTO_HTTPS);
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS, CURLPROTO_HTTP | CURLPROTO_HTTPS);
#endif
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, error_);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &HttpFetch::on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, this);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, &HttpFetch::on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, this);
    if (max_bytes_) {
      // Refuses at once a response whose Content-Length is already too large.
      curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE,
                       static_cast<curl_off_t>(std::min<std::uint64_t>(*max_bytes_, INT64_MAX)));
    }
  }

  static long timeout_ms(const barista::Context& ctx) {
    if (ctx.deadline() == Clock::time_point::max()) {
      return 0;  // no limit
    }
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(ctx.deadline() - Clock::now());
    return static_cast<long>(std::clamp<std::int64_t>(left.count(), 1, INT32_MAX));
  }

  // Drives the transfer through our own multi handle rather than curl_easy_perform(), so that
  // cancellation is seen within kPollSliceMs even while the server is silent (curl's own loop
  // calls the progress callback only about once a second then).
  TransferEnd transfer(const barista::Context& ctx) {
    TransferEnd end;
    curl_multi_add_handle(multi_.get(), easy_.get());
    for (;;) {
      int running = 0;
      if (CURLMcode mc = curl_multi_perform(multi_.get(), &running); mc != CURLM_OK) {
        end.code = CURLE_RECV_ERROR;
        snprintf(error_, sizeof(error_), "%s", curl_multi_strerror(mc));
        break;
      }
      if (auto code = finished(); code) {
        end.code = *code;
        break;
      }
      if (ctx.cancelled()) {
        end.stop = Stop::kCancelled;
        break;
      }
      if (ctx.expired()) {
        end.stop = Stop::kDeadline;
        break;
      }
      curl_multi_poll(multi_.get(), nullptr, 0, kPollSliceMs, nullptr);
    }
    // Removing an unfinished transfer closes its connection; a finished one stays cached.
    curl_multi_remove_handle(multi_.get(), easy_.get());
    status_ = 0;
    curl_easy_getinfo(easy_.get(), CURLINFO_RESPONSE_CODE, &status_);
    return end;
  }

  std::optional<CURLcode> finished() {
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi_.get(), &left)) {
      if (msg->msg == CURLMSG_DONE && msg->easy_handle == easy_.get()) {
        return msg->data.result;
      }
    }
    return std::nullopt;
  }

  // nullopt: success.
  std::optional<Outcome> classify(const barista::Context& ctx, const TransferEnd& end) {
    if (end.stop == Stop::kCancelled || end.code == CURLE_ABORTED_BY_CALLBACK) {
      return Outcome::fail("cancelled");
    }
    // curl measures our CURLOPT_TIMEOUT_MS on its own clock and may report it a hair early.
    const bool at_deadline = ctx.deadline() != Clock::time_point::max() &&
                             Clock::now() + kDeadlineSlack >= ctx.deadline();
    if (end.stop == Stop::kDeadline || (end.code == CURLE_OPERATION_TIMEDOUT && at_deadline)) {
      return Outcome::fail("deadline exceeded");
    }
    if (status_ == 429 || status_ == 503) {
      // curl reads Retry-After as seconds or as an HTTP date (0 when absent or past).
      curl_off_t wait_s = 0;
      curl_easy_getinfo(easy_.get(), CURLINFO_RETRY_AFTER, &wait_s);
      if (status_ == 429 || wait_s > 0) {
        const auto wait =
            std::chrono::milliseconds(std::min<curl_off_t>(wait_s, INT32_MAX / 1000) * 1000);
        return Outcome::throttle(
            wait, "HTTP " + std::to_string(status_) +
                      (wait_s > 0 ? " Retry-After " + std::to_string(wait_s) : std::string()));
      }
    }
    if (status_ == 429 || status_ >= 500) {
      return Outcome::fail("HTTP " + std::to_string(status_));
    }
    if (status_ >= 400) {
      return Outcome::fatal("HTTP " + std::to_string(status_));
    }
    if (too_large_ || end.code == CURLE_FILESIZE_EXCEEDED) {
      return Outcome::fatal("body exceeds max_bytes (" + std::to_string(*max_bytes_) + " bytes)");
    }
    if (write_error_ != 0) {
      return Outcome::fail("cannot write the body to save_dir: " + errno_text(write_error_));
    }
    if (end.code != CURLE_OK) {
      const std::string text = error_[0] != '\0' ? error_ : curl_easy_strerror(end.code);
      // The URL itself is wrong: retrying cannot help.
      const bool permanent = end.code == CURLE_URL_MALFORMAT ||
                             end.code == CURLE_UNSUPPORTED_PROTOCOL ||
                             end.code == CURLE_TOO_MANY_REDIRECTS;
      return permanent ? Outcome::fatal(text) : Outcome::fail(text);
    }
    if (int err = sink_.commit(); err != 0) {
      return Outcome::fail("cannot save the body in save_dir: " + errno_text(err));
    }
    return std::nullopt;
  }

  static std::size_t on_body(char* data, std::size_t size, std::size_t count, void* self_ptr) {
    auto* self = static_cast<HttpFetch*>(self_ptr);
    const std::size_t n = size * count;
    long status = 0;
    curl_easy_getinfo(self->easy_.get(), CURLINFO_RESPONSE_CODE, &status);
    if (status >= 400) {
      return n;  // an error's body is neither saved nor counted
    }
    if (self->max_bytes_ && self->sink_.bytes() + n > *self->max_bytes_) {
      self->too_large_ = true;
      return 0;  // stops the transfer
    }
    if (int err = self->sink_.write(data, n); err != 0) {
      self->write_error_ = err;
      return 0;
    }
    return n;
  }

  static int on_progress(void* self_ptr, curl_off_t /*dltotal*/, curl_off_t /*dlnow*/,
                         curl_off_t /*ultotal*/, curl_off_t /*ulnow*/) {
    const auto* self = static_cast<HttpFetch*>(self_ptr);
    return self->ctx_ != nullptr && self->ctx_->cancelled() ? 1 : 0;
  }

  SaveDir save_dir_;
  barista_http::BodySink sink_;
  std::string user_agent_;
  std::optional<std::uint64_t> max_bytes_;
  std::unique_ptr<CURL, EasyDeleter> easy_;
  std::unique_ptr<CURLM, MultiDeleter> multi_;
  char error_[CURL_ERROR_SIZE] = {};
  const barista::Context* ctx_ = nullptr;  // of the job in progress
  bool too_large_ = false;
  int write_error_ = 0;
  long status_ = 0;
};

}  // namespace

BARISTA_PLUGIN("http_fetch", "1.0.0", [](const barista::PluginConfig& cfg) {
  cfg.expect_only({"save_dir", "max_bytes", "user_agent"});
  init_curl_once();
  return std::make_unique<HttpFetch>(cfg);
})
