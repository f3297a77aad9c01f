#pragma once

#include "daemon/plugin/worker_health.hpp"

#include <barista/sdk.hpp>

#include <boost/dll/shared_library.hpp>

#include <filesystem>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>

namespace barista::plugin {

/// A plugin that cannot be used, with the reason (the message names the plugin and its file).
class PluginError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class PluginLibrary;

/// A processor together with the library that made it: the library stays loaded while any
/// processor it made is alive (members are destroyed in reverse order: processor first).
class ProcessorHandle {
 public:
  ProcessorHandle() = default;
  ProcessorHandle(std::shared_ptr<const PluginLibrary> library,
                  std::unique_ptr<Processor> processor)
      : library_(std::move(library)), processor_(std::move(processor)) {}
  ProcessorHandle(ProcessorHandle&&) noexcept = default;
  ProcessorHandle& operator=(ProcessorHandle&& other) noexcept {
    processor_.reset();  // before the library it came from can go
    library_ = std::move(other.library_);
    processor_ = std::move(other.processor_);
    return *this;
  }
  ~ProcessorHandle() { processor_.reset(); }

  Processor& operator*() const noexcept { return *processor_; }
  Processor* operator->() const noexcept { return processor_.get(); }
  explicit operator bool() const noexcept { return processor_ != nullptr; }
  [[nodiscard]] const PluginLibrary& library() const noexcept { return *library_; }

 private:
  std::shared_ptr<const PluginLibrary> library_;
  std::unique_ptr<Processor> processor_;
};

/// One loaded plugin file. Open it with `open()`, which checks the file, its manifest and ABI
/// before loading it; then `create()` processors from it.
class PluginLibrary : public std::enable_shared_from_this<PluginLibrary> {
 public:
  /// Loads the plugin at `file`. When `cache_dir` is not empty the library is loaded from a
  /// content-addressed copy there, so that a file replaced at the same path is loaded afresh
  /// (dlopen caches by path). Throws PluginError with the reason.
  static std::shared_ptr<const PluginLibrary> open(const std::filesystem::path& file,
                                                   const std::filesystem::path& cache_dir = {});

  /// A plugin compiled into the program rather than loaded from a file: `factory` is what
  /// BARISTA_PLUGIN would export. Its path and digest are empty. For tests that drive the engine
  /// without a plugin file.
  static std::shared_ptr<const PluginLibrary> built_in(std::string name, std::string version,
                                                       FactoryFunction* factory);

  /// Checks the plugin at `file` as open() does (the file, its manifest, its ABI) and computes
  /// its digest, without loading it: for a plugin whose processors run in worker processes.
  /// Its create() refuses; see hosted(). Throws PluginError.
  static std::shared_ptr<const PluginLibrary> inspect(const std::filesystem::path& file);

  /// Makes processors with `make` (processors that run their jobs in worker processes), under
  /// the name, version, path and digest of `like` (an inspect()ed plugin, or one built in).
  /// `health` is shared by them all (status and metrics read it).
  using MakeProcessor = std::function<std::unique_ptr<Processor>(const PluginConfig&)>;
  static std::shared_ptr<const PluginLibrary> hosted(const PluginLibrary& like, MakeProcessor make,
                                                     std::shared_ptr<WorkerHealth> health);

  /// Calls the plugin's factory. Throws barista::ConfigError as the plugin threw it (it carries
  /// the key's location), PluginError for anything else.
  [[nodiscard]] ProcessorHandle create(const PluginConfig& config) const;

  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  [[nodiscard]] const std::string& version() const noexcept { return version_; }
  /// The file it was opened from (not the private copy).
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
  /// SHA-256 of the file's contents, lowercase hex.
  [[nodiscard]] const std::string& digest() const noexcept { return digest_; }
  /// The worker processes' health when its processors run in them (hosted()), else null.
  [[nodiscard]] const std::shared_ptr<WorkerHealth>& health() const noexcept { return health_; }

  PluginLibrary(const PluginLibrary&) = delete;
  PluginLibrary& operator=(const PluginLibrary&) = delete;
  ~PluginLibrary() = default;

 private:
  PluginLibrary() = default;

  std::filesystem::path path_;
  std::string name_;
  std::string version_;
  std::string digest_;
  boost::dll::shared_library library_;
  FactoryFunction* factory_ = nullptr;
  MakeProcessor make_;  // hosted(): used instead of factory_
  std::shared_ptr<WorkerHealth> health_;
};

}  // namespace barista::plugin
