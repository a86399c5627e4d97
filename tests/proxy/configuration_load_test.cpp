// How the daemon reads its configuration file (proxy/configuration.cpp, load_configuration).
#include "proxy/configuration.hpp"

#include <doctest/doctest.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/temp_dir.hpp"

namespace {

// How many times the file at `path` was opened while `body` ran (inotify's IN_OPEN). Its closes
// are watched too: inotify merges an event identical to the one before it in the queue, so two
// opens in a row without them would read as one.
template <typename F>
int opens_of(const std::filesystem::path& path, F&& body) {
  const int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  REQUIRE(fd >= 0);
  REQUIRE(::inotify_add_watch(fd, path.c_str(), IN_OPEN | IN_CLOSE) >= 0);
  body();
  int opens = 0;
  alignas(inotify_event) char buf[4096];
  for (int i = 0; i < 1000; ++i) {  // bounded: a few events at most are expected
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    for (ssize_t at = 0; at < n;) {
      const auto* e = reinterpret_cast<const inotify_event*>(buf + at);
      if (e->mask & IN_OPEN) ++opens;
      at += static_cast<ssize_t>(sizeof(inotify_event) + e->len);
    }
  }
  ::close(fd);
  return opens;
}

}  // namespace

// Read three times (the policy, its state directory, the daemon's sections), a file saved in
// place during a reload gave a policy from one version and daemon settings from another
// (outside-in audit H, 2026-12-05). Every part now comes from one read and one parse.
TEST_CASE("a configuration is read from its file once, daemon settings and policy alike") {
  hallpass_test::temp_dir dir("hallpass-config-load");
  const auto config = dir.path / "school.yaml";
  std::filesystem::copy_file(HALLPASS_SOURCE_DIR "/rules/school.yaml", config);
  {
    std::ofstream out(config, std::ios::app);
    out << "\nstate_dir: state\nhosts:\n  one.test: 127.0.0.1\n";
  }
  hallpass::overrides o;
  hallpass::config_load_result r;
  const int opens = opens_of(config, [&] { r = hallpass::load_configuration(config.string(), o, 1); });
  REQUIRE(r.config);
  CHECK(opens == 1);
  // Both halves came from that one read: the daemon's state_dir (relative to the file) and the policy.
  CHECK(r.config->daemon.state_dir == (dir.path / "state").string());
  CHECK(r.config->policy != nullptr);
}

TEST_CASE("a syntax error is reported once, with its line, and no configuration results") {
  hallpass_test::temp_dir dir("hallpass-config-load");
  const auto config = dir.path / "broken.yaml";
  {
    std::ofstream out(config);
    out << "school:\n  name: A school\nroles: [unclosed\n";
  }
  const auto r = hallpass::load_configuration(config.string(), hallpass::overrides{}, 1);
  CHECK_FALSE(r.config);
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].line > 0);
  CHECK(r.errors[0].message.find("not valid YAML") != std::string::npos);
}

// A running daemon's store, lock and pid file are open in the state directory it started with.
// A reload that took the file's new state_dir read the feeds and wrote the lists' record there
// while the store stayed behind, and said only "reloaded" (admin audit, 2026-12-05, F8).
TEST_CASE("a reload keeps the state directory the daemon started with, and says when the file names another") {
  hallpass_test::temp_dir dir("hallpass-config-load");
  const auto config = dir.path / "school.yaml";
  const std::string policy = [] {
    std::ifstream in(HALLPASS_SOURCE_DIR "/rules/school.yaml");
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }();
  const auto write = [&](const std::string& state_dir) {
    std::ofstream(config) << policy << "\nstate_dir: " << state_dir << "\n";
  };
  const auto said = [](const hallpass::config_load_result& r, const std::string& text) {
    for (const auto& w : r.warnings) {
      if (w.message.find(text) != std::string::npos) return true;
    }
    return false;
  };
  write("s1");
  hallpass::overrides o;
  o.serving = true;
  hallpass::config_store store(config.string(), o);
  const auto first = store.reload();
  REQUIRE(first.config);
  CHECK(first.config->daemon.state_dir == (dir.path / "s1").string());
  CHECK_FALSE(said(first, "state_dir is now"));
  write("s2");
  const auto second = store.reload();
  REQUIRE(second.config);
  CHECK(second.config->daemon.state_dir == (dir.path / "s1").string());
  CHECK(said(second, "state_dir is now " + (dir.path / "s2").string() +
                         " in the file: that takes effect at the next restart, and until then the store, the "
                         "feeds and the lock stay in " + (dir.path / "s1").string()));
  write("s1");
  const auto third = store.reload();
  REQUIRE(third.config);
  CHECK_FALSE(said(third, "state_dir is now"));
  // A state directory given on the command line is the one in force whatever the file says.
  hallpass::overrides given = o;
  given.state_dir = (dir.path / "cli").string();
  hallpass::config_store fixed(config.string(), given);
  REQUIRE(fixed.reload().config);
  write("s2");
  const auto again = fixed.reload();
  REQUIRE(again.config);
  CHECK(again.config->daemon.state_dir == (dir.path / "cli").string());
  CHECK_FALSE(said(again, "state_dir is now"));
}
