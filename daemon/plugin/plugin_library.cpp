#include "daemon/plugin/plugin_library.hpp"

#include "daemon/common/error_text.hpp"
#include "daemon/plugin/elf_manifest.hpp"

#include <dlfcn.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include <fmt/format.h>

namespace barista::plugin {
namespace {

// Plugin files are small; anything larger is refused rather than read into memory.
constexpr std::size_t kMaxPluginBytes = 512UL << 20;

[[noreturn]] void refuse(const std::string& who, const std::filesystem::path& file,
                         const std::string& reason) {
  throw PluginError(fmt::format("plugin '{}' ({}): {}", who, file.string(), reason));
}

std::string sha256_hex(const std::vector<std::uint8_t>& bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr) != 1) {
    throw PluginError("SHA-256 of a plugin file failed");
  }
  std::string out;
  out.reserve(std::size_t{length} * 2);
  for (unsigned int i = 0; i < length; ++i) {
    out += fmt::format("{:02x}", digest[i]);
  }
  return out;
}

// A plugin runs with the daemon's privileges: refuse files that someone else could have changed.
void check_ownership(const std::string& who, const std::filesystem::path& file,
                     const struct stat& st, const char* what) {
  if (st.st_uid != 0 && st.st_uid != ::geteuid()) {
    refuse(who, file,
           fmt::format("{} is owned by uid {}, neither root nor the daemon's uid {}", what,
                       st.st_uid, ::geteuid()));
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 && (st.st_mode & S_ISVTX) == 0) {
    refuse(who, file,
           fmt::format("{} is writable by group or others (mode {:o})", what, st.st_mode & 07777));
  }
}

std::vector<std::uint8_t> read_plugin_file(const std::string& who,
                                           const std::filesystem::path& file) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, forever.
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    const int err = errno;
    refuse(who, file, err == ENOENT ? std::string("file not found") : common::error_text(err));
  }
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    refuse(who, file, common::error_text(errno));
  }
  if (!S_ISREG(st.st_mode)) {
    refuse(who, file, "not a regular file");
  }
  check_ownership(who, file, st, "the file");
  struct stat dir {};
  auto parent = file.parent_path().empty() ? std::filesystem::path(".") : file.parent_path();
  if (::stat(parent.c_str(), &dir) == 0) {
    check_ownership(who, file, dir, "its folder");
  }
  if (static_cast<std::uint64_t>(st.st_size) > kMaxPluginBytes) {
    refuse(who, file, fmt::format("file of {} bytes is too large for a plugin", st.st_size));
  }
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(st.st_size));
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::read(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      refuse(who, file,
             n == 0 ? std::string("file shrank while being read") : common::error_text(errno));
    }
    done += static_cast<std::size_t>(n);
  }
  return bytes;
}

// True when `file` holds exactly `bytes`.
bool has_contents(const std::filesystem::path& file, const std::vector<std::uint8_t>& bytes) {
  std::error_code ec;
  if (std::filesystem::file_size(file, ec) != bytes.size() || ec) {
    return false;
  }
  // Read whole and compared with memcmp: a stream compared byte by byte was the largest part of
  // a reload's CPU, and every reload loads every pool's plugin again.
  std::ifstream in(file, std::ios::binary);
  const auto copy = std::make_unique_for_overwrite<char[]>(bytes.size());
  const auto size = static_cast<std::streamsize>(bytes.size());
  return in.read(copy.get(), size) && in.gcount() == size &&
         (bytes.empty() || std::memcmp(copy.get(), bytes.data(), bytes.size()) == 0);
}

// Writes the verified bytes to CACHE/<digest>.so once and returns that path: the same contents
// always load from the same name, other contents from another name, whatever the source path.
std::filesystem::path private_copy(const std::string& who, const std::filesystem::path& file,
                                   const std::filesystem::path& cache_dir,
                                   const std::vector<std::uint8_t>& bytes,
                                   const std::string& digest) {
  std::error_code ec;
  std::filesystem::create_directories(cache_dir, ec);
  auto target = cache_dir / (digest + ".so");
  // The name promises the contents, but a crash before the copy reached the disk can leave the
  // name with an empty or partial file: check rather than trust it.
  if (has_contents(target, bytes)) {
    return target;
  }
  // One temporary name per call: threads loading the same new plugin must not share one.
  static std::atomic<unsigned> serial{0};
  auto tmp = cache_dir / fmt::format(".{}.{}.{}.tmp", digest, ::getpid(), serial++);
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out) {
      std::filesystem::remove(tmp, ec);
      refuse(who, file, fmt::format("cannot write a private copy to {}", cache_dir.string()));
    }
  }
  std::filesystem::permissions(
      tmp, std::filesystem::perms::owner_read | std::filesystem::perms::owner_exec, ec);
  // A concurrent load of the same contents may rename its own copy first: same bytes, no harm.
  std::filesystem::rename(tmp, target, ec);
  if (ec) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    refuse(who, file,
           fmt::format("cannot place a private copy in {}: {}", cache_dir.string(), ec.message()));
  }
  return target;
}

// dlopen() caches by path: while a library is loaded, opening its path again returns it, even if
// the file was replaced since. Loading in place (no cache folder) must therefore refuse a path
// whose loaded contents differ from the file's, or the old code would run under the new manifest.
// Remembers the digest each path was last loaded in place with.
class InPlaceLoads {
 public:
  // Throws when `path` is still loaded with contents other than `digest`.
  void check(const std::string& who, const std::filesystem::path& path, const std::string& digest) {
    // As Boost.DLL does: a bare file name means the current folder, not the library search path.
    const auto name = path.has_parent_path() ? path : std::filesystem::path(".") / path;
    void* handle = ::dlopen(name.c_str(), RTLD_LAZY | RTLD_NOLOAD);
    if (handle == nullptr) {
      return;
    }
    ::dlclose(handle);
    std::lock_guard lock(mutex_);
    auto it = digests_.find(path);
    if (it != digests_.end() && it->second != digest) {
      refuse(who, path,
             "the file changed on disk while its previous contents are still loaded from the same "
             "path; load it through a cache folder");
    }
  }
  void loaded(const std::filesystem::path& path, const std::string& digest) {
    std::lock_guard lock(mutex_);
    digests_[path] = digest;
  }

