#include "rules/explain.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <cstdlib>

#include "rules/exception_index.hpp"
#include "rules/json_writer.hpp"
#include "rules/utf8.hpp"
#include "rules/safesearch.hpp"

namespace hallpass::rules {
namespace {

std::string hhmm(int minute) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%02d:%02d", minute / 60, minute % 60);
  return buf;
}

std::string format_local(std::chrono::local_seconds t) {
  using namespace std::chrono;
  const auto day = floor<days>(t);
  const year_month_day ymd{day};
  const weekday wd{day};
  static constexpr const char* names[] = {"Sunday", "Monday", "Tuesday", "Wednesday",
                                          "Thursday", "Friday", "Saturday"};
  const auto mins = duration_cast<minutes>(t - day).count();
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02u %02lld:%02lld (%s)", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<long long>(mins / 60), static_cast<long long>(mins % 60), names[wd.c_encoding()]);
  return buf;
}

std::string role_how(const verdict& v) {
  switch (v.role_from) {
    case role_source::given: return "named with --role";
    case role_source::network: return "client address is in network " + std::string(v.role_detail);
    case role_source::fallback: return "fallback role: " + std::string(v.role_detail);
    case role_source::group: return "signed-in user is in group " + std::string(v.role_detail);
  }
  return "";
}

// What decided, as the access log's `rule` names it; with the policy's rule when that is what
// decided, or when an exception, a local block or a ban decided over it ("exception 4, over
// pupils rule 1: block ...": an ALLOW whose Rule line named only a block rule read as a
// contradiction; outside-in audit, 2026-12-05).
std::string rule_text(const verdict& v) {
  if (!v.matched_rule) return std::string(v.rule_id);
  const std::string rule = v.matched_rule->id + ": " + v.matched_rule->summary;
  if (v.rule_id == v.matched_rule->id) return rule;
  return std::string(v.rule_id) + ", over " + rule;
}

// What SafeSearch changes in a request the proxy reads, in words; empty when nothing.
std::string rewrite_text(const policy& p, const verdict& v, std::string_view host, std::string_view path) {
  const auto rw = safesearch_request(p, v, host, path);
  std::string out;
  if (rw.target) out = "the request becomes " + *rw.target;
  for (const auto& [name, value] : rw.set_headers) {
    out += (out.empty() ? "" : "; ") + ("header " + name + ": " + value + " is set");
  }
  return out;
}

}  // namespace

