// The shipped policy (rules/school.yaml) does what the school policies ask.
#include <doctest/doctest.h>

#include "rules/inspection.hpp"
#include "tests/rules/policy_fixture.hpp"

using namespace hallpass::rules;

namespace {
std::shared_ptr<const policy> shipped() {
  load_options o;
  o.other_sections = shipped_daemon_sections;
  auto r = load_policy(std::string(HALLPASS_SOURCE_DIR) + "/rules/school.yaml", o);
  std::string all;
  for (const auto& e : r.errors) all += e.to_string() + "\n";
  REQUIRE_MESSAGE(r.ok(), all);
  return r.compiled;
}
}  // namespace

TEST_CASE("shipped policy: the issue's acceptance cases") {
  auto p = shipped();
  // 2026-11-23 is a Monday; 2026-11-21 a Saturday.
  for (const char* t : {"2026-11-23 08:00", "2026-11-23 11:00", "2026-11-23 12:30", "2026-11-21 11:00"}) {
    CHECK_FALSE(test::ask{*p, "pupils"}.allowed(t, "https://www.facebook.com/"));
  }
  test::ask staff{*p, "staff"};
  CHECK_FALSE(staff.allowed("2026-11-23 11:00", "https://www.instagram.com/"));
  CHECK(staff.allowed("2026-11-23 12:30", "https://www.instagram.com/"));
  CHECK(staff.allowed("2026-11-21 11:00", "https://www.instagram.com/"));
  CHECK_FALSE(test::ask{*p, "guests"}.allowed("2026-11-23 11:00", "https://x.com/"));
  CHECK(test::ask{*p, "office"}.allowed("2026-11-23 11:00", "https://www.tiktok.com/"));
  CHECK(test::ask{*p, "pupils"}.allowed("2026-11-23 11:00", "https://www.bbc.co.uk/bitesize"));
  CHECK(test::ask{*p, "pupils"}.allowed("2026-11-23 11:00", "https://notfacebook.com/"));
}

TEST_CASE("shipped policy: each platform's CDNs and short links, and circumvention for everyone") {
  auto p = shipped();
  test::ask guests{*p, "guests"};
  for (const char* u : {"https://t.co/abc", "https://pbs.twimg.com/x.jpg", "https://static.xx.fbcdn.net/",
                        "https://scontent.cdninstagram.com/", "https://v16m.tiktokcdn.com/", "https://fb.me/x",
                        "https://www.messenger.com/"}) {
    CHECK_MESSAGE(!guests.allowed("2026-11-23 11:00", u), u);
  }
  for (const char* role : {"pupils", "staff", "office", "guests"}) {
    auto v = test::ask{*p, role}.at("2026-11-21 11:00", "https://cloudflare-dns.com/dns-query");
    CHECK(v.act == action::block);
    CHECK(v.category_name() == "circumvention");
    CHECK_FALSE(test::ask{*p, role}.allowed("2026-11-21 11:00", "https://1.1.1.1/dns-query"));
  }
}

TEST_CASE("shipped policy: search engines whose SafeSearch cannot be locked are blocked for pupils and guests") {
  auto p = shipped();
  for (const char* url : {"https://www.ecosia.org/search?q=x", "https://search.yahoo.com/search?p=x",
                          "https://images.search.yahoo.com/search/images?p=x", "https://www.startpage.com/",
                          "https://search.brave.com/search?q=x", "https://yandex.com/images/",
                          "https://ya.ru/search/?text=x", "https://www.baidu.com/s?wd=x", "https://kagi.com/search?q=x"}) {
    INFO(url);
    CHECK_FALSE(test::ask{*p, "pupils"}.allowed("2026-11-23 11:00", url));
    CHECK_FALSE(test::ask{*p, "guests"}.allowed("2026-11-23 11:00", url));
    CHECK(test::ask{*p, "staff"}.allowed("2026-11-23 11:00", url));
  }
  // Yahoo's other services stay open; Google and Bing are locked, not blocked.
  CHECK(test::ask{*p, "pupils"}.allowed("2026-11-23 11:00", "https://uk.news.yahoo.com/"));
  CHECK(test::ask{*p, "pupils"}.allowed("2026-11-23 11:00", "https://www.google.com/search?q=x"));
}

