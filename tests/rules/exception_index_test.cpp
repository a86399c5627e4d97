// The exception index: URL-prefix exceptions and local entries match on a path-segment
// boundary (a block of /a leaves /admin open), while the policy's own URL prefixes stay plain.
#include <doctest/doctest.h>

#include <tuple>
#include <utility>

#include "rules/decision.hpp"
#include "rules/exception_index.hpp"
#include "tests/rules/policy_fixture.hpp"

using namespace hallpass::rules;

namespace {

const std::string open_policy = std::string(test::timetable_yaml) + R"(
categories:
  games: {urls: ["plain.example/a"]}
roles:
  pupils:
    networks: [10.10.0.0/16]
    default: allow
    rules:
      - {action: block, categories: [games]}
      - {action: block, domains: [shut.example]}
)";

target prefix(const std::string& url) {
  std::string err;
  auto t = make_target(url, target_kind::prefix, &err);
  REQUIRE_MESSAGE(t, err);
  return *t;
}

// The facts of a pupil's GET of `url` at a lesson time (they view `url`: keep it alive).
request_facts pupil_get(const policy& p, const std::string& url) {
  auto parts = split_url(url, nullptr);
  REQUIRE(parts);
  request_facts f;
  f.role = "pupils";
  f.method = "GET";
  f.scheme = parts->scheme;
  f.host = parts->host;
  f.path = parts->path;
  f.time = p.zone.to_sys(*parse_local_time("2026-11-23 09:00"));
  return f;
}

// Decides url for a pupil at a lesson time, then overlays idx.
verdict decide_with(const policy& p, const exception_index& idx, const std::string& url) {
  auto v = test::ask{p, "pupils", ""}.at("2026-11-23 09:00", url);
  idx.apply(v, pupil_get(p, url));
  return v;
}

// An exception for pupils over target, in force from 08:00 to 15:00 on the test day.
exception_entry pupils_exception(const policy& p, std::int64_t id, const std::string& url) {
  exception_entry e;
  e.id = id;
  e.roles = {"pupils"};
  e.target = prefix(url);
  e.from = p.zone.to_sys(*parse_local_time("2026-11-23 08:00"));
  e.until = p.zone.to_sys(*parse_local_time("2026-11-23 15:00"));
  return e;
}

}  // namespace

TEST_CASE("a path prefix matches on a segment boundary") {
  CHECK(path_prefix_matches("/a", "/a"));
  CHECK(path_prefix_matches("/a", "/a/"));
  CHECK(path_prefix_matches("/a", "/a/b/c"));
  CHECK(path_prefix_matches("/a", "/a?x=1"));
  CHECK_FALSE(path_prefix_matches("/a", "/admin"));
  CHECK_FALSE(path_prefix_matches("/a", "/a.html"));
  CHECK_FALSE(path_prefix_matches("/a", "/"));
  CHECK(path_prefix_matches("/a/", "/a/"));
  CHECK(path_prefix_matches("/a/", "/a/anything"));
  CHECK_FALSE(path_prefix_matches("/a/", "/a"));
  CHECK(path_prefix_matches("/", "/anything"));
  CHECK(path_prefix_matches("/a?x=1", "/a?x=1"));
  CHECK(path_prefix_matches("/a?x=1", "/a?x=1&y=2"));
  CHECK_FALSE(path_prefix_matches("/a?x=1", "/a?x=10"));
  CHECK(path_prefix_matches("/a?", "/a?x=10"));
}

TEST_CASE("a path prefix ends at path parameters too") {
  CHECK(path_prefix_matches("/a", "/a;jsessionid=1"));
  CHECK(path_prefix_matches("/a", "/a;x/b"));
  CHECK_FALSE(path_prefix_matches("/a", "/ab;x"));
}

