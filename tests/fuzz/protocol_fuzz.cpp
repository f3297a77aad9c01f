// libFuzzer harness: any bytes as a control request line must parse or be refused with a reason.
#include "daemon/control/protocol.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  std::string error;
  auto request = barista::control::parse_request(line, error);
  if (!request && error.empty()) {
    __builtin_trap();  // a refusal always says why
  }
  (void)barista::control::error_reply(3, error);
  return 0;
}
