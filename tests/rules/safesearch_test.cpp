// SafeSearch locked per role: the providers' locked front ends for tunnels, the request
// rewrite for requests the proxy reads, and search terms for the log, with hostile input.
#include <doctest/doctest.h>

#include "rules/safesearch.hpp"
#include "tests/rules/policy_fixture.hpp"

using namespace hallpass::rules;

namespace {

const std::string policy_yaml = std::string(test::timetable_yaml) + R"(
roles:
  pupils:
    default: allow
    safesearch: {search: strict, youtube: strict}
  staff:
    default: allow
    safesearch: {search: off, youtube: moderate}
  office:
    default: allow
)";

struct fixture {
  std::shared_ptr<const policy> p = test::load_yaml(policy_yaml);
  verdict as(const char* role) const { return test::ask{*p, role}.at("2026-11-23 11:00", "https://x.example/"); }
  std::optional<std::string_view> connect(const char* role, std::string_view host) const {
    return safesearch_connect_host(*p, as(role), host);
  }
  std::optional<std::string> target(const char* role, std::string_view host, std::string_view pq) const {
    return safesearch_request(*p, as(role), host, pq).target;
  }
};

}  // namespace

TEST_CASE("SafeSearch: the locked front end each tunnel connects to, per role") {
  fixture t;
  for (const char* h : {"www.google.com", "google.com", "www.google.co.uk", "google.co.uk", "www.google.de",
                        "www.google.com.au", "WWW.Google.COM.", "www.google.cat", "google.cat"}) {
    CAPTURE(h);
    CHECK(t.connect("pupils", h) == std::optional<std::string_view>("forcesafesearch.google.com"));
  }
  CHECK(t.connect("pupils", "www.bing.com") == std::optional<std::string_view>("strict.bing.com"));
  CHECK(t.connect("pupils", "bing.com") == std::optional<std::string_view>("strict.bing.com"));
  CHECK(t.connect("pupils", "duckduckgo.com") == std::optional<std::string_view>("safe.duckduckgo.com"));
  CHECK(t.connect("pupils", "www.duckduckgo.com") == std::optional<std::string_view>("safe.duckduckgo.com"));
  for (const char* h : {"www.youtube.com", "m.youtube.com", "youtubei.googleapis.com", "youtube.googleapis.com",
                        "www.youtube-nocookie.com"}) {
    CAPTURE(h);
    CHECK(t.connect("pupils", h) == std::optional<std::string_view>("restrict.youtube.com"));
    CHECK(t.connect("staff", h) == std::optional<std::string_view>("restrictmoderate.youtube.com"));
    CHECK_FALSE(t.connect("office", h));
  }
  // Search off for staff, nothing for office.
  CHECK_FALSE(t.connect("staff", "www.google.com"));
  CHECK_FALSE(t.connect("office", "www.bing.com"));
  // Not search hosts: other Google services, look-alikes, the front ends themselves.
  for (const char* h : {"mail.google.com", "google.evil.com", "www.google.evil", "google.com.evil.example",
                        "notgoogle.com", "forcesafesearch.google.com", "strict.bing.com", "images.bing.com.example",
                        "youtube.com.example", "", "www.google.c0m"}) {
    CAPTURE(h);
    CHECK_FALSE(t.connect("pupils", h));
  }
}

