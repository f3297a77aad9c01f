#include "daemon/control/framing.hpp"

#include <algorithm>
#include <charconv>

#include <fmt/format.h>

namespace barista::control {

std::string chunk_header(std::size_t length) { return fmt::format("{:x}\n", length); }

ChunkDecoder::State ChunkDecoder::fail(std::string message) {
  error_ = std::move(message);
  state_ = State::kError;
  return state_;
}

ChunkDecoder::State ChunkDecoder::feed(std::string_view data, const Sink& sink) {
  while (!data.empty() && state_ == State::kMore) {
    if (remaining_ > 0) {
      const auto take = std::min(remaining_, data.size());
      if (!sink(data.substr(0, take))) {
        return fail("the batch could not be stored");
      }
      remaining_ -= take;
      data.remove_prefix(take);
      continue;
    }
    const auto newline = data.find('\n');
    header_.append(data.substr(0, newline));
    if (header_.size() > 16) {
      return fail("malformed batch body: chunk header too long");
    }
    if (newline == std::string_view::npos) {
      return state_;  // the rest of the header comes with the next piece
    }
    data.remove_prefix(newline + 1);
    std::size_t length = 0;
    const auto* end = header_.data() + header_.size();
    const auto [ptr, ec] = std::from_chars(header_.data(), end, length, 16);
    if (header_.empty() || ec != std::errc() || ptr != end || length > kMaxChunkBytes) {
      return fail(fmt::format("malformed batch body: bad chunk header '{}'", header_));
    }
    header_.clear();
    if (length == 0) {
      state_ = State::kDone;
    }
    remaining_ = length;
  }
  if (!data.empty() && state_ == State::kDone) {
    return fail("malformed batch body: bytes after its end marker");
  }
  return state_;
}

}  // namespace barista::control