std::string policy_summary(const policy& p) {
  std::string out;
  out += "School: " + p.school_name + " (time zone " + p.zone.name() + ")\n";
  out += "Roles:\n";
  for (std::size_t i = 0; i < p.roles.size(); ++i) {
    const auto& r = p.roles[i];
    std::size_t nets = 0;
    for (const auto& n : p.networks) nets += n.role == i;
    out += "  " + r.name + ": " + std::to_string(r.rules.size()) + " rules, default " +
           std::string(to_string(r.default_action)) + ", " + std::to_string(nets) + " networks";
    if (i == p.fallback_role) out += " (fallback for unknown addresses)";
    out += "\n";
  }
  if (!p.everyone_rules.empty()) {
    out += "Rules for everyone: " + std::to_string(p.everyone_rules.size()) + "\n";
  }
  out += "Categories:\n";
  for (const auto& c : p.categories) {
    out += "  " + c.name + ": " + std::to_string(c.domain_count) + " domains, " + std::to_string(c.url_count) +
           " URL prefixes, " + std::to_string(c.pattern_count) + " patterns" + (c.locked ? " [locked]" : "") + "\n";
  }
  out += "Domain table: " + std::to_string(p.domains.size()) + " distinct domains, " +
         std::to_string(p.domains.memory_bytes() / (1024 * 1024)) + " MiB\n";
  out += "Timetable:\n";
  static constexpr const char* names[] = {"Sunday", "Monday", "Tuesday", "Wednesday",
                                          "Thursday", "Friday", "Saturday"};
  for (int d : {1, 2, 3, 4, 5, 6, 0}) {
    const auto& day = p.timetable.days[d];
    out += std::string("  ") + names[d] + ":";
    if (day.empty()) out += " no school";
    for (const auto& pd : day) {
      out += " " + pd.name + " " + hhmm(pd.start_minute) + "-" + hhmm(pd.end_minute) + ";";
    }
    if (!day.empty()) out.pop_back();
    out += "\n";
  }
  out += "Terms: " + std::to_string(p.timetable.terms.size()) + ", holidays: " +
         std::to_string(p.timetable.holidays.size()) + "\n";
  out += "Longest exception: ";
  if (p.max_exception_duration) {
    out += duration_text(*p.max_exception_duration) + " (exceptions.max_duration)\n";
  } else {
    // As an approval made now would be limited: the end of the current or next term, or 90
    // days when no term lies ahead (none listed, or all ended).
    const auto limit = max_exception_until(p, std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now()));
    out += limit.description.rfind("90 days", 0) == 0 ? limit.description + "\n" : "until " + limit.description + "\n";
  }
  {
    // Bans (rules/ban.hpp): the supervised-use list and the threshold.
    const auto& b = p.bans;
    std::string list;
    for (const auto& d : b.domains) list += (list.empty() ? "" : ", ") + d;
    for (const auto id : b.categories) list += (list.empty() ? "category " : ", category ") + p.set_names[id];
    out += "Bans: supervised use " + (list.empty() ? std::string("(nothing listed: a ban blocks everything)") : list) +
           "; " +
           (b.attempts ? "automatic after " + std::to_string(b.attempts) + " circumvention attempts within " +
                             duration_text(b.within) + ", for " + duration_text(b.duration)
                       : std::string("no automatic bans (bans.threshold)")) +
           "\n";
  }
  std::string safe;
  for (const auto& r : p.roles) {
    if (!r.safesearch.any()) continue;
    safe += (safe.empty() ? "" : "; ") + r.name + " search " + std::string(to_string(r.safesearch.search)) +
            ", YouTube " + std::string(to_string(r.safesearch.youtube));
  }
  out += "SafeSearch: " + (safe.empty() ? std::string("off for every role") : safe) + "\n";
  const auto& ins = p.inspection;
  out += "HTTPS inspection (with a school CA): " + std::to_string(ins.never_count) + " never-inspect domains, " +
         std::to_string(ins.inspect.size()) + (ins.inspect.size() == 1 ? " entry" : " entries") +
         ", plus hosts whose entries need the path\n";
  for (const auto& e : ins.inspect) {
    std::string roles;
    for (auto i : e.roles) roles += (roles.empty() ? "" : ", ") + p.roles[i].name;
    std::string what;
    if (e.everything) what = "everything";
    if (e.has_domains) what += (what.empty() ? "" : ", ") + std::string("listed domains");
    std::vector<std::string_view> named;  // a category's block-only set has its name too
    for (auto c : e.categories) {
      if (std::find(named.begin(), named.end(), p.set_names[c]) != named.end()) continue;
      named.push_back(p.set_names[c]);
      what += (what.empty() ? "" : ", ") + p.set_names[c];
    }
    if (e.safesearch) what += (what.empty() ? "" : ", ") + std::string("SafeSearch hosts");
    out += "  " + e.id + ": " + what + " for " + (roles.empty() ? std::string("every role") : roles) + "\n";
  }
  return out;
}

std::string feeds_summary(const policy& p, std::chrono::sys_seconds now) {
  using namespace std::chrono;
  if (p.feeds.empty()) return "";
  std::string out = std::string("Feeds") + (p.feeds_required ? " (required: the policy does not load without them)" : "") + ":\n";
  for (const auto& f : p.feeds) {
    out += "  " + f.name + " (" + std::string(to_string(f.format)) + (f.locked ? ", locked" : "") + "): ";
    if (!f.present) {
      out += "MISSING, never fetched (" + (f.dir.empty() ? std::string("no state directory") : f.dir) +
             "): run `" + p.feeds_update_command + " --feed " + f.name + "`\n";
      continue;
    }
    if (f.fetched_at) {
      const sys_seconds at{seconds{*f.fetched_at}};
      out += "fetched " + local_minutes(p.zone, at) + " (" + duration_text(std::max(seconds{0}, now - at)) + " ago)";
    } else {
      out += "fetched at an unknown time (no feed.info)";
    }
    out += ", " + f.dir + "\n";
    for (const auto& [list, n] : f.lists) out += "    " + f.name + "/" + list + ": " + std::to_string(n) + " entries\n";
  }
  return out;
}

