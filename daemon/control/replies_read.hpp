#pragma once

// The CLI's side of replies.hpp: a reply line, parsed, read back into its value. Built with
// header-only nlohmann-json, so it is compiled into the `barista` CLI (daemon/cli/sources.cmake)
// and the unit tests, never into the daemon, which parses with simdjson.

#include "daemon/control/replies.hpp"

#include <cstdint>
#include <limits>
#include <optional>
#include <string_view>
#include <type_traits>

#include <nlohmann/json.hpp>

namespace barista::control {

/// A reply as parsed. Ordered: an object printed again keeps the daemon's key order.
using ReplyJson = nlohmann::ordered_json;

/// The member `key` of `obj` when `obj` is an object that has it, else nullptr.
inline const ReplyJson* member(const ReplyJson& obj, std::string_view key) {
  const auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

/// The value of `key` in the object `obj` when it is there with type T (bool, std::int64_t,
/// std::uint64_t or std::string_view, which points into `obj`), else `fallback`.
template <typename T>
T value_or(const ReplyJson& obj, std::string_view key, T fallback) {
  const ReplyJson* value = member(obj, key);
  if (value == nullptr) {
    return fallback;
  }
  if constexpr (std::is_same_v<T, bool>) {
    if (value->is_boolean()) {
      return value->get<bool>();
    }
  } else if constexpr (std::is_same_v<T, std::string_view>) {
    if (value->is_string()) {
      return value->get_ref<const std::string&>();
    }
  } else if constexpr (std::is_same_v<T, std::uint64_t>) {
    // nlohmann-json keeps every integer >= 0 as unsigned: negative and fractional numbers fail.
    if (value->is_number_unsigned()) {
      return value->get<std::uint64_t>();
    }
  } else {
    static_assert(std::is_same_v<T, std::int64_t>, "value_or: bool, int64, uint64 or string_view");
    if (value->is_number_unsigned()) {
      const auto u = value->get<std::uint64_t>();
      if (u <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        return static_cast<std::int64_t>(u);
      }
    } else if (value->is_number_integer()) {
      return value->get<std::int64_t>();
    }
  }
  return fallback;
}

/// Each reads what to_line() wrote. A member missing or of the wrong type reads as its default
/// (an older daemon that does not send it), except the ones that make the reply: `pools` and
/// `batches` for status, `batch` for submit, `progress` for a wait line. Without those: nullopt.
std::optional<StatusReply> read_status(const ReplyJson& reply);
std::optional<SubmitReply> read_submit(const ReplyJson& reply);
ReloadReply read_reload(const ReplyJson& reply);
std::optional<BatchProgress> read_progress(const ReplyJson& reply);

}  // namespace barista::control
