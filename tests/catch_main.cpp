// Catch's main(), compiled once for both test executables.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
