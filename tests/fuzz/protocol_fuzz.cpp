// libFuzzer harness: any bytes as a control request line must parse or be refused with a reason,
// and any bytes as a submitted body must decode, wait for more, or be refused with a reason.
#include "daemon/control/protocol.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  std::string error;
  auto request = barista::control::parse_request(bytes, error);
  if (!request && error.empty()) {
    __builtin_trap();  // a refusal always says why
  }
  (void)barista::control::error_reply(3, error);

  // The same bytes as a body, in two pieces split where the first byte says.
  using barista::control::ChunkDecoder;
  ChunkDecoder decoder;
  std::size_t received = 0;
  const auto sink = [&](std::string_view piece) {
    received += piece.size();
    return true;
  };
  const std::size_t split = size == 0 ? 0 : data[0] % (size + 1);
  decoder.feed(bytes.substr(0, split), sink);
  if (decoder.state() == ChunkDecoder::State::kMore) {
    decoder.feed(bytes.substr(split), sink);
  }
  if (received > size ||
      (decoder.state() == ChunkDecoder::State::kError && decoder.error().empty())) {
    __builtin_trap();
  }
  return 0;
}
