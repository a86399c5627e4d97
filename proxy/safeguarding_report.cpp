#include "proxy/safeguarding_report.hpp"


#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <charconv>
#include <optional>

#include "rules/category_words.hpp"
#include "rules/exception_index.hpp"
#include "rules/explain.hpp"
#include "rules/host.hpp"
#include "rules/time_zone.hpp"
#include "rules/utf8.hpp"

namespace hallpass {
namespace {

constexpr std::size_t max_report_people = 100000;         // distinct people counted, at most
constexpr std::size_t max_devices_per_tally = 10000;
constexpr std::size_t max_report_sites = 100000;          // distinct blocked hosts counted, at most
constexpr auto report_incident_gap = std::chrono::minutes(10);

// A table cell: safe on a terminal and in Markdown (no '|', no line break), at most `limit` bytes.
std::string report_cell(std::string_view s, std::size_t limit = 120) {
  std::string t = rules::terminal_safe(s);
  std::string out;
  for (char c : t) {
    if (c == '|') {
      out += "\\|";
    } else if (c == '\\') {
      out += "\\\\";  // else "a\\" then the next cell's '|' read as "\\|": a column less
    } else {
      out += c;
    }
  }
  if (out.size() > limit) {
    out.resize(limit);
    out = rules::valid_utf8(out) + "...";
  }
  return out;
}

// A category as people read it: "self harm", not the policy's key "self_harm" (the block page
// and the alert mails say it so too; people-side audit, 2026-12-07, L8).
std::string category_cell(std::string_view key) { return rules::category_words(report_cell(key)); }

std::string report_plural(std::uint64_t n, std::string_view one, std::string_view many) {
  return rules::thousands(n) + " " + std::string(n == 1 ? one : many);
}

// "Mon 30 Nov 11:05", school-local: the table's rows (the title names the zone).
std::string report_field(const boost::json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

int report_two_digits(std::string_view s, std::size_t at) {
  if (at + 2 > s.size() || !std::isdigit(static_cast<unsigned char>(s[at])) ||
      !std::isdigit(static_cast<unsigned char>(s[at + 1]))) {
    return -1;
  }
  return (s[at] - '0') * 10 + (s[at + 1] - '0');
}

}  // namespace

void report_builder::set_incident_records(std::vector<store::incident_summary> records, std::string problem,
                                          std::uint64_t omitted) {
  records_ = std::move(records);
  records_problem_ = std::move(problem);
  records_omitted_ = omitted;
}

std::optional<std::chrono::sys_seconds> parse_log_time(std::string_view s) {
  using namespace std::chrono;
  // YYYY-MM-DDTHH:MM:SS[.fff](+HH:MM|-HH:MM|Z)
  if (s.size() < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':') return std::nullopt;
  int y = 0;
  if (std::from_chars(s.data(), s.data() + 4, y).ptr != s.data() + 4) return std::nullopt;
  const int mo = report_two_digits(s, 5), d = report_two_digits(s, 8), h = report_two_digits(s, 11), mi = report_two_digits(s, 14),
            se = report_two_digits(s, 17);
  if (mo < 1 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 || se < 0 || se > 60) return std::nullopt;
  std::size_t at = 19;
  if (at < s.size() && s[at] == '.') {
    ++at;
    while (at < s.size() && std::isdigit(static_cast<unsigned char>(s[at]))) ++at;
  }
  seconds offset{0};
  if (at < s.size() && s[at] == 'Z' && at + 1 == s.size()) {
    // UTC
  } else if (at + 6 == s.size() && (s[at] == '+' || s[at] == '-') && s[at + 3] == ':') {
    const int oh = report_two_digits(s, at + 1), om = report_two_digits(s, at + 4);
    if (oh < 0 || oh > 23 || om < 0 || om > 59) return std::nullopt;
    offset = hours(oh) + minutes(om);
    if (s[at] == '-') offset = -offset;
  } else {
    return std::nullopt;
  }
  const year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
  if (!ymd.ok()) return std::nullopt;
  return sys_days{ymd} + hours(h) + minutes(mi) + seconds(se) - offset;
}

report_period last_school_week(const rules::time_zone& zone, std::chrono::sys_seconds now) {
  using namespace std::chrono;
  const auto today = floor<days>(zone.to_local(now));
  const auto this_monday = today - days((weekday{today}.iso_encoding() - 1));
  return {zone.to_sys(local_seconds{this_monday - days(7)}), zone.to_sys(local_seconds{this_monday})};
}

std::string report_builder::person::key() const {
  return user.empty() ? "device\n" + device_key : "user\n" + user;
}

report_builder::report_builder(report_period period, std::vector<std::string> high_risk, std::size_t max_rows)
    : period_(period), high_risk_(std::move(high_risk)), max_rows_(max_rows) {}

void report_builder::add_line(std::string_view line) {
  boost::system::error_code ec;
  const boost::json::value v = line.empty() ? boost::json::value() : boost::json::parse(line, ec);
  if (ec || !v.is_object()) {
    ++unreadable_;
    return;
  }
  const auto& o = v.as_object();
  const auto at = parse_log_time(report_field(o, "time"));
  if (!at) {
    ++unreadable_;
    return;
  }
  if (!earliest_ || *at < *earliest_) earliest_ = *at;
  if (*at < period_.from) before_period_ = true;
  if (*at < period_.from || *at >= period_.to) {
    ++outside_;
    return;
  }
  const std::string event = report_field(o, "event");
  if (event == "ban") {
    ++bans_total_;
    if (bans_.size() < max_rows_) {
      ban_row b{*at, report_field(o, "how"), report_field(o, "kind"), report_field(o, "subject"),
                report_field(o, "until"), 0};
      if (const auto* id = o.if_contains("ban"); id && id->is_int64()) b.id = id->as_int64();
      bans_.push_back(std::move(b));
    }
    return;
  }
  if (event == "alert") {
    const std::string kind = report_field(o, "kind");
    const auto* request = o.if_contains("request");
    if (kind == "category" && request && request->is_int64() && request->as_int64() > 0) {
      // A pupil's request for a watched page: its own line in the report (people-side audit,
      // 2026-12-07, M7: it was counted as a high-risk block and listed nowhere).
      ++watched_requests_total_;
      if (watched_requests_.size() < max_rows_) {
        person who;
        who.user = report_field(o, "user");
        who.role = report_field(o, "role");
        const std::string client = report_field(o, "client");
        std::string name = report_field(o, "device");
        if (name.empty()) name = report_field(o, "mac");
        who.device = name.empty() ? client : name + " (" + client + ")";
        watched_requests_.push_back({*at, std::move(who), report_field(o, "category"), request->as_int64()});
      }
      return;
    }
    ++alerts_[kind == "circumvention" ? 1 : kind == "ban" ? 2 : 0];
    return;
  }
  if (!event.empty()) return;  // a kind of line this version does not know
  person who;
  who.user = report_field(o, "user");
  who.role = report_field(o, "role");
  const std::string client = report_field(o, "client"), mac = report_field(o, "mac");
  std::string name = report_field(o, "device");
  if (name.empty()) name = mac;
  who.device = name.empty() ? client : name + " (" + client + ")";
  who.device_key = mac.empty() ? client : mac;
  const bool blocked = report_field(o, "action") == "block";
  const auto* c = o.if_contains("circumvention");
  const bool circumvention = c && c->is_bool() && c->as_bool();
  const std::string host = report_field(o, "host");
  std::string site = host;
  if (report_field(o, "method") != "CONNECT") {
    // Never the query or path parameters, which the log has with access_log.keep_query: the
    // report is mailed, and they hold searches, addresses and session tokens.
    const std::string path = report_field(o, "path");
    site += rules::path_without_parameters(std::string_view(path).substr(0, path.find('?')));
  }
  // A page the school blocked itself (a report's local block) has no category: it says so,
  // rather than an empty cell (people-side audit, 2026-12-07, L8).
  std::string category = report_field(o, "category");
  if (category.empty() && blocked && rules::local_block_id(report_field(o, "rule"))) category = "reported page";
  add_request(who, *at, blocked, circumvention, category, site, report_field(o, "search"));
  if (blocked && !host.empty()) {
    auto it = sites_.find(host);
    if (it == sites_.end() && sites_.size() < max_report_sites) {
      it = sites_.emplace(host, std::make_pair(0, category)).first;
    }
    if (it != sites_.end()) {
      ++it->second.first;
    } else {
      ++sites_left_out_;
    }
  }
}

void report_builder::add_request(const person& who, std::chrono::sys_seconds at, bool blocked, bool circumvention,
                                 const std::string& category, const std::string& site, const std::string& search) {
  ++requests_;
  const std::string key = who.key();
  if (people_.size() < max_report_people) people_.insert(key);
  if (!blocked && !circumvention) return;
  if (blocked) {
    ++blocked_;
    if (!category.empty()) {
      auto& t = categories_[category];
      ++t.blocks;
      if (t.devices.size() < max_devices_per_tally) t.devices.insert(key);
    }
    if (!search.empty()) {
      if (searches_.size() < max_rows_) {
        searches_.push_back({at, who, search, category});
      } else {
        ++searches_left_out_;
      }
    }
    if (std::find(high_risk_.begin(), high_risk_.end(), category) != high_risk_.end()) {
      ++high_risk_blocks_;
      if (high_risk_people_.size() < max_report_people) high_risk_people_.insert(key);
      // One row for a page and what it loaded: blocks of the same host for the same person, each
      // within 10 minutes of the one before.
      const std::string host = site.substr(0, site.find('/'));
      const std::string k = key + "\n" + category + "\n" + host;
      auto it = open_incident_.find(k);
      if (it != open_incident_.end() && at - incidents_[it->second].last <= report_incident_gap) {
        auto& i = incidents_[it->second];
        ++i.count;
        i.first = std::min(i.first, at);
        i.last = std::max(i.last, at);
        if (i.search.empty()) i.search = search;
      } else {
        // At most per_person_rows rows a person (then one row, per category, of the other
        // sites), and a person with no row yet gets one past max_rows_ (up to twice it): one
        // device with hundreds of sites cannot push another child out of the table.
        constexpr std::size_t per_person_rows = 10;
        auto& rows = incident_rows_[key];
        const std::string other = key + "\n" + category + "\n*";
        if (rows >= per_person_rows) {
          if (auto o = open_incident_.find(other); o != open_incident_.end()) {
            auto& i = incidents_[o->second];
            ++i.count;
            i.first = std::min(i.first, at);
            i.last = std::max(i.last, at);
          } else if (incidents_.size() < max_rows_) {
            incidents_.push_back({at, at, who, category, "(other sites)", {}, 1});
            open_incident_[other] = incidents_.size() - 1;
            ++rows;
          } else {
            ++incidents_left_out_;
          }
        } else if (incidents_.size() < max_rows_ || (rows == 0 && incidents_.size() < 2 * max_rows_)) {
          incidents_.push_back({at, at, who, category, site, search, 1});
          open_incident_[k] = incidents_.size() - 1;
          ++rows;
        } else {
          ++incidents_left_out_;
        }
      }
    }
  }
  if (circumvention) {
    ++attempts_total_;
    if (attempt_people_.size() < max_report_people) attempt_people_.insert(key);
    auto it = attempts_by_person_.find(key);
    if (it == attempts_by_person_.end()) {
      if (attempts_.size() >= max_rows_) {
        ++attempts_left_out_;
        return;
      }
      attempts_.push_back({at, at, who, 0, {}});
      it = attempts_by_person_.emplace(key, attempts_.size() - 1).first;
    }
    auto& a = attempts_[it->second];
    ++a.count;
    a.first = std::min(a.first, at);
    a.last = std::max(a.last, at);
    const std::string host = site.substr(0, site.find('/'));
    if (a.sites.size() < 5 && std::find(a.sites.begin(), a.sites.end(), host) == a.sites.end()) a.sites.push_back(host);
  }
}

std::string report_builder::render(const rules::time_zone& zone, std::string_view school_name,
                                   const std::vector<std::string>& sources,
                                   const std::vector<std::string>& problems) const {
  const auto who_cell = [](const person& p) {
    return p.user.empty() ? "not signed in (" + report_cell(p.role) + ")" : report_cell(p.user) + " (" + report_cell(p.role) + ")";
  };
  // When the clocks change within the period, every time says its zone: "Sun 25 Oct 01:30" is
  // two moments an hour apart in October (outside-in audit, 2026-12-06: a row read
  // "01:55-01:04", and the header said GMT of summer times).
  bool zoned = false;
  for (auto t = period_.from; t < period_.to && !zoned; t += std::chrono::hours(24)) {
    zoned = zone.offset_at(t) != zone.offset_at(period_.to);
  }
  // A time outside the period (a ban's end next June, an incident closed later) in full, with
  // its year and its own zone: the header's zone is the period's, and "Fri 25 Jun 10:00" under
  // "(GMT)" read an hour out (outside-in audit of time, 2026-12-07, F4).
  const auto short_time = [&](std::chrono::sys_seconds t) {
    if (t < period_.from || t > period_.to) return rules::time_in_words(zone, t);
    const std::string s = rules::short_time_in_words(zone, t);
    return zoned ? s + " " + rules::zone_label(zone, t) : s;
  };
  std::string out;
  out += "# Safeguarding report: " + report_cell(school_name.empty() ? std::string_view("the school") : school_name, 200) +
         "\n\n";
  out += "From " + rules::time_in_words(zone, period_.from) + " to " + rules::time_in_words(zone, period_.to) +
         (zoned ? std::string(". Times below are school time, each with its zone: the clocks changed in this period.\n\n")
                : ". Times below are school time (" + rules::zone_label(zone, period_.to) + ").\n\n");
  if (!problems.empty()) {
    out += "**This report is incomplete**: some of what it reads (the access log, the incident records) could not be read.\n\n";
    for (const auto& p : problems) out += "- " + report_cell(p, 300) + "\n";
    out += "\n";
  }
  // A log with nothing in the period, or one that begins inside it, must not read as a quiet
  // week (people-side audit, 2026-12-07, M6: "Web requests: 0" and "None." everywhere).
  if (requests_ == 0) {
    out += "**No web requests were logged in this period.** If the school was open, that is not a quiet week: "
           "check that the filter was running and writing its access log (access_log.path), and that this report "
           "read the right files.\n\n";
  } else if (earliest_ && !before_period_ && *earliest_ > period_.from) {
    out += "**The access log read begins at " + rules::time_in_words(zone, *earliest_) +
           "**, after the start of this period: anything before then is not in this report.\n\n";
  }
  out += "## Summary\n\n";
  out += "- Web requests: " + rules::thousands(requests_) + ", of which blocked: " + rules::thousands(blocked_);
  if (requests_) {
    char pct[32];
    std::snprintf(pct, sizeof pct, " (%.1f%%)", 100.0 * static_cast<double>(blocked_) / static_cast<double>(requests_));
    out += pct;
  }
  out += ", from " + report_plural(people_.size(), "person or device", "people or devices") + ".\n";
  if (high_risk_.empty()) {
    out += "- Blocks in high-risk categories: none are named (the configuration's alerts.categories, or "
           "--categories).\n";
  } else {
    out += "- Blocks in high-risk categories (";
    for (std::size_t k = 0; k < high_risk_.size(); ++k) out += (k ? ", " : "") + category_cell(high_risk_[k]);
    out += "): " + rules::thousands(high_risk_blocks_) + ", by " +
           report_plural(high_risk_people_.size(), "person or device", "people or devices") + ".\n";
  }
  out += "- Attempts to get round the filter: " + rules::thousands(attempts_total_) + ", by " +
         report_plural(attempt_people_.size(), "person or device", "people or devices") + ".\n";
  out += "- Bans put in force: " + rules::thousands(bans_total_) + ".\n";
  out += "- Requests for pages in high-risk categories, sent with the block page's form (a possible disclosure "
         "each): " + rules::thousands(watched_requests_total_) + ".\n";
  out += "- Alerts raised for the DSL (each in the access log; mailed when alerts.command is set, at most 20 at once, then one every 30 s): " + rules::thousands(alerts_[0] + alerts_[1] + alerts_[2] + watched_requests_total_) + " (" +
         report_plural(alerts_[0], "high-risk block", "high-risk blocks") + ", " +
         report_plural(watched_requests_total_, "request for a high-risk page", "requests for high-risk pages") + ", " +
         report_plural(alerts_[1], "attempt to get round the filter", "attempts to get round the filter") + ", " +
         report_plural(alerts_[2], "ban", "bans") + ").\n\n";
  out += "A block is not proof of intent: adverts, links and apps ask for sites by themselves. A row below is a "
         "reason to look, and to talk with the person, not a finding.\n\n";

  out += "## Requests for pages in high-risk categories\n\n";
  if (watched_requests_.empty()) {
    out += "None.\n\n";
  } else {
    out += "What the pupil wrote is in the request, for the DSL and the headteacher to read (`hallpassctl show "
           "NUMBER`); it is never in this report.\n\n| When | Who | Device | Category | Request |\n|---|---|---|---|---|\n";
    for (const auto& w : watched_requests_) {
      out += "| " + short_time(w.at) + " | " + who_cell(w.who) + " | " + report_cell(w.who.device) + " | " +
             category_cell(w.category) + " | " + std::to_string(w.id) + " |\n";
    }
    if (watched_requests_total_ > watched_requests_.size()) {
      out += "\n(" + rules::thousands(watched_requests_total_ - watched_requests_.size()) +
             " more are in the access log.)\n";
    }
    out += "\n";
  }

  out += "## Blocks in high-risk categories\n\n";
  if (incidents_.empty()) {
    out += "None.\n\n";
  } else {
    auto rows = incidents_;
    std::sort(rows.begin(), rows.end(), [](const incident& a, const incident& b) { return a.first < b.first; });
    out += "| When | Who | Device | Category | Site | Times | Searched |\n|---|---|---|---|---|---|---|\n";
    for (const auto& i : rows) {
      std::string when = short_time(i.first);
      const std::string last = short_time(i.last);
      if (last != when) {
        // "Mon 30 Nov 11:05-11:12", or the whole of the last when it is another day (or has a zone).
        const bool same_day = !zoned && last.substr(0, last.size() - 5) == when.substr(0, when.size() - 5);
        when += (same_day ? "-" : " to ") + (same_day ? last.substr(last.size() - 5) : last);
      }
      out += "| " + when + " | " + who_cell(i.who) + " | " + report_cell(i.who.device) + " | " + category_cell(i.category) + " | " +
             report_cell(i.site) + " | " + rules::thousands(i.count) + " | " + report_cell(i.search) + " |\n";
    }
    if (incidents_left_out_) out += "\n(" + rules::thousands(incidents_left_out_) + " more blocks are in the access log.)\n";
    out += "\n";
  }

  out += "## Attempts to get round the filter\n\n";
  if (attempts_.empty()) {
    out += "None.\n\n";
  } else {
    auto rows = attempts_;
    std::sort(rows.begin(), rows.end(), [](const attempts& a, const attempts& b) { return a.first < b.first; });
    out += "| First | Last | Who | Device | Times | Sites |\n|---|---|---|---|---|---|\n";
    for (const auto& a : rows) {
      std::string sites;
      for (const auto& s : a.sites) sites += (sites.empty() ? "" : ", ") + report_cell(s, 60);
      out += "| " + short_time(a.first) + " | " + short_time(a.last) + " | " + who_cell(a.who) + " | " +
             report_cell(a.who.device) + " | " + rules::thousands(a.count) + " | " + sites + " |\n";
    }
    if (attempts_left_out_) out += "\n(" + rules::thousands(attempts_left_out_) + " more attempts are in the access log.)\n";
    out += "\n";
  }

  out += "## Bans put in force\n\n";
  if (bans_.empty()) {
    out += "None.\n\n";
  } else {
    out += "| When | Ban | Whom | Until | How |\n|---|---|---|---|---|\n";
    for (const auto& b : bans_) {
      const auto until = parse_log_time(b.until);
      const std::string how = b.how == "automatic" ? "by the filter, after repeated attempts"
                              : b.how == "confirmed" ? "a technician's proposal, confirmed"
                                                     : "by the DSL or the headteacher";
      out += "| " + short_time(b.at) + " | " + std::to_string(b.id) + " | " + report_cell(b.kind) + " " +
             report_cell(b.subject) + " | " + (until ? short_time(*until) : report_cell(b.until)) + " | " + how + " |\n";
    }
    if (bans_total_ > bans_.size()) {
      out += "\n(" + rules::thousands(bans_total_ - bans_.size()) + " more are in the access log.)\n";
    }
    out += "\n`hallpassctl bans` shows which are still in force.\n\n";
  }

  if (records_ || !records_problem_.empty()) {
    out += "## Incident records\n\n";
    if (!records_problem_.empty()) {
      out += "The incident records could not be read (" + report_cell(records_problem_, 300) +
             "): `hallpassctl incidents --all` shows them.\n\n";
    } else if (records_->empty()) {
      out += "None was open in this period.\n\n";
    } else {
      out += "Those open at any time in this period. What happened, what was done and how it ended stay in the "
             "store, for the DSL and the headteacher: `hallpassctl incident ID` shows one whole.\n\n"
             "| No. | About | Category | Happened | Actions | Last action | Status |\n|---|---|---|---|---|---|---|\n";
      for (const auto& r : *records_) {
        const auto when = [&](const std::optional<std::chrono::sys_seconds>& t) {
          return t ? short_time(*t) : std::string("-");
        };
        out += "| " + std::to_string(r.id) + " | " + (r.device ? "device " : "user ") + report_cell(r.subject) + " | " +
               (r.category.empty() ? std::string("-") : category_cell(r.category)) + " | " + short_time(r.happened) + " | " +
               std::to_string(r.actions) + " | " + (r.actions ? when(r.last_action) : std::string("none yet")) + " | " +
               (r.closed ? "closed " + short_time(*r.closed) : std::string("**open**")) + " |\n";
      }
      if (records_omitted_) {
        out += "\n(" + rules::thousands(records_omitted_) + " older ones are not shown: `hallpassctl incidents --all` "
               "lists them.)\n";
      }
      out += "\n";
    }
  }

  out += "## Blocked searches\n\n";
  if (searches_.empty()) {
    out += "None recorded (search terms are kept only with access_log.search_terms).\n\n";
  } else {
    out += "| When | Who | Device | Searched | Category |\n|---|---|---|---|---|\n";
    for (const auto& s : searches_) {
      out += "| " + short_time(s.at) + " | " + who_cell(s.who) + " | " + report_cell(s.who.device) + " | " +
             report_cell(s.search) + " | " + category_cell(s.category) + " |\n";
    }
    if (searches_left_out_) out += "\n(" + rules::thousands(searches_left_out_) + " more are in the access log.)\n";
    out += "\n";
  }

  out += "## Blocks by category\n\n";
  if (categories_.empty()) {
    out += "None.\n\n";
  } else {
    std::vector<std::pair<std::string, const tally*>> rows;
    for (const auto& [name, t] : categories_) rows.emplace_back(name, &t);
    std::stable_sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second->blocks > b.second->blocks; });
    out += "| Category | Blocks | People or devices |\n|---|---|---|\n";
    for (const auto& [name, t] : rows) {
      out += "| " + category_cell(name) + " | " + rules::thousands(t->blocks) + " | " + rules::thousands(t->devices.size()) + " |\n";
    }
    out += "\n";
  }

