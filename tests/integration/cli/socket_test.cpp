// Which socket the CLI talks to (--socket, $BARISTA_SOCKET, the --config's control_socket, the
// default) and what it says when nothing answers there (docs/reference.md#socket).

#include "tests/integration/cli/cli_support.hpp"

#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

namespace barista::itest::cli {
namespace {

namespace fs = std::filesystem;

// A socket file nobody listens on, as a daemon killed with -9 leaves behind.
void make_stale_socket(const fs::path& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  REQUIRE(::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
  ::close(fd);
}

// Every daemon-facing verb, for the "no daemon" checks.
const std::vector<std::vector<std::string>> kVerbs = {
    {"status"},           {"status", "--json"},          {"cancel", "b"},
    {"results", "b"},     {"results", "b", "--summary"}, {"reload"},
    {"submit", "p", "-"}, {"submit", "p", "-", "--wait"}};

TEST_CASE("no daemon: every verb exits 3 and names the cause", "[integration][cli]") {
  TempDir tmp;
  const auto sock = tmp.path() / "barista.sock";

  SECTION("no socket file") {
    for (const auto& verb : kVerbs) {
      auto args = verb;
      args.insert(args.begin(), {"--socket", sock.string()});
      const auto r = run_cli(args);
      INFO("barista " << verb.front());
      CHECK(r.exit_code == 3);
      CHECK(r.out.empty());
      CHECK(r.err == "barista: cannot reach baristad at " + sock.string() +
                         ": no such file (is the service running?)\n");
    }
  }
  SECTION("a stale socket") {
    make_stale_socket(sock);
    for (const auto& verb : kVerbs) {
      auto args = verb;
      args.insert(args.begin(), {"--socket", sock.string()});
      const auto r = run_cli(args);
      INFO("barista " << verb.front());
      CHECK(r.exit_code == 3);
      CHECK(r.err == "barista: cannot reach baristad at " + sock.string() +
                         ": connection refused (a stale socket: baristad is not running)\n");
    }
  }
  SECTION("not a socket") {
    write_file(sock, "");
    const auto r = run_cli({"status", "--socket", sock.string()});
    CHECK(r.exit_code == 3);
    CHECK(r.err == "barista: cannot reach baristad at " + sock.string() +
                       ": not a socket (is that the right path?)\n");
  }
}

TEST_CASE("a user who may not use the socket is told so", "[integration][cli]") {
  Daemon d(pool("echo", "echo", 1));
  d.start();
  CliOptions o;
  if (::geteuid() == 0) {
    o.as_nobody = true;  // the socket is 0660 root:root, in a 0700 folder
  } else {
    fs::permissions(d.socket(), fs::perms::none);
  }
  const auto r = run_cli(with_socket(d, {"status"}), o);
  CHECK(r.exit_code == 3);
  CHECK(r.err == "barista: cannot reach baristad at " + d.socket().string() +
                     ": permission denied (run as a user who may use the socket: root or a member "
                     "of its group)\n");
}

TEST_CASE("the socket: --socket, then $BARISTA_SOCKET, then --config, then the default",
          "[integration][cli]") {
  Daemon d(pool("echo", "echo", 1));
  d.start();
  TempDir tmp;
  const auto nowhere = (tmp.path() / "nowhere.sock").string();
  // A valid config whose control_socket leads nowhere.
  const auto other_config = tmp.path() / "other.yaml";
  write_file(other_config, "control_socket: " + nowhere + "\npools: {}\n");
  const auto reaches = [&](const std::vector<std::string>& args, const CliOptions& o) {
    const auto r = run_cli(args, o);
    INFO(r.err);
    return r.exit_code == 0 && r.out.find("POOL") != std::string::npos;
  };
  const auto env = [](const std::string& value) {
    CliOptions o;
    o.env = {"BARISTA_SOCKET=" + value};
    return o;
  };
  CliOptions no_env;
  no_env.unset = {"BARISTA_SOCKET"};

  // --socket wins over everything, before or after the verb.
  CHECK(reaches({"--socket", d.socket().string(), "--config", other_config.string(), "status"},
                env(nowhere)));
  CHECK(reaches({"status", "--socket", d.socket().string(), "--config", other_config.string()},
                env(nowhere)));
  // Then $BARISTA_SOCKET, over --config.
  CHECK(reaches({"status", "--config", other_config.string()}, env(d.socket().string())));
  // Then the control_socket of --config.
  CHECK(reaches({"status", "--config", d.config_file().string()}, no_env));
  CHECK(reaches({"--config", d.config_file().string(), "status"}, env("")));
  // And the losers really were not used: each alone leads nowhere.
  auto r = run_cli({"status", "--config", other_config.string()}, no_env);
  CHECK(r.exit_code == 3);
  CHECK(r.err.find("cannot reach baristad at " + nowhere + ":") != std::string::npos);
  r = run_cli({"status"}, env(nowhere));
  CHECK(r.exit_code == 3);
  CHECK(r.err.find("cannot reach baristad at " + nowhere + ":") != std::string::npos);

  // A relative control_socket is relative to the config file's folder, not to the working
  // folder; and a config with mistakes elsewhere still gives its socket.
  const auto broken = d.root() / "broken.yaml";
  write_file(broken, "control_socket: barista.sock\nspool: [not, a, path]\npools: {}\n");
  CliOptions elsewhere = no_env;
  elsewhere.cwd = tmp.path().string();
  CHECK(reaches({"status", "--config", broken.string()}, elsewhere));

  // Nothing given: the default socket.
  if (!fs::exists("/run/barista/barista.sock")) {
    r = run_cli({"status"}, no_env);
    CHECK(r.exit_code == 3);
    CHECK(r.err ==
          "barista: cannot reach baristad at /run/barista/barista.sock: no such file "
          "(is the service running?)\n");
  }
  // A config that cannot be read at all.
  r = run_cli({"status", "--config", (tmp.path() / "missing.yaml").string()}, no_env);
  CHECK(r.exit_code == 3);
  CHECK(r.err.find((tmp.path() / "missing.yaml").string()) != std::string::npos);
}

}  // namespace
}  // namespace barista::itest::cli
