// The weekly safeguarding report (proxy/safeguarding_report.hpp): what it makes of access log
// lines, and how it reads the log and logrotate's gzip'd rotations. The command end to end,
// against the real daemon's log and sent by mail: tests/integration/alerts_test.py.
#include "proxy/log_files.hpp"
#include "proxy/safeguarding_report.hpp"

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <utime.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>

#include "rules/explain.hpp"
#include "tests/proxy/test_support.hpp"
#include "tests/temp_dir.hpp"

namespace {

using namespace std::chrono_literals;
using hallpass_test::contains;
using hallpass_test::count;

hallpass::rules::time_zone report_zone() {
  std::string error;
  return *hallpass::rules::time_zone::from_posix("Europe/London", "GMT0BST,M3.5.0/1,M10.5.0", &error);
}

// Monday 23 November 2026 and the week after it.
const hallpass::report_period report_week{std::chrono::sys_days{std::chrono::year{2026} / 11 / 23},
                                   std::chrono::sys_days{std::chrono::year{2026} / 11 / 30}};

std::string log_request_line(std::string_view time, std::string_view client, std::string_view host, std::string_view action,
                    std::string_view category, std::string_view extra = "") {
  std::string line = "{\"time\":\"" + std::string(time) + "\",\"client\":\"" + std::string(client) +
                     "\",\"user\":null,\"role\":\"pupils\",\"method\":\"GET\",\"scheme\":\"http\",\"host\":\"" +
                     std::string(host) + "\",\"port\":80,\"path\":\"/p\",\"status\":403,\"action\":\"" +
                     std::string(action) + "\",\"rule\":\"r\",\"category\":" +
                     (category.empty() ? std::string("null") : "\"" + std::string(category) + "\"") +
                     ",\"circumvention\":false";
  return line + std::string(extra) + "}";
}

void write_gzip_file(const std::filesystem::path& path, const std::string& text) {
  gzFile f = gzopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, text.data(), static_cast<unsigned>(text.size())) == static_cast<int>(text.size()));
  REQUIRE(gzclose(f) == Z_OK);
}

void set_file_mtime(const std::filesystem::path& path, std::chrono::sys_seconds t) {
  utimbuf times{t.time_since_epoch().count(), t.time_since_epoch().count()};
  REQUIRE(utime(path.c_str(), &times) == 0);
}

}  // namespace

TEST_CASE("log time: the access log's ISO 8601 with its offset, to the instant") {
  using hallpass::parse_log_time;
  const auto t = std::chrono::sys_days{std::chrono::year{2026} / 6 / 1} + 10h;
  CHECK(parse_log_time("2026-06-01T11:00:00.123+01:00") == t);
  CHECK(parse_log_time("2026-06-01T10:00:00Z") == t);
  CHECK(parse_log_time("2026-06-01T05:30:00-04:30") == t);
  CHECK(parse_log_time("2026-06-01T10:00:00") == std::nullopt);  // no offset: which zone?
  CHECK(parse_log_time("2026-02-30T10:00:00+00:00") == std::nullopt);
  CHECK(parse_log_time("2026-06-01T25:00:00+00:00") == std::nullopt);
  CHECK(parse_log_time("2026-06-01T10:00:00+00:00 ") == std::nullopt);
  CHECK(parse_log_time("") == std::nullopt);
}

