// cli_slow_factory: a plugin whose factory takes `factory_delay` (default 1s) per processor, so
// that a reload adding a pool of it is slow, and the tests can check that the daemon keeps
// answering while a reload is under way. Its processor echoes the payload.

#include <barista/sdk.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

namespace {

class Echo final : public barista::Processor {
 public:
  barista::Outcome process(barista::Context& /*ctx*/, const barista::Job& job) override {
    return barista::Outcome::ok(std::string(job.payload));
  }
};

}  // namespace

BARISTA_PLUGIN("cli_slow_factory", "1.0.0", [](const barista::PluginConfig& cfg) {
  std::this_thread::sleep_for(cfg.get_duration("factory_delay", std::chrono::seconds(1)));
  return std::make_unique<Echo>();
})
