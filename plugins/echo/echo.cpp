// echo: the output is the payload. The dispatch benchmark's plugin, so a job without `delay`
// costs one string copy and nothing else.
//
// config:
//   delay: 0ms      slept per job; cut short by cancellation or the deadline
//   fail_on: TEXT   a job whose payload contains TEXT fails (retryable)

#include <barista/sdk.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

namespace {

class Echo final : public barista::Processor {
 public:
  explicit Echo(const barista::PluginConfig& cfg)
      : delay_(cfg.get_duration("delay", std::chrono::milliseconds(0))),
        fail_on_(cfg.get_string("fail_on", "")) {
    // An empty needle is in every payload: almost certainly a mistake, so say so.
    if (const auto* v = cfg.find("fail_on"); v != nullptr && fail_on_.empty()) {
      throw barista::ConfigError("fail_on", "must not be empty", v->line, v->column);
    }
    if (!fail_on_.empty()) {
      fail_error_ = "payload contains '" + fail_on_ + "'";
    }
  }

  barista::Outcome process(barista::Context& ctx, const barista::Job& job) override {
    if (!fail_on_.empty() && job.payload.find(fail_on_) != std::string_view::npos) {
      return barista::Outcome::fail(fail_error_);
    }
    if (delay_.count() > 0 && !ctx.sleep_for(delay_)) {
      return barista::Outcome::fail(ctx.cancelled() ? "cancelled" : "deadline exceeded");
    }
    return barista::Outcome::ok(std::string(job.payload));
  }

 private:
  std::chrono::milliseconds delay_;
  std::string fail_on_;
  std::string fail_error_;
};

}  // namespace

BARISTA_PLUGIN("echo", "1.0.0", [](const barista::PluginConfig& cfg) {
  cfg.expect_only({"delay", "fail_on"});
  return std::make_unique<Echo>(cfg);
})