TEST_CASE("safeguarding report: high-risk blocks by person, one row for a page and what it loaded") {
  hallpass::report_builder b(report_week, {"self_harm"});
  // A page and its images within minutes: one row, 3 times. The same device an hour later: another row.
  b.add_line(log_request_line("2026-11-23T11:05:00+00:00", "10.0.0.7", "bad.example", "block", "self_harm"));
  b.add_line(log_request_line("2026-11-23T11:06:00+00:00", "10.0.0.7", "bad.example", "block", "self_harm"));
  b.add_line(log_request_line("2026-11-23T11:12:00+00:00", "10.0.0.7", "bad.example", "block", "self_harm"));
  b.add_line(log_request_line("2026-11-23T12:30:00+00:00", "10.0.0.7", "bad.example", "block", "self_harm"));
  // Another person, a category not watched, an allowed site, and a line before the period.
  b.add_line(log_request_line("2026-11-24T09:00:00+00:00", "10.0.0.8", "bad.example", "block", "self_harm",
                     ",\"device\":\"pc-08\",\"search\":\"how to\""));
  b.add_line(log_request_line("2026-11-24T09:00:00+00:00", "10.0.0.8", "facebook.com", "block", "social_media"));
  b.add_line(log_request_line("2026-11-24T09:01:00+00:00", "10.0.0.8", "bbc.co.uk", "allow", ""));
  b.add_line(log_request_line("2026-11-20T09:01:00+00:00", "10.0.0.9", "bad.example", "block", "self_harm"));
  const auto r = b.render(report_zone(), "Example Primary", {"/var/log/hallpass/access.log"});
  CHECK(b.requests() == 7);
  CHECK(contains(r, "# Safeguarding report: Example Primary\n"));
  CHECK(contains(r, "From Monday 23 November 2026, 00:00 GMT to Monday 30 November 2026, 00:00 GMT."));
  CHECK(contains(r, "- Web requests: 7, of which blocked: 6 (85.7%), from 2 people or devices.\n"));
  CHECK(contains(r, "- Blocks in high-risk categories (self harm): 5, by 2 people or devices.\n"));
  CHECK(contains(r, "| Mon 23 Nov 11:05-11:12 | not signed in (pupils) | 10.0.0.7 | self harm | bad.example/p | 3 |  |\n"));
  CHECK(contains(r, "| Mon 23 Nov 12:30 | not signed in (pupils) | 10.0.0.7 | self harm | bad.example/p | 1 |  |\n"));
  CHECK(contains(r, "| Tue 24 Nov 09:00 | not signed in (pupils) | pc-08 (10.0.0.8) | self harm | bad.example/p | 1 | how to |\n"));
  CHECK_FALSE(contains(r, "10.0.0.9"));  // before the period
  CHECK(contains(r, "| self harm | 5 | 2 |\n| social media | 1 | 1 |\n"));
  CHECK(contains(r, "| bad.example | self harm | 5 |\n"));
  CHECK(contains(r, "| Tue 24 Nov 09:00 | not signed in (pupils) | pc-08 (10.0.0.8) | how to | self harm |\n"));  // blocked searches
  CHECK(contains(r, "Read from the access log:\n- /var/log/hallpass/access.log\n"));
}

TEST_CASE("safeguarding report: a line at Monday 00:00 is in the week it starts, never in two") {
  using namespace std::chrono;
  // Outside-in audit, 2026-12-06: the end was inclusive, so two weekly reports both counted it.
  const hallpass::report_period next{report_week.to, report_week.to + days(7)};
  for (const auto* time : {"2026-11-30T00:00:00+00:00", "2026-11-30T00:00:00.900+00:00"}) {
    hallpass::report_builder before(report_week, {"self_harm"}), after(next, {"self_harm"});
    before.add_line(log_request_line(time, "10.0.0.7", "bad.example", "block", "self_harm"));
    after.add_line(log_request_line(time, "10.0.0.7", "bad.example", "block", "self_harm"));
    CHECK(before.requests() == 0);
    CHECK(after.requests() == 1);
  }
}

