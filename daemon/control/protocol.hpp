#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace barista::control {

/// The control protocol, over a Unix stream socket. The client sends one request: a JSON object
/// on one line. The daemon answers with JSON lines; some requests carry raw bytes after that:
///
///   {"cmd":"submit","pool":"P","name":"jobs.txt"}\n  <batch body, framed as below>
///                                                     -> {"ok":true,"batch":"ID"}
///   {"cmd":"status"}                     -> {"ok":true,"pools":[...],"batches":[...],
///                                            "generation":N}  (pools also carry "abandoned",
///                                            batches "read_all")
///   {"cmd":"cancel","batch":"ID"}        -> {"ok":true}
///   {"cmd":"reload"}                     -> {"ok":true,"generation":N,"changes":[...]}
///                                           | {"ok":false,"code":1,"errors":[...]}
///   {"cmd":"results","batch":"ID","summary":false} -> {"ok":true}\n <results.jsonl bytes>
///   {"cmd":"wait","batch":"ID"}          -> {"progress":{...}}\n ... {"ok":true,"summary":{...}}
///
/// An error is {"ok":false,"code":C,"error":"..."}: C is the CLI's exit code (1: unknown batch,
/// rejected reload; 3: refused).
///
/// A submitted body travels in chunks, each "<length in lowercase hex>\n<that many bytes>", and
/// ends with "0\n". A body without that end marker (the client was killed, or could not read its
/// file) is discarded: a batch cut short is never stored as if it were whole.
inline constexpr std::size_t kMaxRequestBytes = 64 * 1024;
inline constexpr std::size_t kMaxChunkBytes = 16 * 1024 * 1024;

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

struct Request {
  std::string cmd;
  std::string pool;
  std::string name;
  std::string batch;
  bool summary = false;
};

/// Parses a request line; nullopt and `error` set when it is not a valid request.
std::optional<Request> parse_request(std::string_view line, std::string& error);

/// {"ok":false,"code":C,"error":"..."}\n
std::string error_reply(int code, std::string_view message);

}  // namespace barista::control