TEST_CASE("SafeSearch: the request rewrite replaces a conflicting parameter and keeps the rest byte for byte") {
  fixture t;
  using opt = std::optional<std::string>;
  CHECK(t.target("pupils", "www.google.com", "/search?q=owls") == opt("/search?q=owls&safe=active"));
  CHECK(t.target("pupils", "www.google.com", "/search?q=owls&safe=off&hl=en") == opt("/search?q=owls&safe=active&hl=en"));
  CHECK(t.target("pupils", "www.google.com", "/search?safe=off&q=a%20b+c&safe=images") == opt("/search?safe=active&q=a%20b+c"));
  CHECK(t.target("pupils", "www.google.com", "/search?q=x&s%61fe=off") == opt("/search?q=x&safe=active"));
  CHECK(t.target("pupils", "www.google.com", "/search?q=x&SAFE=off") == opt("/search?q=x&safe=active"));
  CHECK(t.target("pupils", "www.google.com", "/search") == opt("/search?safe=active"));
  CHECK(t.target("pupils", "www.google.com", "/search?") == opt("/search?safe=active"));
  CHECK(t.target("pupils", "www.google.com", "/search?q=%zz&&x=%") == opt("/search?q=%zz&&x=%&safe=active"));
  // Already locked: nothing to change.
  CHECK_FALSE(t.target("pupils", "www.google.com", "/search?q=owls&safe=active"));
  // Not a search path, not a search host, or search off for the role.
  CHECK_FALSE(t.target("pupils", "www.google.com", "/maps?q=x"));
  CHECK_FALSE(t.target("pupils", "mail.google.com", "/search?q=x"));
  CHECK_FALSE(t.target("staff", "www.google.com", "/search?q=x"));
  // Bing and DuckDuckGo.
  CHECK(t.target("pupils", "www.bing.com", "/search?q=x&adlt=off") == opt("/search?q=x&adlt=strict"));
  CHECK(t.target("pupils", "www.bing.com", "/images/search?q=x") == opt("/images/search?q=x&adlt=strict"));
  CHECK(t.target("pupils", "duckduckgo.com", "/?q=x&kp=-2") == opt("/?q=x&kp=1"));
  CHECK(t.target("pupils", "html.duckduckgo.com", "/html/?q=x") == opt("/html/?q=x&kp=1"));
  CHECK_FALSE(t.target("pupils", "duckduckgo.com", "/?t=h_"));  // the home page, not a search
  // YouTube: the header, Strict or Moderate; the target stays.
  auto yt = safesearch_request(*t.p, t.as("pupils"), "www.youtube.com", "/watch?v=1");
  CHECK_FALSE(yt.target);
  REQUIRE(yt.set_headers.size() == 1);
  CHECK(yt.set_headers[0] == std::pair<std::string, std::string>("YouTube-Restrict", "Strict"));
  auto moderate = safesearch_request(*t.p, t.as("staff"), "m.youtube.com", "/");
  REQUIRE(moderate.set_headers.size() == 1);
  CHECK(moderate.set_headers[0].second == "Moderate");
  CHECK(safesearch_request(*t.p, t.as("office"), "www.youtube.com", "/").empty());
}

TEST_CASE("SafeSearch: a search path however it is spelt, and the parameter on any path that names it") {
  fixture t;
  using opt = std::optional<std::string>;
  // The search path, written otherwise: still locked (the request is sent as written).
  CHECK(t.target("pupils", "www.google.com", "//search?q=x&safe=off") == opt("//search?q=x&safe=active"));
  CHECK(t.target("pupils", "www.google.com", "/search/?q=x") == opt("/search/?q=x&safe=active"));
  CHECK(t.target("pupils", "www.google.com", "/Search?q=x") == opt("/Search?q=x&safe=active"));
  CHECK(t.target("pupils", "www.google.com", "/search;x?q=x") == opt("/search;x?q=x&safe=active"));
  CHECK(t.target("pupils", "www.google.com", "/%73earch?q=x") == opt("/%73earch?q=x&safe=active"));
  CHECK(t.target("pupils", "www.bing.com", "/SEARCH?q=x&adlt=off") == opt("/SEARCH?q=x&adlt=strict"));
  CHECK(t.target("pupils", "duckduckgo.com", "//?q=x") == opt("//?q=x&kp=1"));
  CHECK(t.target("pupils", "www.google.com", "/x/../search?q=x") == opt("/x/../search?q=x&safe=active"));
  CHECK(t.target("pupils", "www.google.com", "/./search?q=x") == opt("/./search?q=x&safe=active"));
  CHECK(t.target("pupils", "www.google.com", "/%2e%2e/search?q=x") == opt("/%2e%2e/search?q=x&safe=active"));
  CHECK(t.target("pupils", "html.duckduckgo.com", std::string(70, '/') + "html?q=x") ==
        opt(std::string(70, '/') + "html?q=x&kp=1"));
  // Any other path that names the parameter has it set: "off" never reaches the engine.
  CHECK(t.target("pupils", "duckduckgo.com", "/d.js?q=x&kp=-2") == opt("/d.js?q=x&kp=1"));
  CHECK(t.target("pupils", "www.google.com", "/maps?q=x&SAFE=off") == opt("/maps?q=x&safe=active"));
  CHECK(t.target("pupils", "www.bing.com", "/api/v7?adlt=off") == opt("/api/v7?adlt=strict"));
  // Other paths that do not name it are left alone; so is a path that only looks like one.
  CHECK_FALSE(t.target("pupils", "www.google.com", "/searches?q=x"));
  CHECK_FALSE(t.target("pupils", "duckduckgo.com", "/d.js?q=x"));
  // The search terms, likewise.
  CHECK(search_terms("www.google.com", "//Search/?q=owls") == std::optional<std::string>("owls"));
  CHECK(search_terms("www.youtube.com", "/results/?search_query=owl") == std::optional<std::string>("owl"));
}

