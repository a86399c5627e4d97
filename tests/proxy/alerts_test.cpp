// Alerts for the DSL (proxy/alerts.hpp): the gate that holds repeats, the mail message and the
// log line, the command runner, and the `alerts` section's checks. The whole path through the
// daemon is tests/integration/alerts_test.py.
#include "proxy/alerts.hpp"

#include <doctest/doctest.h>
#include <openssl/evp.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <boost/json.hpp>

#include "proxy/access_log.hpp"
#include "proxy/configuration.hpp"
#include "rules/time_zone.hpp"
#include "tests/proxy/test_support.hpp"
#include "tests/temp_dir.hpp"

namespace {

using namespace std::chrono_literals;
using hallpass::alert;
using hallpass::alert_kind;
using hallpass_test::contains;

hallpass::rules::time_zone alert_zone() {
  std::string error;
  return *hallpass::rules::time_zone::from_posix("UTC", "UTC0", &error);
}

alert pupil_alert() {
  alert a;
  a.kind = alert_kind::category;
  a.at = std::chrono::sys_days{std::chrono::year{2026} / 11 / 23} + 11h + 5min;
  a.category = "self_harm";
  a.category_description = "Content that promotes self-harm.";
  a.client = "10.10.4.20";
  a.role = "pupils";
  a.url = "http://bad.example/page";
  a.rule = "pupils rule 3";
  a.clause = "000 6.9";
  return a;
}

// The message's header part (before the first empty line) as its lines.
std::vector<std::string> alert_header_lines(const std::string& message) {
  std::vector<std::string> out;
  std::istringstream in(message.substr(0, message.find("\n\n")));
  for (std::string line; std::getline(in, line);) {
    out.push_back(line);
  }
  return out;
}

}  // namespace

TEST_CASE("alert gate: one alert per subject and kind per period, and the next one counts those held") {
  hallpass::alert_gate gate;
  const auto t0 = std::chrono::steady_clock::time_point{} + 1000h;
  CHECK(gate.admit("a", t0, 600s) == std::optional<std::uint64_t>(0));
  CHECK_FALSE(gate.admit("a", t0 + 1s, 600s));
  CHECK_FALSE(gate.admit("a", t0 + 599s, 600s));
  CHECK(gate.admit("b", t0 + 2s, 600s) == std::optional<std::uint64_t>(0));  // another subject: its own
  CHECK(gate.admit("a", t0 + 600s, 600s) == std::optional<std::uint64_t>(2));
  CHECK(gate.admit("a", t0 + 1200s, 600s) == std::optional<std::uint64_t>(0));
}

TEST_CASE("alert gate: bounded: full of subjects still in their period, it forgets them rather than grow") {
  hallpass::alert_gate gate(3);
  const auto t0 = std::chrono::steady_clock::time_point{} + 1000h;
  for (int i = 0; i < 3; ++i) CHECK(gate.admit("k" + std::to_string(i), t0, 600s));
  CHECK(gate.size() == 3);
  CHECK(gate.admit("k3", t0 + 1s, 600s));  // sent, never held for want of room
  CHECK(gate.size() <= 3);
  // Old subjects are forgotten first when their period is over.
  hallpass::alert_gate g2(2);
  CHECK(g2.admit("old", t0, 10s));
  CHECK(g2.admit("new", t0 + 9s, 10s));
  CHECK(g2.admit("third", t0 + 11s, 10s));
  CHECK_FALSE(g2.admit("new", t0 + 12s, 10s));  // kept: still within its period
}

TEST_CASE("alert subject: the signed-in user, else the device by hardware address, else its address") {
  alert a = pupil_alert();
  const auto by_address = hallpass::alert_subject_key(a);
  a.hardware_address = "3c:22:fb:12:9a:01";
  const auto by_mac = hallpass::alert_subject_key(a);
  CHECK(by_mac != by_address);
  a.client = "10.10.4.99";  // a new address from DHCP: the same device
  CHECK(hallpass::alert_subject_key(a) == by_mac);
  a.user = "sam";
  CHECK(contains(hallpass::alert_subject_key(a), "user:sam"));
  alert other = a;
  other.category = "extremism";
  CHECK(hallpass::alert_subject_key(other) != hallpass::alert_subject_key(a));
  other.kind = alert_kind::circumvention;
  other.category = "circumvention";
  alert other2 = other;
  other2.category = "something else";
  CHECK(hallpass::alert_subject_key(other) == hallpass::alert_subject_key(other2));  // by kind only
}

