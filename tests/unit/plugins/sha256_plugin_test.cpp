#include "tests/unit/plugins/bundled_plugin_support.hpp"

#include <sys/stat.h>

#include <catch2/catch.hpp>

#include <random>

namespace barista::bundled_plugins_test {
namespace {

using Kind = Outcome::Kind;
namespace fs = std::filesystem;

// `sha256sum` of "hello world\n" and of "abc" (FIPS 180-2's first example).
constexpr const char* kHelloWorldDigest =
    "a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447";
constexpr const char* kAbcDigest =
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

// TOP/root/{hello.txt, sub/deeper/data.bin, sub/inside-link -> ../hello.txt, ...} and
// TOP/secret.txt just outside the root.
struct Tree {
  TempDir top;
  fs::path root = top / "root";
  Tree() {
    fs::create_directories(root / "sub" / "deeper");
    write_file(root / "hello.txt", "hello world\n");
    write_file(top / "secret.txt", "top secret\n");
    fs::create_symlink("../hello.txt", root / "sub" / "inside-link");
    fs::create_symlink("../secret.txt", root / "relative-escape");
    fs::create_symlink(top / "secret.txt", root / "absolute-escape");
    fs::create_directory_symlink(top.path(), root / "escape-dir");
  }
  [[nodiscard]] plugin::ProcessorHandle hasher() const {
    return make_processor("sha256", Config().set("root", root.string()));
  }
};

TEST_CASE("sha256 outputs the digest of a file beneath root", "[plugins][sha256]") {
  Tree tree;
  auto p = tree.hasher();
  auto out = run(p, "hello.txt");
  CHECK(out.kind() == Kind::kOk);
  CHECK(out.text() == kHelloWorldDigest);

  SECTION("a file of many blocks, in a subfolder") {
    std::string data(5 * 1024 * 1024 + 123, '\0');
    std::mt19937 random(42);
    for (auto& c : data) {
      c = static_cast<char>(random());
    }
    write_file(tree.root / "sub" / "deeper" / "data.bin", data);
    auto big = run(p, "sub/deeper/data.bin");
    CHECK(big.kind() == Kind::kOk);
    CHECK(big.text() == sha256_hex(data));
  }
  SECTION("an empty file") {
    write_file(tree.root / "empty", "");
    CHECK(run(p, "empty").text() == sha256_hex(""));
  }
  SECTION("paths that wander but stay inside root") {
    CHECK(run(p, "./sub/../hello.txt").text() == kHelloWorldDigest);
    CHECK(run(p, "sub/inside-link").text() == kHelloWorldDigest);
  }
}

TEST_CASE("sha256 refuses paths outside root", "[plugins][sha256]") {
  Tree tree;
  auto p = tree.hasher();
  const std::vector<std::string> outside = {
      "../secret.txt",   "sub/../../secret.txt",  "relative-escape",
      "absolute-escape", "escape-dir/secret.txt", (tree.top / "secret.txt").string(),
      "/etc/passwd"};
  for (const auto& path : outside) {
    INFO(path);
    auto out = run(p, path);
    CHECK(out.kind() == Kind::kFatal);
    CHECK(out.text() == "path outside root: " + path);
  }
}

TEST_CASE("sha256 reports files it cannot hash", "[plugins][sha256]") {
  Tree tree;
  auto p = tree.hasher();
  SECTION("missing") {
    auto out = run(p, "nope.txt");
    CHECK(out.kind() == Kind::kFatal);
    CHECK(out.text() == "no such file: nope.txt");
  }
  SECTION("a folder") {
    auto out = run(p, "sub");
    CHECK(out.kind() == Kind::kFatal);
    CHECK(out.text() == "not a regular file: sub");
  }
  SECTION("a FIFO, which must not hang the worker") {
    REQUIRE(::mkfifo((tree.root / "fifo").c_str(), 0600) == 0);
    auto out = run(p, "fifo");
    CHECK(out.kind() == Kind::kFatal);
    CHECK(out.text() == "not a regular file: fifo");
  }
  SECTION("empty") { CHECK(run(p, "").kind() == Kind::kFatal); }
  SECTION("cancelled") {
    Attempt attempt;
    attempt.cancel();
    auto out = run(p, "hello.txt", attempt);
    CHECK(out.kind() == Kind::kFailed);
    CHECK(out.text() == "cancelled");
  }
}

TEST_CASE("sha256 with input: payload hashes the payload itself", "[plugins][sha256]") {
  auto p = make_processor("sha256", Config().set("input", "payload"));
  CHECK(run(p, "abc").text() == kAbcDigest);
  CHECK(run(p, "hello world\n").text() == kHelloWorldDigest);
  CHECK(run(p, "").text() == sha256_hex(""));
}

TEST_CASE("sha256 refuses a bad config", "[plugins][sha256]") {
  Tree tree;
  SECTION("root missing") {
    CHECK_THAT(config_error("sha256", Config()), Catch::StartsWith("is required"));
  }
  SECTION("a misspelt key") {
    CHECK(config_error("sha256", Config().set("rot", tree.root.string())) ==
          "unknown key 'rot' (did you mean 'root'?)");
  }
  SECTION("a relative root") {
    CHECK_THAT(config_error("sha256", Config().set("root", "data")),
               Catch::StartsWith("must be an absolute path"));
  }
  SECTION("a root that is not a folder") {
    CHECK_THAT(config_error("sha256", Config().set("root", (tree.root / "hello.txt").string())),
               Catch::StartsWith("cannot open folder"));
    CHECK_THAT(config_error("sha256", Config().set("root", (tree.top / "nope").string())),
               Catch::StartsWith("cannot open folder"));
  }
  SECTION("an unknown input") {
    CHECK(config_error("sha256", Config().set("input", "bytes")) ==
          "expected 'file' or 'payload', got 'bytes'");
  }
  SECTION("root with input: payload") {
    CHECK_THAT(
        config_error("sha256", Config().set("input", "payload").set("root", tree.root.string())),
        Catch::StartsWith("has no use"));
  }
  SECTION("input: file spelt out") {
    CHECK(config_error("sha256", Config().set("input", "file").set("root", tree.root.string()))
              .empty());
  }
}

}  // namespace
}  // namespace barista::bundled_plugins_test