std::optional<url_parts> split_url(std::string_view url, std::string* error) {
  url_parts u;
  auto fail = [&](std::string m) -> std::optional<url_parts> {
    if (error) *error = std::move(m);
    return std::nullopt;
  };
  if (auto s = url.find("://"); s != std::string_view::npos) {
    // Without case (RFC 3986 3.1: "HTTP://" is "http://", and the proxy accepts it), kept as
    // the lower-case name.
    const std::string_view written = url.substr(0, s);
    url.remove_prefix(s + 3);
    u.scheme = {};
    for (const std::string_view known : {"http", "https", "ws", "wss"}) {
      if (written.size() == known.size() &&
          std::equal(written.begin(), written.end(), known.begin(),
                     [](char a, char b) { return (a >= 'A' && a <= 'Z' ? a + 32 : a) == b; })) {
        u.scheme = known;
      }
    }
    if (u.scheme.empty()) {
      return fail("the URL scheme '" + std::string(written) + "' is not http, https, ws or wss");
    }
  } else {
    // No "//": "javascript:alert(1)", "data:text/html,...", "mailto:a@b.test" have a scheme
    // all the same (RFC 3986 3.1), and were read as a host and a port ("the URL's port
    // 'alert(1)' is not a number") or as user information ("mailto:a@" dropped, b.test
    // stored): admin audit, 2026-12-05, F10. A name before a colon is a scheme unless what
    // follows is a port ("x.test:8080/page"); a dotted name is a host ("x.test:abc": its port).
    const auto colon = url.find(':');
    const std::string_view name = url.substr(0, colon == std::string_view::npos ? 0 : colon);
    const std::string_view rest = colon == std::string_view::npos ? std::string_view() : url.substr(colon + 1);
    const std::string_view port = rest.substr(0, rest.find_first_of("/?#"));
    const bool scheme_shape =
        !name.empty() && std::isalpha(static_cast<unsigned char>(name.front())) &&
        std::all_of(name.begin(), name.end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '-';
        });
    const bool is_port =
        !port.empty() && std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (scheme_shape && !rest.empty() && !is_port) {
      return fail("the URL scheme '" + std::string(name) + "' is not http, https, ws or wss");
    }
    u.scheme = "http";
  }
  const auto end = url.find_first_of("/?#");
  std::string_view authority = url.substr(0, end);
  u.path = end == std::string_view::npos ? std::string_view("/") : url.substr(end);
  if (auto hash = u.path.find('#'); hash != std::string_view::npos) u.path = u.path.substr(0, hash);
  if (auto at = authority.rfind('@'); at != std::string_view::npos) authority.remove_prefix(at + 1);
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return fail("the URL's IPv6 address has no closing ']'");
    u.host = authority.substr(0, close + 1);
    // Brackets hold an IPv6 literal (RFC 3986 3.2.2), never a name.
    if (u.host.find(':') == std::string_view::npos) return fail("the URL's brackets hold no IPv6 address");
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') return fail("unexpected text after the IPv6 address");
      port = authority.substr(close + 2);
    }
  } else if (auto colon = authority.rfind(':'); colon != std::string_view::npos) {
    // An IPv6 address without its brackets ("http://2001:db8::10/"): which ':' starts a port
    // cannot be told (RFC 3986 3.2.2 asks for brackets); read at the last one it was cut, shown
    // as "2001:db8:" on the block page, or taken as a port (outside-in audit of IPv6, 2026-12-07).
    if (authority.find(':') != colon) {
      return fail("the URL's host has more than one ':' (an IPv6 address in a URL is written in brackets, as "
                  "http://[2001:db8::10]/)");
    }
    u.host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  } else {
    u.host = authority;
  }
  if (u.host.empty()) return fail("the URL has no host");
  if (!port.empty()) {
    unsigned v = 0;
    auto r = std::from_chars(port.data(), port.data() + port.size(), v);
    if (r.ec != std::errc() || r.ptr != port.data() + port.size() || v == 0 || v > 65535) {
      return fail("the URL's port '" + std::string(port) + "' is not a number from 1 to 65535");
    }
    u.port = static_cast<std::uint16_t>(v);
  }
  if (u.path.front() == '?') {
    // "http://host?q": the path is "/" and the query follows.
  }
  return u;
}

std::optional<std::chrono::local_seconds> parse_local_time(std::string_view t) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0;
  if (t.size() != 16 || t[4] != '-' || t[7] != '-' || (t[10] != ' ' && t[10] != 'T') || t[13] != ':') return std::nullopt;
  auto num = [&](std::size_t at, std::size_t n, int& out) {
    // Digits only: from_chars alone takes a sign ("2026-11-23 -1:00" was Sunday 23:00).
    if (!std::all_of(t.begin() + at, t.begin() + at + n, [](char c) { return c >= '0' && c <= '9'; })) return false;
    auto r = std::from_chars(t.data() + at, t.data() + at + n, out);
    return r.ec == std::errc() && r.ptr == t.data() + at + n;
  };
  if (!num(0, 4, y) || !num(5, 2, mo) || !num(8, 2, d) || !num(11, 2, h) || !num(14, 2, mi)) return std::nullopt;
  using namespace std::chrono;
  const year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
  if (!ymd.ok() || y < 1970 || h > 23 || mi > 59) return std::nullopt;
  return local_days{ymd} + hours{h} + minutes{mi};
}

