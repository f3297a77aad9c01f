// The control protocol's framing: a submitted batch counts only when its end marker arrives.
#include "daemon/control/protocol.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <string_view>

namespace barista::control {
namespace {

using State = ChunkDecoder::State;

// Encodes `body` the way the CLI sends it, in chunks of at most `chunk` bytes.
std::string encode(std::string_view body, std::size_t chunk) {
  std::string out;
  while (!body.empty()) {
    const auto piece = body.substr(0, chunk);
    out += chunk_header(piece.size());
    out += piece;
    body.remove_prefix(piece.size());
  }
  return out + chunk_header(0);
}

// Feeds `wire` to a decoder `step` bytes at a time; what it handed on, and its final state.
std::pair<std::string, ChunkDecoder> decode(std::string_view wire, std::size_t step) {
  ChunkDecoder decoder;
  std::string body;
  const auto sink = [&](std::string_view data) {
    body.append(data);
    return true;
  };
  while (!wire.empty() && decoder.state() == State::kMore) {
    decoder.feed(wire.substr(0, step), sink);
    wire.remove_prefix(std::min(step, wire.size()));
  }
  return {body, decoder};
}

TEST_CASE("a chunked body arrives whole however the bytes are split", "[control]") {
  const std::string body = "one\ntwo\n{\"id\":3}\n" + std::string(1000, 'x') + "\n";
  for (std::size_t chunk : {1, 7, 100, 4096}) {
    const auto wire = encode(body, chunk);
    for (std::size_t step : {std::size_t{1}, std::size_t{3}, std::size_t{64}, wire.size()}) {
      INFO("chunk " << chunk << ", step " << step);
      auto [got, decoder] = decode(wire, step);
      CHECK(decoder.state() == State::kDone);
      CHECK(got == body);
    }
  }
  CHECK(chunk_header(255) == "ff\n");
  auto [empty, decoder] = decode(chunk_header(0), 1);
  CHECK(decoder.state() == State::kDone);
  CHECK(empty.empty());
}

TEST_CASE("a body cut short is not done", "[control]") {
  const auto wire = encode("a\nb\nc\n", 2);
  for (std::size_t cut = 0; cut < wire.size(); ++cut) {
    INFO("cut at " << cut);
    auto [got, decoder] = decode(wire.substr(0, cut), 1);
    CHECK(decoder.state() == State::kMore);
  }
}

TEST_CASE("a malformed body is an error that says why", "[control]") {
  const auto error_of = [](std::string_view wire) {
    auto [got, decoder] = decode(wire, wire.size());
    CHECK(decoder.state() == State::kError);
    return decoder.error();
  };
  CHECK(error_of("zz\nab") == "malformed batch body: bad chunk header 'zz'");
  CHECK(error_of("\nab") == "malformed batch body: bad chunk header ''");
  CHECK(error_of("-1\n") == "malformed batch body: bad chunk header '-1'");
  CHECK(error_of("2 \nab") == "malformed batch body: bad chunk header '2 '");
  CHECK(error_of(std::string(17, '1')) == "malformed batch body: chunk header too long");
  CHECK(error_of("1000001\n") == "malformed batch body: bad chunk header '1000001'");
  CHECK(error_of("1\na0\nextra") == "malformed batch body: bytes after its end marker");
}

TEST_CASE("a sink that refuses stops the body", "[control]") {
  ChunkDecoder decoder;
  int calls = 0;
  const auto state =
      decoder.feed(encode("abcdef", 2), [&](std::string_view) { return ++calls < 2; });
  CHECK(state == State::kError);
  CHECK(calls == 2);
  CHECK(decoder.error() == "the batch could not be stored");
}

}  // namespace
}  // namespace barista::control
