// PluginRegistry: finding plugins by name, and loading a file again after it was replaced.

#include "daemon/plugin/plugin_registry.hpp"

#include "tests/unit/plugin/plugin_test_support.hpp"

#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <atomic>
#include <string>

namespace barista::plugin {
namespace {

using Catch::Matchers::Message;
using testing::fixture;
using testing::install_copy;
using testing::replace_by_rename;
using testing::run;
using testing::TempDir;

TEST_CASE("the registry finds NAME.so in plugin_path order", "[plugin]") {
  TempDir tmp;
  const auto first = tmp / "first";
  const auto second = tmp / "second";
  install_copy(fixture("fx_version_1"), first / "p.so");
  install_copy(fixture("fx_version_2"), second / "p.so");
  install_copy(fixture("fx_crash"), second / "only_second.so");

  PluginRegistry registry({first, second}, tmp / "cache");
  CHECK(registry.resolve("p") == first / "p.so");
  CHECK(registry.load("p")->version() == "1.0.0");
  CHECK(registry.resolve("only_second") == second / "only_second.so");
  CHECK(registry.load("only_second")->name() == "fx_crash");

  PluginRegistry reversed({second, first}, tmp / "cache");
  CHECK(reversed.resolve("p") == second / "p.so");
  CHECK(reversed.load("p")->version() == "2.0.0");

  // A folder earlier in the path that lacks the plugin is skipped.
  std::filesystem::remove(first / "p.so");
  CHECK(registry.resolve("p") == second / "p.so");
}

TEST_CASE("set_plugin_path changes where names are looked up", "[plugin]") {
  TempDir tmp;
  install_copy(fixture("fx_version_1"), tmp / "old" / "p.so");
  install_copy(fixture("fx_version_2"), tmp / "new" / "p.so");
  PluginRegistry registry({tmp / "old"}, tmp / "cache");
  auto before = registry.load("p");
  registry.set_plugin_path({tmp / "new"});
  CHECK(registry.resolve("p") == tmp / "new" / "p.so");
  CHECK(registry.load("p")->version() == "2.0.0");
  // What was loaded from the old folder is untouched.
  CHECK(run(before->create({}), "x") == "v1: x");
}

TEST_CASE("the registry takes an absolute path as is", "[plugin]") {
  PluginRegistry registry({});
  CHECK(registry.resolve(fixture("fx_crash").string()) == fixture("fx_crash"));
  CHECK(registry.load(fixture("fx_crash").string())->name() == "fx_crash");
  // An absolute path that does not exist is the file's problem, not the search's.
  CHECK_THROWS_MATCHES(registry.load("/nonexistent/plugin.so"), PluginError,
                       Message("plugin 'plugin' (/nonexistent/plugin.so): file not found"));
}

TEST_CASE("the registry refuses a relative path", "[plugin]") {
  TempDir tmp;
  install_copy(fixture("fx_crash"), tmp / "sub" / "x.so");
  PluginRegistry registry({tmp.path()});
  for (const std::string name : {"sub/x", "sub/x.so", "./x", "../x"}) {
    CHECK_THROWS_MATCHES(
        registry.resolve(name), PluginError,
        Message(fmt::format("plugin '{}': give a plugin name (looked up as NAME.so in plugin_path) "
                            "or an absolute path",
                            name)));
  }
}

TEST_CASE("a plugin not found names the folders searched", "[plugin]") {
  TempDir tmp;
  PluginRegistry registry({tmp / "a", tmp / "b"});
  CHECK_THROWS_MATCHES(
      registry.load("nope"), PluginError,
      Message(fmt::format("plugin 'nope': nope.so not found in plugin_path ({}, {})",
                          (tmp / "a").string(), (tmp / "b").string())));
  PluginRegistry empty({});
  CHECK_THROWS_MATCHES(empty.resolve("nope"), PluginError,
                       Message("plugin 'nope': nope.so not found in plugin_path (empty)"));
}

TEST_CASE("refusals reach the registry's caller unchanged", "[plugin]") {
  PluginRegistry registry({BARISTA_FIXTURE_DIR});
  CHECK_THROWS_MATCHES(
      registry.load("fx_wrong_abi"), PluginError,
      Message(fmt::format("plugin 'fx_wrong_abi' ({}): built for SDK ABI {}, baristad speaks {}",
                          fixture("fx_wrong_abi").string(), kSdkAbi + 1, kSdkAbi)));
  CHECK_THROWS_AS(registry.load("fx_not_a_library"), PluginError);
}

TEST_CASE("the same contents loaded twice give the same library object", "[plugin]") {
  TempDir tmp;
  install_copy(fixture("fx_crash"), tmp / "plugins" / "p.so");
  PluginRegistry registry({tmp / "plugins"}, tmp / "cache");
  auto once = registry.load("p");
  auto twice = registry.load("p");
  CHECK(once == twice);
  CHECK(registry.load((tmp / "plugins" / "p.so").string()) == once);

  // Rewritten with identical bytes (a package reinstall): still the same object.
  replace_by_rename(fixture("fx_crash"), tmp / "plugins" / "p.so");
  CHECK(registry.load("p") == once);
}

TEST_CASE("a plugin replaced at the same path loads afresh; old processors keep working",
          "[plugin]") {
  TempDir tmp;
  const auto file = tmp / "plugins" / "p.so";
  install_copy(fixture("fx_version_1"), file);
  PluginRegistry registry({tmp / "plugins"}, tmp / "cache");

  auto v1 = registry.load("p");
  REQUIRE(v1->version() == "1.0.0");
  auto old_processor = v1->create({});
  REQUIRE(run(old_processor, "a") == "v1: a");

  replace_by_rename(fixture("fx_version_2"), file);
  auto v2 = registry.load("p");
  CHECK(v2 != v1);
  CHECK(v2->name() == "fx_version");
  CHECK(v2->version() == "2.0.0");
  CHECK(v2->path() == file);
  CHECK(v2->digest() != v1->digest());
  auto new_processor = v2->create({});
  CHECK(run(new_processor, "b") == "v2: b");
  CHECK(run(old_processor, "c") == "v1: c");

  // The old library lives on through its processor alone.
  v1.reset();
  CHECK(run(old_processor, "d") == "v1: d");

  // And back again: the first contents load once more.
  replace_by_rename(fixture("fx_version_1"), file);
  auto again = registry.load("p");
  CHECK(again->version() == "1.0.0");
  CHECK(run(again->create({}), "e") == "v1: e");
  CHECK(run(new_processor, "f") == "v2: f");
}

TEST_CASE("without a cache folder a replaced file still loaded is refused, not run stale",
          "[plugin]") {
  TempDir tmp;
  const auto file = tmp / "plugins" / "p.so";
  install_copy(fixture("fx_version_1"), file);
  {
    PluginRegistry registry({tmp / "plugins"});
    auto old_processor = registry.load("p")->create({});

    // dlopen() would hand back the loaded v1 code under v2's manifest: the loader must say so.
    replace_by_rename(fixture("fx_version_2"), file);
    CHECK_THROWS_MATCHES(registry.load("p"), PluginError,
                         Message(fmt::format("plugin 'fx_version' ({}): the file changed on disk "
                                             "while its previous contents are still loaded from "
                                             "the same path; load it through a cache folder",
                                             file.string())));
    CHECK(run(old_processor, "a") == "v1: a");
  }
  // Once nothing of the old contents is alive (registry and processor gone), the new file loads
  // in place.
  PluginRegistry fresh({tmp / "plugins"});
  auto v2 = fresh.load("p");
  CHECK(v2->version() == "2.0.0");
  CHECK(run(v2->create({}), "b") == "v2: b");
}

}  // namespace
}  // namespace barista::plugin
