// HTTPS inspection on the rules side: which CONNECTs are decrypted (decide_inspection), how an
// inspected CONNECT is decided (request_facts::path_seen_later), and that every path-level
// entry applies to the decrypted https requests exactly as to http.
#include <doctest/doctest.h>

#include "rules/decision.hpp"
#include "rules/inspection.hpp"
#include "tests/rules/policy_fixture.hpp"

using namespace hallpass::rules;

namespace {

const std::string policy_yaml = std::string(test::timetable_yaml) + R"(
categories:
  news: {domains: [news.example]}
  iwf:
    locked: true
    urls: ["host.example/illegal"]
  social: {domains: [social.example]}
inspection:
  never:
    domains: [bank.example, "*.health.example"]
  inspect:
    - {name: wiki, roles: [staff], domains: [wiki.example], why: The wiki is inspected for staff.}
    - {roles: [office], categories: [news]}
    - {roles: [pupils, staff], safesearch: true}
    - {roles: [guests], everything: true}
roles:
  pupils:
    networks: [10.10.0.0/16]
    default: allow
    safesearch: {search: strict, youtube: strict}
    rules:
      - {action: block, urls: ["pages.example/games"]}
      - {action: block, patterns: ['^https?://pat\.example/']}
      - {action: allow, urls: ["shut.example/ok"]}
      - {action: block, domains: [shut.example, social.example]}
      - {action: allow, domains: [methods.example], methods: [GET]}
      - {action: block, domains: [methods.example]}
      - {action: block, domains: [tunnel.example], methods: [CONNECT]}
  staff:
    networks: [10.20.0.0/16]
    default: allow
    safesearch: {search: off, youtube: moderate}
    rules:
      - {action: block, domains: [wiki.example, edit.example], methods: [POST]}
  office:
    default: allow
  guests:
    default: allow
    rules:
      - {action: block, domains: [social.example]}
)";

std::shared_ptr<const policy> load() { return test::load_yaml(policy_yaml); }

constexpr const char* lesson = "2026-11-23 11:00";

struct connect_to {
  const policy& p;
  std::string role;
  std::string host;
  bool later = false;

  request_facts facts() const {
    request_facts f = test::connect_facts(p, role, host, lesson);
    f.path_seen_later = later;
    return f;
  }
  verdict decide(const exception_index* overlay = nullptr) const { return decide_request(p, overlay, facts()); }
  inspection_verdict inspection(const exception_index* overlay = nullptr) const {
    return decide_inspection(p, overlay, facts(), decide(overlay));
  }
};

// Calls f with the facts of a request for `url` (its scheme, host, port and path) by `role`
// in a lesson: a request inside a tunnel, or plain HTTP.
template <class F>
auto with_request(const policy& p, const std::string& role, const std::string& method, const std::string& url, F&& f) {
  auto parts = split_url(url, nullptr);
  REQUIRE(parts);
  request_facts facts;
  facts.role = role;
  facts.method = method;
  facts.scheme = parts->scheme;
  facts.host = parts->host;
  facts.port = parts->port;
  facts.path = parts->path;
  facts.time = p.zone.to_sys(*parse_local_time(lesson));
  return f(facts);
}

verdict request(const policy& p, const std::string& role, const std::string& method, const std::string& url,
                const exception_index* overlay = nullptr) {
  return with_request(p, role, method, url, [&](const request_facts& f) { return decide_request(p, overlay, f); });
}

bool allowed(const verdict& v) { return v.act == action::allow; }

exception_entry exception_for(const policy& p, std::int64_t id, const std::string& role, const std::string& url,
                              target_kind kind, const char* from = "2026-11-23 08:00", const char* until = "2026-11-23 15:00") {
  exception_entry e;
  e.id = id;
  e.roles = {role};
  std::string err;
  auto t = make_target(url, kind, &err);
  REQUIRE_MESSAGE(t, err);
  e.target = *t;
  e.from = p.zone.to_sys(*parse_local_time(from));
  e.until = p.zone.to_sys(*parse_local_time(until));
  return e;
}

local_entry local_block(std::int64_t id, const std::string& url) {
  std::string err;
  auto t = make_target(url, target_kind::prefix, &err);
  REQUIRE_MESSAGE(t, err);
  return local_entry{id, true, *t, "reported page"};
}

}  // namespace

