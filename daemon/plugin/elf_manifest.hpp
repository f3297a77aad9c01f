#pragma once

#include <barista/abi.hpp>

#include <cstdint>
#include <span>
#include <string>
#include <variant>

namespace barista::plugin {

/// Why a file's manifest could not be read.
struct ManifestProblem {
  enum class Kind { kNotSharedLibrary, kNoManifest };
  Kind kind;
  std::string detail;
};

/// Reads `.barista_manifest` from the bytes of an ELF file without loading it, so that nothing
/// of the plugin runs before its ABI has been checked. Bounds-checked: any input is safe.
std::variant<PluginManifest, ManifestProblem> read_elf_manifest(std::span<const std::uint8_t> file);

}  // namespace barista::plugin