TEST_CASE("safeguarding report: in the week the clocks change, every time says its zone") {
  using namespace std::chrono;
  // The October change of 2026: Sunday 25 October, 02:00 BST becomes 01:00 GMT. The school week
  // is Monday 19 (00:00 BST, Sunday 23:00 UTC) to Monday 26 October (00:00 GMT).
  const hallpass::report_period week{sys_days{year{2026} / 10 / 18} + 23h, sys_days{year{2026} / 10 / 26}};
  hallpass::report_builder b(week, {"self_harm"});
  // 00:55 and 01:04 UTC on the Sunday: 01:55 BST, then 01:04 GMT, nine minutes later.
  b.add_line(log_request_line("2026-10-25T00:55:00+00:00", "10.0.0.7", "bad.example", "block", "self_harm"));
  b.add_line(log_request_line("2026-10-25T01:04:00+00:00", "10.0.0.7", "bad.example", "block", "self_harm"));
  auto r = b.render(report_zone(), "E", {"a"});
  CHECK(contains(r, "Times below are school time, each with its zone: the clocks changed in this period."));
  CHECK(contains(r, "| Sun 25 Oct 01:55 BST to Sun 25 Oct 01:04 GMT | not signed in (pupils) |"));
  // A week without a change keeps the short form and names its zone once.
  hallpass::report_builder plain(report_week, {"self_harm"});
  plain.add_line(log_request_line("2026-11-23T11:05:00+00:00", "10.0.0.7", "bad.example", "block", "self_harm"));
  r = plain.render(report_zone(), "E", {"a"});
  CHECK(contains(r, "Times below are school time (GMT)."));
  CHECK(contains(r, "| Mon 23 Nov 11:05 | not signed in (pupils) |"));
}

TEST_CASE("safeguarding report: the incident records, open and closed in the period, or why they are missing") {
  using namespace std::chrono;
  hallpass::report_builder b(report_week, {"self_harm"});
  std::string r = b.render(report_zone(), "Example Primary", {"access.log"});
  CHECK_FALSE(contains(r, "## Incident records"));  // not given: no section
  hallpass::store::incident_summary open;
  open.id = 3;
  open.subject = "ava.b";
  open.category = "self_harm";
  open.happened = sys_days{year{2026} / 11 / 24} + 11h + 5min;
  hallpass::store::incident_summary closed = open;
  closed.id = 4;
  closed.device = true;
  closed.subject = "a|b";
  closed.category = "";
  closed.actions = 2;
  closed.last_action = sys_days{year{2026} / 11 / 25} + 9h;
  closed.closed = sys_days{year{2026} / 11 / 26} + 15h + 30min;
  b.set_incident_records({open, closed}, {}, 7);
  r = b.render(report_zone(), "Example Primary", {"access.log"});
  CHECK(contains(r, "| 3 | user ava.b | self harm | Tue 24 Nov 11:05 | 0 | none yet | **open** |\n"));
  CHECK(contains(r, "| 4 | device a\\|b | - | Tue 24 Nov 11:05 | 2 | Wed 25 Nov 09:00 | closed Thu 26 Nov 15:30 |\n"));
  CHECK(contains(r, "(7 older ones are not shown: `hallpassctl incidents --all` lists them.)"));
  CHECK(contains(r, "`hallpassctl incident ID` shows one whole"));
  b.set_incident_records({});
  CHECK(contains(b.render(report_zone(), "E", {"a"}), "## Incident records\n\nNone was open in this period.\n"));
  b.set_incident_records({}, "state/hallpass.db does not exist");
  CHECK(contains(b.render(report_zone(), "E", {"a"}),
                 "The incident records could not be read (state/hallpass.db does not exist)"));
}

TEST_CASE("safeguarding report: the default period is the last whole school week, in school time") {
  using namespace std::chrono;
  const auto zone = report_zone();
  // A Wednesday in November (GMT): Monday 23 to Monday 30 November.
  auto w = hallpass::last_school_week(zone, sys_days{year{2026} / 12 / 2} + 10h);
  CHECK(w.from == sys_days{year{2026} / 11 / 23});
  CHECK(w.to == sys_days{year{2026} / 11 / 30});
  // Whenever in the week it runs (Monday 07:00 by the timer, or caught up on Thursday after
  // the gateway was off): the week before the one it runs in.
  CHECK(hallpass::last_school_week(zone, sys_days{year{2026} / 12 / 3} + 15h).from == w.from);
  CHECK(hallpass::last_school_week(zone, sys_days{year{2026} / 11 / 30} + 7h).from == w.from);
  // In summer time the week starts at midnight BST (23:00 UTC the day before).
  w = hallpass::last_school_week(zone, sys_days{year{2026} / 6 / 3} + 10h);
  CHECK(w.from == sys_days{year{2026} / 5 / 24} + 23h);
  CHECK(w.to == sys_days{year{2026} / 5 / 31} + 23h);
  // Monday 00:30 BST is still Sunday 23:30 UTC: the week that just ended.
  w = hallpass::last_school_week(zone, sys_days{year{2026} / 5 / 31} + 23h + 30min);
  CHECK(w.to == sys_days{year{2026} / 5 / 31} + 23h);
}

