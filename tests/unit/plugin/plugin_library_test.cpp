// PluginLibrary::open() and create(): every way a plugin is refused, with the reason a user reads.

#include "daemon/plugin/plugin_library.hpp"

#include "tests/unit/plugin/plugin_test_support.hpp"

#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdlib>
#include <string>

namespace barista::plugin {
namespace {

using Catch::Matchers::Contains;
using Catch::Matchers::Message;
using testing::fixture;
using testing::install_copy;
using testing::TempDir;

std::string run(const ProcessorHandle& processor, std::string_view payload) {
  std::atomic<bool> cancel{false};
  Context ctx(&cancel, Context::Clock::time_point::max());
  return processor->process(ctx, Job{"1", payload, 1}).text();
}

// The message of the PluginError that `open` throws, or a test failure.
template <class F>
std::string refusal(F&& f) {
  try {
    f();
  } catch (const PluginError& e) {
    return e.what();
  }
  FAIL("no PluginError was thrown");
  return {};
}

std::string refusal_of(const std::filesystem::path& file,
                       const std::filesystem::path& cache_dir = {}) {
  return refusal([&] { (void)PluginLibrary::open(file, cache_dir); });
}

ConfigValue scalar(std::string text, int line, int column) {
  ConfigValue v;
  v.kind = ConfigValue::Kind::kScalar;
  v.scalar = std::move(text);
  v.line = line;
  v.column = column;
  return v;
}

PluginConfig config_of(std::vector<ConfigEntry> entries) {
  ConfigValue root;
  root.kind = ConfigValue::Kind::kMap;
  root.map = std::move(entries);
  return PluginConfig(std::move(root));
}

TEST_CASE("a good plugin loads with its manifest's name and version", "[plugin]") {
  auto lib = PluginLibrary::open(fixture("fx_crash"));
  CHECK(lib->name() == "fx_crash");
  CHECK(lib->version() == "1.0.0");
  CHECK(lib->path() == fixture("fx_crash"));
  CHECK(lib->digest().size() == 64);
  CHECK(lib->digest().find_first_not_of("0123456789abcdef") == std::string::npos);
  auto processor = lib->create({});
  CHECK(run(processor, "hello") == "hello");
  CHECK(&processor.library() == lib.get());
}

TEST_CASE("a missing file is refused as not found", "[plugin]") {
  TempDir tmp;
  CHECK(refusal_of(tmp / "nope.so") ==
        fmt::format("plugin 'nope' ({}): file not found", (tmp / "nope.so").string()));
}

TEST_CASE("something that is not a regular file is refused", "[plugin]") {
  TempDir tmp;
  std::filesystem::create_directory(tmp / "dir.so");
  CHECK(refusal_of(tmp / "dir.so") ==
        fmt::format("plugin 'dir' ({}): not a regular file", (tmp / "dir.so").string()));
  // A FIFO must not block the loader waiting for a writer.
  REQUIRE(::mkfifo((tmp / "fifo.so").c_str(), 0644) == 0);
  CHECK(refusal_of(tmp / "fifo.so") ==
        fmt::format("plugin 'fifo' ({}): not a regular file", (tmp / "fifo.so").string()));
}

TEST_CASE("a text file is refused as not a shared library", "[plugin]") {
  const auto file = fixture("fx_not_a_library");
  CHECK(refusal_of(file) ==
        fmt::format("plugin 'fx_not_a_library' ({}): not a shared library: not an ELF file",
                    file.string()));
}

TEST_CASE("a library without a manifest is refused as not a Barista plugin", "[plugin]") {
  const auto file = fixture("fx_no_manifest");
  CHECK(refusal_of(file) ==
        fmt::format("plugin 'fx_no_manifest' ({}): not a Barista plugin: no Barista manifest "
                    "(was it built with BARISTA_PLUGIN?)",
                    file.string()));
}

TEST_CASE("a plugin built for another ABI is refused naming both numbers", "[plugin]") {
  const auto file = fixture("fx_wrong_abi");
  const auto expected =
      fmt::format("plugin 'fx_wrong_abi' ({}): built for SDK ABI {}, baristad speaks {}",
                  file.string(), kSdkAbi + 1, kSdkAbi);
  CHECK(refusal_of(file) == expected);
  TempDir tmp;
  CHECK(refusal_of(file, tmp / "cache") == expected);
  // Refused before a private copy was made: nothing of it is ever handed to dlopen.
  CHECK_FALSE(std::filesystem::exists(tmp / "cache"));
}

TEST_CASE("a wrong-ABI plugin is refused before any of its code runs", "[plugin]") {
  TempDir tmp;
  const auto marker = tmp / "constructor-ran";
  ::setenv("BARISTA_FX_WRONG_ABI_MARKER", marker.c_str(), 1);

  CHECK_THROWS_AS(PluginLibrary::open(fixture("fx_wrong_abi")), PluginError);
  CHECK_THROWS_AS(PluginLibrary::open(fixture("fx_wrong_abi"), tmp / "cache"), PluginError);
  CHECK_FALSE(std::filesystem::exists(marker));

  // The marker is real: loading the file behind the loader's back runs the constructor.
  void* handle = ::dlopen(fixture("fx_wrong_abi").c_str(), RTLD_NOW | RTLD_LOCAL);
  REQUIRE(handle != nullptr);
  ::dlclose(handle);
  CHECK(std::filesystem::exists(marker));
  ::unsetenv("BARISTA_FX_WRONG_ABI_MARKER");
}

TEST_CASE("a plugin with an undefined symbol is refused naming the symbol", "[plugin]") {
  const auto file = fixture("fx_missing_symbol");
  const auto message = refusal_of(file);
  CHECK_THAT(message, Contains(fmt::format("plugin 'fx_missing_symbol' ({}): cannot be loaded: ",
                                           file.string())));
  CHECK_THAT(message, Contains("undefined symbol: barista_fixture_nowhere"));
  TempDir tmp;
  CHECK_THAT(refusal_of(file, tmp / "cache"),
             Contains("undefined symbol: barista_fixture_nowhere"));
}

TEST_CASE("a plugin without a factory is refused", "[plugin]") {
  const auto file = fixture("fx_no_factory");
  CHECK(refusal_of(file) == fmt::format("plugin 'fx_no_factory' ({}): exports no factory "
                                        "(barista_plugin_create)",
                                        file.string()));
}

TEST_CASE("a throwing factory is refused with the exception's text", "[plugin]") {
  const auto file = fixture("fx_throwing_factory");
  auto lib = PluginLibrary::open(file);
  CHECK(refusal([&] { (void)lib->create({}); }) ==
        fmt::format("plugin 'fx_throwing_factory' ({}): factory failed: factory exploded",
                    file.string()));
}

TEST_CASE("a plugin's ConfigError reaches the caller with the key's location", "[plugin]") {
  auto lib = PluginLibrary::open(fixture("fx_config_error"));

  SECTION("a value of the wrong type") {
    try {
      (void)lib->create(config_of({{"size", scalar("big", 7, 11)}}));
      FAIL("no ConfigError");
    } catch (const ConfigError& e) {
      CHECK(e.key() == "size");
      CHECK(e.line() == 7);
      CHECK(e.column() == 11);
      CHECK(std::string(e.what()) == "expected an integer, got 'big'");
    }
  }
  SECTION("an unknown key") {
    try {
      (void)lib->create(config_of({{"size", scalar("2", 3, 5)}, {"sise", scalar("2", 4, 5)}}));
      FAIL("no ConfigError");
    } catch (const ConfigError& e) {
      CHECK(e.key() == "sise");
      CHECK(e.line() == 4);
      CHECK(e.column() == 5);
      CHECK(std::string(e.what()) == "unknown key 'sise' (did you mean 'size'?)");
    }
  }
  SECTION("a good value") {
    CHECK(run(lib->create(config_of({{"size", scalar("3", 2, 9)}})), "x") == "size=3");
  }
}

TEST_CASE("a ConfigError outlives the library that threw it", "[plugin]") {
  // The library is a temporary, unloaded while the exception propagates: the caught object must
  // not depend on the plugin's code (its vtable or destructor).
  try {
    (void)PluginLibrary::open(fixture("fx_config_error"))
        ->create(config_of({{"size", scalar("0", 12, 3)}}));
    FAIL("no ConfigError");
  } catch (const ConfigError& e) {
    CHECK(std::string(e.what()) == "must be at least 1");
    CHECK(e.key() == "size");
    CHECK(e.line() == 12);
    CHECK(e.column() == 3);
  }
}

TEST_CASE("a plugin file that others could change is refused", "[plugin]") {
  TempDir tmp;
  const auto file = tmp / "fx_crash.so";
  install_copy(fixture("fx_crash"), file);
  REQUIRE(PluginLibrary::open(file, tmp / "cache")->name() == "fx_crash");

  SECTION("writable by others") {
    REQUIRE(::chmod(file.c_str(), 0757) == 0);
    CHECK(refusal_of(file, tmp / "cache") ==
          fmt::format("plugin 'fx_crash' ({}): the file is writable by group or others (mode 757)",
                      file.string()));
  }
  SECTION("writable by the group") {
    REQUIRE(::chmod(file.c_str(), 0775) == 0);
    CHECK_THAT(refusal_of(file, tmp / "cache"),
               Contains("the file is writable by group or others (mode 775)"));
  }
  SECTION("owned by another user") {
    if (::geteuid() != 0) {
      WARN("not root: cannot give the file to another user");
      return;
    }
    REQUIRE(::chown(file.c_str(), 65534, 65534) == 0);
    CHECK(refusal_of(file, tmp / "cache") ==
          fmt::format("plugin 'fx_crash' ({}): the file is owned by uid 65534, neither root nor "
                      "the daemon's uid 0",
                      file.string()));
  }
}

TEST_CASE("a plugin in a folder that others could change is refused", "[plugin]") {
  TempDir tmp;
  const auto dir = tmp / "shared";
  const auto file = dir / "fx_crash.so";
  install_copy(fixture("fx_crash"), file);

  SECTION("writable by others") {
    REQUIRE(::chmod(dir.c_str(), 0777) == 0);
    CHECK(
        refusal_of(file) ==
        fmt::format("plugin 'fx_crash' ({}): its folder is writable by group or others (mode 777)",
                    file.string()));
  }
  SECTION("writable by all but sticky, like /tmp: others cannot replace the file") {
    REQUIRE(::chmod(dir.c_str(), 01777) == 0);
    CHECK(PluginLibrary::open(file)->name() == "fx_crash");
  }
}

}  // namespace
}  // namespace barista::plugin