TEST_CASE("SafeSearch: a huge query with many repeats is rewritten in one pass") {
  fixture t;
  std::string pq = "/search?q=x";
  for (int i = 0; i < 20000; ++i) pq += "&safe=off";
  pq += "&hl=en";
  CHECK(t.target("pupils", "www.google.com", pq) == std::optional<std::string>("/search?q=x&safe=active&hl=en"));
}

TEST_CASE("search terms: decoded, bounded, only on search paths") {
  CHECK(search_terms("www.google.com", "/search?q=owls+and%20bats&safe=off") == std::optional<std::string>("owls and bats"));
  CHECK(search_terms("www.google.co.uk", "/search?hl=en&q=caf%C3%A9") == std::optional<std::string>("caf\xC3\xA9"));
  CHECK(search_terms("www.bing.com", "/search?q=x%2By") == std::optional<std::string>("x+y"));
  CHECK(search_terms("duckduckgo.com", "/?q=ducks&ia=web") == std::optional<std::string>("ducks"));
  CHECK(search_terms("www.youtube.com", "/results?search_query=lego+owl") == std::optional<std::string>("lego owl"));
  // Odd escapes are kept as written; controls become spaces; the first of repeats.
  CHECK(search_terms("www.google.com", "/search?q=100%+%zz%4") == std::optional<std::string>("100% %zz%4"));
  CHECK(search_terms("www.google.com", "/search?q=a%0d%0ab%00c") == std::optional<std::string>("a  b c"));
  // Bidi overrides, zero-width and C1 characters, and bytes whose Latin-1 reading is a C1
  // control, are spaces too: `jq -r` of the log would put them on the technician's terminal.
  CHECK(search_terms("www.google.com", "/search?q=a%E2%80%AEevil%E2%80%8Bb%C2%9Bc%9Bd%E9") ==
        std::optional<std::string>("a evil b c d\xE9"));
  CHECK(search_terms("www.google.com", "/search?q=first&q=second") == std::optional<std::string>("first"));
  CHECK(search_terms("www.google.com", "/search?%71=encoded") == std::optional<std::string>("encoded"));
  // Not a search, or nothing searched.
  CHECK_FALSE(search_terms("www.google.com", "/maps?q=x"));
  CHECK_FALSE(search_terms("www.google.com", "/search"));
  CHECK_FALSE(search_terms("www.google.com", "/search?q="));
  CHECK_FALSE(search_terms("www.google.com", "/search?q=+%20+"));
  CHECK_FALSE(search_terms("www.google.com", "/search?qq=x"));
  CHECK_FALSE(search_terms("example.com", "/search?q=x"));
  CHECK_FALSE(search_terms("www.youtube.com", "/watch?v=1&search_query=x"));
  // A huge query: cut at the bound, on a character boundary.
  std::string huge = "/search?q=";
  for (int i = 0; i < 100000; ++i) huge += "%C3%A9";  // é, two bytes each
  auto cut = search_terms("www.google.com", huge);
  REQUIRE(cut);
  CHECK(cut->size() <= max_search_terms_bytes);
  CHECK(cut->size() % 2 == 0);
  CHECK(cut->substr(cut->size() - 2) == "\xC3\xA9");
  std::string plain = "/search?q=" + std::string(1 << 20, 'a');
  CHECK(search_terms("www.google.com", plain)->size() == max_search_terms_bytes);
}