TEST_CASE("alert message: a mail message a person can read, with the facts of the block") {
  alert a = pupil_alert();
  a.device_name = "pupil-laptop-07";
  a.held = 3;
  const auto m = hallpass::format_alert_message(a, {"dsl@school.example"}, "Example Primary", alert_zone());
  const auto h = alert_header_lines(m);
  REQUIRE(h.size() >= 3);
  CHECK(h[0] == "To: dsl@school.example");
  // Several: one To: header, folded after a comma before 78 columns, each address whole.
  const std::vector<std::string> many{"designated.safeguarding.lead@example-primary.sch.uk",
                                      "deputy.dsl@example-primary.sch.uk", "head@example-primary.sch.uk"};
  const auto folded = hallpass::format_alert_message(a, many, "Example Primary", alert_zone());
  CHECK(folded.starts_with("To: designated.safeguarding.lead@example-primary.sch.uk,\n"
                           " deputy.dsl@example-primary.sch.uk, head@example-primary.sch.uk\nSubject: "));
  CHECK(hallpass::mail_to_header({}) == "");
  CHECK(hallpass::mail_address_list(many) ==
        "designated.safeguarding.lead@example-primary.sch.uk, deputy.dsl@example-primary.sch.uk, head@example-primary.sch.uk");
  CHECK(h[1] == "Subject: [hallpass] Blocked self harm site for a device of pupils (pupil-laptop-07)");
  CHECK(contains(m, "Content-Type: text/plain; charset=utf-8\n"));
  CHECK_FALSE(contains(m, "\r"));
  CHECK(contains(m, "Example Primary: a site in a category the school watches (self harm) was blocked."));
  CHECK(contains(m, "When:     Monday 23 November 2026, 11:05 UTC\n"));
  CHECK(contains(m, "Who:      not signed in (treated as pupils)\n"));
  CHECK(contains(m, "Device:   pupil-laptop-07, network address 10.10.4.20\n"));
  CHECK(contains(m, "Site:     http://bad.example/page\n"));
  CHECK(contains(m, "Category: self harm: Content that promotes self-harm.\n"));
  CHECK(contains(m, "Rule:     pupils rule 3 (school policy 000 6.9)\n"));
  {
    // The description's first sentence only: what follows is the technician's note, which read
    // as nonsense in an alert that the site was blocked (people-side audit, 2026-12-07, M8).
    auto noted = a;
    noted.category_description = "Content that promotes self-harm. UT1 has no list for it: until then it blocks nothing.";
    const auto n = hallpass::format_alert_message(noted, {}, "Example Primary", alert_zone());
    CHECK(contains(n, "Category: self harm: Content that promotes self-harm.\n"));
    CHECK_FALSE(contains(n, "blocks nothing"));
  }
  CHECK(contains(m, "3 more were held back"));
  CHECK_FALSE(contains(m, "Searched:"));  // none given: no line
  // No To: without an address (a command that is not sendmail -t).
  CHECK(alert_header_lines(hallpass::format_alert_message(a, {}, "S", alert_zone()))[0].starts_with("Subject: "));
}

TEST_CASE("alert message: the incident command names the autumn's second 01:30 by its offset") {
  // outside-in audit of time, 2026-12-07, F8: "--at 2026-10-25 01:30" recorded the first.
  std::string error;
  const auto london = *hallpass::rules::time_zone::from_posix("Europe/London", "GMT0BST,M3.5.0/1,M10.5.0", &error);
  auto a = pupil_alert();
  a.at = std::chrono::sys_days{std::chrono::year{2026} / 10 / 25} + 1h + 30min;  // 01:30 GMT, the second
  CHECK(contains(hallpass::format_alert_message(a, {}, "S", london), "--at \"2026-10-25 01:30+00:00\""));
  a.at -= 1h;  // 01:30 BST, the first: named by its wall time alone, as any other
  CHECK(contains(hallpass::format_alert_message(a, {}, "S", london), "--at \"2026-10-25 01:30\";"));
  a.at = std::chrono::sys_days{std::chrono::year{2026} / 11 / 23} + 11h + 5min;
  CHECK(contains(hallpass::format_alert_message(a, {}, "S", london), "--at \"2026-11-23 11:05\";"));
}

TEST_CASE("alert message: text from outside cannot add headers or control the reader's screen") {
  alert a = pupil_alert();
  a.user = "sam\r\nBcc: everyone@example.com";
  a.device_name = "pc\x1b[2J";
  a.search = "how to \xe2\x80\xae evil";  // a bidi override
  a.url = "http://bad.example/\r\n\r\nInjected body";
  const auto m = hallpass::format_alert_message(a, {"dsl@school.example"}, "School", alert_zone());
  for (const auto& line : alert_header_lines(m)) {
    CHECK_FALSE(line.starts_with("Bcc"));
    for (unsigned char ch : line) CHECK((ch >= 0x20 && ch < 0x7f));
  }
  const std::string body = m.substr(m.find("\n\n") + 2);
  for (unsigned char ch : body) CHECK((ch >= 0x20 || ch == '\n'));
  CHECK_FALSE(contains(body, "\xe2\x80\xae"));
  CHECK(contains(body, "Who:      sam\\r\\nBcc: everyone@example.com (pupils)"));
  // Long fields are cut, and the message stays small.
  alert big = pupil_alert();
  big.search = std::string(100000, 'x');
  big.note = std::string(100000, 'y');
  CHECK(hallpass::format_alert_message(big, {}, "S", alert_zone()).size() < 20 * 1024);
}

