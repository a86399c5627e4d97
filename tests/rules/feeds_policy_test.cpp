// The policy's `feeds:` section and `feed: NAME/LIST` categories: typos are errors with their
// place, lists load from the feed's current version on disk, a missing feed is a warning
// (an error with feeds.required), and a locked feed locks its categories.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>
#include <fstream>

#include "rules/engine.hpp"
#include "rules/file_io.hpp"
#include "rules/explain.hpp"
#include "rules/policy_loader.hpp"

using namespace hallpass::rules;
namespace fs = std::filesystem;

namespace {

const std::string head = R"(school:
  name: S
  timetable:
    weekdays:
      - {name: Lesson 1, kind: lesson, from: "09:00", to: "10:00"}
)";  // 5 lines

const std::string roles = R"(roles:
  pupils:
    default: allow
    rules:
      - {action: block, categories: [gambling]}
)";

// A scratch state directory, removed at the end of the test.
struct state_dir {
  fs::path path;
  state_dir() {
    char tmpl[] = "/tmp/hallpass-feeds-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~state_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string feeds() const { return (path / "feeds").string(); }
  void write(const std::string& rel, const std::string& text) const {
    fs::create_directories((path / rel).parent_path());
    std::ofstream(path / rel) << text;
  }
};

// A policy whose one category takes the ut1 feed's gambling list.
const std::string one_ut1_list = head + R"(feeds:
  ut1: {url: "https://example.org/bl.tar.gz", format: ut1}
categories:
  gambling: {feed: ut1/gambling}
)" + roles;

load_result load(const std::string& yaml, const std::string& feeds_dir) {
  load_options o;
  o.feeds_dir = feeds_dir;
  return load_policy_text(yaml, "policy.yaml", o);
}

std::string all(const diagnostics& d) {
  std::string s;
  for (const auto& e : d) s += e.to_string() + "\n";
  return s;
}

bool blocked(const policy& p, std::string_view host) {
  request_facts f;
  f.role = "pupils";
  f.scheme = "http";
  f.host = host;
  f.path = "/";
  f.time = std::chrono::sys_seconds{std::chrono::seconds{1764676800}};
  return decide(p, f).act == action::block;
}

}  // namespace

TEST_CASE(
    "feeds: a typo in a feed's keys, an unknown format and an undefined feed are errors with their "
    "place") {
  auto r = load(head + R"(feeds:
  ut1:
    url: https://example.org/blacklists.tar.gz
    fromat: ut1
  iwf:
    url: https://example.org/iwf.txt
    format: lines
  odd: {url: "https://example.org/x", format: csv}
categories:
  gambling: {feed: ut2/gambling}
  other: {feed: iwf/urls}
)" + roles,
                "");
  REQUIRE_FALSE(r.ok());
  const auto text = all(r.errors);
  CHECK(text.find("policy.yaml:9:5: unknown key 'fromat' in feed 'ut1'; did you mean 'format'?") !=
        std::string::npos);
  CHECK(text.find("policy.yaml:7:3: feed 'ut1' has no format") != std::string::npos);
  CHECK(text.find("policy.yaml:13:47: feed 'odd' format must be 'ut1' or 'lines', not 'csv'") !=
        std::string::npos);
  CHECK(text.find("policy.yaml:15:20: category 'gambling' names feed 'ut2', which the feeds "
                  "section does not define; "
                  "did you mean 'ut1'?") != std::string::npos);
  CHECK(text.find("policy.yaml:16:17: feed 'iwf' is a 'lines' feed: its one list is 'iwf/list'") !=
        std::string::npos);
}