TEST_CASE("a reported page is the same page however it is asked for") {
  CHECK(same_page("/bad/page", "/bad/page"));
  CHECK(same_page("/bad/page", "/bad/page?x=1"));
  CHECK(same_page("/bad/page", "/bad/page/"));
  CHECK(same_page("/bad/page", "/bad/page/?x=1"));
  CHECK(same_page("/bad/page", "/bad/page;x"));
  CHECK(same_page("/bad/page", "/bad;v=2/page;jsessionid=1?y"));
  CHECK(same_page("/bad/page", "/BAD/Page"));
  // Parameters out before dot segments, as Tomcat and Jetty read "..;": /x/..;/bad/page is /bad/page.
  CHECK(same_page("/bad/page", "/x/..;/bad/page"));
  CHECK(same_page("/bad/page", "/x/..;jsessionid=1/bad/page?y"));
  CHECK(same_page("/bad/page/", "/bad/page"));
  CHECK(same_page("/", "/?utm=1"));
  CHECK_FALSE(same_page("/bad/page", "/bad/page/other"));
  CHECK_FALSE(same_page("/bad/page", "/bad/pages"));
  CHECK_FALSE(same_page("/bad/page", "/bad"));
  CHECK_FALSE(same_page("/bad/page", "/"));
  // An entry with a query: its parameters, in any order, among others.
  CHECK(same_page("/watch?v=abc", "/watch?v=abc"));
  CHECK(same_page("/watch?v=abc", "/watch?t=10&v=abc"));
  CHECK(same_page("/watch?v=abc&list=1", "/watch?list=1&x&v=abc"));
  CHECK_FALSE(same_page("/watch?v=abc", "/watch?v=abcd"));
  CHECK_FALSE(same_page("/watch?v=abc", "/watch"));
  CHECK_FALSE(same_page("/watch?v=abc", "/watch?xv=abc"));
  CHECK_FALSE(same_page("/watch?v=abc&list=1", "/watch?v=abc"));
  // As other servers read the same page (audit of ways round the filter, 2026-12-06, F2): a
  // query split at ';' too, parameter names without case (ASP.NET), and file names as Windows
  // reads them (trailing dots and spaces, an NTFS stream name).
  CHECK(same_page("/watch?v=abc", "/watch?v=abc;"));
  CHECK(same_page("/watch?v=abc", "/watch?;v=abc"));
  CHECK(same_page("/watch?v=abc", "/watch?x=1;v=abc"));
  CHECK(same_page("/watch?v=abc", "/watch?V=abc"));
  CHECK_FALSE(same_page("/watch?v=abc", "/watch?v=ABC"));
  CHECK_FALSE(same_page("/watch?v=abc", "/watch?v=abc%3B"));
  CHECK(same_page("/watch?v=abc", "/watch.?v=abc"));
  CHECK(same_page("/bad/page", "/bad/page."));
  CHECK(same_page("/bad/page", "/bad/page%20"));
  CHECK(same_page("/bad/page", "/bad/page. ."));
  CHECK(same_page("/bad/page", "/bad./page::$DATA"));
  CHECK(same_page("/bad/page", "/bad/page::$data"));
  CHECK(same_page("/bad/page", "/bad/page%3A%3A$DATA"));
  CHECK(same_page("/bad/page", "/bad/page::%24data"));
  CHECK(same_page("/bad/page", "/bad/page%3a%3a%24DATA"));
  CHECK_FALSE(same_page("/bad/page", "/bad/page.html"));
  CHECK_FALSE(same_page("/bad/page", "/bad/pag"));
}

TEST_CASE("windows_reads_differently says when the Windows reading can change a path") {
  for (const char* p : {"/a.", "/a./b", "/a ", "/a%20", "/a$b", "/a%24", "/a%3Ab", "/a%3ab"}) {
    INFO(p);
    CHECK(windows_reads_differently(p));
  }
  for (const char* p : {"/", "/a/b", "/a.b/c", "/a%2Fb", "/index.html", "/a%200x"}) {
    INFO(p);
    CHECK_FALSE(windows_reads_differently(p));
    CHECK(path_as_windows_reads_it(p) == p);
  }
}

TEST_CASE("a prefix block holds against file names as Windows reads them") {
  auto p = test::load_yaml(open_policy);
  auto t = make_target("http://open.example/secret", target_kind::prefix, nullptr);
  REQUIRE(t);
  auto idx = exception_index::build({}, {local_entry{1, true, *t, "reported"}});
  for (const char* url : {"http://open.example/secret", "http://open.example/secret.", "http://open.example/secret%2e",
                          "http://open.example/secret%20", "http://open.example/secret::$DATA/x",
                          "http://open.example/Secret./x?y", "http://open.example/secret;a./b",
                          "http://open.example/secret%3A%3A$DATA", "http://open.example/secret::%24DATA/x"}) {
    INFO(url);
    CHECK(decide_with(*p, *idx, url).act == action::block);
  }
  CHECK(decide_with(*p, *idx, "http://open.example/secrets").act == action::allow);
  CHECK(decide_with(*p, *idx, "http://open.example/secret.txt").act == action::allow);
  // An entry written with a Windows spelling blocks the plain one too.
  auto dotted = make_target("http://open.example/Ltd./accounts", target_kind::prefix, nullptr);
  REQUIRE(dotted);
  auto idx2 = exception_index::build({}, {local_entry{2, true, *dotted, "reported"}});
  CHECK(decide_with(*p, *idx2, "http://open.example/Ltd/accounts").act == action::block);
  CHECK(decide_with(*p, *idx2, "http://open.example/ltd./accounts/2026").act == action::block);
  CHECK(decide_with(*p, *idx2, "http://open.example/Ltd/account").act == action::allow);
  // An allow or an exception by prefix is not widened: it opens what it names.
  auto e = pupils_exception(*p, 7, "http://shut.example/good");
  e.target = *make_target("http://shut.example/good", target_kind::prefix, nullptr);
  auto open = exception_index::build({e}, {});
  CHECK(decide_with(*p, *open, "http://shut.example/good/x").act == action::allow);
  CHECK(decide_with(*p, *open, "http://shut.example/good./x").act == action::block);
}