TEST_CASE("alert message: a name outside ASCII reaches the Subject whole, as RFC 2047 encoded words") {
  // Outside-in audit, 2026-12-06: "Zoë-laptop" read "Zo??-laptop".
  alert a = pupil_alert();
  a.device_name = "Zo\xc3\xab-laptop \xe2\x80\x94 Ysgol Gymraeg Aberystwyth, dosbarth C\xc3\xa2n a Cherddoriaeth";
  const auto h = alert_header_lines(hallpass::format_alert_message(a, {"dsl@school.example"}, "S", alert_zone()));
  REQUIRE(h.size() >= 3);
  CHECK(h[1].starts_with("Subject: =?UTF-8?B?"));
  // Folded: the encoded words after the first are on lines of their own, each starting with
  // a space, each at most 75 characters; every header line is printable ASCII.
  std::string decoded;
  std::size_t words = 0;
  for (std::size_t i = 1; i < h.size() && (i == 1 || h[i].starts_with(" ")); ++i) {
    std::string w = i == 1 ? h[i].substr(9) : h[i].substr(1);
    CHECK(w.size() <= 75);
    CHECK(h[i].size() <= 76);  // the whole line, "Subject: " included (RFC 2047, 2)
    REQUIRE(w.starts_with("=?UTF-8?B?"));
    REQUIRE(w.ends_with("?="));
    for (unsigned char ch : h[i]) CHECK((ch >= 0x20 && ch < 0x7f));
    const std::string b64 = w.substr(10, w.size() - 12);
    std::string out(b64.size() / 4 * 3, '\0');
    const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(b64.data()), static_cast<int>(b64.size()));
    REQUIRE(n >= 0);
    out.resize(static_cast<std::size_t>(n) - (b64.ends_with("==") ? 2 : b64.ends_with("=") ? 1 : 0));
    decoded += out;
    ++words;
  }
  CHECK(words >= 2);
  CHECK(decoded == "[hallpass] Blocked self harm site for a device of pupils (" + a.device_name + ")");
  // A bidi override or a zero-width character in a name a pupil chose reaches no header.
  a.device_name = "pc-\xe2\x80\xae" "08\xe2\x80\x8b";
  const auto bidi = alert_header_lines(hallpass::format_alert_message(a, {}, "S", alert_zone()));
  CHECK(bidi[0] == "Subject: [hallpass] Blocked self harm site for a device of pupils (pc-08)");
}

TEST_CASE("alert messages for attempts to get round the filter, and for automatic bans") {
  alert c = pupil_alert();
  c.kind = alert_kind::circumvention;
  c.category = "circumvention";
  c.category_description = "";
  c.user = "sam";
  c.hardware_address = "3c:22:fb:12:9a:01";
  auto m = hallpass::format_alert_message(c, {}, "S", alert_zone());
  CHECK(contains(m, "Subject: [hallpass] Attempt to get round the filter by sam (3c:22:fb:12:9a:01)\n"));
  CHECK(contains(m, "Who:      sam (pupils)\n"));
  alert b;
  b.kind = alert_kind::ban;
  b.at = pupil_alert().at;
  b.ban = 4;
  b.ban_subject = "the device 10.10.4.20";
  b.ban_until_text = "Tuesday 24 November 2026, 11:05 GMT";
  b.ban_reason = "3 attempts to get round the filter within 10 minutes (the last: vpn.example)";
  b.client = "10.10.4.20";
  m = hallpass::format_alert_message(b, {}, "S", alert_zone());
  CHECK(contains(m, "Subject: [hallpass] Use limited to supervised sites: the device 10.10.4.20\n"));
  CHECK(contains(m, "Ban:      number 4, until Tuesday 24 November 2026, 11:05 GMT\n"));
  CHECK(contains(m, "Why:      3 attempts"));
}