TEST_CASE("feeds: a category loads its list from STATE_DIR/feeds/NAME/current") {
  state_dir s;
  s.write("feeds/ut1/current/blacklists/gambling/domains", "bet.example\ncasino.example\n");
  s.write("feeds/ut1/current/blacklists/gambling/urls", "games.example/poker\n");
  s.write("feeds/ut1/current/feed.info", "fetched_at: 1764676800\n");
  const std::string yaml = head + R"(feeds:
  ut1: {url: "https://example.org/bl.tar.gz", format: ut1}
categories:
  gambling: {feed: ut1/gambling}
  betting: {feed: ut1/gambling}
)" + roles;
  auto r = load(yaml, s.feeds());
  REQUIRE_MESSAGE(r.ok(), all(r.errors));
  CHECK(r.warnings.empty());
  CHECK(blocked(*r.compiled, "www.bet.example"));
  CHECK_FALSE(blocked(*r.compiled, "example.org"));
  const auto& f = r.compiled->feeds.at(0);
  CHECK(f.present);
  CHECK(f.fetched_at == 1764676800);
  REQUIRE(f.lists.size() == 1);  // once, though two categories use it
  CHECK(f.lists[0] == std::pair<std::string, std::size_t>{"gambling", 3});
  const auto summary =
      feeds_summary(*r.compiled, std::chrono::sys_seconds{std::chrono::seconds{1764676800 + 7200}});
  CHECK(summary.find("ut1 (ut1): fetched 2025-12-02 12:00 GMT") != std::string::npos);  // school time (the default zone)
  CHECK(summary.find("ut1/gambling: 3 entries") != std::string::npos);

  SUBCASE(
      "the same policy without the feed: a warning naming the feed and its categories; the rest "
      "serves") {
    auto m = load(yaml, (s.path / "elsewhere").string());
    REQUIRE_MESSAGE(m.ok(), all(m.errors));
    REQUIRE(m.warnings.size() == 1);
    CHECK(m.warnings[0].line == 7);
    CHECK(m.warnings[0].message.find("feed 'ut1' is missing") != std::string::npos);
    CHECK(m.warnings[0].message.find("categories gambling, betting block nothing") !=
          std::string::npos);
    CHECK_FALSE(blocked(*m.compiled, "bet.example"));
  }
  SUBCASE("feeds.required: a missing feed is an error") {
    auto m = load(head + "feeds:\n  required: true\n" + yaml.substr(head.size() + 7),
                  (s.path / "elsewhere").string());
    REQUIRE_FALSE(m.ok());
    CHECK(all(m.errors).find("feeds.required is true") != std::string::npos);
  }
}

TEST_CASE("feeds: feed.info is not read through a symbolic link, as the lists are not") {
  state_dir s;
  s.write("feeds/ut1/current/blacklists/gambling/domains", "bet.example\n");
  s.write("elsewhere/info", "fetched_at: 1764676800\n");
  fs::create_symlink(s.path / "elsewhere/info", s.path / "feeds/ut1/current/feed.info");
  auto r = load(one_ut1_list, s.feeds());
  REQUIRE_MESSAGE(r.ok(), all(r.errors));
  CHECK(r.compiled->feeds.at(0).present);
  CHECK_FALSE(r.compiled->feeds.at(0).fetched_at.has_value());
  CHECK(blocked(*r.compiled, "bet.example"));
}

TEST_CASE("feeds: a repeated entry, however spelled, is loaded once and counted once in its category") {
  // check's and explain's category counts counted lines (review, 2026-12-05). A list's own
  // count stays its valid entries as read: the emptied-list checks compare it with 0.
  state_dir s;
  s.write("feeds/ut1/current/blacklists/gambling/domains",
          "bet.example\nBET.example.\nbet.example # again\ncasino.example\n");
  s.write("feeds/ut1/current/blacklists/gambling/urls",
          "games.example/poker\ngames.example/poker\nhttp://Games.example/poker\ngames.example/dice\n");
  const std::string yaml = head + R"(feeds:
  ut1: {url: "https://example.org/bl.tar.gz", format: ut1}
categories:
  gambling: {domains: [casino.example], feed: ut1/gambling}
)" + roles;
  auto r = load(yaml, s.feeds());
  REQUIRE_MESSAGE(r.ok(), all(r.errors));
  const auto* c = r.compiled->find_category("gambling");
  REQUIRE(c);
  CHECK(c->domain_count == 2);  // casino.example once, from the inline list that had it first
  CHECK(c->url_count == 2);
  const auto& f = r.compiled->feeds.at(0);
  REQUIRE(f.lists.size() == 1);
  CHECK(f.lists[0] == std::pair<std::string, std::size_t>{"gambling", 8});  // as read
  const auto& prefixes = r.compiled->url_prefixes.at("games.example");
  CHECK(prefixes.size() == 2);  // each URL entry once in memory
  CHECK(blocked(*r.compiled, "bet.example"));
}