explanation explain(const policy& p, const request_facts& facts, const exception_index* overlay) {
  explanation e{decide_request(p, overlay, facts), {}, {}};
  const verdict& v = e.v;
  for (auto& n : path_notes(v)) e.notes.push_back(std::move(n));
  if (v.act == action::allow) return e;
  if (v.by == decided_by::locked_category) {
    e.would_allow.push_back("Nothing: category '" + std::string(v.category_name()) +
                            "' is locked (an illegal-content list). No rule or exception can allow it.");
    return e;
  }
  if (v.by == decided_by::unchecked) {
    e.would_allow.push_back(v.host_error.empty()
                                ? std::string("Nothing while RE2 cannot match the URL patterns (its memory ran out).")
                                : "Nothing: the host name is not valid (" + v.host_error + ").");
    return e;
  }
  if (v.ban) {
    // Nothing else opens it while the ban lasts (rules/ban.hpp): no other time, no exception.
    e.would_allow.push_back("The end of " + v.ban->rule_id + " (" + v.ban->until_text +
                            "), or the DSL or the headteacher lifting it (hallpassctl unban " +
                            std::to_string(v.ban->id) + "). Until then only the supervised-use list (bans.policy) is open.");
    return e;
  }
  if (const auto entry = local_block_id(v.rule_id)) {
    // A reported page is blocked for everyone, at every time, whatever exception is approved
    // (exception_index.hpp, precedence 2): its removal comes first (people-side audit,
    // 2026-12-07, M1: explain offered an exception, which opened nothing). Where the policy
    // blocks the page too, what opens that is said as well (the review of the session).
    const std::string removal = "The technician or the headteacher removing " + std::string(v.rule_id) +
                                " (hallpassctl unblock " + std::to_string(*entry) +
                                "): a local block wins over every exception, role and time";
    if (decide_request(p, nullptr, facts).act != action::block) {
      e.would_allow.push_back(removal + ".");
      return e;
    }
    e.would_allow.push_back(removal + "; the policy blocks the page too, so then also one of these:");
  }
  using namespace std::chrono;
  // The same request at other times of the same day, and at the weekend.
  const auto today = floor<days>(v.local_time);
  const weekday wd{today};
  std::vector<std::string> times;
  const auto& periods = p.timetable.days[wd.c_encoding()];
  auto try_at = [&](local_seconds local, const std::string& label) {
    request_facts f = facts;
    f.time = p.zone.to_sys(local);
    f.role = v.chosen_role->name;
    if (decide_request(p, overlay, f).act == action::allow) times.push_back(label);
  };
  for (const auto& pd : periods) {
    if (v.when.current == &pd) continue;
    try_at(today + minutes{pd.start_minute},
           pd.name + " (" + hhmm(pd.start_minute) + "-" + hhmm(pd.end_minute) + ")");
  }
  if (!periods.empty() && v.when.current) try_at(today + minutes{periods.back().end_minute}, "after the school day");
  if (wd != Saturday && wd != Sunday) {
    const auto saturday = today + days{(Saturday - wd).count()};
    try_at(saturday + hours{11}, "at the weekend");
  }
  if (!times.empty()) {
    std::string s = "For " + v.chosen_role->name + " at another time: ";
    for (std::size_t i = 0; i < times.size(); ++i) s += (i ? ", " : "") + times[i];
    e.would_allow.push_back(s + ".");
  }
  // Other roles at the same time.
  std::vector<std::string> roles;
  for (const auto& r : p.roles) {
    if (&r == v.chosen_role || r.builtin) continue;
    request_facts f = facts;
    f.role = r.name;
    if (decide_request(p, overlay, f).act == action::allow) roles.push_back(r.name);
  }
  if (!roles.empty()) {
    std::string s = "Another role at this time: ";
    for (std::size_t i = 0; i < roles.size(); ++i) s += (i ? ", " : "") + roles[i];
    e.would_allow.push_back(s + ".");
  }
  e.would_allow.push_back(
      "An exception approved by the headteacher, requested on the blocked content access request form "
      "(000 7.5 and appendix; 002).");
  return e;
}

