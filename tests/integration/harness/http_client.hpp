#pragma once

// A plain HTTP GET for the tests that read what a running baristad serves (its /metrics).

#include <string>

namespace barista::itest {

/// What a GET got: `error` is empty when the transfer worked (then `status` and `body` hold
/// the answer), else curl's reason.
struct HttpReply {
  std::string error;
  long status = 0;
  std::string body;
};

/// GETs `url`, with a 5 s timeout.
HttpReply http_get(const std::string& url);

}  // namespace barista::itest
