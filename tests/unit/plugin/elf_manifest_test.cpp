#include "daemon/plugin/elf_manifest.hpp"

#include "tests/unit/plugin/plugin_test_support.hpp"

#include <elf.h>

#include <catch2/catch.hpp>

#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

namespace barista::plugin {
namespace {

using Bytes = std::vector<std::uint8_t>;
using testing::fixture;

Bytes read_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  REQUIRE(in);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

Bytes bytes_of(const std::string& text) { return {text.begin(), text.end()}; }

template <class T>
T get(const Bytes& b, std::size_t offset) {
  REQUIRE(offset + sizeof(T) <= b.size());
  T out;
  std::memcpy(&out, b.data() + offset, sizeof(T));
  return out;
}

template <class T>
void put(Bytes& b, std::size_t offset, const T& value) {
  REQUIRE(offset + sizeof(T) <= b.size());
  std::memcpy(b.data() + offset, &value, sizeof(T));
}

// Offset of the section header named `name` in a well-formed ELF file.
std::size_t section_header_offset(const Bytes& b, std::string_view name) {
  const auto eh = get<Elf64_Ehdr>(b, 0);
  const auto names = get<Elf64_Shdr>(b, eh.e_shoff + eh.e_shstrndx * sizeof(Elf64_Shdr));
  for (std::size_t i = 0; i < eh.e_shnum; ++i) {
    const std::size_t at = eh.e_shoff + i * sizeof(Elf64_Shdr);
    const auto sh = get<Elf64_Shdr>(b, at);
    if (name == reinterpret_cast<const char*>(b.data() + names.sh_offset + sh.sh_name)) {
      return at;
    }
  }
  FAIL("no section " << name);
  return 0;
}

ManifestProblem problem_of(const std::variant<PluginManifest, ManifestProblem>& result) {
  REQUIRE(std::holds_alternative<ManifestProblem>(result));
  return std::get<ManifestProblem>(result);
}

PluginManifest manifest_of(const std::variant<PluginManifest, ManifestProblem>& result) {
  if (const auto* problem = std::get_if<ManifestProblem>(&result)) {
    FAIL("unexpected problem: " << problem->detail);
  }
  return std::get<PluginManifest>(result);
}

TEST_CASE("read_elf_manifest reads the manifest of a built plugin", "[plugin]") {
  const auto m = manifest_of(read_elf_manifest(read_file(fixture("fx_counter"))));
  CHECK(std::string(m.name) == "fx_counter");
  CHECK(std::string(m.version) == "1.0.0");
  CHECK(m.abi == kSdkAbi);

  const auto wrong = manifest_of(read_elf_manifest(read_file(fixture("fx_wrong_abi"))));
  CHECK(std::string(wrong.name) == "fx_wrong_abi");
  CHECK(wrong.abi == kSdkAbi + 1);
}

TEST_CASE("read_elf_manifest tells a library without a manifest from a non-library", "[plugin]") {
  const auto none = problem_of(read_elf_manifest(read_file(fixture("fx_no_manifest"))));
  CHECK(none.kind == ManifestProblem::Kind::kNoManifest);
  CHECK(none.detail == "no Barista manifest (was it built with BARISTA_PLUGIN?)");

  const auto text = problem_of(read_elf_manifest(read_file(fixture("fx_not_a_library"))));
  CHECK(text.kind == ManifestProblem::Kind::kNotSharedLibrary);
  CHECK(text.detail == "not an ELF file");
}

TEST_CASE("read_elf_manifest refuses empty, tiny and garbage input", "[plugin]") {
  std::string magic_then_zeros(
      "\x7f"
      "ELF");
  magic_then_zeros.append(200, '\0');
  for (const std::string& input : {std::string(), std::string("\x7f"),
                                   std::string("\x7f"
                                               "ELF"),
                                   std::string(63, '\0'), std::string(4096, '\xff'),
                                   std::string("#!/bin/sh\necho hello\n"), magic_then_zeros}) {
    CAPTURE(input.size());
    const auto p = problem_of(read_elf_manifest(bytes_of(input)));
    CHECK(p.kind == ManifestProblem::Kind::kNotSharedLibrary);
    CHECK_FALSE(p.detail.empty());
  }
}

TEST_CASE("read_elf_manifest refuses ELF files it cannot or must not read", "[plugin]") {
  const Bytes good = read_file(fixture("fx_counter"));

  SECTION("32-bit") {
    Bytes b = good;
    b[EI_CLASS] = ELFCLASS32;
    CHECK(problem_of(read_elf_manifest(b)).detail == "not a 64-bit little-endian ELF file");
  }
  SECTION("big-endian") {
    Bytes b = good;
    b[EI_DATA] = ELFDATA2MSB;
    CHECK(problem_of(read_elf_manifest(b)).detail == "not a 64-bit little-endian ELF file");
  }
  SECTION("an executable or object file rather than a shared library") {
    for (Elf64_Half type : {ET_EXEC, ET_REL, ET_CORE}) {
      Bytes b = good;
      put(b, offsetof(Elf64_Ehdr, e_type), type);
      CHECK(problem_of(read_elf_manifest(b)).detail == "an ELF file, but not a shared library");
    }
  }
  SECTION("no section table, or a section table index out of range") {
    Bytes b = good;
    put<Elf64_Half>(b, offsetof(Elf64_Ehdr, e_shnum), 0);
    CHECK(problem_of(read_elf_manifest(b)).detail == "an ELF file without a usable section table");
    b = good;
    put<Elf64_Half>(b, offsetof(Elf64_Ehdr, e_shstrndx),
                    get<Elf64_Half>(b, offsetof(Elf64_Ehdr, e_shnum)));
    CHECK(problem_of(read_elf_manifest(b)).kind == ManifestProblem::Kind::kNotSharedLibrary);
    b = good;
    put<Elf64_Half>(b, offsetof(Elf64_Ehdr, e_shentsize), 32);
    CHECK(problem_of(read_elf_manifest(b)).kind == ManifestProblem::Kind::kNotSharedLibrary);
  }
  SECTION("section table outside the file, including offsets that overflow") {
    for (Elf64_Off off : {Elf64_Off{good.size()}, Elf64_Off{good.size() - 1}, ~Elf64_Off{0},
                          ~Elf64_Off{0} - 63, Elf64_Off{1} << 63}) {
      CAPTURE(off);
      Bytes b = good;
      put(b, offsetof(Elf64_Ehdr, e_shoff), off);
      CHECK(problem_of(read_elf_manifest(b)).kind == ManifestProblem::Kind::kNotSharedLibrary);
    }
  }
  SECTION("section name table outside the file") {
    Bytes b = good;
    const auto eh = get<Elf64_Ehdr>(b, 0);
    const std::size_t names = eh.e_shoff + eh.e_shstrndx * sizeof(Elf64_Shdr);
    put(b, names + offsetof(Elf64_Shdr, sh_size), ~Elf64_Xword{0});
    CHECK(problem_of(read_elf_manifest(b)).detail == "an ELF file with a damaged section table");
    b = good;
    put(b, names + offsetof(Elf64_Shdr, sh_offset), ~Elf64_Off{0});
    CHECK(problem_of(read_elf_manifest(b)).detail == "an ELF file with a damaged section table");
  }
}

TEST_CASE("read_elf_manifest checks the manifest section itself", "[plugin]") {
  const Bytes good = read_file(fixture("fx_wrong_abi"));
  const std::size_t at = section_header_offset(good, ".barista_manifest");
  const auto sh = get<Elf64_Shdr>(good, at);

  SECTION("too short to hold the magic and the ABI") {
    Bytes b = good;
    put<Elf64_Xword>(b, at + offsetof(Elf64_Shdr, sh_size), 11);
    const auto p = problem_of(read_elf_manifest(b));
    CHECK(p.kind == ManifestProblem::Kind::kNoManifest);
    CHECK(p.detail == "the manifest section is too short");
  }
  SECTION("a short manifest of another ABI still yields its ABI number") {
    Bytes b = good;
    put<Elf64_Xword>(b, at + offsetof(Elf64_Shdr, sh_size), 12);
    const auto m = manifest_of(read_elf_manifest(b));
    CHECK(m.abi == kSdkAbi + 1);
    CHECK(std::string(m.name).empty());
  }
  SECTION("outside the file") {
    for (Elf64_Off off : {Elf64_Off{good.size()}, Elf64_Off{good.size() - 8}, ~Elf64_Off{0}}) {
      Bytes b = good;
      put(b, at + offsetof(Elf64_Shdr, sh_offset), off);
      CHECK(problem_of(read_elf_manifest(b)).detail == "the manifest lies outside the file");
    }
  }
  SECTION("without the magic") {
    Bytes b = good;
    b[sh.sh_offset] = 'X';
    CHECK(problem_of(read_elf_manifest(b)).detail == "the manifest section has no Barista magic");
  }
  SECTION("a name and version without their NUL are cut to fit") {
    Bytes b = good;
    std::memset(b.data() + sh.sh_offset + offsetof(PluginManifest, name), 'n', 64);
    std::memset(b.data() + sh.sh_offset + offsetof(PluginManifest, version), 'v', 32);
    const auto m = manifest_of(read_elf_manifest(b));
    CHECK(std::string(m.name) == std::string(63, 'n'));
    CHECK(std::string(m.version) == std::string(31, 'v'));
  }
}

TEST_CASE("read_elf_manifest refuses every truncation that loses the section table", "[plugin]") {
  const Bytes good = read_file(fixture("fx_counter"));
  const auto shoff = get<Elf64_Ehdr>(good, 0).e_shoff;
  REQUIRE(shoff < good.size());
  // Each truncated copy has exactly its own size, so that an out-of-bounds read would touch
  // memory past the allocation (and trip ASan in the asan preset).
  for (std::size_t length = 0; length < good.size(); length += (length < 256 ? 1 : 61)) {
    const Bytes cut(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(length));
    const auto result = read_elf_manifest(cut);
    if (length < shoff) {
      CAPTURE(length);
      REQUIRE(std::holds_alternative<ManifestProblem>(result));
    }
  }
}

TEST_CASE("read_elf_manifest survives random corruption of a real plugin", "[plugin]") {
  const Bytes good = read_file(fixture("fx_counter"));
  const auto shoff = get<Elf64_Ehdr>(good, 0).e_shoff;
  std::mt19937_64 rng(20240601);  // fixed: a failure must be reproducible
  std::uniform_int_distribution<int> byte(0, 255);
  int manifests = 0;
  int problems = 0;
  for (int round = 0; round < 3000; ++round) {
    Bytes b = good;
    // Aim at what the reader interprets: the ELF header and the section table.
    std::uniform_int_distribution<std::size_t> where(0, 3);
    std::uniform_int_distribution<std::size_t> in_header(0, sizeof(Elf64_Ehdr) - 1);
    std::uniform_int_distribution<std::size_t> in_table(shoff, good.size() - 1);
    for (int i = 0; i < 1 + round % 8; ++i) {
      const std::size_t at = where(rng) == 0 ? in_header(rng) : in_table(rng);
      b[at] = static_cast<std::uint8_t>(byte(rng));
    }
    const auto result = read_elf_manifest(b);
    (std::holds_alternative<PluginManifest>(result) ? manifests : problems) += 1;
  }
  // Both outcomes occur: the corruption reached the parser rather than being always fatal.
  CHECK(manifests > 0);
  CHECK(problems > 0);
}

}  // namespace
}  // namespace barista::plugin
