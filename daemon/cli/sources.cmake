# The `barista` CLI: what it is built from, and why not from barista_core. Included by
# daemon/CMakeLists.txt.
#
# Start time. `submit --wait` is a benchmark target (p50 <= 5 ms) and every verb pays the start
# of a process; here each shared library costs about 1.2-1.5 ms of it. So the CLI needs no
# shared library (sanitizer builds: only libc and libm, see below). libstdc++ and libgcc are
# linked in statically, yaml-cpp from Debian's libyaml-cpp.a, fmt header-only, and it parses
# JSON with header-only nlohmann-json instead of the daemon's simdjson (which Debian ships only
# as libsimdjson.so). It therefore does not link barista_core, which carries all of those, but
# compiles the few daemon sources it uses a second time, with these settings. Never link
# barista_core into it as well: the two copies would clash.
add_executable(barista
  ${CMAKE_CURRENT_LIST_DIR}/main.cpp
  ${CMAKE_CURRENT_LIST_DIR}/batch_verbs.cpp
  ${CMAKE_CURRENT_LIST_DIR}/client.cpp
  ${CMAKE_CURRENT_LIST_DIR}/pause.cpp
  ${CMAKE_CURRENT_LIST_DIR}/progress.cpp
  ${CMAKE_CURRENT_LIST_DIR}/reload.cpp
  ${CMAKE_CURRENT_LIST_DIR}/socket_path.cpp
  ${CMAKE_CURRENT_LIST_DIR}/status.cpp
  ${CMAKE_CURRENT_LIST_DIR}/submit.cpp
  ${CMAKE_CURRENT_LIST_DIR}/verbs.cpp
  ${CMAKE_CURRENT_LIST_DIR}/wait.cpp
  # From the daemon: JSON string escaping (requests), the body framing of `submit`, the replies
  # shared with the daemon, and the config loader for `--config FILE` (its control_socket) with
  # the file reading it uses.
  ${PROJECT_SOURCE_DIR}/daemon/common/fs.cpp
  ${PROJECT_SOURCE_DIR}/daemon/common/json.cpp
  ${PROJECT_SOURCE_DIR}/daemon/control/framing.cpp
  ${PROJECT_SOURCE_DIR}/daemon/control/replies.cpp
  ${PROJECT_SOURCE_DIR}/daemon/control/replies_read.cpp
  ${PROJECT_SOURCE_DIR}/daemon/config/config_loader.cpp
  ${PROJECT_SOURCE_DIR}/daemon/config/pool_section.cpp
  ${PROJECT_SOURCE_DIR}/daemon/config/validator.cpp
  ${PROJECT_SOURCE_DIR}/daemon/config/yaml_tree.cpp)

# Debian's yaml-cpp package exports only the shared library as a CMake target.
find_library(BARISTA_YAML_CPP_STATIC NAMES libyaml-cpp.a REQUIRED)
get_target_property(_barista_yaml_cpp_include yaml-cpp INTERFACE_INCLUDE_DIRECTORIES)
add_library(barista_yaml_cpp_static STATIC IMPORTED)
set_target_properties(barista_yaml_cpp_static PROPERTIES
  IMPORTED_LOCATION "${BARISTA_YAML_CPP_STATIC}"
  INTERFACE_INCLUDE_DIRECTORIES "${_barista_yaml_cpp_include}")

# The CLI sees the headers of its own folder and of the three it compiles sources of, no more.
barista_layer_root(cli _barista_cli_root)
target_include_directories(barista PRIVATE "${_barista_cli_root}" "${CMAKE_BINARY_DIR}/layers/common"
                                           "${CMAKE_BINARY_DIR}/layers/control"
                                           "${CMAKE_BINARY_DIR}/layers/config")
target_link_libraries(barista PRIVATE
  barista_build_info barista_sdk barista_warnings CLI11::CLI11 fmt::fmt-header-only
  nlohmann_json::nlohmann_json barista_yaml_cpp_static)
# Fully static where the toolchain can (glibc's libc.a with rcrt1.o): a static-pie `barista` needs
# no dynamic loader at all, whose symbol lookups and relocations were a third of the CLI's start.
# A static non-PIE binary would not do: its first exception (CLI11 throws one for `--version`,
# and every error is one) sorts every unwind entry of the binary, which took 10 ms. The check
# runs what it builds: a sanitizer build links statically with only a warning and then crashes
# at its start, so there the CLI keeps libc and libm shared.
include(CheckCXXSourceRuns)
set(CMAKE_REQUIRED_LINK_OPTIONS -static-pie)
check_cxx_source_runs("int main() { return 0; }" BARISTA_CLI_STATIC_PIE)
unset(CMAKE_REQUIRED_LINK_OPTIONS)
if(BARISTA_CLI_STATIC_PIE)
  set_target_properties(barista PROPERTIES POSITION_INDEPENDENT_CODE ON)
  target_link_options(barista PRIVATE -static-pie)
else()
  target_link_options(barista PRIVATE -static-libstdc++ -static-libgcc)
endif()