TEST_CASE("a reported page's url block holds against another spelling, a url exception stays exact") {
  auto p = test::load_yaml(open_policy);
  auto t = make_target("http://open.example/bad/page", target_kind::url, nullptr);
  REQUIRE(t);
  auto idx = exception_index::build({}, {local_entry{1, true, *t, "reported"}});
  for (const char* url : {"http://open.example/bad/page", "http://open.example/bad/page?x=1",
                          "http://open.example/bad/page/", "http://open.example/bad/page;x",
                          "http://open.example/bad/%70age", "http://open.example//bad/page",
                          "http://open.example/bad%2Fpage", "http://open.example/%2fbad/page"}) {
    INFO(url);
    CHECK(decide_with(*p, *idx, url).act == action::block);
  }
  CHECK(decide_with(*p, *idx, "http://open.example/bad/page2").act == action::allow);
  CHECK(decide_with(*p, *idx, "http://open.example/bad").act == action::allow);

  auto e = pupils_exception(*p, 7, "http://shut.example/good/page");
  e.target = *make_target("http://shut.example/good/page", target_kind::url, nullptr);
  auto open = exception_index::build({e}, {});
  CHECK(decide_with(*p, *open, "http://shut.example/good/page").act == action::allow);
  CHECK(decide_with(*p, *open, "http://shut.example/good/page?x=1").act == action::block);
}

TEST_CASE("a url exception written without path parameters opens the page with them, nothing wider") {
  // The request form stores a page without its path parameters (session tokens): the
  // headteacher's approval of what it stored opens the page the pupil asked for.
  auto p = test::load_yaml(open_policy);
  auto e = pupils_exception(*p, 7, "http://shut.example/app/page");
  e.target = *make_target("http://shut.example/app/page", target_kind::url, nullptr);
  auto open = exception_index::build({e}, {});
  for (const char* url : {"http://shut.example/app/page", "http://shut.example/app/page;jsessionid=ABC",
                          "http://shut.example/app;v=2/page;jsessionid=ABC"}) {
    INFO(url);
    CHECK(decide_with(*p, *open, url).act == action::allow);
  }
  for (const char* url : {"http://shut.example/app/page;jsessionid=ABC?x=1", "http://shut.example/app/page2;x",
                          "http://shut.example/app/Page;x", "http://shut.example/app/page/;x",
                          "http://shut.example/app/page/more;x", "http://shut.example/app;x"}) {
    INFO(url);
    CHECK(decide_with(*p, *open, url).act == action::block);
  }
  // One written with parameters stays exact.
  e.target = *make_target("http://shut.example/app/page;v=1", target_kind::url, nullptr);
  auto exact = exception_index::build({e}, {});
  CHECK(decide_with(*p, *exact, "http://shut.example/app/page;v=1").act == action::allow);
  CHECK(decide_with(*p, *exact, "http://shut.example/app/page;v=2").act == action::block);
  CHECK(decide_with(*p, *exact, "http://shut.example/app/page").act == action::block);
}

TEST_CASE("a local block of /a blocks /a and under it, never /admin") {
  auto p = test::load_yaml(open_policy);
  auto idx = exception_index::build({}, {local_entry{1, true, prefix("http://open.example/a"), "reported"}});
  CHECK(decide_with(*p, *idx, "http://open.example/a").act == action::block);
  CHECK(decide_with(*p, *idx, "http://open.example/a/page").act == action::block);
  CHECK(decide_with(*p, *idx, "http://open.example/a?q=1").act == action::block);
  CHECK(decide_with(*p, *idx, "http://open.example/%61/page").act == action::block);
  CHECK(decide_with(*p, *idx, "http://open.example/x/..;/a/page").act == action::block);  // Tomcat's /a/page
  CHECK(decide_with(*p, *idx, "http://open.example/x/..;y=1/a").act == action::block);
  CHECK(decide_with(*p, *idx, "http://open.example/admin").act == action::allow);
  CHECK(decide_with(*p, *idx, "http://open.example/x/..;/admin").act == action::allow);
  CHECK(decide_with(*p, *idx, "http://open.example/ab").act == action::allow);
}