namespace {

// The SafeSearch front end the proxy connects to for this host and role, in words; "" for none.
// Plain HTTP is mapped too (proxy/forward.cpp), with its Host unchanged (audit20 D6).
std::string safesearch_connect_text(const policy& p, const verdict& v, std::string_view host, bool tls) {
  const auto to = safesearch_connect_host(p, v, host);
  if (!to) return {};
  const auto service = search_service_of(host);
  return std::string(*to) + " (" + std::string(to_string(service)) + " " +
         std::string(to_string(safesearch_for(p, v, service))) + " for " + v.chosen_role->name + "; " +
         (tls ? "SNI and Host unchanged)" : "Host unchanged)");
}

}  // namespace

explanation explain_url(const policy& p, const request_facts& facts, const exception_index* overlay,
                        bool inspection_on) {
  const bool tls = facts.scheme == "https" || facts.scheme == "wss";
  if (!tls) {
    explanation e = explain(p, facts, overlay);
    if (facts.path) e.safesearch_change = rewrite_text(p, e.v, facts.host, *facts.path);
    e.safesearch_connect = safesearch_connect_text(p, e.v, facts.host, false);
    return e;
  }
  const std::string_view shown_path = facts.path ? *facts.path : std::string_view("/");
  const bool has_path = shown_path != "/" && !shown_path.empty();
  request_facts connect = facts;
  connect.method = "CONNECT";
  // A CONNECT names no method override: kept, it made a staff member's whole Wikipedia
  // "blocked" in explain while the proxy blocked one request (explain audit, 2026-12-06, M1).
  connect.method_overrides = {};
  connect.path = std::nullopt;
  connect.path_seen_later = false;
  explanation e;
  std::string note;
  std::optional<inspection_verdict> ins;
  if (inspection_on) {
    const verdict relayed = decide_request(p, overlay, connect);
    ins = decide_inspection(p, overlay, connect, relayed);
  }
  if (ins && ins->handling == tls_handling::inspect) {
    connect.path_seen_later = true;
    const verdict opened = decide_request(p, overlay, connect);
    if (opened.act == action::block) {
      e = explain(p, connect, overlay);
      e.path_seen = false;
      note = "HTTPS to this host is inspected, but the host itself is blocked: the proxy shows the HTTPS block page "
             "for every page on it.";
    } else {
      e = explain(p, facts, overlay);
      note = "HTTPS to this host is inspected: the proxy sees the method and path and decides each request with "
             "them, as here.";
    }
  } else {
    e = explain(p, connect, overlay);
    e.path_seen = false;
    if (ins && e.v.act == action::block) {
      e.block_page = !ins->never;
      // As the proxy's plan for the CONNECT (proxy/exchange.cpp, plan_tunnel).
      e.notes.push_back(ins->never
                            ? "The host is blocked and on the never-inspect list, so it is not decrypted even for "
                              "the block page: a browser shows its own connection error; the proxy refuses the "
                              "tunnel (a 403 to a CONNECT)."
                            : "The host is blocked: a browser is shown the HTTPS block page (the proxy completes "
                              "the handshake with the school CA only to show it; nothing reaches the site); other "
                              "clients are refused (a 403 to a CONNECT).");
    }
    if (has_path) {
      note = std::string(ins ? "HTTPS to this host is relayed without decryption"
                             : "HTTPS is not inspected (no school CA: tls.ca_dir or --ca-dir)") +
             ", so the proxy sees only the host name: the path '" + std::string(shown_path) +
             "' plays no part in this decision.";
    }
  }
  e.inspection = std::move(ins);
  if (!note.empty()) e.notes.insert(e.notes.begin(), note);
  e.safesearch_connect = safesearch_connect_text(p, e.v, facts.host, true);
  if (e.path_seen && facts.path) e.safesearch_change = rewrite_text(p, e.v, facts.host, *facts.path);
  return e;
}

std::string utc_offset_text(std::chrono::seconds offset) {
  const long long o = offset.count();
  char buf[32];
  std::snprintf(buf, sizeof buf, "%c%02lld:%02lld", o < 0 ? '-' : '+', std::llabs(o) / 3600, (std::llabs(o) % 3600) / 60);
  return buf;
}