TEST_CASE("path-level rules apply to https requests exactly as to http") {
  auto p = load();
  for (const char* scheme : {"http", "https"}) {
    const std::string s = scheme;
    CAPTURE(s);
    // URL prefixes (in canonical form).
    CHECK_FALSE(allowed(request(*p, "pupils", "GET", s + "://pages.example/games/chess")));
    CHECK_FALSE(allowed(request(*p, "pupils", "GET", s + "://www.pages.example/%67ames")));
    CHECK(allowed(request(*p, "pupils", "GET", s + "://pages.example/maths")));
    // Patterns see the scheme the request came with.
    CHECK_FALSE(allowed(request(*p, "pupils", "GET", s + "://pat.example/anything")));
    // Methods.
    CHECK_FALSE(allowed(request(*p, "staff", "POST", s + "://wiki.example/w/api.php")));
    CHECK(allowed(request(*p, "staff", "GET", s + "://wiki.example/wiki/Owl")));
    // An allow by URL prefix before a host-level block.
    CHECK(allowed(request(*p, "pupils", "GET", s + "://shut.example/ok/page")));
    CHECK_FALSE(allowed(request(*p, "pupils", "GET", s + "://shut.example/other")));
    // A locked list's URL prefix.
    auto locked = request(*p, "office", "GET", s + "://host.example/illegal/x");
    CHECK(locked.by == decided_by::locked_category);
    CHECK(allowed(request(*p, "office", "GET", s + "://host.example/legal")));
  }
}

TEST_CASE("local blocks and exceptions by path apply to https requests exactly as to http") {
  auto p = load();
  auto idx = exception_index::build({exception_for(*p, 7, "pupils", "https://social.example/school", target_kind::prefix)},
                                    {local_block(3, "https://open.example/bad")});
  for (const char* scheme : {"http", "https"}) {
    const std::string s = scheme;
    CAPTURE(s);
    CHECK_FALSE(allowed(request(*p, "pupils", "GET", s + "://open.example/bad", idx.get())));
    CHECK_FALSE(allowed(request(*p, "staff", "GET", s + "://open.example/bad/page", idx.get())));
    CHECK(allowed(request(*p, "pupils", "GET", s + "://open.example/badger", idx.get())));
    auto opened = request(*p, "pupils", "GET", s + "://social.example/school/news", idx.get());
    CHECK(allowed(opened));
    CHECK(opened.rule_id == "exception 7");
    CHECK_FALSE(allowed(request(*p, "pupils", "GET", s + "://social.example/feed", idx.get())));
  }
}

TEST_CASE("a relayed CONNECT (path_seen_later false) is decided as before: path entries never open, blocks close the host") {
  auto p = load();
  auto idx = exception_index::build({exception_for(*p, 7, "pupils", "https://social.example/school", target_kind::prefix)},
                                    {local_block(3, "https://open.example/bad")});
  CHECK(allowed(connect_to{*p, "pupils", "pages.example"}.decide()));    // URL prefixes never match
  CHECK_FALSE(allowed(connect_to{*p, "pupils", "pat.example"}.decide()));  // patterns see https://host/
  CHECK_FALSE(allowed(connect_to{*p, "pupils", "shut.example"}.decide()));
  CHECK(allowed(connect_to{*p, "staff", "wiki.example"}.decide()));       // a POST rule cannot match CONNECT
  CHECK_FALSE(allowed(connect_to{*p, "pupils", "open.example"}.decide(idx.get())));   // fail closed
  CHECK_FALSE(allowed(connect_to{*p, "pupils", "social.example"}.decide(idx.get())));  // fail closed
  CHECK_FALSE(allowed(connect_to{*p, "pupils", "tunnel.example"}.decide()));
}

TEST_CASE("an inspected CONNECT (path_seen_later) is decided on host-level entries only") {
  auto p = load();
  auto idx = exception_index::build({exception_for(*p, 7, "pupils", "https://social.example/school", target_kind::prefix)},
                                    {local_block(3, "https://open.example/bad")});
  auto later = [&](const char* role, const char* host) { return connect_to{*p, role, host, true}.decide(idx.get()); };
  // Entries that need the path do not block the CONNECT: each request is decided later.
  CHECK(allowed(later("pupils", "pat.example")));
  CHECK(allowed(later("pupils", "pages.example")));
  CHECK(allowed(later("pupils", "open.example")));
  CHECK(allowed(later("office", "host.example")));
  // An allow that needs the path opens a host that is blocked at host level (its other pages
  // are blocked one by one).
  auto ok = later("pupils", "shut.example");
  CHECK(allowed(ok));
  CHECK(ok.rule_id == "pupils rule 3");
  auto exception = later("pupils", "social.example");
  CHECK(allowed(exception));
  CHECK(exception.rule_id == "exception 7");
  auto by_method = later("pupils", "methods.example");
  CHECK(allowed(by_method));
  CHECK(by_method.rule_id == "pupils rule 5");
  // Host-level entries still apply: a domain block, a locked domain, a rule for CONNECT itself.
  CHECK(allowed(later("staff", "www.social.example")));  // staff have no rule on it
  CHECK_FALSE(allowed(connect_to{*p, "pupils", "www.social.example", true}.decide()));
  CHECK_FALSE(allowed(later("pupils", "tunnel.example")));
  CHECK(allowed(later("staff", "wiki.example")));
  // A path in the facts means a request, not a CONNECT: path_seen_later changes nothing then.
  const connect_to pages{*p, "pupils", "pages.example", true};  // the facts view its strings
  auto f = pages.facts();
  f.method = "GET";
  const std::string path = "/games";
  f.path = path;
  CHECK_FALSE(allowed(decide_request(*p, idx.get(), f)));
}