TEST_CASE("a local block of a prefix holds against the path's case, not the query's") {
  CHECK(path_prefix_matches("/Videos", "/videos/1", true));
  CHECK(path_prefix_matches("/videos", "/VIDEOS", true));
  CHECK_FALSE(path_prefix_matches("/Videos", "/videos/1"));  // exceptions stay exact
  CHECK_FALSE(path_prefix_matches("/videos", "/videosx", true));
  CHECK(path_prefix_matches("/Watch?v=abc", "/watch?v=abc&t=1", true));
  CHECK_FALSE(path_prefix_matches("/watch?v=abc", "/watch?v=ABC", true));
  auto p = test::load_yaml(open_policy);
  auto idx = exception_index::build({}, {local_entry{1, true, prefix("http://open.example/Videos"), "reported"}});
  CHECK(decide_with(*p, *idx, "http://open.example/videos/1").act == action::block);
  CHECK(decide_with(*p, *idx, "http://open.example/VIDEOS").act == action::block);
  CHECK(decide_with(*p, *idx, "http://open.example/videos2").act == action::allow);
  auto opened = exception_index::build({pupils_exception(*p, 9, "http://shut.example/Videos")}, {});
  CHECK(decide_with(*p, *opened, "http://shut.example/Videos/1").act == action::allow);
  CHECK(decide_with(*p, *opened, "http://shut.example/videos/1").act == action::block);
}

TEST_CASE("an exception for /a opens /a and under it, never /admin") {
  auto p = test::load_yaml(open_policy);
  auto idx = exception_index::build({pupils_exception(*p, 7, "http://shut.example/a")}, {});
  CHECK(decide_with(*p, *idx, "http://shut.example/a").act == action::allow);
  CHECK(decide_with(*p, *idx, "http://shut.example/a/b").act == action::allow);
  CHECK(decide_with(*p, *idx, "http://shut.example/admin").act == action::block);
  CHECK(decide_with(*p, *idx, "http://shut.example/").act == action::block);
}

TEST_CASE("an exception for /a/ opens everything under it but not /a itself") {
  auto p = test::load_yaml(open_policy);
  auto idx = exception_index::build({pupils_exception(*p, 8, "http://shut.example/a/")}, {});
  CHECK(decide_with(*p, *idx, "http://shut.example/a/x").act == action::allow);
  CHECK(decide_with(*p, *idx, "http://shut.example/a").act == action::block);
}

TEST_CASE("the policy's own URL prefixes stay plain prefixes, as UT1 lists are written") {
  auto p = test::load_yaml(open_policy);
  CHECK_FALSE(test::ask{*p, "pupils", ""}.allowed("2026-11-23 09:00", "http://plain.example/a"));
  CHECK_FALSE(test::ask{*p, "pupils", ""}.allowed("2026-11-23 09:00", "http://plain.example/admin"));
  CHECK(test::ask{*p, "pupils", ""}.allowed("2026-11-23 09:00", "http://plain.example/b"));
}

TEST_CASE("the longest exception: max_duration, else the end of term, else 90 days") {
  const std::string terms = std::string(test::timetable_yaml) + R"(
  terms:
    - {name: Autumn 2026, from: 2026-09-02, to: 2026-12-18}
    - {name: Spring 2027, from: 2027-01-05, to: 2027-03-26}
roles:
  pupils: {default: allow}
)";
  auto p = test::load_yaml(terms);
  auto at = [&](const char* local) { return p->zone.to_sys(*parse_local_time(local)); };
  // In term: the local midnight after its last day.
  auto in_term = max_exception_until(*p, at("2026-11-23 09:00"));
  CHECK(in_term.until == at("2026-12-19 00:00"));
  CHECK(in_term.description == "the end of term 'Autumn 2026'");
  // On the last day, and between terms: that term, then the next one.
  CHECK(max_exception_until(*p, at("2026-12-18 23:59")).until == at("2026-12-19 00:00"));
  CHECK(max_exception_until(*p, at("2026-12-25 12:00")).until == at("2027-03-27 00:00"));
  // After the last term: 90 days.
  CHECK(max_exception_until(*p, at("2027-06-01 12:00")).until == at("2027-06-01 12:00") + std::chrono::days(90));

  auto no_terms = test::load_yaml(std::string(test::timetable_yaml) + "roles: {pupils: {default: allow}}\n");
  const auto now = at("2026-11-23 09:00");
  CHECK(max_exception_until(*no_terms, now).until == now + std::chrono::days(90));

  auto set = test::load_yaml(terms + "exceptions: {max_duration: 14d}\n");
  auto fixed = max_exception_until(*set, now);
  CHECK(fixed.until == now + std::chrono::days(14));
  CHECK(fixed.description == "exceptions.max_duration (14d)");
}