std::string thousands(std::uint64_t n) {
  const std::string digits = std::to_string(n);
  std::string out;
  out.reserve(digits.size() + digits.size() / 3);
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

namespace {

constexpr const char* weekdays[] = {"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"};
constexpr const char* months[] = {"January", "February", "March",     "April",   "May",      "June",
                                  "July",    "August",   "September", "October", "November", "December"};

// The day, date and minute of `t` in school time, in words: "Monday 23 November 2026, 11:05",
// or, short, "Mon 23 Nov 11:05" (the weekday and month cut to three letters, no year).
std::string day_and_minute(const time_zone& z, std::chrono::sys_seconds t, bool short_form) {
  using namespace std::chrono;
  const local_seconds local = z.to_local(t);
  const auto day = floor<days>(local);
  const year_month_day ymd{day};
  const hh_mm_ss hms{local - day};
  char buf[96];
  if (short_form) {
    std::snprintf(buf, sizeof buf, "%.3s %u %.3s %02d:%02d", weekdays[weekday{day}.c_encoding()],
                  static_cast<unsigned>(ymd.day()), months[static_cast<unsigned>(ymd.month()) - 1],
                  static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()));
  } else {
    std::snprintf(buf, sizeof buf, "%s %u %s %d, %02d:%02d", weekdays[weekday{day}.c_encoding()],
                  static_cast<unsigned>(ymd.day()), months[static_cast<unsigned>(ymd.month()) - 1],
                  static_cast<int>(ymd.year()), static_cast<int>(hms.hours().count()),
                  static_cast<int>(hms.minutes().count()));
  }
  return buf;
}

}  // namespace

std::string time_in_words(const time_zone& z, std::chrono::sys_seconds t) {
  return day_and_minute(z, t, false) + " " + zone_label(z, t);
}

std::string short_time_in_words(const time_zone& z, std::chrono::sys_seconds t) {
  return day_and_minute(z, t, true);
}

std::string spoken_time(const time_zone& z, std::chrono::sys_seconds t, std::chrono::sys_seconds now) {
  using namespace std::chrono;
  const local_seconds local = z.to_local(t);
  const auto day = floor<days>(local);
  const auto today = floor<days>(z.to_local(now));
  const hh_mm_ss hms{local - day};
  const int h = static_cast<int>(hms.hours().count());
  const int m = static_cast<int>(hms.minutes().count());
  const auto ahead = (day - today).count();
  // Midnight belongs to the evening before it: "midnight tonight" ends today.
  if (h == 0 && m == 0) {
    const auto eve = ahead - 1;
    if (eve <= 0) return "midnight tonight";
    if (eve == 1) return "midnight tomorrow night";
    const year_month_day ymd{day - days(1)};
    const std::string name = weekdays[weekday{day - days(1)}.c_encoding()];
    if (eve <= 6) return "midnight on " + name + " night";
    return "midnight at the end of " + name + " " + std::to_string(static_cast<unsigned>(ymd.day())) + " " +
           months[static_cast<unsigned>(ymd.month()) - 1];
  }
  char clock[16];
  if (h == 12 && m == 0) {
    std::snprintf(clock, sizeof clock, "12 noon");
  } else {
    std::snprintf(clock, sizeof clock, "%d:%02d", h % 12 == 0 ? 12 : h % 12, m);
  }
  const char* part = h < 12 ? "morning" : h < 18 ? "afternoon" : "evening";
  if (h == 12 && m == 0) part = "";
  std::string out = clock;
  if (ahead <= 0) {
    if (*part == 0) return out + " today";
    return out + " this " + part;
  }
  if (ahead == 1) return out + " tomorrow" + (*part ? std::string(" ") + part : std::string());
  const std::string name = weekdays[weekday{day}.c_encoding()];
  if (ahead <= 6) return out + " on " + name + (*part ? std::string(" ") + part : std::string());
  const year_month_day ymd{day};
  return out + (*part ? std::string(h < 12 ? " am" : " pm") : std::string()) + " on " + name + " " +
         std::to_string(static_cast<unsigned>(ymd.day())) + " " + months[static_cast<unsigned>(ymd.month()) - 1];
}

std::string zone_label(const time_zone& z, std::chrono::sys_seconds t) {
  using namespace std::chrono;
  const auto offset = z.offset_at(t);
  // The zone file's own name for it (GMT and BST for Europe/London, and for Jersey, Guernsey and
  // the Isle of Man, which follow it) when it is letters; tzdata writes "+04" for zones without
  // one, shown as the offset instead.
  const std::string& name = z.abbreviation_at(t);
  const bool letters = name.size() >= 3 && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
  });
  if (letters) return name;
  return offset == seconds(0) ? "UTC" : "UTC" + utc_offset_text(offset);
}

