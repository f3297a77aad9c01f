#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace barista::control {

/// How a submitted batch body travels after its request line (see protocol.hpp): in chunks, each
/// "<length in lowercase hex>\n<that many bytes>", ended by "0\n". A body without that end marker
/// (the client was killed, or could not read its file) is discarded: a batch cut short is never
/// stored as if it were whole. Both ends use this file; the `barista` CLI compiles it in alone
/// (daemon/cli/sources.cmake), without the daemon's JSON parser.
inline constexpr std::size_t kMaxChunkBytes = 16UL * 1024 * 1024;

/// The header that precedes a chunk of `length` body bytes ("0\n" ends the body).
std::string chunk_header(std::size_t length);

/// Decodes a chunked body as it arrives, in pieces of any size.
class ChunkDecoder {
 public:
  enum class State { kMore, kDone, kError };
  using Sink = std::function<bool(std::string_view)>;

  /// Consumes `data`, handing each chunk's bytes to `sink`. kDone once the end marker has been
  /// read (bytes after it are an error); kError on a malformed header or when `sink` refuses.
  State feed(std::string_view data, const Sink& sink);
  [[nodiscard]] State state() const noexcept { return state_; }
  [[nodiscard]] const std::string& error() const noexcept { return error_; }

 private:
  State fail(std::string message);

  State state_ = State::kMore;
  std::string header_;
  std::size_t remaining_ = 0;  // body bytes left in the current chunk
  std::string error_;
};

}  // namespace barista::control