TEST_CASE("a list that only repeats an earlier source of its category is not an empty list") {
  // Counted by what was new to the category, a domain file that repeated the inline list (or a
  // feed list that repeated the same UT1 category while a school moves to feeds) was "empty":
  // an error for a locked category, and a reload refused as having emptied it (review,
  // 2026-12-05).
  state_dir s;
  s.write("lists/same.txt", "bet.example\ncasino.example\n");
  const std::string yaml = head + "categories:\n  gambling: {domains: [bet.example, casino.example], domain_files: [\"" +
                           (s.path / "lists/same.txt").string() + "\"], locked: true}\n" + roles;
  auto r = load(yaml, s.feeds());
  REQUIRE_MESSAGE(r.ok(), all(r.errors));
  CHECK(r.warnings.empty());
  const auto* c = r.compiled->find_category("gambling");
  REQUIRE(c);
  CHECK(c->domain_count == 2);
  REQUIRE(c->sources.size() == 1);
  CHECK(c->sources[0].entries == 2);
}


TEST_CASE("feeds: a locked lines feed locks its category, and empty it is an error") {
  state_dir s;
  s.write("feeds/iwf/current/list", "abuse.example\nhost.example/bad/page\n");
  const std::string yaml = head + R"(feeds:
  iwf: {url: "https://example.org/iwf.txt", format: lines, locked: true}
categories:
  illegal: {feed: iwf/list}
  gambling: {domains: [bet.example]}
roles:
  pupils:
    default: allow
    rules:
      - {action: block, categories: [gambling]}
)";
  auto r = load(yaml, s.feeds());
  REQUIRE_MESSAGE(r.ok(), all(r.errors));
  const auto* c = r.compiled->find_category("illegal");
  REQUIRE(c);
  CHECK(c->locked);
  CHECK(c->domain_count == 1);
  CHECK(c->url_count == 1);
  CHECK(blocked(*r.compiled, "abuse.example"));
  // An allow rule naming it is refused, as for any locked category.
  auto allow = load(yaml + "      - {action: allow, categories: [illegal]}\n", s.feeds());
  CHECK_FALSE(allow.ok());

  s.write("feeds/iwf/current/list", "# nothing today\n");
  auto empty = load(yaml, s.feeds());
  REQUIRE_FALSE(empty.ok());
  CHECK(all(empty.errors).find("is locked") != std::string::npos);
}

TEST_CASE("list lines: one classifier for the loader and feeds update, comments and blanks are no entries") {
  auto kind_of = [](std::string_view raw, list_file_kind k) { return classify_list_line(raw, k).kind; };
  CHECK(kind_of("   # a comment", list_file_kind::domains) == list_line_kind::blank);
  CHECK(kind_of("", list_file_kind::urls) == list_line_kind::blank);
  CHECK(classify_list_line("  example.org  # added 2026", list_file_kind::domains).text == "example.org");
  CHECK(kind_of("example.org", list_file_kind::urls) == list_line_kind::url);
  CHECK(kind_of("example.org/games", list_file_kind::mixed) == list_line_kind::url);
  CHECK(kind_of("https://example.org", list_file_kind::mixed) == list_line_kind::domain);
  CHECK(kind_of("example.org/games", list_file_kind::domains) == list_line_kind::domain);

  CHECK(list_entry(classify_list_line("example.org # ok", list_file_kind::domains)).has_value());
  CHECK(list_entry(classify_list_line("EXAMPLE.org.", list_file_kind::domains)).has_value());
  CHECK(list_entry(classify_list_line("example.org/games", list_file_kind::urls)).has_value());
  CHECK_FALSE(list_entry(classify_list_line("# example.org", list_file_kind::domains)).has_value());
  CHECK_FALSE(list_entry(classify_list_line("<html><body>Sign in to the Wi-Fi</body></html>", list_file_kind::domains)).has_value());
  CHECK_FALSE(list_entry(classify_list_line("<title>Portal</title>", list_file_kind::mixed)).has_value());
  // An address range is no entry (it was a page /24 of its first address): outside-in audit
  // of the feeds, 2026-12-06, L4. An address's page is.
  CHECK_FALSE(list_entry(classify_list_line("192.0.2.0/24", list_file_kind::mixed)).has_value());
  CHECK_FALSE(list_entry(classify_list_line("2001:db8::/32", list_file_kind::urls)).has_value());
  CHECK(list_entry(classify_list_line("192.0.2.7/index", list_file_kind::mixed)).has_value());
  // Not a range as one is written (a prefix the family cannot have, or address bits after it):
  // UT1's malware list has such pages (explain audit, 2026-12-07, F8).
  CHECK(list_entry(classify_list_line("107.172.238.16/42", list_file_kind::urls)) == "107.172.238.16/42");
  CHECK(list_entry(classify_list_line("107.172.238.16/8", list_file_kind::urls)) == "107.172.238.16/8");
  CHECK_FALSE(list_entry(classify_list_line("107.0.0.0/8", list_file_kind::urls)).has_value());
  CHECK(list_entry(classify_list_line("192.0.2.7", list_file_kind::mixed)).has_value());
}