TEST_CASE("decide_inspection: the never list wins over every entry") {
  auto p = load();
  for (const char* role : {"guests", "pupils", "staff"}) {
    for (const char* host : {"bank.example", "www.bank.example", "gp.health.example", "BANK.example."}) {
      CAPTURE(role);
      CAPTURE(host);
      auto v = connect_to{*p, role, host}.inspection();
      CHECK(v.handling == tls_handling::relay);
      CHECK(v.never);
      CHECK(v.why.find("never-inspect list") != std::string::npos);
    }
  }
  // Not a label-boundary match.
  CHECK_FALSE(connect_to{*p, "guests", "notbank.example"}.inspection().never);
}

TEST_CASE("decide_inspection: inspect entries by role, domain, category, SafeSearch and everything") {
  auto p = load();
  auto wiki = connect_to{*p, "staff", "en.wiki.example"}.inspection();
  CHECK(wiki.handling == tls_handling::inspect);
  CHECK(wiki.why == "The wiki is inspected for staff.");
  // The entry is for staff only; pupils have no rule on the wiki.
  CHECK(connect_to{*p, "pupils", "en.wiki.example"}.inspection().handling == tls_handling::relay);
  // By category (domains).
  auto news = connect_to{*p, "office", "www.news.example"}.inspection();
  CHECK(news.handling == tls_handling::inspect);
  CHECK(news.why.find("inspection entry 2") != std::string::npos);
  CHECK(connect_to{*p, "pupils", "www.news.example"}.inspection().handling == tls_handling::relay);
  // SafeSearch: the hosts of the role's lock.
  auto google = connect_to{*p, "pupils", "www.google.co.uk"}.inspection();
  CHECK(google.handling == tls_handling::inspect);
  CHECK(google.why == "search engines are inspected for pupils (SafeSearch)");
  CHECK(connect_to{*p, "staff", "www.google.com"}.inspection().handling == tls_handling::relay);  // search off
  CHECK(connect_to{*p, "staff", "www.youtube.com"}.inspection().handling == tls_handling::inspect);  // moderate
  CHECK(connect_to{*p, "pupils", "mail.google.com"}.inspection().handling == tls_handling::relay);
  // Everything (but the never list) for guests.
  CHECK(connect_to{*p, "guests", "anything.example"}.inspection().handling == tls_handling::inspect);
  CHECK(connect_to{*p, "pupils", "anything.example"}.inspection().handling == tls_handling::relay);
  // An invalid host is relayed (its CONNECT is blocked anyway).
  CHECK(connect_to{*p, "guests", "bad host"}.inspection().handling == tls_handling::relay);
}

TEST_CASE("decide_inspection: hosts whose entries need the path or method, for that role") {
  auto p = load();
  auto prefix = connect_to{*p, "pupils", "www.pages.example"}.inspection();
  CHECK(prefix.handling == tls_handling::inspect);
  CHECK(prefix.why.find("pupils rule 1") != std::string::npos);
  CHECK(connect_to{*p, "staff", "pages.example"}.inspection().handling == tls_handling::relay);
  // An allow by URL prefix on a blocked host: inspected, so that page can open.
  CHECK(connect_to{*p, "pupils", "shut.example"}.inspection().handling == tls_handling::inspect);
  // A rule with methods on the host.
  auto edit = connect_to{*p, "staff", "edit.example"}.inspection();
  CHECK(edit.handling == tls_handling::inspect);
  CHECK(edit.why.find("method") != std::string::npos);
  // A locked list's URL prefix: for every role.
  for (const char* role : {"pupils", "staff", "office"}) {
    auto v = connect_to{*p, role, "host.example"}.inspection();
    CHECK(v.handling == tls_handling::inspect);
    CHECK(v.why.find("'iwf'") != std::string::npos);
  }
  // Nothing needs more than the host.
  auto plain = connect_to{*p, "pupils", "plain.example"}.inspection();
  CHECK(plain.handling == tls_handling::relay);
  CHECK_FALSE(plain.never);
  CHECK(plain.why.find("nothing in the policy for pupils") != std::string::npos);
}

