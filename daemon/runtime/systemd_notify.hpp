#pragma once

#include <string>

namespace barista::runtime {

/// Sends a state string to systemd (sd_notify); does nothing when not run by systemd.
void notify_systemd(const std::string& state);

}  // namespace barista::runtime