TEST_CASE("safeguarding report: never the query or path parameters, which the log keeps by choice") {
  hallpass::report_builder b(report_week, {"self_harm"});
  std::string line = log_request_line("2026-11-23T11:05:00+00:00", "10.0.0.7", "bad.example", "block", "self_harm");
  line.replace(line.find("\"/p\""), 4, "\"/p;jsessionid=tok?email=a%40b.example\"");
  b.add_line(line);
  const auto r = b.render(report_zone(), "S", {});
  CHECK(contains(r, "| bad.example/p | 1 |"));
  CHECK_FALSE(contains(r, "tok"));
  CHECK_FALSE(contains(r, "email"));
}

TEST_CASE("safeguarding report: attempts to get round the filter, bans and alerts") {
  hallpass::report_builder b(report_week, {});
  // The proxy marks each attempt with "circumvention": true (a block by a circumvention
  // category, a tunnel whose TLS named another host); the report counts what is marked.
  const auto attempt = [](std::string_view time, std::string_view host, std::string_view category) {
    std::string line = log_request_line(time, "10.0.0.7", host, "block", category);
    line.replace(line.find("\"circumvention\":false"), 21, "\"circumvention\":true");
    return line;
  };
  b.add_line(attempt("2026-11-25T10:00:00+00:00", "proxy.example", "circumvention"));
  b.add_line(attempt("2026-11-25T10:01:00+00:00", "vpn.example", "circumvention"));
  b.add_line(attempt("2026-11-25T10:05:00+00:00", "example.org", ""));
  b.add_line(log_request_line("2026-11-25T10:06:00+00:00", "10.0.0.7", "blocked.example", "block", "gambling"));  // not an attempt
  b.add_line("{\"time\":\"2026-11-25T10:02:00+00:00\",\"event\":\"ban\",\"how\":\"automatic\",\"ban\":4,\"kind\":\"device\","
             "\"subject\":\"10.0.0.7\",\"until\":\"2026-11-26T10:02:00+00:00\",\"reason\":\"3 attempts\"}");
  b.add_line("{\"time\":\"2026-11-25T10:02:00+00:00\",\"event\":\"alert\",\"kind\":\"ban\",\"ban\":4,\"held\":0}");
  b.add_line("{\"time\":\"2026-11-25T10:00:00+00:00\",\"event\":\"alert\",\"kind\":\"circumvention\",\"client\":\"10.0.0.7\"}");
  const auto r = b.render(report_zone(), "S", {});
  CHECK(contains(r, "- Attempts to get round the filter: 3, by 1 person or device.\n"));
  CHECK(contains(r, "| Wed 25 Nov 10:00 | Wed 25 Nov 10:05 | not signed in (pupils) | 10.0.0.7 | 3 | proxy.example, "
                    "vpn.example, example.org |\n"));
  CHECK(contains(r, "- Bans put in force: 1.\n"));
  CHECK(contains(r, "| Wed 25 Nov 10:02 | 4 | device 10.0.0.7 | Thu 26 Nov 10:02 | by the filter, after repeated attempts |\n"));
  CHECK(contains(r, "- Alerts raised for the DSL (each in the access log; mailed when alerts.command is set, at most 20 at once, then one every 30 s): 2 (0 high-risk "
                    "blocks, 0 requests for high-risk pages, 1 attempt to get round the filter, 1 ban).\n"));
  CHECK(contains(r, "- Blocks in high-risk categories: none are named"));
  CHECK_FALSE(contains(r, "3 attempts"));  // a ban's reason is not copied into the report
}

