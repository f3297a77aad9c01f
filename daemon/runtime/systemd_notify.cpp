#include "daemon/runtime/systemd_notify.hpp"

#include <systemd/sd-daemon.h>

namespace barista::runtime {

void notify_systemd(const std::string& state) { ::sd_notify(0, state.c_str()); }

}  // namespace barista::runtime
