#include <barista/sdk.hpp>

#include <cctype>
#include <memory>
#include <string>

class Upper final : public barista::Processor {
 public:
  explicit Upper(const barista::PluginConfig& cfg) : suffix_(cfg.get_string("suffix", "")) {}
  barista::Outcome process(barista::Context& ctx, const barista::Job& job) override {
    if (ctx.cancelled()) return barista::Outcome::fail("cancelled");
    if (job.payload.empty()) return barista::Outcome::fatal("empty payload");   // not retried
    std::string out(job.payload);
    for (auto& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return barista::Outcome::ok(out + suffix_);
  }
 private:
  std::string suffix_;
};

BARISTA_PLUGIN("upper", "1.0.0",
               [](const barista::PluginConfig& cfg) { return std::make_unique<Upper>(cfg); })
