#pragma once

// The CLI's side of replies.hpp: a reply line, parsed, read back into its value. Built with
// header-only nlohmann-json, so it is compiled into the `barista` CLI (daemon/cli/sources.cmake)
// and the unit tests, never into the daemon, which parses with simdjson.

#include "daemon/control/replies.hpp"

#include <optional>

#include <nlohmann/json.hpp>

namespace barista::control {

/// A reply as parsed. Ordered: an object printed again keeps the daemon's key order.
using ReplyJson = nlohmann::ordered_json;

/// Each reads what to_line() wrote. A member missing or of the wrong type reads as its default
/// (an older daemon that does not send it), except the ones that make the reply: `pools` and
/// `batches` for status, `batch` for submit, `progress` for a wait line. Without those: nullopt.
std::optional<StatusReply> read_status(const ReplyJson& reply);
std::optional<SubmitReply> read_submit(const ReplyJson& reply);
ReloadReply read_reload(const ReplyJson& reply);
std::optional<BatchProgress> read_progress(const ReplyJson& reply);

}  // namespace barista::control
