// What `hallpass check` and `hallpass explain` print. Pure: they format a loaded policy and
// verdicts computed by decide(), the same function the proxy calls.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rules/decision.hpp"
#include "rules/engine.hpp"
#include "rules/inspection.hpp"
#include "rules/policy.hpp"

namespace hallpass::rules {

// A short human summary: roles, categories with entry counts, timetable.
std::string policy_summary(const policy& p);

// The policy's feeds, one line each: missing (never fetched), or when fetched, how long
// before `now` (the caller reads the clock), and the entries of each list the policy uses.
// Empty when the policy has no feeds.
std::string feeds_summary(const policy& p, std::chrono::sys_seconds now);

// Splits an absolute URL (http://, https://, ws://, wss://; or host[:port][/path]) into facts.
// The returned views point into `url`. Returns an error message on a malformed URL.
struct url_parts {
  std::string_view scheme, host, path;
  std::uint16_t port = 0;
};
std::optional<url_parts> split_url(std::string_view url, std::string* error);

// Parses "YYYY-MM-DD HH:MM" as local wall time.
std::optional<std::chrono::local_seconds> parse_local_time(std::string_view text);

// A school time as a person gives it (explain --at, approve --until, incident --at, audit
// --since): "YYYY-MM-DD HH:MM", school-local (the zone decides the instant; a time the clocks
// skip or repeat gets a `note`, clock_change_note's), or the same followed by its UTC offset,
// "+01:00", "-05:00" or "Z": the instant itself, the way to name the second 01:30 of an autumn
// night ("2026-10-25 01:30+00:00"; outside-in audit of time, 2026-12-07, F8: it could not be
// given). An offset the zone does not have then is said in the note. nullopt for anything else.
struct school_time {
  std::chrono::sys_seconds at;
  std::string note;
};
std::optional<school_time> parse_school_time(const time_zone& z, std::string_view text);

struct explanation {
  verdict v;
  std::vector<std::string> would_allow;  // for a block: what would let it through
  std::vector<std::string> notes;        // what the reader should know about how it was decided
  // For an https:// or wss:// URL with a school CA configured: decide_inspection's answer.
  std::optional<inspection_verdict> inspection;
  // The host is blocked and not on the never-inspect list, so a browser's tunnel is decrypted
  // only to show the HTTPS block page (the proxy's plan_tunnel; its log says tls "inspected"):
  // the HTTPS line and JSON's `inspection` say "block_page", not what decide_inspection answers
  // for an allowed tunnel.
  bool block_page = false;
  bool path_seen = true;           // whether the proxy decides with the path (false: the host alone)
  std::string safesearch_connect;  // the host a tunnel connects to instead (SafeSearch), if any
  std::string safesearch_change;   // what the proxy changes in the request (SafeSearch), if anything
};
// Decides with decide_request (decision.hpp), the proxy's own function: the policy, then the
// exceptions and local entries in `overlay` (null: the policy alone).
explanation explain(const policy& p, const request_facts& facts, const exception_index* overlay = nullptr);

// Explains a URL as the proxy would handle it. `facts` hold the URL's scheme, host, port and
// path and the request's method. Plain http (and ws): decided with the path. https (and
// wss): without a school CA (`inspection_on` false) or when decide_inspection relays the
// host, the proxy sees only a CONNECT, so it is decided on the host alone (method CONNECT, no
// path) and a note says the path plays no part; when the host is inspected, the CONNECT is
// decided with path_seen_later (a host-level block is the HTTPS block page), then the request
// itself with its method and path. Adds the SafeSearch mapping and rewrite when they apply.
explanation explain_url(const policy& p, const request_facts& facts, const exception_index* overlay,
                        bool inspection_on);

// Both name the device asked about (facts.device, facts.mac; explain --device, --mac) when either is set.
std::string explanation_text(const policy& p, const request_facts& facts, const explanation& e);
std::string explanation_json(const policy& p, const request_facts& facts, const explanation& e);

// ISO 8601 with the offset, e.g. "2026-03-30T09:00:00+01:00".
std::string iso8601_local(const time_zone& z, std::chrono::sys_seconds t);

// An offset from UTC as ISO 8601 writes it: "+01:00", "-05:00", "+00:00".
std::string utc_offset_text(std::chrono::seconds offset);

// The zone's name for people at `t`: the zone file's abbreviation when it is letters ("GMT" or
// "BST" for Europe/London, Jersey, Guernsey, the Isle of Man; "CET"), else the offset
// ("UTC+04:00" where tzdata writes "+04", or "UTC" at +00:00). Named wherever a local time is
// shown, because in the autumn's repeated hour 01:59 is followed by 01:00.
std::string zone_label(const time_zone& z, std::chrono::sys_seconds t);

// When a clock change makes the local time `asked` missing (spring: to_sys reads it as the
// moment an hour later) or happen twice (autumn: to_sys takes the first), a sentence saying so
// and naming the instant used (`resolved`, from z.to_sys(asked)); otherwise "". For explain's
// --at and an approval's 'until'.
std::string clock_change_note(const time_zone& z, std::string_view asked_text, std::chrono::local_seconds asked,
                              std::chrono::sys_seconds resolved);

// A count with thousands separators, for people: "4,500,000" (feeds history, the safeguarding report).
std::string thousands(std::uint64_t n);

// School-local time in words, to the minute, with its zone: "Monday 23 November 2026, 11:00
// GMT" (block pages, alerts, the safeguarding report).
std::string time_in_words(const time_zone& z, std::chrono::sys_seconds t);
// The same, short, without the year or the zone: "Mon 23 Nov 11:00" (the safeguarding report's
// tables).
std::string short_time_in_words(const time_zone& z, std::chrono::sys_seconds t);

// School-local time as a child would say it, from `now`: "6:47 this evening", "9:00 tomorrow
// morning", "9:00 on Tuesday morning", "9:00 on Tuesday 15 December" (further than six days),
// "midnight tonight", "12 noon today". On the ban page (the exact time, with its zone, is in
// the page's details).
std::string spoken_time(const time_zone& z, std::chrono::sys_seconds t, std::chrono::sys_seconds now);

// School-local time to the minute with its zone: "2026-12-02 03:12 GMT".
std::string local_minutes(const time_zone& z, std::chrono::sys_seconds t);

}  // namespace hallpass::rules
