// libFuzzer harness: any bytes as a config file must give a config or ConfigErrors, in bounded
// time and memory, never a crash.
#include "daemon/config/config_loader.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    (void)barista::config::parse_config(text, "/fuzz/barista.yaml");
  } catch (const barista::config::ConfigErrors&) {
  }
  return 0;
}