std::optional<school_time> parse_school_time(const time_zone& z, std::string_view text) {
  using namespace std::chrono;
  const auto local = parse_local_time(text.substr(0, 16));
  if (!local || text.size() < 16) return std::nullopt;
  const std::string_view suffix = text.substr(16);
  if (suffix.empty()) {
    const auto at = z.to_sys(*local);
    return school_time{at, clock_change_note(z, text, *local, at)};
  }
  seconds offset{0};
  if (suffix != "Z") {
    const auto digit = [&](std::size_t i) { return suffix[i] >= '0' && suffix[i] <= '9'; };
    if (suffix.size() != 6 || (suffix[0] != '+' && suffix[0] != '-') || suffix[3] != ':' || !digit(1) || !digit(2) ||
        !digit(4) || !digit(5))
      return std::nullopt;
    const int h = (suffix[1] - '0') * 10 + (suffix[2] - '0'), m = (suffix[4] - '0') * 10 + (suffix[5] - '0');
    if (h > 14 || m > 59) return std::nullopt;
    offset = hours(h) + minutes(m);
    if (suffix[0] == '-') offset = -offset;
  }
  const sys_seconds at{local->time_since_epoch() - offset};
  std::string note;
  if (z.offset_at(at) != offset) {
    note = std::string(text) + ": " + z.name() + " is at UTC" + utc_offset_text(z.offset_at(at)) +
           " then, not UTC" + utc_offset_text(offset) + "; read as the instant it names, " + iso8601_local(z, at);
  }
  return school_time{at, std::move(note)};
}

std::string clock_change_note(const time_zone& z, std::string_view asked_text, std::chrono::local_seconds asked,
                              std::chrono::sys_seconds resolved) {
  using namespace std::chrono;
  if (z.to_local(resolved) != asked) {
    return std::string(asked_text) + " does not exist in " + z.name() + " (the clocks go forward); read as " +
           iso8601_local(z, resolved);
  }
  // The first of two: the same wall time comes again within the hour (or half-hour) after.
  if (z.to_local(resolved + hours(1)) == asked || z.to_local(resolved + minutes(30)) == asked) {
    return std::string(asked_text) + " happens twice in " + z.name() + " (the clocks go back); the first was used, " +
           iso8601_local(z, resolved) + " (for the second, write it with its offset: \"" +
           std::string(asked_text.substr(0, 16)) + utc_offset_text(z.offset_at(resolved + hours(1))) + "\")";
  }
  return {};
}

std::string local_minutes(const time_zone& z, std::chrono::sys_seconds t) {
  std::string text = iso8601_local(z, t).substr(0, 16);  // "2026-12-02T03:12"
  text[10] = ' ';
  return text + " " + zone_label(z, t);
}

std::string iso8601_local(const time_zone& z, std::chrono::sys_seconds t) {
  using namespace std::chrono;
  const auto off = z.offset_at(t);
  const local_seconds l{t.time_since_epoch() + off};
  const auto day = floor<days>(l);
  const year_month_day ymd{day};
  const hh_mm_ss hms{l - day};
  char buf[48];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02lld:%02lld:%02lld", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<long long>(hms.hours().count()), static_cast<long long>(hms.minutes().count()),
                static_cast<long long>(hms.seconds().count()));
  return buf + utc_offset_text(off);
}