TEST_CASE("safeguarding report: a pupil's request for a watched page is listed by number, never with the words") {
  // People-side audit, 2026-12-07, M7: it was counted as a high-risk block and listed nowhere.
  hallpass::report_builder b(report_week, {"self_harm"});
  b.add_line(log_request_line("2026-11-25T10:00:00+00:00", "10.0.0.7", "selfharm.example", "block", "self_harm"));
  b.add_line("{\"time\":\"2026-11-25T10:00:00+00:00\",\"event\":\"alert\",\"kind\":\"category\",\"client\":\"10.0.0.7\","
             "\"user\":null,\"role\":\"pupils\",\"category\":\"self_harm\",\"held\":0}");
  b.add_line("{\"time\":\"2026-11-25T10:03:00+00:00\",\"event\":\"alert\",\"kind\":\"category\",\"client\":\"10.0.0.7\","
             "\"user\":null,\"device\":\"pc-07\",\"role\":\"pupils\",\"category\":\"self_harm\",\"held\":0,\"request\":12}");
  const auto r = b.render(report_zone(), "S", {});
  CHECK(contains(r, "- Requests for pages in high-risk categories, sent with the block page's form (a possible disclosure "
                    "each): 1.\n"));
  CHECK(contains(r, "30 s): 2 (1 high-risk block, 1 request for a high-risk page, 0 attempts"));
  CHECK(contains(r, "| Wed 25 Nov 10:03 | not signed in (pupils) | pc-07 (10.0.0.7) | self harm | 12 |\n"));
  CHECK(contains(r, "- Blocks in high-risk categories (self harm): 1, by 1 person or device.\n"));
}

TEST_CASE("safeguarding report: a page the school blocked itself is a reported page, and categories read as words") {
  // People-side audit, 2026-12-07, L8: an empty Category cell, and policy keys.
  hallpass::report_builder b(report_week, {});
  std::string reported = log_request_line("2026-11-25T10:00:00+00:00", "10.0.0.7", "bad.example", "block", "");
  reported.replace(reported.find("\"rule\":\"r\""), 10, "\"rule\":\"local block 3\"");
  b.add_line(reported);
  b.add_line(log_request_line("2026-11-25T10:01:00+00:00", "10.0.0.7", "games.example", "block", "online_games"));
  const auto r = b.render(report_zone(), "S", {});
  CHECK(contains(r, "| bad.example | reported page | 1 |\n"));
  CHECK(contains(r, "| games.example | online games | 1 |\n"));
  CHECK_FALSE(contains(r, "online_games"));
}

TEST_CASE("safeguarding report: an empty log, or one that begins inside the period, is not a quiet week") {
  // People-side audit, 2026-12-07, M6: "Web requests: 0" and "None." everywhere, exit 0.
  hallpass::report_builder empty(report_week, {});
  const auto e = empty.render(report_zone(), "S", {});
  CHECK(contains(e, "**No web requests were logged in this period.** If the school was open, that is not a quiet week"));
  hallpass::report_builder late(report_week, {});
  late.add_line(log_request_line("2026-11-26T09:00:00+00:00", "10.0.0.7", "example.org", "allow", ""));
  const auto l = late.render(report_zone(), "S", {});
  CHECK(contains(l, "**The access log read begins at Thursday 26 November 2026, 09:00 GMT**, after the start of this period"));
  CHECK_FALSE(contains(l, "No web requests"));
  hallpass::report_builder whole(report_week, {});
  whole.add_line(log_request_line("2026-11-20T09:00:00+00:00", "10.0.0.7", "example.org", "allow", ""));  // the week before
  whole.add_line(log_request_line("2026-11-26T09:00:00+00:00", "10.0.0.7", "example.org", "allow", ""));
  const auto w = whole.render(report_zone(), "S", {});
  CHECK_FALSE(contains(w, "begins at"));
  CHECK_FALSE(contains(w, "No web requests"));
}