TEST_CASE("alert message for a reported page's block removed: the report, who removed it and why") {
  alert r;
  r.kind = alert_kind::report_unblocked;
  r.at = pupil_alert().at;
  r.entry = 12;
  r.report = 3;
  r.url = "http://bad.example/page";
  r.report_nature = "violent images";
  r.reporter = "Mrs Jones";
  r.removed_by = "ict.tech (technician)";
  r.removed_reason = "needed for a lesson\nSubject: forged";
  const auto m = hallpass::format_alert_message(r, {"dsl@school.example"}, "S", alert_zone());
  CHECK(contains(m, "Subject: [hallpass] A reported page's block was removed: http://bad.example/page\n"));
  CHECK(contains(m, "Report:   number 3: violent images, reported by Mrs Jones\n"));
  CHECK(contains(m, "Removed:  local block 12, by ict.tech (technician)\n"));
  CHECK(contains(m, "Why:      needed for a lesson"));
  CHECK_FALSE(contains(m, "\nSubject: forged"));  // no header, nor a line of its own, from a reason
  CHECK_FALSE(contains(m, "incident"));
  CHECK(contains(hallpass::held_alert_line(r, alert_zone()), "report 3's block removed  by ict.tech (technician)"));
  const auto v = boost::json::parse(hallpass::format_alert_line(r, alert_zone())).as_object();
  CHECK(v.at("kind") == "report_unblocked");
  CHECK(v.at("report") == 3);
  CHECK(v.at("entry") == 12);
  CHECK(v.at("by") == "ict.tech (technician)");
  // Each removal is an alert of its own, never held as a repeat of another's.
  alert other = r;
  other.entry = 13;
  CHECK(hallpass::alert_subject_key(r) != hallpass::alert_subject_key(other));
}

TEST_CASE("alert address: no query, fragment or path parameters, and the port only when not the scheme's own") {
  CHECK(hallpass::alert_url("http", "bad.example", 80, "/a;jsessionid=1/b?q=secret#x") == "http://bad.example/a/b");
  CHECK(hallpass::alert_url("https", "bad.example", 443, "/p") == "https://bad.example/p");
  CHECK(hallpass::alert_url("https", "bad.example", 8443, "/p?x") == "https://bad.example:8443/p");
  CHECK(hallpass::alert_url("http", "bad.example", 0, "/") == "http://bad.example/");
}

TEST_CASE("alert log line: one JSON object, and no query or search") {
  alert a = pupil_alert();
  a.held = 2;
  a.search = "secret words";
  const auto line = hallpass::format_alert_line(a, alert_zone());
  REQUIRE(line.ends_with("\n"));
  const auto v = boost::json::parse(line).as_object();
  CHECK(v.at("event") == "alert");
  CHECK(v.at("kind") == "category");
  CHECK(v.at("time") == "2026-11-23T11:05:00+00:00");
  CHECK(v.at("client") == "10.10.4.20");
  CHECK(v.at("user").is_null());
  CHECK(v.at("category") == "self_harm");
  CHECK(v.at("url") == "http://bad.example/page");
  CHECK(v.at("held") == 2);
  CHECK_FALSE(contains(line, "secret"));  // the request's own line keeps search terms, when kept
}

TEST_CASE("alert command: the message on its standard input, and its exit status says whether it worked") {
  hallpass_test::temp_dir dir("hallpass-alert-cmd");
  const auto out = (dir.path / "got").string();
  CHECK(hallpass::run_alert_command({"/bin/sh", "-c", "cat > \"$0\"", out}, "Subject: x\r\n\r\nhello\n", 10s) == "");
  std::ifstream in(out);
  std::stringstream got;
  got << in.rdbuf();
  CHECK(got.str() == "Subject: x\r\n\r\nhello\n");
  CHECK(hallpass::run_alert_command({"/bin/sh", "-c", "exit 3"}, "", 10s) == "exited with status 3");
  CHECK(contains(hallpass::run_alert_command({"/nonexistent/sendmail"}, "", 10s), "cannot start /nonexistent/sendmail"));
  // A minimal environment: nothing of the daemon's (its secrets, its LD_PRELOAD) reaches the command.
  CHECK(hallpass::run_alert_command({"/bin/sh", "-c", "test -z \"$HOME\" && test \"$PATH\" = /usr/sbin:/usr/bin:/sbin:/bin"},
                                    "", 10s) == "");
}