TEST_CASE("a URL's scheme is read without case, as the proxy reads it") {
  for (const char* url : {"HTTP://Shut.Example/a", "Http://shut.example/a", "HTTPS://shut.example/a"}) {
    INFO(url);
    auto parts = split_url(url, nullptr);
    REQUIRE(parts);
    CHECK((parts->scheme == "http" || parts->scheme == "https"));
    CHECK(make_target(url, target_kind::url, nullptr));
  }
  std::string error;
  CHECK_FALSE(split_url("FTP://x.example/", &error));
  CHECK(error.find("'FTP'") != std::string::npos);
}

TEST_CASE("a URL with a scheme other than http(s) and no // is refused naming its scheme") {
  // "javascript:alert(1)" was refused as "the URL's port 'alert(1)' is not a number", and
  // "mailto:a@b.test" was stored as b.test (its "mailto:a@" read as user information), which
  // approve then made a domain exception for (admin audit, 2026-12-05, F10).
  for (auto [url, scheme] : {std::pair{"javascript:alert(1)", "javascript"}, std::pair{"data:text/html,<b>x</b>", "data"},
                             std::pair{"mailto:a@b.test", "mailto"}, std::pair{"JavaScript:void(0)", "JavaScript"},
                             std::pair{"tel:+441234", "tel"}, std::pair{"about:blank", "about"}}) {
    INFO(url);
    std::string error;
    CHECK_FALSE(split_url(url, &error));
    CHECK(error == "the URL scheme '" + std::string(scheme) + "' is not http, https, ws or wss");
    CHECK_FALSE(make_target(url, target_kind::domain, &error));
  }
  // A host and its port, or a host alone, are no scheme: read as http, as before.
  for (auto [url, host, port] : {std::tuple{"x.test/page", "x.test", 0}, std::tuple{"x.test:8080/page", "x.test", 8080},
                                 std::tuple{"localhost:8080", "localhost", 8080}, std::tuple{"10.0.0.1:81/a", "10.0.0.1", 81},
                                 std::tuple{"[::1]:8080/", "[::1]", 8080}, std::tuple{"host:", "host", 0}}) {
    INFO(url);
    auto parts = split_url(url, nullptr);
    REQUIRE(parts);
    CHECK(parts->scheme == "http");
    CHECK(parts->host == host);
    CHECK(parts->port == port);
  }
  std::string error;
  CHECK_FALSE(split_url("x.test:abc/page", &error));
  CHECK(error == "the URL's port 'abc' is not a number from 1 to 65535");
}

TEST_CASE("a target on an IPv6 host is shown as a URL writes it, and reads back the same") {
  auto t = make_target("http://[::1]:8080/page", target_kind::url, nullptr);
  REQUIRE(t);
  CHECK(t->host == "::1");
  CHECK(t->text == "http://[::1]/page");
  auto again = make_target(t->text, target_kind::url, nullptr);
  REQUIRE(again);
  CHECK((again->host == t->host && again->path == t->path && again->text == t->text));
}

TEST_CASE("a page typed with letters outside ASCII or spaces matches what a browser sends") {
  auto p = test::load_yaml(open_policy);
  auto t = make_target("http://open.example/wiki/\xC3\x89" "cole a b", target_kind::url, nullptr);
  REQUIRE(t);
  CHECK(t->path == "/wiki/%C3%89cole%20a%20b");
  auto idx = exception_index::build({}, {local_entry{1, true, *t, "reported"}});
  CHECK(decide_with(*p, *idx, "http://open.example/wiki/%C3%89cole%20a%20b").act == action::block);
  CHECK(decide_with(*p, *idx, "http://open.example/wiki/%c3%89cole%20a%20b").act == action::block);
  CHECK(decide_with(*p, *idx, "http://open.example/wiki/Ecole").act == action::allow);
}