TEST_CASE("feeds: a feed's list that is a symbolic link or not a regular file is refused, never read") {
  // The feeds directory is the daemon user's, and the policy is first loaded as root: a link
  // there must not make root read another file (its lines would be quoted in the warnings),
  // nor a FIFO hang the start.
  state_dir s;
  s.write("secret", "root:$y$hash:19000:0:99999:7:::\n");
  s.write("feeds/ut1/current/feed.info", "fetched_at: 1764676800\n");
  fs::create_directories(s.path / "feeds/ut1/current/blacklists/gambling");
  fs::create_symlink(s.path / "secret", s.path / "feeds/ut1/current/blacklists/gambling/domains");
  auto r = load(one_ut1_list, s.feeds());
  CHECK_FALSE(r.ok());
  CHECK(all(r.errors).find("is a symbolic link") != std::string::npos);
  CHECK(all(r.errors).find("$y$hash") == std::string::npos);
  CHECK(all(r.warnings).find("$y$hash") == std::string::npos);

  fs::remove(s.path / "feeds/ut1/current/blacklists/gambling/domains");
  REQUIRE(::mkfifo((s.path / "feeds/ut1/current/blacklists/gambling/domains").c_str(), 0600) == 0);
  r = load(one_ut1_list, s.feeds());  // returns: a FIFO is not read
  CHECK_FALSE(r.ok());
  CHECK(all(r.errors).find("is not a regular file") != std::string::npos);
}