TEST_CASE("alert command: one that does not finish is killed at the limit, with what it started") {
  hallpass_test::temp_dir dir("hallpass-alert-slow");
  const auto pidfile = (dir.path / "child").string();
  const auto started = std::chrono::steady_clock::now();
  // A grandchild in the background, as a mail agent's queue runner might be: killed with it.
  const auto why = hallpass::run_alert_command(
      {"/bin/sh", "-c", "sleep 30 & echo $! > \"$0\"; wait", pidfile}, "", 500ms);
  const auto took = std::chrono::steady_clock::now() - started;
  CHECK(contains(why, "did not finish within"));
  CHECK(took < 5s);
  std::ifstream in(pidfile);
  long child = 0;
  in >> child;
  REQUIRE(child > 0);
  // Gone (or a zombie of init's about to be reaped): no longer sleeping.
  bool alive = false;
  for (int i = 0; i < 100; ++i) {  // at most 1 s
    std::ifstream status("/proc/" + std::to_string(child) + "/stat");
    std::string pid, comm, state;
    alive = static_cast<bool>(status >> pid >> comm >> state) && state != "Z";
    if (!alive) break;
    std::this_thread::sleep_for(10ms);
  }
  CHECK_FALSE(alive);
  // A command that does not read its input at all still ends by the limit.
  const std::string big(1 << 20, 'x');
  const auto t = std::chrono::steady_clock::now();
  CHECK(contains(hallpass::run_alert_command({"/bin/sh", "-c", "sleep 30"}, big, 300ms), "did not finish"));
  CHECK(std::chrono::steady_clock::now() - t < 5s);
}

TEST_CASE("alerts section: what is refused, with the key named") {
  using hallpass_test::load_config;
  CHECK(load_config("alerts: {categories: [self_harm], command: /usr/sbin/sendmail}\n").errors.find("must be a list") !=
        std::string::npos);
  CHECK(contains(load_config("alerts: {categories: [self_harm], command: [sendmail, -t]}\n").errors,
                 "must be an absolute path"));
  CHECK(contains(load_config("alerts: {categories: [self_harm], to: dsl@x.example}\n").errors, "alerts.to needs alerts.command"));
  CHECK(contains(load_config("alerts: {categories: [self_harm], command: [/bin/true], to: \"a@b\\r\\nBcc: c@d\"}\n").errors,
                 "alerts.to must be mail addresses"));
  // One address, not a list nor a display name (outside-in audit, 2026-12-06: both got the mail).
  for (const char* list : {"\"dsl@x.example, other@y.example\"", "\"dsl@x.example other@y.example\"",
                           "\"dsl@x.example;other@y.example\"", "\"DSL <dsl@x.example>\"", "\"a@b@c\"", "\"@x\""}) {
    CHECK(contains(load_config(std::string("alerts: {categories: [self_harm], command: [/bin/true], to: ") + list + "}\n").errors,
                   "alerts.to must be mail addresses"));
  }
  // The DSL and the deputies as a list (KCSIE's deputy DSL), each entry one address.
  const auto two = load_config("alerts: {categories: [self_harm], command: [/bin/true], "
                               "to: [dsl@school.example, deputy.dsl@school.example]}\n");
  CHECK(two.errors == "");
  CHECK(two.config.alerts.to == std::vector<std::string>{"dsl@school.example", "deputy.dsl@school.example"});
  CHECK(contains(load_config("alerts: {command: [/bin/true], to: [dsl@x.example, \"a@x.example, b@x.example\"]}\n").errors,
                 "alerts.to must be mail addresses"));
  CHECK(contains(load_config("alerts: {command: [/bin/true], to: [dsl@x.example, DSL@X.example]}\n").errors,
                 "names 'DSL@X.example' twice"));
  CHECK(contains(load_config("alerts: {command: [/bin/true], to: []}\n").errors, "alerts.to names nobody"));
  CHECK(contains(load_config("alerts: {command: [/bin/true], to: [a@x, b@x, c@x, d@x, e@x, f@x, g@x, h@x, i@x, j@x, k@x]}\n").errors,
                 "alerts.to names 11 addresses; at most 10"));
  CHECK(contains(load_config("alerts: {command: [/bin/true], to: [[a@x]]}\n").errors, "alerts.to"));
  // A command alone: for `safeguarding-report --send`, with no alert raised.
  CHECK(load_config("alerts: {command: [/usr/sbin/sendmail, -t], to: dsl@x.example}\n").errors == "");
  // With an alerts section, a reported page's block removed alerts unless it says otherwise.
  CHECK(load_config("alerts: {command: [/usr/sbin/sendmail, -t]}\n").config.alerts.unblocked_reports);
  CHECK(load_config("alerts: {command: [/usr/sbin/sendmail, -t]}\n").config.alerts.enabled());
  CHECK_FALSE(load_config("alerts: {command: [/usr/sbin/sendmail, -t], unblocked_reports: false}\n").config.alerts.enabled());
  CHECK(contains(load_config("alerts: {command: [/bin/true], to: \"d\u00e9l@x.example\"}\n").errors, "in ASCII"));
  CHECK(contains(load_config("alerts: {circumvention: true, every: 0s}\n").errors, "alerts.every must be from 1s to 7d"));
  CHECK(contains(load_config("alerts: {circumvention: true, sendmail: x}\n").errors, "sendmail"));
  const auto ok = load_config("alerts: {categories: [self_harm, extremism], circumvention: true, bans: true, "
                              "command: [/usr/sbin/sendmail, -t], to: dsl@school.example, every: 15m}\n");
  CHECK(ok.errors == "");
  CHECK(ok.config.alerts.categories == std::vector<std::string>{"self_harm", "extremism"});
  CHECK(ok.config.alerts.every == 15min);
  CHECK(ok.config.alerts.enabled());
  CHECK_FALSE(load_config("listen: [\"127.0.0.1:3128\"]\n").config.alerts.enabled());  // off unless asked for
}