TEST_CASE("safeguarding report: a time outside the period says its year and its own zone") {
  // outside-in audit of time, 2026-12-07, F4: a ban until next June read "Fri 25 Jun 10:00"
  // under a header saying the times were GMT (it is BST), and without its year.
  hallpass::report_builder b(report_week, {});
  b.add_line("{\"time\":\"2026-11-24T10:00:03+00:00\",\"event\":\"ban\",\"how\":\"command\",\"ban\":7,"
             "\"kind\":\"device\",\"subject\":\"10.0.0.8\",\"until\":\"2027-06-25T10:00:03+01:00\",\"reason\":\"r\"}");
  const auto r = b.render(report_zone(), "S", {});
  CHECK(contains(r, "Times below are school time (GMT)"));
  CHECK(contains(r, "| Tue 24 Nov 10:00 | 7 | device 10.0.0.8 | Friday 25 June 2027, 10:00 BST |"));
}

TEST_CASE("safeguarding report: lines that are not the log's are counted and skipped, and text is made safe") {
  hallpass::report_builder b(report_week, {"self_harm"});
  b.add_line("");
  b.add_line("not json");
  b.add_line("{\"time\":\"yesterday\"}");
  b.add_line("[1,2]");
  b.add_line("{\"time\":\"2026-11-23T11:05:00+00:00\",\"event\":\"something new\"}");  // a later version's: skipped
  b.add_line(log_request_line("2026-11-23T11:05:00+00:00", "10.0.0.7", "bad.example", "block", "self_harm",
                     ",\"user\":\"x\\u001b[2J|y\",\"search\":\"a\\nb\""));
  CHECK(b.unreadable() == 4);
  const auto r = b.render(report_zone(), "S", {});
  CHECK(contains(r, "4 lines could not be read and were skipped.\n"));
  for (std::size_t at = 0, nl; (nl = r.find('\n', at)) != std::string::npos; at = nl + 1) CHECK(nl - at < 998);
  CHECK_FALSE(contains(r, "\x1b"));
  CHECK(contains(r, "x\\\\x1b[2J\\|y (pupils)"));  // escaped, and no '|' or '\\' breaks the table
  CHECK(contains(r, "| a\\\\nb |"));
}

TEST_CASE("safeguarding report: bounded, whatever the log holds") {
  hallpass::report_builder b(report_week, {"self_harm"}, 5);
  for (int i = 0; i < 50; ++i) {
    b.add_line(log_request_line("2026-11-23T11:05:00+00:00", "10.0.1." + std::to_string(i), "bad.example", "block", "self_harm"));
  }
  const auto r = b.render(report_zone(), "S", {});
  // Five rows, and five more for people who had none, at most twice the bound.
  CHECK(count(r, "| self harm | bad.example/p |") == 10);
  CHECK(contains(r, "(40 more blocks are in the access log.)"));
  CHECK(contains(r, "- Blocks in high-risk categories (self harm): 50,"));
}

TEST_CASE("safeguarding report: one device's many sites cannot push another child out of the table") {
  // One device's 210 sites filled the 200 rows, and a later child's self-harm block was in no
  // row (outside-in audit, 2026-12-06, H2).
  hallpass::report_builder b(report_week, {"self_harm", "extremism"}, 20);
  for (int i = 0; i < 210; ++i) {
    b.add_line(log_request_line("2026-11-23T11:05:00+00:00", "10.0.13.1", "s" + std::to_string(i) + ".extreme.example",
                                "block", "extremism"));
  }
  b.add_line(log_request_line("2026-11-23T11:30:00+00:00", "10.0.13.2", "selfharm.example", "block", "self_harm"));
  const auto r = b.render(report_zone(), "S", {});
  CHECK(contains(r, "| 10.0.13.2 | self harm | selfharm.example/p | 1 |"));
  CHECK(count(r, "| 10.0.13.1 | extremism |") == 11);  // 10 sites, then one row for the rest
  CHECK(contains(r, "| 10.0.13.1 | extremism | (other sites) | 200 |"));
}

