#pragma once

#include <string>
#include <string_view>

namespace barista::pool {

/// A job's key under `key: url_host`: the payload read as a URL, its host lower-cased, with
/// ":PORT" when the URL names a port ("https://Example.com:8443/x" -> "example.com:8443").
/// Empty when the payload is no URL with a scheme and a host (the job then has no key).
/// Parsed by libcurl's URL API.
std::string url_host(std::string_view payload);

}  // namespace barista::pool