// ---- Paths servers read in more than one way (rules/decision.hpp: decide_request) ----

namespace {

const std::string readings_policy = std::string(test::timetable_yaml) + R"(
categories:
  illegal: {locked: true, urls: ["locked.example/bad"]}
  chat: {urls: ["open.example/secret"]}
roles:
  pupils:
    networks: [10.10.0.0/16]
    default: allow
    rules:
      - {name: edu only, action: allow, urls: ["games.example/edu"]}
      - {action: block, domains: [games.example, shut.example]}
      - {action: block, categories: [chat]}
)";

// decide_request for a pupil at a lesson time: the policy, then `idx` (may be null).
verdict decide_all(const policy& p, const exception_index* idx, const std::string& url) {
  return decide_request(p, idx, pupil_get(p, url));
}

}  // namespace

TEST_CASE("the other readings of a path: parameters dropped, backslashes as slashes, both") {
  using V = std::vector<std::string>;
  CHECK(other_path_readings("/plain/path?q=%5C;x") == V{});
  CHECK(other_path_readings("/a/..;/b") == V{"/a/../b"});
  CHECK(other_path_readings("/a;jsessionid=1/b?x=1") == V{"/a/b?x=1"});
  CHECK(other_path_readings("/a\\b") == V{"/a/b"});
  CHECK(other_path_readings("/a%5cb?q=%5C") == V{"/a/b?q=%5C"});
  // Parameters run to the next "/", which a backslash is not, until it is read as one.
  CHECK(other_path_readings("/a;x\\..\\b") == V{"/a", "/a;x/../b", "/a/../b"});
  CHECK(other_path_readings("/a%5") == V{});
  // Empty segments kept while dot segments are resolved (RFC 3986 5.2.4, WHATWG URL parsers).
  CHECK(other_path_readings("/bad//..") == V{"/bad/"});
  CHECK(other_path_readings("/bad//../deep/page?x") == V{"/bad/deep/page?x"});
  CHECK(other_path_readings("/bad//%2E%2e") == V{"/bad/"});
  CHECK(other_path_readings("/a//b") == V{});
  // "%2F" left inside its segment.
  CHECK(other_path_readings("/secret/%2F..") == V{"/secret/%252F.."});
}

TEST_CASE("a block holds in every reading of the path, a locked category too") {
  auto p = test::load_yaml(readings_policy);
  for (const char* url : {"http://locked.example/x/..;/bad", "http://locked.example/x/..;jsessionid=1/bad",
                          "http://locked.example/x\\..\\bad", "http://locked.example/x%5C..%5Cbad",
                          "http://locked.example/x%5c..;/bad", "http://open.example/a/..;/secret",
                          "http://open.example/a\\..\\secret", "http://open.example/x;y/..;/secret",
                          "http://locked.example/bad//..", "http://locked.example/bad//../deep/page",
                          "http://open.example/secret//%2e%2e", "http://open.example/secret/%2F..",
                          "http://open.example/secret/x%2F..%2F.."}) {
    INFO(url);
    const verdict v = decide_all(*p, nullptr, url);
    CHECK(v.act == action::block);
    CHECK_FALSE(v.read_as.empty());
  }
  CHECK(decide_all(*p, nullptr, "http://locked.example/x/..;/bad").by == decided_by::locked_category);
  CHECK(decide_all(*p, nullptr, "http://locked.example/x/..;/bad").read_as == "/bad");
  // As written, blocked: no other reading is needed, and none is named.
  CHECK(decide_all(*p, nullptr, "http://locked.example/bad").read_as.empty());
  CHECK(decide_all(*p, nullptr, "http://open.example/secret;x").read_as.empty());
  // Readings that reach nothing blocked change nothing.
  for (const char* url : {"http://locked.example/x/..;/good", "http://open.example/a\\b", "http://open.example/a;x/b",
                          "http://open.example/a//b", "http://open.example/a//../b", "http://open.example/a%2Fb"}) {
    INFO(url);
    CHECK(decide_all(*p, nullptr, url).act == action::allow);
  }
}