TEST_CASE("log files: the log and logrotate's rotations, oldest first, gzip or not, older than the period left out") {
  hallpass_test::temp_dir dir("hallpass-report-files");
  const auto log = dir.path / "access.log";
  const auto line = [](std::string_view t) { return log_request_line(t, "10.0.0.7", "bad.example", "block", "self_harm") + "\n"; };
  std::ofstream(log) << line("2026-11-29T09:00:00+00:00");
  std::ofstream(dir.path / "access.log.1") << line("2026-11-28T09:00:00+00:00");
  write_gzip_file(dir.path / "access.log.2.gz", line("2026-11-27T09:00:00+00:00"));
  write_gzip_file(dir.path / "access.log.10.gz", line("2026-11-01T09:00:00+00:00"));
  std::ofstream(dir.path / "access.log.old") << "not a rotation\n";
  std::ofstream(dir.path / "other.log.1") << "another log\n";
  set_file_mtime(dir.path / "access.log.1", report_week.from + 24h * 5);
  set_file_mtime(dir.path / "access.log.2.gz", report_week.from + 24h * 4);
  set_file_mtime(dir.path / "access.log.10.gz", report_week.from - 24h * 20);
  const auto files = hallpass::access_log_files(log.string(), report_week.from);
  REQUIRE(files.size() == 3);
  CHECK(files[0] == (dir.path / "access.log.2.gz").string());
  CHECK(files[1] == (dir.path / "access.log.1").string());
  CHECK(files[2] == log.string());
  hallpass::report_builder b(report_week, {"self_harm"});
  for (const auto& f : files) CHECK(hallpass::read_log_lines(f, [&](std::string_view l) { b.add_line(l); }) == "");
  CHECK(b.requests() == 3);
  CHECK(b.unreadable() == 0);
}

TEST_CASE("log files: a gzip file cut short gives the lines before the damage and says so") {
  hallpass_test::temp_dir dir("hallpass-report-cut");
  std::string text;
  for (int i = 0; i < 2000; ++i) text += log_request_line("2026-11-23T11:05:00+00:00", "10.0.0." + std::to_string(i % 250), "x.example", "allow", "") + "\n";
  const auto whole = dir.path / "whole.gz";
  write_gzip_file(whole, text);
  std::ifstream in(whole, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto cut = dir.path / "cut.gz";
  std::ofstream(cut, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  std::size_t lines = 0;
  std::size_t bad = 0;
  const auto e = hallpass::read_log_lines(cut.string(), [&](std::string_view l) {
    ++lines;
    if (!l.ends_with("}")) ++bad;
  });
  CHECK(contains(e, "cut.gz"));
  CHECK(contains(e, "the lines before it were read"));
  CHECK(lines > 0);
  CHECK(lines < 2001);
  CHECK(bad <= 1);  // at most the line the damage cut in two
  CHECK(contains(hallpass::read_log_lines((dir.path / "missing").string(), [](std::string_view) {}), "missing"));
  // A line longer than 1 MiB is passed as "" (unreadable), and the next line is whole.
  const auto long_file = dir.path / "long.log";
  std::ofstream(long_file) << std::string(2 * 1024 * 1024, 'x') << "\nnext\n";
  std::vector<std::string> got;
  CHECK(hallpass::read_log_lines(long_file.string(), [&](std::string_view l) { got.emplace_back(l); }) == "");
  CHECK(got == std::vector<std::string>{"", "next"});
}

TEST_CASE("counts for people: thousands separators") {
  using hallpass::rules::thousands;
  CHECK(thousands(0) == "0");
  CHECK(thousands(999) == "999");
  CHECK(thousands(1000) == "1,000");
  CHECK(thousands(4500000) == "4,500,000");
  CHECK(thousands(18446744073709551615ULL) == "18,446,744,073,709,551,615");
}
