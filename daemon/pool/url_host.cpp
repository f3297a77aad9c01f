#include "daemon/pool/url_host.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <memory>

namespace barista::pool {
namespace {

struct UrlFree {
  void operator()(CURLU* u) const { curl_url_cleanup(u); }
};
struct PartFree {
  void operator()(char* p) const { curl_free(p); }
};
using Part = std::unique_ptr<char, PartFree>;

Part part(CURLU* url, CURLUPart which) {
  char* out = nullptr;
  if (curl_url_get(url, which, &out, 0) != CURLUE_OK) {
    return nullptr;
  }
  return Part(out);
}

}  // namespace

std::string url_host(std::string_view payload) {
  // A URL is one line without spaces; anything longer than a key may be is no key either.
  if (payload.empty() || payload.size() > 8192 ||
      payload.find_first_of(" \t\r\n") != std::string_view::npos) {
    return {};
  }
  // One parser per thread: workers ask for every job.
  thread_local const std::unique_ptr<CURLU, UrlFree> url(curl_url());
  if (!url) {
    return {};
  }
  const std::string text(payload);
  if (curl_url_set(url.get(), CURLUPART_URL, text.c_str(), CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK) {
    return {};
  }
  const auto host = part(url.get(), CURLUPART_HOST);
  if (!host || *host == '\0') {
    return {};
  }
  std::string key(host.get());
  std::transform(key.begin(), key.end(), key.begin(), [](unsigned char c) {
    return static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  });
  if (const auto port = part(url.get(), CURLUPART_PORT)) {  // only when the URL names one
    key += ':';
    key += port.get();
  }
  constexpr std::size_t kMaxKeyBytes = 256;  // as a key a JSONL line gives
  return key.size() <= kMaxKeyBytes ? key : std::string();
}

}  // namespace barista::pool