  out += "## Most blocked sites\n\n";
  if (sites_.empty()) {
    out += "None.\n\n";
  } else {
    std::vector<std::pair<std::string, std::pair<std::uint64_t, std::string>>> rows(sites_.begin(), sites_.end());
    std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) {
      return a.second.first != b.second.first ? a.second.first > b.second.first : a.first < b.first;
    });
    if (rows.size() > 10) rows.resize(10);
    out += "| Site | Category | Blocks |\n|---|---|---|\n";
    for (const auto& [host, v] : rows) out += "| " + report_cell(host) + " | " + category_cell(v.second) + " | " + rules::thousands(v.first) + " |\n";
    out += "\n";
  }

  out += "## About this report\n\n";
  // Short lines only: a mail line may not pass 998 characters (RFC 5322), and a month of
  // rotations is thirty file names.
  out += "It holds personal data about children: keep it, and share it, as the school's data protection policy "
         "says.\nThe access log has every request; `hallpass explain` says why a site is blocked.\n";
  if (unreadable_) {
    out += report_plural(unreadable_, "line", "lines") +
           (unreadable_ == 1 ? " could not be read and was" : " could not be read and were") + " skipped.\n";
  }
  out += "Read from the access log" + std::string(sources.empty() ? "." : ":") + "\n";
  for (const auto& s : sources) out += "- " + report_cell(s, 300) + "\n";
  return out;
}

}  // namespace hallpass