TEST_CASE("alerts section: a category the policy does not have, or a command that cannot run, is an error") {
  hallpass_test::temp_dir dir("hallpass-alert-config");
  const auto with = [&](const std::string& section) {
    std::ofstream(dir.path / "p.yaml") << "school: {name: S, timezone: UTC}\n"
                                          "categories:\n"
                                          "  self_harm: {domains: [selfharm.test]}\n"
                                          "  extremism: {domains: [extremism.test]}\n"
                                          "roles:\n"
                                          "  pupils: {networks: [10.0.0.0/8], default: allow}\n"
                                          "fallback_role: pupils\n"
                                       << section;
    return hallpass::load_configuration((dir.path / "p.yaml").string(), hallpass::overrides{}, 1);
  };
  auto r = with("alerts: {categories: [self-harm]}\n");
  CHECK_FALSE(r.config);
  REQUIRE_FALSE(r.errors.empty());
  CHECK(contains(r.errors[0].to_string(), "alerts.categories: 'self-harm' is not a category of this policy"));
  CHECK(contains(r.errors[0].to_string(), "self_harm"));  // the names it has, to pick from
  r = with("alerts: {categories: [self_harm], command: [/nonexistent/sendmail, -t]}\n");
  CHECK_FALSE(r.config);
  REQUIRE_FALSE(r.errors.empty());
  CHECK(contains(r.errors[0].to_string(), "alerts.command: '/nonexistent/sendmail' is not a program that can be run"));
  r = with("alerts: {categories: [self_harm, extremism], circumvention: true, command: [/bin/cat]}\n");
  CHECK(r.config);
}

TEST_CASE("alert sender: the mail limit counts what it stops, and a hung command dies with the proxy") {
  hallpass::access_log log("off", 16, nullptr);
  hallpass::daemon_config::alert_settings s;
  s.categories = {"self_harm"};
  hallpass_test::temp_dir dir("hallpass-alert-hung");
  const auto started_file = (dir.path / "started").string();
  s.command = {"/bin/sh", "-c", "cat > /dev/null; touch \"$0\"; sleep 30", started_file};
  std::chrono::steady_clock::time_point stopping;
  {
    hallpass::alert_sender sender(nullptr);
    for (int i = 0; i < 100; ++i) {
      alert a = pupil_alert();
      a.client = "10.0.0." + std::to_string(i);  // 100 devices: none held as a repeat
      sender.raise(a, s, "S", alert_zone(), log);
    }
    CHECK(sender.not_mailed() == 80);  // 20 at once, then one every 30 s
    // The first command is running (sleeping 30 s) before the proxy stops.
    for (int i = 0; i < 500 && !std::filesystem::exists(started_file); ++i) std::this_thread::sleep_for(10ms);
    REQUIRE(std::filesystem::exists(started_file));
    stopping = std::chrono::steady_clock::now();
  }
  // Stopping killed it at once, not after its 30 s (nor the command limit's).
  CHECK(std::chrono::steady_clock::now() - stopping < 5s);
}