TEST_CASE("an allow opens a path only when every reading of it is allowed") {
  auto p = test::load_yaml(readings_policy);
  CHECK(decide_all(*p, nullptr, "http://games.example/edu/page").act == action::allow);
  CHECK(decide_all(*p, nullptr, "http://games.example/edu;v=1/page").act == action::allow);
  CHECK(decide_all(*p, nullptr, "http://games.example/edu/a\\b").act == action::allow);
  for (const char* url : {"http://games.example/edu/..;/secret", "http://games.example/edu/..\\secret",
                          "http://games.example/edu/..%5Csecret", "http://games.example/edu%5C..%5Csecret"}) {
    INFO(url);
    CHECK(decide_all(*p, nullptr, url).act == action::block);
  }
  // An exception for a prefix, and a local allow, alike.
  auto e = pupils_exception(*p, 8, "http://shut.example/page/one");
  auto t = make_target("http://shut.example/open", target_kind::prefix, nullptr);
  REQUIRE(t);
  auto idx = exception_index::build({e}, {local_entry{2, false, *t, "allowed"}});
  CHECK(decide_all(*p, idx.get(), "http://shut.example/page/one/more").act == action::allow);
  CHECK(decide_all(*p, idx.get(), "http://shut.example/open/more").act == action::allow);
  for (const char* url : {"http://shut.example/page/one/..;/secret", "http://shut.example/page/one/..;/..;/admin",
                          "http://shut.example/page/one/..\\secret", "http://shut.example/page/one/..%5csecret",
                          "http://shut.example/open/..;/admin"}) {
    INFO(url);
    const verdict v = decide_all(*p, idx.get(), url);
    CHECK(v.act == action::block);
    CHECK(v.exception_id.empty());
  }
  // An exception written with parameters still opens its page: in the reading without them,
  // it is read without them too.
  e.target = *make_target("http://shut.example/app/page;v=1", target_kind::url, nullptr);
  auto exact = exception_index::build({e}, {});
  CHECK(decide_all(*p, exact.get(), "http://shut.example/app/page;v=1").act == action::allow);
  CHECK(decide_all(*p, exact.get(), "http://shut.example/app/page;v=2").act == action::block);
  CHECK(decide_all(*p, exact.get(), "http://shut.example/app/page").act == action::block);
}

TEST_CASE("a local block holds against backslashes, empty segments and %2F as servers read them") {
  auto p = test::load_yaml(open_policy);
  const auto idx = exception_index::build({}, {local_entry{1, true, prefix("http://open.example/private"), "blocked"}});
  const std::vector<std::string> spellings{"/x/..\\private", "/x/..%5cprivate", "/private\\x", "/%5cprivate",
                                           "/\\private", "/private//..", "/private//%2e%2e", "/private/%2F..%2F.."};
  for (const auto& path : spellings) CHECK_MESSAGE(decide_all(*p, idx.get(), "http://open.example" + path).act == action::block, path);
  CHECK(decide_all(*p, idx.get(), "http://open.example/privately").act == action::allow);
}

TEST_CASE("an IPv6 address that reaches a listed IPv4 address is blocked as that address") {
  auto p = test::load_yaml(std::string(test::timetable_yaml) + R"(
categories:
  doh: {locked: true, domains: ["1.1.1.1"]}
roles:
  pupils:
    networks: [10.10.0.0/16]
    default: allow
    rules:
      - {action: block, domains: ["9.9.9.9"]}
)");
  for (const char* url : {"http://[::ffff:1.1.1.1]/dns-query", "http://[::FFFF:101:101]/", "http://[::1.1.1.1]/",
                          "http://[64:ff9b::1.1.1.1]/", "http://[64:ff9b:1::101:101]/", "http://[::ffff:9.9.9.9]/"}) {
    INFO(url);
    const verdict v = decide_all(*p, nullptr, url);
    CHECK(v.act == action::block);
    CHECK_FALSE(v.host_read_as.empty());
    CHECK(v.host.kind == host_kind::ipv6);  // shown as the request named it
  }
  const verdict v = decide_all(*p, nullptr, "http://[::ffff:1.1.1.1]/");
  CHECK(v.by == decided_by::locked_category);
  CHECK(v.host_read_as == "1.1.1.1");
  const auto notes = path_notes(v);
  REQUIRE(notes.size() == 1);
  CHECK(notes[0] == "decided as the IPv4 address 1.1.1.1, which the IPv6 address ::ffff:1.1.1.1 reaches");
  // Addresses that reach no listed IPv4 address (or carry one only as 6to4 or Teredo, which
  // reach another host) are decided as written.
  for (const char* url : {"http://[::ffff:1.1.1.2]/", "http://[2001:db8::1]/", "http://[2002:101:101::1]/",
                          "http://[::1]/", "http://1.1.1.2/"}) {
    INFO(url);
    const verdict w = decide_all(*p, nullptr, url);
    CHECK(w.act == action::allow);
    CHECK(w.host_read_as.empty());
  }
}