 private:
  std::mutex mutex_;
  std::map<std::filesystem::path, std::string> digests_;
};

InPlaceLoads& in_place_loads() {
  static InPlaceLoads loads;
  return loads;
}

}  // namespace

namespace {

// Reads and checks the file: its owner and mode, its manifest and ABI. Sets the name, version
// and digest; returns the bytes, and in `who` the name to speak of the plugin by.
std::vector<std::uint8_t> check_plugin_file(const std::filesystem::path& file, std::string& who,
                                            std::string& name, std::string& version,
                                            std::string& digest) {
  who = file.stem().string();
  auto bytes = read_plugin_file(who, file);

  auto manifest = read_elf_manifest(bytes);
  if (auto* problem = std::get_if<ManifestProblem>(&manifest)) {
    refuse(who, file,
           problem->kind == ManifestProblem::Kind::kNotSharedLibrary
               ? "not a shared library: " + problem->detail
               : "not a Barista plugin: " + problem->detail);
  }
  const auto& m = std::get<PluginManifest>(manifest);
  if (m.name[0] != '\0') {
    who = m.name;
  }
  if (m.abi != kSdkAbi) {
    refuse(who, file, fmt::format("built for SDK ABI {}, baristad speaks {}", m.abi, kSdkAbi));
  }
  name = m.name;
  version = m.version;
  digest = sha256_hex(bytes);
  return bytes;
}

}  // namespace

std::shared_ptr<const PluginLibrary> PluginLibrary::inspect(const std::filesystem::path& file) {
  std::shared_ptr<PluginLibrary> lib(new PluginLibrary());
  std::string who;
  check_plugin_file(file, who, lib->name_, lib->version_, lib->digest_);
  lib->path_ = file;
  return lib;
}

std::shared_ptr<const PluginLibrary> PluginLibrary::hosted(const PluginLibrary& like,
                                                           MakeProcessor make,
                                                           std::shared_ptr<WorkerHealth> health) {
  std::shared_ptr<PluginLibrary> lib(new PluginLibrary());
  lib->path_ = like.path_;
  lib->name_ = like.name_;
  lib->version_ = like.version_;
  lib->digest_ = like.digest_;
  lib->make_ = std::move(make);
  lib->health_ = std::move(health);
  return lib;
}

std::shared_ptr<const PluginLibrary> PluginLibrary::open(const std::filesystem::path& file,
                                                         const std::filesystem::path& cache_dir) {
  std::shared_ptr<PluginLibrary> lib(new PluginLibrary());
  std::string who;
  const auto bytes = check_plugin_file(file, who, lib->name_, lib->version_, lib->digest_);
  lib->path_ = file;

  if (cache_dir.empty()) {
    in_place_loads().check(who, file, lib->digest_);
  }
  const auto load_from =
      cache_dir.empty() ? file : private_copy(who, file, cache_dir, bytes, lib->digest_);
  boost::dll::fs::error_code ec;
  // Plugins are loaded by one thread at a time (start-up, then the reload thread), so that
  // dlerror() here speaks of this load. NOLINTNEXTLINE(concurrency-mt-unsafe)
  ::dlerror();
  lib->library_.load(load_from, ec,
                     boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
  if (ec || !lib->library_.is_loaded()) {
    const char* reason = ::dlerror();  // NOLINT(concurrency-mt-unsafe): see above
    refuse(who, file,
           fmt::format("cannot be loaded: {}", reason != nullptr ? reason : ec.message()));
  }
  if (cache_dir.empty()) {
    in_place_loads().loaded(file, lib->digest_);
  }
  if (!lib->library_.has(kFactorySymbol)) {
    refuse(who, file, fmt::format("exports no factory ({})", kFactorySymbol));
  }
  lib->factory_ = &lib->library_.get<FactoryFunction>(kFactorySymbol);
  return lib;
}

std::shared_ptr<const PluginLibrary> PluginLibrary::built_in(std::string name, std::string version,
                                                             FactoryFunction* factory) {
  std::shared_ptr<PluginLibrary> lib(new PluginLibrary());
  lib->name_ = std::move(name);
  lib->version_ = std::move(version);
  lib->factory_ = factory;
  return lib;
}

ProcessorHandle PluginLibrary::create(const PluginConfig& config) const {
  std::unique_ptr<Processor> processor;
  if (!make_ && factory_ == nullptr) {
    refuse(name_, path_, "not loaded in the daemon (its processors run in worker processes)");
  }
  try {
    if (make_) {
      processor = make_(config);
    } else {
      factory_(config, processor);
    }
  } catch (const ConfigError& e) {
    // Rethrow a copy made here: the plugin's exception object (its vtable, its destructor) is
    // code of the plugin, which may be unloaded before the caller's handler runs.
    throw ConfigError(e.key(), e.what(), e.line(), e.column());
  } catch (const std::exception& e) {
    refuse(name_, path_, fmt::format("factory failed: {}", e.what()));
  } catch (...) {
    refuse(name_, path_, "factory failed with an unknown exception");
  }
  if (!processor) {
    refuse(name_, path_, "factory returned no processor");
  }
  return {shared_from_this(), std::move(processor)};
}

}  // namespace barista::plugin