std::string explanation_text(const policy& p, const request_facts& f, const explanation& e) {
  const verdict& v = e.v;
  std::string out;
  // Every value made safe for the terminal: reasons, reports and names come from people
  // outside the office (a form, a device's name) or are typed by staff (utf8.hpp).
  auto line = [&](std::string_view label, std::string_view value) {
    if (value.empty()) return;
    out += label;
    out.append(label.size() < 10 ? 10 - label.size() : 1, ' ');
    out += terminal_safe(value);
    out += "\n";
  };
  // The device the DHCP leases would name (explain --device, --mac): bans and exceptions by
  // name or hardware address match on it.
  if (!f.device.empty() || !f.mac.empty()) {
    line("Device:", (f.device.empty() ? std::string("(no name)") : std::string(f.device)) +
                        (f.mac.empty() ? "" : " (" + std::string(f.mac) + ")"));
  }
  line("Verdict:", v.act == action::allow ? "ALLOW" : "BLOCK");
  line("Host:", v.host.text.empty() ? std::string(f.host) : v.host.text);
  line("Role:", v.chosen_role->name + " (" + role_how(v) + ")");
  // With the offset: in the autumn's repeated hour the same wall time is two moments.
  line("Time:", format_local(v.local_time) + ", " + p.zone.name() + " (UTC" + utc_offset_text(p.zone.offset_at(f.time)) + ")");
  line("Period:", v.period_name());
  line("Rule:", rule_text(v));
  line("Category:", v.category_name());
  line("Clause:", v.clause);
  line("Reason:", v.reason);
  if (v.ban) {
    line("Ban:", v.ban->rule_id + " of " + (v.ban->device ? "device " : "user ") + v.ban->subject + " until " +
                     v.ban->until_text + " (" + v.ban->how + "): " + v.ban->reason);
  }
  if (e.block_page) {
    line("HTTPS:", "block page: the host is blocked, so a browser's tunnel is decrypted with the school CA only to "
                   "show the HTTPS block page; nothing reaches the site");
  } else if (e.inspection) {
    line("HTTPS:", std::string(e.inspection->handling == tls_handling::inspect ? "inspected" : "relayed") +
                       (e.inspection->never ? " (never-inspect list)" : "") + ": " + e.inspection->why);
  }
  if (!e.safesearch_connect.empty()) line("SafeSearch:", "the proxy connects to " + e.safesearch_connect);
  if (!e.safesearch_change.empty()) line("SafeSearch:", e.safesearch_change);
  for (const auto& n : e.notes) line("Note:", n);
  if (!e.would_allow.empty()) {
    out += "What would allow it:\n";
    for (const auto& w : e.would_allow) out += "  - " + terminal_safe(w) + "\n";
  }
  return out;
}

std::string explanation_json(const policy& p, const request_facts& f, const explanation& e) {
  const verdict& v = e.v;
  std::string allow = "[";
  for (std::size_t i = 0; i < e.would_allow.size(); ++i) {
    if (i) allow += ",";
    allow += '"';
    json_escape(allow, e.would_allow[i]);
    allow += '"';
  }
  allow += "]";
  json_object o;
  if (!f.device.empty() || !f.mac.empty()) {
    if (f.device.empty()) o.null("device"); else o.str("device", f.device);
    if (f.mac.empty()) o.null("mac"); else o.str("mac", f.mac);
  }
  o.str("action", to_string(v.act))
      .str("host", v.host.text.empty() ? f.host : std::string_view(v.host.text))
      .str("role", v.chosen_role->name)
      .str("role_source", to_string(v.role_from))
      .str("role_detail", v.role_detail)
      .str("time", iso8601_local(p.zone, f.time))
      .str("period", v.when.current ? std::string_view(v.when.current->name) : std::string_view("outside school hours"))
      .str("period_kind", v.when.current ? to_string(v.when.current->kind) : std::string_view("outside"));
  if (!v.when.current) o.str("outside_reason", v.when.outside_why);
  o.str("rule", v.rule_id);
  if (v.matched_rule) o.str("rule_summary", v.matched_rule->summary);
  if (v.matched_category) {
    o.str("category", v.category_name());
  } else {
    o.null("category");
  }
  o.str("clause", v.clause).str("reason", v.reason).boolean("locked", v.by == decided_by::locked_category);
  o.raw("would_allow", allow);
  if (v.ban) {
    json_object b;
    b.num("id", v.ban->id)
        .str("kind", v.ban->device ? "device" : "user")
        .str("subject", v.ban->subject)
        .str("until", v.ban->until_text)
        .str("how", v.ban->how)
        .str("reason", v.ban->reason);
    o.raw("ban", b.done());
  } else {
    o.null("ban");
  }
  std::string notes = "[";
  for (std::size_t i = 0; i < e.notes.size(); ++i) {
    if (i) notes += ",";
    notes += '"';
    json_escape(notes, e.notes[i]);
    notes += '"';
  }
  o.raw("notes", notes + "]");
  o.boolean("path_seen", e.path_seen);
  if (e.inspection) {
    o.str("inspection", e.block_page ? std::string_view("block_page") : to_string(e.inspection->handling))
        .boolean("inspection_never", e.inspection->never)
        .str("inspection_why", e.inspection->why);
  } else {
    o.null("inspection");
  }
  if (!e.safesearch_connect.empty()) o.str("safesearch_connect", e.safesearch_connect);
  if (!e.safesearch_change.empty()) o.str("safesearch_change", e.safesearch_change);
  return o.done();
}

}  // namespace hallpass::rules