TEST_CASE("decide_inspection: local blocks and exceptions with a path inspect their host") {
  auto p = load();
  auto idx = exception_index::build(
      {exception_for(*p, 7, "pupils", "https://social.example/school", target_kind::prefix),
       exception_for(*p, 8, "pupils", "https://old.example/page", target_kind::url, "2026-11-20 08:00", "2026-11-20 15:00"),
       exception_for(*p, 9, "pupils", "https://whole.example/", target_kind::domain)},
      {local_block(3, "https://open.example/bad")});
  auto reported = connect_to{*p, "staff", "open.example"}.inspection(idx.get());
  CHECK(reported.handling == tls_handling::inspect);
  CHECK(reported.why.find("local block 3") != std::string::npos);
  // Only the exact host: a page entry names one host.
  CHECK(connect_to{*p, "staff", "www.open.example"}.inspection(idx.get()).handling == tls_handling::relay);
  auto exception = connect_to{*p, "pupils", "social.example"}.inspection(idx.get());
  CHECK(exception.handling == tls_handling::inspect);
  CHECK(exception.why.find("exception 7") != std::string::npos);
  // Out of scope (another role), expired, or for a whole domain: nothing needs the path.
  CHECK(connect_to{*p, "staff", "social.example"}.inspection(idx.get()).handling == tls_handling::relay);
  CHECK(connect_to{*p, "pupils", "old.example"}.inspection(idx.get()).handling == tls_handling::relay);
  CHECK(connect_to{*p, "pupils", "whole.example"}.inspection(idx.get()).handling == tls_handling::relay);
  // The never list still wins.
  auto never = exception_index::build({}, {local_block(4, "https://www.bank.example/x")});
  CHECK(connect_to{*p, "pupils", "www.bank.example"}.inspection(never.get()).never);
}

TEST_CASE("explain_url: the path is seen only when the host is inspected") {
  auto p = load();
  // explain_url for `url` with or without a school CA.
  auto explained = [&](const char* role, const char* method, const char* url, bool ca) {
    return with_request(*p, role, method, url, [&](const request_facts& f) { return explain_url(*p, f, nullptr, ca); });
  };
  // No CA: the host alone, with a note, and no inspection line.
  auto no_ca = explained("staff", "POST", "https://wiki.example/w/api.php", false);
  CHECK(no_ca.v.act == action::allow);
  CHECK_FALSE(no_ca.path_seen);
  CHECK_FALSE(no_ca.inspection);
  CHECK(no_ca.notes.front().find("plays no part") != std::string::npos);
  // A CA and an inspected host: decided with the method and path.
  auto inspected = explained("staff", "POST", "https://wiki.example/w/api.php", true);
  CHECK(inspected.v.act == action::block);
  CHECK(inspected.path_seen);
  REQUIRE(inspected.inspection);
  CHECK(inspected.inspection->handling == tls_handling::inspect);
  // A CA and a relayed host: the host alone.
  auto relayed = explained("pupils", "GET", "https://plain.example/x", true);
  CHECK_FALSE(relayed.path_seen);
  CHECK(relayed.inspection->handling == tls_handling::relay);
  CHECK(relayed.notes.front().find("relayed without decryption") != std::string::npos);
  // Inspected, but blocked at host level: the CONNECT's block (the HTTPS block page).
  auto blocked = explained("guests", "GET", "https://social.example/x", true);
  CHECK(blocked.v.act == action::block);
  CHECK_FALSE(blocked.path_seen);
  CHECK(blocked.inspection->handling == tls_handling::inspect);
  CHECK(blocked.notes.front().find("HTTPS block page") != std::string::npos);
  auto host_block = explained("pupils", "GET", "https://shut.example/ok", true);
  CHECK(host_block.v.act == action::allow);  // the page the allow rule names
  CHECK(host_block.path_seen);
  auto other_page = explained("pupils", "GET", "https://shut.example/other", true);
  CHECK(other_page.v.act == action::block);
  // SafeSearch: the mapping and the rewrite.
  auto search = explained("pupils", "GET", "https://www.google.com/search?q=owls&safe=off", true);
  CHECK(search.safesearch_connect.starts_with("forcesafesearch.google.com"));
  CHECK(search.safesearch_change == "the request becomes /search?q=owls&safe=active");
  auto mapped_only = explained("pupils", "GET", "https://www.google.com/search?q=owls", false);
  CHECK(mapped_only.safesearch_connect.starts_with("forcesafesearch.google.com"));
  CHECK(mapped_only.safesearch_change.empty());  // no CA: the proxy cannot change the request
  auto plain_http = explained("pupils", "GET", "http://www.bing.com/search?q=owls", false);
  CHECK(plain_http.safesearch_change == "the request becomes /search?q=owls&adlt=strict");
}
