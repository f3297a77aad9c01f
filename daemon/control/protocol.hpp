#pragma once

#include "daemon/control/framing.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace barista::control {

/// The control protocol, over a Unix stream socket. The client sends one request: a JSON object
/// on one line. The daemon answers with JSON lines; some requests carry raw bytes after that:
///
///   {"cmd":"submit","pool":"P","name":"jobs.txt"}\n  <batch body, see framing.hpp>
///                                                     -> {"ok":true,"batch":"ID"}
///   {"cmd":"status"}                     -> {"ok":true,"pools":[...],"batches":[...],
///                                            "generation":N}  (pools also carry "abandoned",
///                                            batches "read_all")
///   {"cmd":"cancel","batch":"ID"}        -> {"ok":true}
///   {"cmd":"reload"}                     -> {"ok":true,"generation":N,"changes":[...]}
///                                           | {"ok":false,"code":1,"errors":[...]}
///   {"cmd":"results","batch":"ID","summary":false} -> {"ok":true}\n <results.jsonl bytes>
///   {"cmd":"wait","batch":"ID"}          -> {"progress":{...}}\n ... {"ok":true,"summary":{...}}
///   {"cmd":"pause","pool":"P"[,"key":"K"]} -> {"ok":true}   (and "resume" alike)
///   {"cmd":"status","pool":"P"}          -> as status, P's row with its blocked "keys"
///
/// An error is {"ok":false,"code":C,"error":"..."}: C is the CLI's exit code (exit_codes.hpp; 1:
/// unknown batch, rejected reload; 3: refused).
///
/// The replies with more than `ok` are values of replies.hpp, shared with the CLI. A submitted
/// batch body travels in chunks: framing.hpp.
inline constexpr std::size_t kMaxRequestBytes = 64UL * 1024;

struct Request {
  std::string cmd;
  std::string pool;
  std::string name;
  std::string batch;
  std::optional<std::string> key;  ///< pause, resume: a key of the pool rather than all of it
  std::string weight;              ///< submit: its weight, in decimal ("" for the default, 1)
  bool summary = false;
};

/// Parses a request line; nullopt and `error` set when it is not a valid request.
std::optional<Request> parse_request(std::string_view line, std::string& error);

/// {"ok":false,"code":C,"error":"..."}\n
std::string error_reply(int code, std::string_view message);

}  // namespace barista::control