TEST_CASE("SafeSearch: DuckDuckGo's HTML and lite pages are blocked where search is locked (audit20 D1, D2)") {
  // No locked front end to connect to, and their forms search by POST, which no rewrite
  // reaches: a role with search locked gets them blocked by a rule of its own.
  fixture t;
  for (const char* url : {"https://html.duckduckgo.com/html/", "https://lite.duckduckgo.com/lite/?q=a",
                          "http://html.duckduckgo.com/html/?q=a&kp=-2", "https://LITE.duckduckgo.com./"}) {
    CAPTURE(url);
    const auto v = test::ask{*t.p, "pupils"}.at("2026-11-23 11:00", url);
    CHECK(v.act == action::block);
    CHECK(v.rule_id == "pupils SafeSearch lock");
    CHECK(std::string(v.reason).find("cannot be locked to safe search") != std::string::npos);
    // Search not locked: open as before.
    CHECK(test::ask{*t.p, "staff"}.at("2026-11-23 11:00", url).act == action::allow);
    CHECK(test::ask{*t.p, "office"}.at("2026-11-23 11:00", url).act == action::allow);
  }
  CHECK(test::ask{*t.p, "pupils"}.at("2026-11-23 11:00", "https://duckduckgo.com/?q=a").act == action::allow);
}

TEST_CASE("SafeSearch: more of Google's and YouTube's hosts, and a semicolon as a separator (audit20 D3, D4)") {
  fixture t;
  CHECK(t.connect("pupils", "ipv4.google.com") == std::optional<std::string_view>("forcesafesearch.google.com"));
  CHECK(t.connect("pupils", "ipv6.google.com") == std::optional<std::string_view>("forcesafesearch.google.com"));
  CHECK(t.connect("pupils", "images.google.com") == std::optional<std::string_view>("forcesafesearch.google.com"));
  CHECK(t.connect("pupils", "images.google.co.uk") == std::optional<std::string_view>("forcesafesearch.google.com"));
  CHECK(t.connect("pupils", "encrypted.google.com") == std::optional<std::string_view>("forcesafesearch.google.com"));
  CHECK(t.connect("pupils", "images.example.com") == std::nullopt);
  CHECK(t.connect("pupils", "music.youtube.com") == std::optional<std::string_view>("restrict.youtube.com"));
  CHECK(t.connect("pupils", "youtube-nocookie.com") == std::optional<std::string_view>("restrict.youtube.com"));
  CHECK(t.target("pupils", "www.google.com", "/search?q=a;safe=off") ==
        std::optional<std::string>("/search?q=a&safe=active"));
  CHECK(t.target("pupils", "www.bing.com", "/search?q=a;adlt=off;x=1") ==
        std::optional<std::string>("/search?q=a&adlt=strict&x=1"));
  CHECK(t.target("pupils", "duckduckgo.com", "/?q=a;kp=-2") == std::optional<std::string>("/?q=a&kp=1"));
  // A ';' that starts no lock parameter is left as it is (the term "a;b").
  CHECK(t.target("pupils", "www.google.com", "/search?q=a;b") == std::optional<std::string>("/search?q=a;b&safe=active"));
  CHECK(t.target("pupils", "www.google.com", "/search?q=a;b;SAFE=off") ==
        std::optional<std::string>("/search?q=a&b&safe=active"));
  // A term with an encoded ';' keeps it.
  CHECK(t.target("pupils", "www.google.com", "/search?q=a%3Bb") == std::optional<std::string>("/search?q=a%3Bb&safe=active"));
}

TEST_CASE("SafeSearch: the DuckDuckGo lock comes before the role's rules, so allowing duckduckgo.com keeps it") {
  const auto p = test::load_yaml(std::string(test::timetable_yaml) + R"(
roles:
  pupils:
    default: block
    safesearch: {search: strict}
    rules:
      - {action: allow, domains: [duckduckgo.com, example.org]}
)");
  const auto at = [&](const char* url) { return test::ask{*p, "pupils"}.at("2026-11-23 11:00", url); };
  CHECK(at("https://duckduckgo.com/?q=a").act == action::allow);
  CHECK(at("https://html.duckduckgo.com/html/").act == action::block);
  CHECK(at("https://html.duckduckgo.com/html/").rule_id == "pupils SafeSearch lock");
  // The school's own rules keep their numbers.
  CHECK(at("https://example.org/").rule_id == "pupils rule 1");
}
