// A processor keeps its library loaded; the library goes once nothing it made is alive.

#include "daemon/plugin/plugin_library.hpp"
#include "daemon/plugin/plugin_registry.hpp"

#include "tests/unit/plugin/plugin_test_support.hpp"

#include <dlfcn.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

namespace barista::plugin {
namespace {

using testing::fixture;
using testing::install_copy;
using testing::run;
using testing::TempDir;

// Calls fx_counter's `symbol` in the library loaded from `file`; -1 when it is not loaded.
int counter(const std::filesystem::path& file, const char* symbol = "fx_counter_live") {
  void* handle = ::dlopen(file.c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (handle == nullptr) {
    return -1;
  }
  auto* fn = reinterpret_cast<int (*)()>(::dlsym(handle, symbol));
  const int n = fn != nullptr ? fn() : -2;
  ::dlclose(handle);
  return n;
}

TEST_CASE("a processor keeps its library loaded after the registry is gone", "[plugin]") {
  TempDir tmp;
  install_copy(fixture("fx_counter"), tmp / "plugins" / "counter.so");
  ProcessorHandle processor;
  std::filesystem::path loaded_from;
  {
    PluginRegistry registry({tmp / "plugins"}, tmp / "cache");
    auto lib = registry.load("counter");
    loaded_from = tmp / "cache" / (lib->digest() + ".so");
    REQUIRE(counter(loaded_from) == 0);
    processor = lib->create({});
    CHECK(counter(loaded_from) == 1);
  }
  // Registry and library pointers dropped: the handle alone keeps the code mapped.
  CHECK(run(processor) == "1");
  CHECK(processor.library().name() == "fx_counter");
  CHECK(counter(loaded_from) == 1);

  processor = ProcessorHandle();
  CHECK(counter(loaded_from) == -1);
}

TEST_CASE("each create() makes a new processor; each is destroyed once", "[plugin]") {
  TempDir tmp;
  auto lib = PluginLibrary::open(fixture("fx_counter"), tmp / "cache");
  const auto loaded_from = tmp / "cache" / (lib->digest() + ".so");
  std::vector<ProcessorHandle> workers;
  for (int i = 0; i < 3; ++i) {
    workers.push_back(lib->create({}));
  }
  CHECK(counter(loaded_from, "fx_counter_created") == 3);
  CHECK(counter(loaded_from) == 3);
  CHECK(run(workers[0]) == "1");
  CHECK(run(workers[2]) == "3");

  // Move-assigning over a handle destroys the processor it held, and only that one.
  workers[0] = std::move(workers[2]);
  workers.pop_back();
  CHECK(counter(loaded_from) == 2);
  CHECK(run(workers[0]) == "3");

  workers.clear();
  CHECK(counter(loaded_from) == 0);
  lib.reset();
  CHECK(counter(loaded_from) == -1);
}

TEST_CASE("a library is unloaded when the last pointer to it goes", "[plugin]") {
  TempDir tmp;
  auto lib = PluginLibrary::open(fixture("fx_counter"), tmp / "cache");
  const auto loaded_from = tmp / "cache" / (lib->digest() + ".so");
  REQUIRE(counter(loaded_from) == 0);
  lib.reset();
  CHECK(counter(loaded_from) == -1);
}

TEST_CASE("concurrent loads of one plugin through one cache folder all succeed", "[plugin]") {
  constexpr int kRounds = 50;  // the race this guards against showed in ~1 round in 6
  constexpr int kThreads = 4;
  std::atomic<int> failures{0};
  std::string first_failure;
  std::mutex mutex;
  for (int round = 0; round < kRounds; ++round) {
    TempDir tmp;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&] {
        try {
          auto lib = PluginLibrary::open(fixture("fx_counter"), tmp / "cache");
          (void)run(lib->create({}));
        } catch (const std::exception& e) {
          std::lock_guard lock(mutex);
          if (failures++ == 0) {
            first_failure = e.what();
          }
        }
      });
    }
    for (auto& t : threads) {
      t.join();
    }
  }
  INFO(first_failure);
  CHECK(failures == 0);
}

std::string contents(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST_CASE("a damaged private copy is replaced rather than loaded", "[plugin]") {
  TempDir tmp;
  std::string digest;
  {
    auto lib = PluginLibrary::open(fixture("fx_crash"), tmp / "cache");
    digest = lib->digest();
  }
  const auto copy = tmp / "cache" / (digest + ".so");
  SECTION("empty") {
    // As if the machine crashed before the copy reached the disk: the name exists, the
    // contents do not (what a rename without fsync may leave behind).
    std::filesystem::resize_file(copy, 0);
  }
  SECTION("the right size, other bytes") {
    // Torn in the middle: the size is right, one block of it is not (every bit flipped, so
    // that it differs even where the library holds zeros).
    const auto size = std::filesystem::file_size(copy);
    {
      std::fstream f(copy, std::ios::in | std::ios::out | std::ios::binary);
      std::string block(64, '\0');
      f.seekg(static_cast<std::streamoff>(size / 2));
      f.read(block.data(), static_cast<std::streamsize>(block.size()));
      for (auto& ch : block) {
        ch = static_cast<char>(~ch);
      }
      f.seekp(static_cast<std::streamoff>(size / 2));
      f.write(block.data(), static_cast<std::streamsize>(block.size()));
    }
    REQUIRE(std::filesystem::file_size(copy) == size);
    REQUIRE(contents(copy) != contents(fixture("fx_crash")));
  }

  auto lib = PluginLibrary::open(fixture("fx_crash"), tmp / "cache");
  CHECK(lib->digest() == digest);
  CHECK(run(lib->create({}), "still works") == "still works");
  CHECK(contents(copy) == contents(fixture("fx_crash")));
}

}  // namespace
}  // namespace barista::plugin
