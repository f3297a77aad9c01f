#include "daemon/plugin/elf_manifest.hpp"

#include <elf.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <string_view>

namespace barista::plugin {
namespace {

constexpr std::string_view kSectionName = ".barista_manifest";

template <class T>
std::optional<T> read_at(std::span<const std::uint8_t> bytes, std::uint64_t offset) {
  if (offset > bytes.size() || bytes.size() - offset < sizeof(T)) {
    return std::nullopt;
  }
  T out;
  std::memcpy(&out, bytes.data() + offset, sizeof(T));
  return out;
}

ManifestProblem not_shared(std::string detail) {
  return {ManifestProblem::Kind::kNotSharedLibrary, std::move(detail)};
}

}  // namespace

std::variant<PluginManifest, ManifestProblem> read_elf_manifest(
    std::span<const std::uint8_t> file) {
  auto header = read_at<Elf64_Ehdr>(file, 0);
  if (!header || std::memcmp(header->e_ident, ELFMAG, SELFMAG) != 0) {
    return not_shared("not an ELF file");
  }
  if (header->e_ident[EI_CLASS] != ELFCLASS64 || header->e_ident[EI_DATA] != ELFDATA2LSB) {
    return not_shared("not a 64-bit little-endian ELF file");
  }
  if (header->e_type != ET_DYN) {
    return not_shared("an ELF file, but not a shared library");
  }
  if (header->e_shentsize != sizeof(Elf64_Shdr) || header->e_shnum == 0 ||
      header->e_shstrndx >= header->e_shnum) {
    return not_shared("an ELF file without a usable section table");
  }
  auto section = [&](std::uint64_t index) {
    return read_at<Elf64_Shdr>(file, header->e_shoff + index * sizeof(Elf64_Shdr));
  };
  auto names = section(header->e_shstrndx);
  if (!names || names->sh_offset > file.size() || file.size() - names->sh_offset < names->sh_size) {
    return not_shared("an ELF file with a damaged section table");
  }
  std::string_view strtab(reinterpret_cast<const char*>(file.data() + names->sh_offset),
                          names->sh_size);
  for (std::uint64_t i = 0; i < header->e_shnum; ++i) {
    auto sh = section(i);
    if (!sh) {
      return not_shared("an ELF file with a damaged section table");
    }
    if (sh->sh_name >= strtab.size()) {
      continue;
    }
    auto name = strtab.substr(sh->sh_name);
    name = name.substr(0, name.find('\0'));
    if (name != kSectionName) {
      continue;
    }
    // Check the leading magic and ABI first: they keep their place in every ABI, while the rest
    // of the manifest may change size in a future one.
    if (sh->sh_size < sizeof(kManifestMagic) + sizeof(std::uint32_t)) {
      return ManifestProblem{ManifestProblem::Kind::kNoManifest,
                             "the manifest section is too short"};
    }
    PluginManifest manifest{};
    const std::uint64_t size = std::min<std::uint64_t>(sh->sh_size, sizeof(PluginManifest));
    if (sh->sh_offset > file.size() || file.size() - sh->sh_offset < size) {
      return ManifestProblem{ManifestProblem::Kind::kNoManifest,
                             "the manifest lies outside the file"};
    }
    // A manifest from another ABI may be shorter or longer; the prefix read here is enough to
    // refuse it with both ABI numbers.
    std::memcpy(&manifest, file.data() + sh->sh_offset, size);
    if (std::memcmp(manifest.magic, kManifestMagic, sizeof(kManifestMagic)) != 0) {
      return ManifestProblem{ManifestProblem::Kind::kNoManifest,
                             "the manifest section has no Barista magic"};
    }
    manifest.name[sizeof(manifest.name) - 1] = '\0';
    manifest.version[sizeof(manifest.version) - 1] = '\0';
    return manifest;
  }
  return ManifestProblem{ManifestProblem::Kind::kNoManifest,
                         "no Barista manifest (was it built with BARISTA_PLUGIN?)"};
}

}  // namespace barista::plugin