TEST_CASE("a URL entry naming a whole site blocks its HTTPS tunnels too, as a domain entry does") {
  // Outside-in audit I, 2026-12-05: `https://secure.example/` in a list blocked http:// only;
  // a relayed tunnel shows no path, and a URL prefix needs one.
  auto p = test::load_yaml(std::string(test::timetable_yaml) + R"(
categories:
  listed: {urls: ["https://secure.example/", "http://paths.example/only/this", "https://q.example/?",
                  "https://f.example/#top"]}
roles:
  pupils:
    networks: [10.10.0.0/16]
    default: allow
    rules:
      - {action: block, categories: [listed]}
)");
  auto tunnel = [&](const char* host) {
    request_facts f = pupil_get(*p, "http://placeholder.example/");
    f.method = "CONNECT";
    f.scheme = "https";
    f.host = host;
    f.port = 443;
    f.path = std::nullopt;
    return decide_request(*p, nullptr, f);
  };
  CHECK(tunnel("secure.example").act == action::block);
  CHECK(tunnel("www.secure.example").act == action::block);
  CHECK(tunnel("q.example").act == action::block);  // an empty query, a fragment: the site too
  CHECK(tunnel("f.example").act == action::block);
  CHECK(decide_all(*p, nullptr, "http://secure.example/any/page").act == action::block);
  // A URL with a path stays a prefix: its site's tunnels are not blocked for it.
  CHECK(tunnel("paths.example").act == action::allow);
  CHECK(decide_all(*p, nullptr, "http://paths.example/only/this/page").act == action::block);
  CHECK(decide_all(*p, nullptr, "http://paths.example/other").act == action::allow);
}

TEST_CASE("a method named in a method-override header is decided too, and blocks if its rule blocks") {
  // Many web frameworks (Express's method-override, Laravel, Google's APIs) act on the method
  // X-HTTP-Method-Override names: a rule for DELETE must see "POST + override: DELETE".
  auto p = test::load_yaml(std::string(test::timetable_yaml) + R"(
roles:
  pupils:
    networks: [10.10.0.0/16]
    default: allow
    rules:
      - {action: block, domains: [wiki.example], methods: [DELETE, PUT]}
      - {action: allow, domains: [open.example], methods: [POST]}
      - {action: block, domains: [open.example]}
)");
  auto decide_with = [&](const char* method, const std::string& url, std::vector<std::string> overrides) {
    request_facts f = pupil_get(*p, url);
    f.method = method;
    f.method_overrides = overrides;
    return decide_request(*p, nullptr, f);
  };
  CHECK(decide_with("POST", "http://wiki.example/page", {}).act == action::allow);
  const verdict v = decide_with("POST", "http://wiki.example/page", {"DELETE"});
  CHECK(v.act == action::block);
  CHECK(v.method_read_as == "DELETE");
  const auto notes = path_notes(v);
  REQUIRE(notes.size() == 1);
  CHECK(notes[0].find("decided as the method DELETE") == 0);
  CHECK(decide_with("GET", "http://wiki.example/page", {"OPTIONS", "put"}).act == action::block);
  CHECK(decide_with("GET", "http://wiki.example/page", {"HEAD"}).act == action::allow);
  // An allow opens only what it opens as every method named: POST is allowed on open.example,
  // but a POST that names GET is decided as GET too, which the site's block covers.
  CHECK(decide_with("POST", "http://open.example/form", {}).act == action::allow);
  CHECK(decide_with("POST", "http://open.example/form", {"GET"}).act == action::block);
  CHECK(decide_with("POST", "http://open.example/form", {"GET"}).method_read_as == "GET");
}

TEST_CASE("a local entry's rule id is spelt one way and read back") {
  CHECK(local_entry_rule_id(true, 3) == "local block 3");
  CHECK(local_entry_rule_id(false, 12) == "local allow 12");
  CHECK(local_block_id("local block 3") == 3);
  CHECK(local_block_id(local_entry_rule_id(true, 9007199254740993)) == 9007199254740993);
  CHECK_FALSE(local_block_id("local allow 3"));
  CHECK_FALSE(local_block_id("local block "));
  CHECK_FALSE(local_block_id("local block 3x"));
  CHECK_FALSE(local_block_id("local block -3"));
  CHECK_FALSE(local_block_id("local block 0"));
  CHECK_FALSE(local_block_id("pupils rule 1"));
  CHECK_FALSE(local_block_id(""));
}