TEST_CASE("alert sender: the next message says how many before it were not mailed") {
  hallpass_test::temp_dir dir("hallpass-alert-next");
  const auto marker = (dir.path / "failed-once").string();
  const auto out = (dir.path / "message").string();
  hallpass::access_log log("off", 16, nullptr);
  hallpass::daemon_config::alert_settings s;
  s.categories = {"self_harm"};
  // Fails the first time (the mail server was down), then delivers.
  s.command = {"/bin/sh", "-c", "if [ -e \"$0\" ]; then cat > \"$1\"; else touch \"$0\"; exit 75; fi", marker, out};
  hallpass::alert_sender sender(nullptr);
  alert first = pupil_alert();
  sender.raise(first, s, "S", alert_zone(), log);
  for (int i = 0; i < 500 && sender.not_mailed() == 0; ++i) std::this_thread::sleep_for(10ms);  // at most 5 s
  REQUIRE(sender.not_mailed() == 1);
  alert second = pupil_alert();
  second.client = "10.0.0.99";
  sender.raise(second, s, "S", alert_zone(), log);
  std::string got;
  for (int i = 0; i < 500 && got.find("-- \n") == std::string::npos; ++i) {  // at most 5 s
    std::this_thread::sleep_for(10ms);
    std::ifstream in(out);
    got.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  CHECK(contains(got, "Device:   network address 10.0.0.99"));
  CHECK(contains(got, "Before this alert, 1 alert could not be mailed"));
  // Each on its line: when, what, who, which site (outside-in audit, 2026-12-06, H1).
  CHECK(contains(got, "  Mon 23 Nov 11:05  blocked self harm site  "));
  CHECK(contains(got, "network address 10.10.4.20"));
  CHECK(got.find("Before this alert") < got.find("\n-- \n"));  // above the signature
}

namespace {

// Two sender tests' setting: a command that waits (at most 10 s) for the file `gate` before it
// keeps each message in a file of its own in `dir` (touching dir/started when the first begins).
struct gated_alerts {
  hallpass_test::temp_dir dir{"hallpass-alert-gated"};
  const std::string gate = (dir.path / "go").string();
  hallpass::access_log log{"off", 16, nullptr};
  hallpass::daemon_config::alert_settings s = [this] {
    hallpass::daemon_config::alert_settings g;
    g.categories = {"self_harm"};
    g.to = {"dsl@school.example"};
    g.command = {"/bin/sh", "-c",
                 "touch \"$1/started\"; i=0; while [ ! -e \"$0\" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; "
                 "cat > \"$1/m.$$\"",
                 gate, dir.path.string()};
    return g;
  }();
};

}  // namespace

TEST_CASE_FIXTURE(gated_alerts, "alert sender: a message raised before the losses does not claim them, and a reload drops what waits for the old address") {
  // Outside-in audit, 2026-12-06: the note went into messages already queued (raised before the
  // losses), and what waited still went to the address a reload had corrected.
  s.to = {"old@school.example"};
  hallpass::alert_sender sender(nullptr);
  for (int i = 0; i < 25; ++i) {  // 20 go to the queue (the mail limit), 5 are not mailed
    alert a = pupil_alert();
    a.client = "10.0.1." + std::to_string(i);
    sender.raise(a, s, "S", alert_zone(), log);
  }
  CHECK(sender.not_mailed() == 5);
  for (int i = 0; i < 500 && !std::filesystem::exists(dir.path / "started"); ++i) std::this_thread::sleep_for(10ms);
  REQUIRE(std::filesystem::exists(dir.path / "started"));  // the first is being mailed
  // The address is corrected by a reload: the 19 still waiting are dropped (the first is
  // being mailed already), and counted.
  auto corrected = s;
  corrected.to = {"dsl@school.example"};
  sender.settings_changed(corrected, 2);  // the messages were made under generation 0
  CHECK(sender.not_mailed() == 24);
  // A request that pinned the old configuration before the reload raises after it: not mailed
  // to the old address either; nor after a late call for an older reload (ignored).
  alert late = pupil_alert();
  late.client = "10.0.2.1";
  sender.raise(late, s, "S", alert_zone(), log, 1);
  CHECK(sender.not_mailed() == 25);
  sender.settings_changed(s, 1);
  late.client = "10.0.2.2";
  sender.raise(late, s, "S", alert_zone(), log, 1);
  CHECK(sender.not_mailed() == 26);
  { std::ofstream(gate).put('x'); }
  std::size_t files = 0;
  for (int i = 0; i < 500 && files < 1; ++i) {  // at most 5 s
    std::this_thread::sleep_for(10ms);
    files = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir.path)) files += e.path().filename().string().starts_with("m.");
  }
  REQUIRE(files == 1);
  std::this_thread::sleep_for(200ms);
  files = 0;
  std::string first;
  for (const auto& e : std::filesystem::directory_iterator(dir.path)) {
    if (!e.path().filename().string().starts_with("m.")) continue;
    ++files;
    std::ifstream in(e.path());
    first.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  CHECK(files == 1);  // the dropped ones never ran
  CHECK_FALSE(contains(first, "Before this alert"));  // raised before any loss: says none
}