TEST_CASE("shipped policy: staff Wikipedia edits blocked, reading allowed (004 6.11)") {
  auto p = shipped();
  test::ask staff{*p, "staff"};
  CHECK(staff.allowed("2026-11-23 11:00", "https://en.wikipedia.org/wiki/Owl"));
  CHECK_FALSE(staff.allowed("2026-11-23 11:00", "https://en.wikipedia.org/w/index.php?title=Owl&action=edit"));
  CHECK_FALSE(staff.allowed("2026-11-23 11:00", "https://en.wikipedia.org/w/index.php?title=Owl&action=submit"));
  // The other ways to open the editor (audit of ways round the filter, 2026-12-06, F3): a red
  // link's page creation and VisualEditor's two modes.
  CHECK_FALSE(staff.allowed("2026-11-23 11:00", "https://en.wikipedia.org/w/index.php?title=Owl&action=editredlink"));
  CHECK_FALSE(staff.allowed("2026-11-23 11:00", "https://en.wikipedia.org/wiki/Owl?veaction=edit"));
  CHECK_FALSE(staff.allowed("2026-11-23 11:00", "https://en.wikipedia.org/wiki/Owl?veaction=editsource&section=2"));
  CHECK(staff.allowed("2026-11-23 11:00", "https://en.wikipedia.org/wiki/Owl?action=history"));
  CHECK(staff.allowed("2026-11-23 11:00", "https://en.wikipedia.org/wiki/Owl?oldaction=edit"));
  auto post = test::ask{*p, "staff", "", "POST"}.at("2026-11-23 11:00", "https://en.wikipedia.org/w/api.php");
  CHECK(post.act == action::block);
  CHECK(post.clause == "004 6.11");
  CHECK(test::ask{*p, "pupils"}.allowed("2026-11-23 11:00", "https://en.wikipedia.org/wiki/Owl"));
}

TEST_CASE("shipped policy: unknown devices get the pupils' filtering, never none") {
  auto p = shipped();
  auto v = test::ask{*p, "", "192.0.2.10"}.at("2026-11-23 11:00", "https://www.facebook.com/");
  CHECK(v.chosen_role->name == "pupils");
  CHECK(v.role_from == role_source::fallback);
  CHECK(v.act == action::block);
  CHECK(test::ask{*p, "", "10.20.3.4"}.at("2026-11-23 11:00", "https://a.example/").chosen_role->name == "staff");
}

TEST_CASE("shipped policy: what is inspected with a school CA, and SafeSearch per role") {
  auto p = shipped();
  auto connect = [&](const char* role, const char* host) {
    const auto f = test::connect_facts(*p, role, host, "2026-11-23 11:00");
    return decide_inspection(*p, nullptr, f, decide_request(*p, nullptr, f));
  };
  // Staff traffic to Wikipedia, for the edit rule (004 6.11); not pupils'.
  CHECK(connect("staff", "en.wikipedia.org").handling == tls_handling::inspect);
  CHECK(connect("pupils", "en.wikipedia.org").handling == tls_handling::relay);
  // Search engines for the roles with SafeSearch.
  for (const char* role : {"pupils", "guests"}) {
    for (const char* host : {"www.google.com", "www.google.co.uk", "www.bing.com", "duckduckgo.com", "www.youtube.com"}) {
      CAPTURE(role);
      CAPTURE(host);
      CHECK(connect(role, host).handling == tls_handling::inspect);
    }
  }
  CHECK(connect("staff", "www.google.com").handling == tls_handling::relay);
  CHECK(connect("office", "www.google.com").handling == tls_handling::relay);
  // The never list: banks, health, updates, pinned apps.
  for (const char* host : {"www.hsbc.co.uk", "onlinebanking.nationwide.co.uk", "www.nhs.uk", "ctldl.windowsupdate.com",
                           "update.microsoft.com", "swcdn.apple.com", "dl.google.com", "deb.debian.org",
                           "security.ubuntu.com", "web.whatsapp.com"}) {
    CAPTURE(host);
    auto v = connect("pupils", host);
    CHECK(v.handling == tls_handling::relay);
    CHECK(v.never);
  }
  CHECK(connect("pupils", "www.bbc.co.uk").handling == tls_handling::relay);
  // SafeSearch: pupils and guests strict; staff YouTube moderate, search off; office off.
  CHECK(p->find_role("pupils")->safesearch.search == safesearch_level::strict);
  CHECK(p->find_role("pupils")->safesearch.youtube == safesearch_level::strict);
  CHECK(p->find_role("guests")->safesearch.search == safesearch_level::strict);
  CHECK(p->find_role("staff")->safesearch.search == safesearch_level::off);
  CHECK(p->find_role("staff")->safesearch.youtube == safesearch_level::moderate);
  CHECK_FALSE(p->find_role("office")->safesearch.any());
  // The staff Wikipedia edit rule on inspected HTTPS: edits blocked, reading open.
  test::ask post{*p, "staff", "", "POST"};
  CHECK_FALSE(post.allowed("2026-11-23 11:00", "https://en.wikipedia.org/w/api.php"));
  test::ask get{*p, "staff"};
  CHECK_FALSE(get.allowed("2026-11-23 11:00", "https://en.wikipedia.org/w/index.php?title=Owl&action=edit"));
  CHECK(get.allowed("2026-11-23 11:00", "https://en.wikipedia.org/wiki/Owl"));
}

TEST_CASE("shipped policy: a self-harm block gives help first, and adults read an adult's pages") {
  auto p = shipped();
  const auto* c = p->find_category("self_harm");
  REQUIRE(c != nullptr);
  CHECK(c->support.find("Childline free on 0800 1111") != std::string::npos);
  for (const auto& r : p->roles) {
    CAPTURE(r.name);
    CHECK(r.adults == (r.name == "staff" || r.name == "office" || r.name == "guests"));
  }
}
