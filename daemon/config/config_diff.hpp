#pragma once

#include "daemon/config/config.hpp"

namespace barista::config {

/// Equal values, wherever they stand in the file (line and column are not compared).
bool same_values(const ConfigValue& a, const ConfigValue& b);

/// Every setting equal (locations are not compared).
bool same_pool(const PoolConfig& a, const PoolConfig& b);

}  // namespace barista::config