TEST_CASE_FIXTURE(gated_alerts, "alert sender: a reload that adds a deputy to alerts.to keeps what waits for the DSL") {
  // Review, 2026-12-06: the list compared whole, so adding a deputy dropped every alert
  // waiting for the DSL, who was still on it.
  {
    hallpass::alert_sender sender(nullptr);
    for (int i = 0; i < 3; ++i) {
      alert a = pupil_alert();
      a.client = "10.0.3." + std::to_string(i);
      sender.raise(a, s, "S", alert_zone(), log);
    }
    auto with_deputy = s;
    with_deputy.to = {"DSL@school.example", "deputy.dsl@school.example"};
    sender.settings_changed(with_deputy, 2);
    CHECK(sender.not_mailed() == 0);
    auto without_dsl = s;
    without_dsl.to = {"deputy.dsl@school.example"};
    sender.settings_changed(without_dsl, 3);  // the DSL taken off: what waits for the DSL goes
    CHECK(sender.not_mailed() >= 2);
    { std::ofstream(gate) << ""; }
  }
}

TEST_CASE("alert sender: alerts past the mail limit are listed one by one, a watched category's first, as soon as it allows") {
  // Other pupils' alerts made one child's self-harm alert reach the DSL only as a number in a
  // later message (outside-in audit, 2026-12-06, H1).
  hallpass_test::temp_dir dir("hallpass-alert-digest");
  hallpass::access_log log("off", 16, nullptr);
  hallpass::daemon_config::alert_settings s;
  s.categories = {"self_harm", "extremism"};
  s.command = {"/bin/sh", "-c", "cat > \"$0/m.$$\"", dir.path.string()};
  hallpass::alert_sender sender(nullptr, {.burst = 3, .interval = std::chrono::seconds(1)});
  for (int i = 0; i < 3; ++i) {  // the burst
    alert a = pupil_alert();
    a.category = "extremism";
    a.client = "10.0.0." + std::to_string(i);
    sender.raise(a, s, "S", alert_zone(), log);
  }
  for (int i = 0; i < 120; ++i) {  // past the limit: 100 lines are kept
    alert a = pupil_alert();
    a.kind = alert_kind::circumvention;
    a.client = "10.0.1." + std::to_string(i);
    sender.raise(a, s, "S", alert_zone(), log);
  }
  alert child = pupil_alert();
  child.client = "10.0.2.5";
  child.url = "http://selfharm.example/genuine";
  sender.raise(child, s, "S", alert_zone(), log);
  // Within a few seconds (one token a second), a message of its own lists them.
  std::string digest;
  for (int i = 0; i < 600 && digest.empty(); ++i) {  // at most 6 s
    std::this_thread::sleep_for(10ms);
    for (const auto& f : std::filesystem::directory_iterator(dir.path)) {
      std::ifstream in(f.path());
      std::string m((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      if (contains(m, "could not be mailed at once") && contains(m, "-- \n")) digest = m;
    }
  }
  REQUIRE_FALSE(digest.empty());
  CHECK(contains(digest, "Subject: [hallpass] 121 alerts that could not be mailed at once"));
  CHECK(contains(digest, "The first 100, a watched category's first:"));
  CHECK(contains(digest, "blocked self harm site  not signed in (treated as pupils) (network address 10.0.2.5)  http://selfharm.example/genuine"));
  CHECK(contains(digest, "21 more are in the access log"));
}

TEST_CASE("alert sender: the lines held back never go to an address a reload took off the list") {
  // Review of the session, 2026-12-06: the message of their own went with the old command and
  // address after a reload had corrected them.
  hallpass_test::temp_dir dir("hallpass-alert-digest-reload");
  hallpass::access_log log("off", 16, nullptr);
  hallpass::daemon_config::alert_settings s;
  s.categories = {"self_harm"};
  s.to = {"wrong@school.example"};
  s.command = {"/bin/sh", "-c", "cat > \"$0/m.$$\"", dir.path.string()};
  hallpass::alert_sender sender(nullptr, {.burst = 1, .interval = std::chrono::seconds(1)});
  sender.settings_changed(s, 1);
  for (int i = 0; i < 3; ++i) {
    alert a = pupil_alert();
    a.client = "10.0.3." + std::to_string(i);
    sender.raise(a, s, "S", alert_zone(), log, 1);
  }
  CHECK(sender.not_mailed() == 2);
  // The first is mailed before the reload (a message still waiting would be dropped by it).
  for (int i = 0; i < 500 && std::filesystem::is_empty(dir.path); ++i) std::this_thread::sleep_for(10ms);
  std::this_thread::sleep_for(100ms);
  auto corrected = s;
  corrected.to = {"dsl@school.example"};
  sender.settings_changed(corrected, 2);
  std::this_thread::sleep_for(2500ms);  // two tokens' time
  std::size_t messages = 0;
  for (const auto& f : std::filesystem::directory_iterator(dir.path)) {
    std::ifstream in(f.path());
    const std::string m((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    CHECK_FALSE(contains(m, "could not be mailed at once"));
    ++messages;
  }
  CHECK(messages == 1);          // the first alert, before the reload
  CHECK(sender.not_mailed() == 2);  // still counted, never double
}
