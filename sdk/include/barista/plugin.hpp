#pragma once

/// @file plugin.hpp
/// BARISTA_PLUGIN: exports a plugin's manifest and factory.

#include <barista/abi.hpp>
#include <barista/plugin_config.hpp>
#include <barista/processor.hpp>

#include <memory>

/// Marks a symbol as exported from the plugin (plugins are built with hidden visibility).
#define BARISTA_EXPORT __attribute__((visibility("default")))

/// The names of the two symbols every plugin exports. The daemon looks them up by these names.
#define BARISTA_MANIFEST_SYMBOL barista_plugin_manifest
#define BARISTA_FACTORY_SYMBOL barista_plugin_create

namespace barista {
/// The signature of the exported factory: fills `out` with a new processor, or throws.
using FactoryFunction = void(const PluginConfig& config, std::unique_ptr<Processor>& out);
/// The exported names of the manifest and the factory, as the daemon looks them up.
inline constexpr const char* kManifestSymbol = "barista_plugin_manifest";
inline constexpr const char* kFactorySymbol = "barista_plugin_create";
}  // namespace barista

/// Declares the plugin. Use it once, at namespace scope, in one source file of the plugin.
///
/// `name` (at most 63 bytes) and `version` (at most 31 bytes) are string literals; the factory
/// (everything after them, so that it may contain top-level commas) is any callable taking `const
/// barista::PluginConfig&` and returning something convertible to
/// `std::unique_ptr<barista::Processor>`. It is called once per worker. A factory that throws
/// refuses the pool, with the exception's text as the reason; throw `barista::ConfigError` for a
/// bad `config:` value so that its location is reported.
#define BARISTA_PLUGIN(name, version, ...)                                           \
  extern "C" BARISTA_EXPORT __attribute__((section(".barista_manifest"), used))      \
  const ::barista::PluginManifest BARISTA_MANIFEST_SYMBOL{                           \
      {'B', 'A', 'R', 'I', 'S', 'T', 'A', '\0'}, ::barista::kSdkAbi, name, version}; \
  extern "C" BARISTA_EXPORT void BARISTA_FACTORY_SYMBOL(                             \
      const ::barista::PluginConfig& barista_config,                                 \
      std::unique_ptr<::barista::Processor>& barista_out) {                          \
    barista_out = (__VA_ARGS__)(barista_config);                                     \
  }