TEST_CASE("a list followed through a link to a device or a FIFO is refused without being opened for reading") {
  // The school's own lists are read through links (its choice); what a link leads to is
  // checked before anything is opened for reading (O_PATH, then fstat): a device's open can
  // have effects (a watchdog starts), a FIFO's waits for a writer.
  state_dir s;
  s.write("real.txt", "listed.example\n");
  fs::create_symlink(s.path / "real.txt", s.path / "to-real");
  fs::create_symlink("/dev/null", s.path / "to-device");
  REQUIRE(::mkfifo((s.path / "fifo").c_str(), 0600) == 0);
  fs::create_symlink(s.path / "fifo", s.path / "to-fifo");
  std::string error;
  auto text = read_regular_file((s.path / "to-real").string(), &error);
  REQUIRE_MESSAGE(text, error);
  CHECK(*text == "listed.example\n");
  CHECK_FALSE(read_regular_file((s.path / "to-device").string(), &error));
  CHECK(error == "is not a regular file");
  // A writer waiting on the FIFO is not let through: nothing opened it for reading (an open
  // for reading, even one closed at once, would have released the writer's open).
  std::atomic<bool> writer_opened{false};
  std::thread writer([&] {
    const int fd = ::open((s.path / "fifo").c_str(), O_WRONLY | O_CLOEXEC);  // waits for a reader
    writer_opened = true;
    if (fd >= 0) ::close(fd);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the writer is waiting in its open
  CHECK_FALSE(read_regular_file((s.path / "to-fifo").string(), &error));
  CHECK(error == "is not a regular file");
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  CHECK_FALSE(writer_opened.load());
  const int reader = ::open((s.path / "fifo").c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);  // lets the writer go
  writer.join();
  if (reader >= 0) ::close(reader);
  CHECK(writer_opened.load());
  CHECK_FALSE(read_regular_file(s.path.string(), &error));
  CHECK(error == "is a directory");
  CHECK_FALSE(read_regular_file((s.path / "to-real").string(), &error, false));
  CHECK(error == "is a symbolic link");
  CHECK_FALSE(read_regular_file((s.path / "missing").string(), &error));
  CHECK(error == "does not exist");
}

TEST_CASE("feeds: an emptied feed list stops a reload, unless the feed may be empty (min_entries: 0)") {
  state_dir s;
  s.write("feeds/ut1/current/blacklists/gambling/domains", "bet.example\n");
  s.write("feeds/ut1/current/feed.info", "fetched_at: 1764676800\n");
  const auto yaml = [&](const char* extra) {
    return head + "feeds:\n  ut1: {url: \"https://example.org/bl.tar.gz\", format: ut1" + extra +
           "}\ncategories:\n  gambling: {feed: ut1/gambling}\n" + roles;
  };
  for (const char* extra : {"", ", min_entries: 0"}) {
    CAPTURE(extra);
    s.write("feeds/ut1/current/blacklists/gambling/domains", "bet.example\n");
    const auto before = load(yaml(extra), s.feeds());
    REQUIRE_MESSAGE(before.ok(), all(before.errors));
    s.write("feeds/ut1/current/blacklists/gambling/domains", "");
    const auto after = load(yaml(extra), s.feeds());
    REQUIRE_MESSAGE(after.ok(), all(after.errors));
    const auto found = emptied_sources(*before.compiled, *after.compiled);
    if (std::string_view(extra).empty()) {
      REQUIRE(found.size() == 1);
      CHECK(found[0].find("feed:ut1/gambling had 1 entries in the policy in force and has none now") !=
            std::string::npos);
    } else {
      CHECK(found.empty());
    }
  }
}

TEST_CASE("feeds: a feed's entry for a top-level domain or a registry's suffix is left out, with a warning") {
  // A line `com` in a downloaded list blocked every .com site, and in a circumvention list
  // banned every device (outside-in audit of the feeds, 2026-12-06, H2).
  state_dir s;
  s.write("feeds/ut1/current/blacklists/gambling/domains", "bet.example\ncom\nCO.UK.\nbet.co.uk\n");
  s.write("feeds/ut1/current/blacklists/gambling/urls", "com/\nuk/some/page\n");
  load_options o;
  o.feeds_dir = s.feeds();
  o.is_registry_suffix = [](std::string_view h) { return h.find('.') == std::string_view::npos || h == "co.uk"; };
  auto r = load_policy_text(one_ut1_list, "policy.yaml", o);
  REQUIRE_MESSAGE(r.ok(), all(r.errors));
  CHECK(blocked(*r.compiled, "bet.example"));
  CHECK(blocked(*r.compiled, "www.bet.co.uk"));
  CHECK_FALSE(blocked(*r.compiled, "anything.com"));
  CHECK_FALSE(blocked(*r.compiled, "bbc.co.uk"));
  const auto w = all(r.warnings);
  CHECK(w.find("left out: 'com' is a top-level domain or a registry's suffix") != std::string::npos);
  CHECK(w.find("left out: 'co.uk'") != std::string::npos);
  // A URL entry of a page under one is a page, not the suffix: kept.
  CHECK(w.find("'uk'") == std::string::npos);
  CHECK(r.compiled->feeds.at(0).lists.at(0).second == 3);  // bet.example, bet.co.uk, uk/some/page
  // The school's own list may block one (its choice).
  auto own = load_policy_text(head + R"(categories:
  gambling: {domains: [com]}
)" + roles, "policy.yaml", o);
  REQUIRE_MESSAGE(own.ok(), all(own.errors));
  CHECK(blocked(*own.compiled, "anything.com"));
}

TEST_CASE("feeds: a feed the loader cannot read is an error, not a missing feed that blocks nothing") {
  // Read as missing, every category of the feed, a locked one too, blocked nothing (outside-in
  // audit of the feeds, 2026-12-06, H1: EACCES; a link that loops stands in for it as root).
  state_dir s;
  fs::create_directories(s.path / "feeds" / "ut1");
  fs::create_symlink("current", s.path / "feeds" / "ut1" / "current");
  auto r = load(one_ut1_list, s.feeds());
  REQUIRE_FALSE(r.ok());
  CHECK(all(r.errors).find("cannot be read") != std::string::npos);
  CHECK(all(r.errors).find("hallpass feeds update` once as root") != std::string::npos);
  // A list's own path likewise.
  fs::remove(s.path / "feeds" / "ut1" / "current");
  s.write("feeds/ut1/current/blacklists/other/domains", "x.example\n");
  fs::create_symlink("gambling", s.path / "feeds" / "ut1" / "current" / "blacklists" / "gambling");
  auto l = load(one_ut1_list, s.feeds());
  REQUIRE_FALSE(l.ok());
  CHECK(all(l.errors).find("feed list ut1/gambling") != std::string::npos);
  CHECK(all(l.errors).find("cannot be read") != std::string::npos);
}
