#include "rules/policy_loader.hpp"

#include "rules/yaml_load.hpp"
#include "rules/yaml_reader.hpp"

#include "rules/file_io.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace hallpass::rules {
namespace {

namespace fs = std::filesystem;

constexpr std::size_t max_warnings_per_file = 10;

// Reads a whole file (rules/file_io.hpp): a regular file only (a FIFO would hang the load, a
// device never end); with `follow_links` false a symbolic link is refused too: a feed's files
// live in the daemon user's directory and are read as root at the start (a link there must not
// make root read another file into the warnings).
std::optional<std::string> read_file(const fs::path& path, std::string* error, bool follow_links = true) {
  return read_regular_file(path.string(), error, follow_links);
}

bool is_plain_domain(std::string_view s) {
  // Fast path for list files: already lower-case ASCII, well formed, not ending in a digit
  // (which might make it an IPv4 address under WHATWG rules).
  if (s.empty() || s.size() > 253 || s.front() == '.' || s.back() == '.' || s.front() == '-') return false;
  if (s.back() >= '0' && s.back() <= '9') return false;
  std::size_t label = 0;
  for (char c : s) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
      continue;
    }
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_')) return false;
    if (++label > 63) return false;
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// "*.example.com" and ".example.com" mean the same as "example.com" here.
std::string_view strip_wildcard(std::string_view s) {
  if (s.starts_with("*.")) s.remove_prefix(2);
  else if (s.starts_with(".")) s.remove_prefix(1);
  return s;
}

// A line of a `lines` feed is a URL prefix when a '/' follows its host (after any scheme).
bool is_url_line(std::string_view line) {
  if (const auto scheme = line.find("://"); scheme != std::string_view::npos) line.remove_prefix(scheme + 3);
  return line.find('/') != std::string_view::npos;
}

// Returns the normalized domain or nullopt with err.
std::optional<std::string> list_domain(std::string_view raw, std::string* err) {
  raw = strip_wildcard(trim(raw));
  if (is_plain_domain(raw)) return std::string(raw);
  auto h = normalize_host(raw, err);
  if (!h) return std::nullopt;
  return std::move(h->text);
}

// Parses "host/path" (UT1 urls format; a scheme is tolerated) into host and path prefix.
std::optional<std::pair<std::string, std::string>> list_url(std::string_view raw, std::string* err) {
  raw = trim(raw);
  if (auto s = raw.find("://"); s != std::string_view::npos) raw.remove_prefix(s + 3);
  raw = raw.substr(0, raw.find('#'));  // a fragment never reaches a server
  if (raw.ends_with("/?")) raw.remove_suffix(1);  // an empty query: the site itself
  const auto slash = raw.find('/');
  std::string_view host = raw.substr(0, slash);
  // In the canonical form requests are compared in ("/%7Euser" is "/~user", "/a/./b" is "/a/b").
  std::string path = slash == std::string_view::npos ? "/" : canonical_entry_path(raw.substr(slash));
  if (auto colon = host.rfind(':'); colon != std::string_view::npos && host.find(']') == std::string_view::npos &&
                                    host.find(':') == colon) {
    host = host.substr(0, colon);  // a port in a list entry does not change the match
  }
  auto d = list_domain(host, err);
  if (!d) return std::nullopt;
  return std::make_pair(std::move(*d), std::move(path));
}

// The Unix time in a feed's feed.info (`fetched_at: SECONDS`), or nothing when it has none.
std::optional<std::int64_t> read_fetched_at(const fs::path& info) {
  std::string err;
  const auto text = read_file(info, &err);
  if (!text) return std::nullopt;
  std::string_view rest = *text;
  while (!rest.empty()) {
    const auto nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
    if (!line.starts_with("fetched_at:")) continue;
    line = trim(line.substr(11));
    std::int64_t v = 0;
    const auto r = std::from_chars(line.data(), line.data() + line.size(), v);
    if (r.ec == std::errc() && r.ptr == line.data() + line.size()) return v;
  }
  return std::nullopt;
}

class loader : private yaml_reader {
 public:
  loader(const load_options& options, std::string file) : yaml_reader(std::move(file)), opt_(options) {}

  load_result run(const parsed_policy_yaml& parsed) {
    load_result result;
    if (!parsed.errors.empty()) {
      result.errors = parsed.errors;
      return result;
    }
    const YAML::Node& root = parsed.root;
    const bool blank = parsed.blank;
    p_ = std::make_unique<policy>();
    p_->source_file = file_;
    if (!opt_.feeds_update_command.empty()) p_->feeds_update_command = opt_.feeds_update_command;
    if (!root || root.IsNull()) {
      // yaml-cpp reads some broken text (",a: 1") as an empty document: say so, not "empty".
      error_at_file(blank ? "the policy file is empty"
                          : "the policy file holds no settings: YAML read it as empty (look for a stray "
                            "character at its start, such as a comma)");
    } else if (check_map(root, "the policy file",
                         {"school", "categories", "roles", "everyone", "fallback_role", "ungrouped_users", "ut1_dir",
                          "exceptions", "inspection", "feeds", "bans"},
                         opt_.other_sections)) {
      load_document(root);
    }
    result.errors = std::move(errors_);
    result.warnings = std::move(warnings_);
    if (result.errors.empty()) result.compiled = std::move(p_);
    return result;
  }

 private:
  std::optional<action> parse_action(const YAML::Node& n, const std::string& what) {
    auto s = scalar(n, what);
    if (!s) return std::nullopt;
    if (*s == "allow") return action::allow;
    if (*s == "block") return action::block;
    error(n, what + " must be 'allow' or 'block', not " + quote(*s));
    return std::nullopt;
  }

  fs::path resolve(const std::string& path) const { return resolve_path(path); }

  // ---- the document -------------------------------------------------------------------------
  void load_document(const YAML::Node& root) {
    if (root["ut1_dir"]) {
      if (auto s = scalar(root["ut1_dir"], "ut1_dir")) ut1_dir_ = resolve(*s);
    }
    if (root["school"]) {
      load_school(root["school"]);
    } else {
      error_at_file("the policy has no 'school' section (name, timezone, timetable)");
      p_->zone = time_zone::utc();
    }
    if (root["feeds"]) load_feeds(root["feeds"]);
    find_allowing_rules(root);
    if (root["categories"]) load_categories(root["categories"]);
    report_missing_feeds();
    if (root["roles"]) {
      load_roles(root["roles"]);
    } else {
      error_at_file("the policy has no 'roles' section: at least one role is needed");
    }
    if (root["everyone"]) {
      const auto e = root["everyone"];
      if (check_map(e, "everyone", {"rules"}) && e["rules"]) {
        p_->everyone_rules = load_rules(e["rules"], "everyone");
      }
    }
    if (const auto e = root["exceptions"]; e && check_map(e, "exceptions", {"max_duration"}) && e["max_duration"]) {
      if (auto d = duration(e["max_duration"], "exceptions.max_duration")) {
        if (*d < std::chrono::minutes(1) || *d > std::chrono::days(366)) {
          error(e["max_duration"], "exceptions.max_duration must be from 1m to 366d");
        } else {
          p_->max_exception_duration = std::chrono::floor<std::chrono::seconds>(*d);
        }
      }
    }
    if (root["inspection"]) load_inspection(root["inspection"]);
    if (root["bans"]) load_bans(root["bans"]);
    choose_fallback(root["fallback_role"]);
    if (const YAML::Node u = root["ungrouped_users"]) {
      if (auto s = scalar(u, "ungrouped_users")) {
        if (*s == "fallback" || *s == "address") {
          p_->ungrouped_users_fallback = *s == "fallback";
        } else {
          error(u, "ungrouped_users must be fallback (a signed-in user whose groups no role lists gets the fallback "
                   "role) or address (the client address's role), not " + quote(*s));
        }
      }
    }
    finish_patterns();
    p_->domains.finish();
    for (auto& [host, prefixes] : p_->url_prefixes) prefixes.finish();
    p_->inspection.never.finish();
    p_->inspection.inspect_domains.finish();
  }

  // ---- bans (000 7.2; 002; rules/ban.hpp) ------------------------------------------------------
  void load_bans(const YAML::Node& n) {
    if (!check_map(n, "bans", {"policy", "message", "threshold"})) return;
    auto& b = p_->bans;
    if (const auto sp = n["policy"]; sp && check_map(sp, "bans.policy", {"domains", "categories"})) {
      if (sp["domains"]) {
        for (const auto& d : items(sp["domains"], "bans.policy domains")) {
          auto s = scalar(d, "bans.policy domain");
          if (!s) continue;
          std::string err;
          auto dom = list_domain(*s, &err);
          if (!dom) {
            error(d, "bans.policy domain " + quote(*s) + ": " + err);
            continue;
          }
          if (is_single_label(*dom)) {  // written in the policy itself: as inline_set (below)
            warn_at(d, suffix_refused(*dom, "bans.policy lets a banned user reach it", "left out"));
            continue;
          }
          b.domains.push_back(std::move(*dom));
        }
      }
      if (sp["categories"]) {
        for (const auto& c : items(sp["categories"], "bans.policy categories")) {
          const category* cat = named_category(c, "bans.policy");
          if (!cat) continue;
          if (cat->locked || cat->circumvention) {
            error(c, "bans.policy cannot list category " + quote(cat->name) + ": it is " +
                         (cat->locked ? "locked (illegal content)" : "a way round the filter") +
                         ", never a site for supervised use");
            continue;
          }
          b.categories.push_back(cat->set);
        }
      }
    }
    if (n["message"]) {
      if (auto m = scalar(n["message"], "bans.message")) {
        if (m->find_first_not_of(" \t\r\n") == std::string::npos) {
          error(n["message"], "bans.message must not be empty: the ban page shows it");
        } else {
          b.message = *m;
        }
      }
    }
    if (const auto t = n["threshold"]; t && check_map(t, "bans.threshold", {"attempts", "within", "duration"})) {
      for (const char* key : {"attempts", "within", "duration"}) {
        if (!t[key]) error(t, std::string("bans.threshold.") + key + " is missing (e.g. attempts: 3, within: 10m, duration: 1d)");
      }
      if (t["attempts"]) {
        if (auto a = integer(t["attempts"], "bans.threshold.attempts", 1, 100)) b.attempts = static_cast<std::size_t>(*a);
      }
      auto length = [&](const char* key, std::chrono::seconds min, std::chrono::seconds max, const char* range,
                        std::chrono::seconds& out) {
        if (!t[key]) return;
        auto d = duration(t[key], std::string("bans.threshold.") + key);
        if (!d) return;
        if (*d < min || *d > max) {
          error(t[key], std::string("bans.threshold.") + key + " must be from " + range);
          return;
        }
        out = std::chrono::floor<std::chrono::seconds>(*d);
      };
      length("within", std::chrono::seconds(1), std::chrono::hours(24), "1s to 1d", b.within);
      length("duration", std::chrono::minutes(1), std::chrono::days(366), "1m to 366d", b.duration);
      if (b.within.count() == 0 || b.duration.count() == 0) b.attempts = 0;  // after an error: off
    }
  }

  // ---- school and timetable -----------------------------------------------------------------
  void load_school(const YAML::Node& s) {
    if (!check_map(s, "school", {"name", "timezone", "timetable", "terms", "holidays"})) return;
    if (s["name"]) {
      if (auto v = text(s["name"], "school.name")) p_->school_name = *v;
    } else {
      error(s, "school.name is missing: the block page shows it");
    }
    std::string zone = "Europe/London";
    if (s["timezone"]) {
      if (auto v = scalar(s["timezone"], "school.timezone")) zone = *v;
    }
    load_zone(zone, s["timezone"] ? s["timezone"] : s);
    if (s["timetable"]) load_timetable(s["timetable"]);
    if (s["terms"]) {
      p_->timetable.terms = load_dates(s["terms"], "school.terms");
      warn_about_terms(s["terms"]);
    }
    if (s["holidays"]) p_->timetable.holidays = load_dates(s["holidays"], "school.holidays");
  }

  static std::string iso_day(std::chrono::sys_days d) {
    const std::chrono::year_month_day ymd{d};
    char buf[16];
    std::snprintf(buf, sizeof buf, "%04d-%02u-%02u", static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                  static_cast<unsigned>(ymd.day()));
    return buf;
  }

  // Terms a school forgot to renew: once every listed term has ended, every day is outside
  // term time, so no rule scoped to lessons (or any period) applies: blocks lapse without a
  // word. And two terms that overlap are a typing slip (a year wrong).
  void warn_about_terms(const YAML::Node& where) {
    using namespace std::chrono;
    auto terms = p_->timetable.terms;
    if (terms.empty()) return;
    std::sort(terms.begin(), terms.end(), [](const date_range& a, const date_range& b) { return a.first < b.first; });
    const auto mark = where.Mark();
    for (std::size_t i = 1; i < terms.size(); ++i) {
      if (terms[i].first <= terms[i - 1].last) {
        warnings_.push_back({file_, mark.line + 1, mark.column + 1,
                             "school.terms: '" + terms[i - 1].name + "' and '" + terms[i].name +
                                 "' overlap (a year mistyped?)"});
      }
    }
    const auto now = opt_.now ? *opt_.now : floor<seconds>(system_clock::now());
    const sys_days today{floor<days>(p_->zone.to_local(now)).time_since_epoch()};
    const auto last = std::max_element(terms.begin(), terms.end(),
                                       [](const date_range& a, const date_range& b) { return a.last < b.last; });
    if (last->last < today) {
      warnings_.push_back({file_, mark.line + 1, mark.column + 1,
                           "school.terms: the last term listed ('" + last->name + "') ended on " +
                               iso_day(last->last) +
                               ": every day since is outside term time, so no rule for lessons or any other "
                               "period applies; add the coming terms"});
    }
  }

  void load_zone(const std::string& name, const YAML::Node& where) {
    const bool safe = !name.empty() && name.find("..") == std::string::npos && name.front() != '/' &&
                      std::all_of(name.begin(), name.end(), [](char c) {
                        return std::isalnum(static_cast<unsigned char>(c)) || c == '/' || c == '_' ||
                               c == '-' || c == '+';
                      });
    if (!safe) {
      error(where, "school.timezone " + quote(name) + " is not a time zone name like 'Europe/London'");
      return;
    }
    // Zones a school's clock must not follow: "right/..." counts leap seconds, which the
    // system clock does not (and Debian's copies stop at their last listed change, so they
    // keep summer time for ever); "posixrules" and "Factory" are tzdata's internals.
    if (name.starts_with("right/") || name == "posixrules" || name == "Factory") {
      error(where, "school.timezone " + quote(name) + " is not a zone for a school's clock; use a place name like "
                   "'Europe/London'" + (name.starts_with("right/") ? " ('" + name.substr(6) + "')" : std::string()));
      return;
    }
    if (name == "UTC") {
      p_->zone = time_zone::utc();
      return;
    }
    std::string err;
    auto bytes = read_file(fs::path(opt_.tzdir) / name, &err);
    if (!bytes) {
      error(where, "school.timezone " + quote(name) + " is not a known time zone (" + (fs::path(opt_.tzdir) / name).string() + " " + err + ")");
      return;
    }
    auto z = time_zone::from_tzif(name, *bytes, &err);
    if (!z) {
      error(where, err);
      return;
    }
    p_->zone = std::move(*z);
  }

  std::optional<int> parse_minute(const YAML::Node& n, const std::string& what) {
    auto s = scalar(n, what);
    if (!s) return std::nullopt;
    int h = -1, m = -1;
    if (s->size() == 5 && (*s)[2] == ':' && std::isdigit((*s)[0]) && std::isdigit((*s)[1]) &&
        std::isdigit((*s)[3]) && std::isdigit((*s)[4])) {
      h = ((*s)[0] - '0') * 10 + ((*s)[1] - '0');
      m = ((*s)[3] - '0') * 10 + ((*s)[4] - '0');
    }
    if (h == 24 && m == 0) return 24 * 60;
    if (h < 0 || h > 23 || m < 0 || m > 59) {
      error(n, what + " must be a time like \"08:50\" (24-hour HH:MM), not " + quote(*s));
      return std::nullopt;
    }
    return h * 60 + m;
  }

  std::optional<std::chrono::sys_days> parse_date(const YAML::Node& n, const std::string& what) {
    auto s = scalar(n, what);
    if (!s) return std::nullopt;
    int y = 0;
    unsigned mo = 0, d = 0;
    bool shape = s->size() == 10 && (*s)[4] == '-' && (*s)[7] == '-';
    if (shape) {
      auto a = std::from_chars(s->data(), s->data() + 4, y);
      auto b = std::from_chars(s->data() + 5, s->data() + 7, mo);
      auto c = std::from_chars(s->data() + 8, s->data() + 10, d);
      shape = a.ec == std::errc() && b.ec == std::errc() && c.ec == std::errc() &&
              a.ptr == s->data() + 4 && b.ptr == s->data() + 7 && c.ptr == s->data() + 10;
    }
    const std::chrono::year_month_day ymd{std::chrono::year{y}, std::chrono::month{mo}, std::chrono::day{d}};
    if (!shape || !ymd.ok()) {
      error(n, what + " must be a date like 2026-09-03 (YYYY-MM-DD), not " + quote(*s));
      return std::nullopt;
    }
    return std::chrono::sys_days{ymd};
  }

  std::vector<date_range> load_dates(const YAML::Node& list, const std::string& what) {
    std::vector<date_range> out;
    if (!list.IsSequence()) {
      error(list, what + " must be a list of {name, from, to} (or {name, date})");
      return out;
    }
    int i = 0;
    for (const auto& n : list) {
      const std::string item = what + " entry " + std::to_string(++i);
      if (!check_map(n, item, {"name", "from", "to", "date"})) continue;
      date_range r;
      if (n["name"]) {
        if (auto s = text(n["name"], item + " name")) r.name = *s;
      }
      if (n["date"]) {
        if (n["from"] || n["to"]) error(n, item + " has both 'date' and 'from'/'to'; use one or the other");
        auto d = parse_date(n["date"], item + " date");
        if (!d) continue;
        r.first = r.last = *d;
      } else {
        if (!n["from"] || !n["to"]) {
          error(n, item + " needs 'from' and 'to' dates (or a single 'date')");
          continue;
        }
        auto f = parse_date(n["from"], item + " from");
        auto t = parse_date(n["to"], item + " to");
        if (!f || !t) continue;
        if (*t < *f) {
          error(n["to"], item + " ends before it starts");
          continue;
        }
        r.first = *f;
        r.last = *t;
      }
      if (r.name.empty()) r.name = what == "school.holidays" ? "holiday" : "term";
      out.push_back(std::move(r));
    }
    return out;
  }

  void load_timetable(const YAML::Node& t) {
    static const std::vector<std::string> day_names = {"sunday", "monday", "tuesday", "wednesday",
                                                       "thursday", "friday", "saturday"};
    if (!check_map(t, "school.timetable",
                   {"weekdays", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}))
      return;
    // Rebound with reset(), never `=`: a YAML::Node assigned to another node writes through to
    // the node it refers to, so `source[5] = t["friday"]` once all five days shared the
    // weekdays node gave Monday to Thursday Friday's periods too (docs audit, 2026-12-05).
    std::array<YAML::Node, 7> source;
    std::array<bool, 7> from_weekdays{};
    if (t["weekdays"]) {
      for (int d = 1; d <= 5; ++d) source[d].reset(t["weekdays"]), from_weekdays[d] = true;
    }
    for (int d = 0; d < 7; ++d) {
      if (t[day_names[d]]) source[d].reset(t[day_names[d]]), from_weekdays[d] = false;
    }
    const std::size_t errors_before = errors_.size();
    for (int d = 0; d < 7; ++d) {
      if (!source[d]) continue;
      // Named as written: the weekdays list is read for each of its days, and one mistake in it
      // is one error, not five (duplicates are dropped below).
      const std::string what = "school.timetable." + (from_weekdays[d] ? std::string("weekdays") : day_names[d]);
      if (source[d].IsNull()) continue;  // "saturday: ~" means no school
      if (!source[d].IsSequence()) {
        error(source[d], what + " must be a list of periods ({name, kind, from, to})");
        continue;
      }
      auto& day = p_->timetable.days[d];
      int i = 0;
      for (const auto& n : source[d]) {
        const std::string item = what + " period " + std::to_string(++i);
        if (!check_map(n, item, {"name", "kind", "from", "to"})) continue;
        period pd;
        bool ok = true;
        if (auto s = n["name"] ? text(n["name"], item + " name") : std::nullopt) {
          pd.name = *s;
        } else {
          if (!n["name"]) error(n, item + " has no name");
          ok = false;
        }
        if (n["kind"]) {
          auto k = scalar(n["kind"], item + " kind");
          if (!k) {
            ok = false;
          } else if (*k == "lesson") {
            pd.kind = period_kind::lesson;
          } else if (*k == "break") {
            pd.kind = period_kind::break_time;
          } else if (*k == "lunch") {
            pd.kind = period_kind::lunch;
          } else if (*k == "other") {
            pd.kind = period_kind::other;
          } else {
            error(n["kind"], item + " kind must be lesson, break, lunch or other, not " + quote(*k) +
                                 did_you_mean(*k, {"lesson", "break", "lunch", "other"}));
            ok = false;
          }
        } else {
          error(n, item + " has no kind (lesson, break, lunch or other)");
          ok = false;
        }
        if (!n["from"] || !n["to"]) {
          error(n, item + " needs 'from' and 'to' times");
          continue;
        }
        const int from = parse_minute(n["from"], item + " from").value_or(-1);
        const int to = parse_minute(n["to"], item + " to").value_or(-1);
        if (from < 0 || to < 0 || !ok) continue;
        if (to <= from) {
          error(n["to"], item + " (" + pd.name + ") ends at or before it starts");
          continue;
        }
        pd.start_minute = from;
        pd.end_minute = to;
        auto& names = p_->timetable.period_names;
        auto it = std::find(names.begin(), names.end(), pd.name);
        if (it == names.end()) {
          if (names.size() >= timetable::max_periods) {
            error(n, "the timetable has more than 63 differently named periods");
            continue;
          }
          names.push_back(pd.name);
          it = names.end() - 1;
        }
        pd.bit = static_cast<int>(it - names.begin());
        period_marks_[d].push_back(n.Mark());
        day.push_back(std::move(pd));
      }
      // Sort by start and reject overlaps.
      std::vector<std::size_t> order(day.size());
      for (std::size_t k = 0; k < order.size(); ++k) order[k] = k;
      std::sort(order.begin(), order.end(), [&](auto a, auto b) { return day[a].start_minute < day[b].start_minute; });
      std::vector<period> sorted;
      for (auto k : order) sorted.push_back(day[k]);
      for (std::size_t k = 1; k < sorted.size(); ++k) {
        if (sorted[k].start_minute < sorted[k - 1].end_minute) {
          error_at(period_marks_[d][order[k]], what + ": period " + quote(sorted[k].name) +
                                                   " overlaps " + quote(sorted[k - 1].name));
        }
      }
      day = std::move(sorted);
    }
    for (std::size_t k = errors_before; k < errors_.size();) {
      const auto& e = errors_[k];
      const bool seen = std::any_of(errors_.begin() + static_cast<std::ptrdiff_t>(errors_before),
                                    errors_.begin() + static_cast<std::ptrdiff_t>(k), [&](const diagnostic& x) {
                                      return x.line == e.line && x.column == e.column && x.message == e.message;
                                    });
      if (seen) {
        errors_.erase(errors_.begin() + static_cast<std::ptrdiff_t>(k));
      } else {
        ++k;
      }
    }
    timetable_failed_ = errors_.size() > errors_before;
  }

  // ---- categories ---------------------------------------------------------------------------
  std::optional<set_id> new_set(std::string name, std::size_t category_index, bool locked, const YAML::Node& where) {
    if (p_->set_names.size() >= 65535) {
      error(where, "the policy has more than 65,535 categories and rule lists");
      return std::nullopt;
    }
    const auto id = static_cast<set_id>(p_->set_names.size());
    p_->set_names.push_back(std::move(name));
    p_->set_is_locked.push_back(locked);
    p_->set_has_patterns.push_back(false);
    p_->set_category.push_back(category_index);
    return id;
  }

  bool add_domain(std::string_view d, set_id set) {
    if (!p_->domains.add(d, set)) {
      if (!membership_overflow_reported_) {
        error_at_file("too many different combinations of categories share domains (limit 65,535)");
        membership_overflow_reported_ = true;
      }
      return false;
    }
    return true;
  }

  void add_url(std::string host, std::string path, set_id set) {
    // A URL of a whole site (`https://site.example/`): every path of the host and its
    // subdomains, which is what a domain entry matches, and a domain entry is decided on
    // relayed HTTPS too, where no path is seen. As a URL prefix it blocked http:// only
    // (outside-in audit I, 2026-12-05).
    if (path == "/") {
      add_domain(host, set);
      return;
    }
    // Marked in the domain table too, so the engine reads url_prefixes only for such hosts.
    add_domain(host, domain_table::url_prefix_marker);
    p_->url_prefixes[std::move(host)].add(url_prefix{std::move(path), set});
  }

  // Reads a list file of domains (or URL prefixes). Unreadable lines are warnings, not errors:
  // a feed with one odd line must not take the whole policy down.
  // *read: whether the file was read (so that 0 entries means an empty list, not an error).
  // `into`: a table other than the policy's domain table (the never-inspect list), domains only.
  // What a list file holds: domains, URL prefixes, or either per line (a `lines` feed: an
  // entry with a '/' after its host is a URL prefix).
  using list_kind = list_file_kind;

  // Reads a list file into `set`; returns the entries added (of them, URL prefixes in
  // last_url_entries_).
  std::size_t load_list_file(const fs::path& path, list_kind kind, set_id set, const YAML::Node& where,
                             bool required = true, bool* read = nullptr, domain_table* into = nullptr,
                             bool follow_links = true) {
    last_url_entries_ = 0;
    std::string err;
    auto text = read_file(path, &err, follow_links);
    if (!text) {
      if (required) error(where, path.string() + " " + err);
      return 0;
    }
    if (read) *read = true;
    std::size_t added = 0, bad = 0, line_no = 0;
    std::string_view rest = *text;
    if (kind != list_kind::urls) {
      // Room for every line at once, so a large list does not make the table rehash as it grows.
      const auto lines = static_cast<std::size_t>(std::count(rest.begin(), rest.end(), '\n')) + 1;
      (into ? *into : p_->domains).reserve(lines, rest.size());  // a record is a length byte and the name
    }
    const std::string shown = path.string();
    std::size_t suffixes = 0;  // entries left out of an allow: top-level domains, public suffixes
    // The set an entry on `host` goes to: a public suffix in a list an allow rule uses goes to
    // the category's block-only set (checked_set), with a warning at its line.
    auto set_for = [&](std::string_view host) {
      if (checking_ == nullptr || !opens_a_suffix(host)) return std::optional<set_id>(set);
      if (++suffixes <= max_warnings_per_file) {
        warnings_.push_back({shown, static_cast<int>(line_no), 1, suffix_refused(host)});
      }
      return block_only_set();
    };
    while (!rest.empty()) {
      ++line_no;
      auto nl = rest.find('\n');
      const auto [line_kind, line] = classify_list_line(rest.substr(0, nl), kind);
      rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
      if (line_kind == list_line_kind::blank) continue;
      std::string why;
      if (line_kind == list_line_kind::url) {
        auto u = list_url(line, &why);
        if (u) {
          if (const auto to = set_for(u->first)) add_url(std::move(u->first), std::move(u->second), *to);
          ++added;
          ++last_url_entries_;
          continue;
        }
      } else if (is_plain_domain(line)) {
        const auto to = set_for(line);
        if (to && (into ? !into->add(line, *to) : !add_domain(line, *to))) return added;
        ++added;
        continue;
      } else if (auto d = list_domain(line, &why)) {
        const auto to = set_for(*d);
        if (to && (into ? !into->add(*d, *to) : !add_domain(*d, *to))) return added;
        ++added;
        continue;
      }
      if (++bad <= max_warnings_per_file) {
        warnings_.push_back({shown, static_cast<int>(line_no), 1, "skipped: " + why});
      }
    }
    if (bad > max_warnings_per_file) {
      warnings_.push_back({shown, 0, 0, "skipped " + std::to_string(bad) + " unreadable lines in all (" +
                                            std::to_string(bad - max_warnings_per_file) + " not shown)"});
    }
    if (suffixes > max_warnings_per_file) {
      warnings_.push_back({shown, 0, 0, "left " + std::to_string(suffixes) +
                                            " top-level domains or public suffixes in all out of an allow (" +
                                            checking_->allowed_by + "; " +
                                            std::to_string(suffixes - max_warnings_per_file) + " not shown)"});
    }
    return added;
  }

  // ---- public suffixes in lists that allow -------------------------------------------------
  // `com` in a list an allow rule uses opened every .com site (outside-in audit, 2026-12-05,
  // second session). Such an entry is left out of what the rule allows, with a warning at its
  // line; it still blocks where a block rule (or an inspection entry) uses the same category,
  // through the category's block-only set: blocking a whole top-level domain is a school's
  // choice. Which categories allow is read from the rules before the categories are loaded
  // (find_allowing_rules), so that only their lists pay for the check.

  // Whether `host` (normalised) is a top-level domain or a public suffix: by the caller's list
  // (load_options::is_public_suffix), else a name of one label. Never an IP address.
  bool opens_a_suffix(std::string_view host) const {
    const bool suffix = opt_.is_public_suffix ? opt_.is_public_suffix(host) : host.find('.') == std::string_view::npos;
    return suffix && !ip_address::parse(host);
  }

  std::string suffix_refused(std::string_view host) const {
    return suffix_refused(host, checking_->allowed_by,
                          checking_->category.empty() ? "left out"
                                                      : "left out of what it allows (a rule that blocks the category "
                                                        "still blocks with it)");
  }
  static std::string suffix_refused(std::string_view host, const std::string& allowed_by, const std::string& done) {
    return quote(host) + " is a top-level domain or a public suffix (a name under which anyone registers sites, " +
           "like co.uk): " + allowed_by + ", and it would open every site under it: " + done;
  }

  void warn_at(const YAML::Node& n, std::string message) {
    const auto mark = n.Mark();
    warnings_.push_back({file_, mark.line + 1, mark.column + 1, std::move(message)});
  }

  // The set a public-suffix entry of the list being read goes to: the category's block-only
  // set (made at its first such entry: the category's name, so that a block names the
  // category), or nullopt for an allow rule's own list, which no block rule uses.
  std::optional<set_id> block_only_set() {
    if (checking_->category.empty()) return std::nullopt;
    if (!checking_->block_only) {
      checking_->block_only = new_set(checking_->category, p_->categories.size(), false, checking_->where);
    }
    return checking_->block_only;
  }

  // Which categories an allow rule uses (and the supervised-use list of bans.policy, which
  // lets a banned user reach them), by the first such rule. Lenient: mistakes in the rules
  // are reported when the rules are loaded.
  void find_allowing_rules(const YAML::Node& root) {
    auto note = [&](const YAML::Node& names, const std::string& by) {
      if (!names) return;
      std::vector<YAML::Node> list;
      if (names.IsScalar()) list.push_back(names);
      if (names.IsSequence()) {
        for (const auto& c : names) list.push_back(c);
      }
      for (const auto& c : list) {
        if (c.IsScalar()) allowing_.emplace(c.Scalar(), by + " category " + quote(c.Scalar()));
      }
    };
    auto scan = [&](const YAML::Node& rules, const std::string& owner) {
      if (!rules || !rules.IsSequence()) return;
      int index = 0;
      for (const auto& r : rules) {
        ++index;
        if (!r.IsMap()) continue;
        const YAML::Node a = r["action"];
        if (!a || !a.IsScalar() || a.Scalar() != "allow") continue;
        std::string id = owner + " rule " + std::to_string(index);
        if (const YAML::Node name = r["name"]; name && name.IsScalar()) id += " (" + name.Scalar() + ")";
        note(r["categories"], id + " allows");
      }
    };
    if (const YAML::Node e = root["everyone"]; e && e.IsMap()) scan(e["rules"], "everyone");
    if (const YAML::Node roles = root["roles"]; roles && roles.IsMap()) {
      for (const auto& kv : roles) {
        if (kv.second.IsMap()) scan(kv.second["rules"], kv.first.Scalar());
      }
    }
    if (const YAML::Node b = root["bans"]; b && b.IsMap()) {
      if (const YAML::Node p = b["policy"]; p && p.IsMap()) {
        note(p["categories"], "bans.policy lets a banned user reach");
      }
    }
  }

  // A list that yields no entries: a truncated download or the wrong file. A warning (shown by
  // check, start and reload), but an error for a locked category: an empty illegal-content
  // feed must never pass unnoticed.
  void empty_list(const YAML::Node& where, const category& c, const std::string& shown) {
    if (c.locked) {
      error(where, "category " + quote(c.name) + " is locked (illegal content) but its list " + shown +
                       " has no entries: an empty feed would block nothing; fix the download or remove the file");
      return;
    }
    const auto mark = where.Mark();
    warnings_.push_back({file_, mark.line + 1, mark.column + 1,
                         "category " + quote(c.name) + ": " + shown + " has no entries (empty list file)"});
  }

  void add_pattern(const YAML::Node& n, const std::string& text, set_id set) {
    pending_patterns_.push_back({text, set, n.Mark()});
    p_->set_has_patterns[set] = true;
  }

  // Calls f(normalized domain, its node) for each valid entry of an inline domain list; an
  // invalid entry is an error at its place ("`what`: reason").
  template <class F>
  void each_domain(const YAML::Node& list, const std::string& what, F&& f) {
    for (const auto& d : items(list, what + " domains")) {
      auto s = scalar(d, what + " domain");
      if (!s) continue;
      std::string err;
      auto dom = list_domain(*s, &err);
      if (!dom) {
        error(d, what + ": " + err);
        continue;
      }
      f(*dom, d);
    }
  }

  // The set an inline entry on `host` goes to, as set_for in load_list_file: nullopt when it
  // is left out (a top-level domain in an allow rule's own list). A domain written in the policy
  // file itself is left out only when it is a single label: `com` is always a slip, while a
  // school that writes `gov.uk`, `sch.uk` or `nhs.uk` in its own allow rule means every site
  // under it. A URL prefix is checked against the whole list (`url`): `co.uk/news` would match
  // /news on every site under co.uk, which no school means (a review of 2026-12-05). Lists from
  // files, UT1 and feeds are checked against the whole list (set_for).
  std::optional<set_id> inline_set(std::string_view host, set_id set, const YAML::Node& where, bool url) {
    if (checking_ == nullptr || !(url ? opens_a_suffix(host) : is_single_label(host))) return set;
    warn_at(where, suffix_refused(host));
    return block_only_set();
  }

  // A name of one label (`com`, `intranet`), not an IP address.
  static bool is_single_label(std::string_view host) {
    return host.find('.') == std::string_view::npos && !ip_address::parse(host);
  }

  // The category a list item names, or null after an error with a "did you mean".
  const category* named_category(const YAML::Node& item, const std::string& what) {
    auto s = scalar(item, what + " category");
    if (!s) return nullptr;
    const category* cat = p_->find_category(*s);
    if (!cat) {
      error(item, what + " names category " + quote(*s) + ", which is not defined" + did_you_mean(*s, category_names_));
    }
    return cat;
  }

  // Inline lists shared by categories and rules. Returns counts via the category (if any).
  void load_inline_lists(const YAML::Node& n, const std::string& what, set_id set, category* c) {
    if (n["domains"]) {
      each_domain(n["domains"], what, [&](const std::string& dom, const YAML::Node& d) {
        const auto to = inline_set(dom, set, d, false);
        if (!to) return;
        add_domain(dom, *to);
        if (c) ++c->domain_count;
      });
    }
    if (n["urls"]) {
      for (const auto& u : items(n["urls"], what + " urls")) {
        auto s = scalar(u, what + " url");
        if (!s) continue;
        std::string err;
        auto parsed = list_url(*s, &err);
        if (!parsed) {
          error(u, what + ": " + err);
          continue;
        }
        const auto to = inline_set(parsed->first, set, u, true);
        if (!to) continue;
        add_url(std::move(parsed->first), std::move(parsed->second), *to);
        if (c) ++c->url_count;
      }
    }
    if (n["patterns"]) {
      for (const auto& pat : items(n["patterns"], what + " patterns")) {
        auto s = scalar(pat, what + " pattern");
        if (!s) continue;
        add_pattern(pat, *s, set);
        if (c) ++c->pattern_count;
      }
    }
  }

  void load_categories(const YAML::Node& cats) {
    if (!cats.IsMap()) {
      error(cats, "categories must be a mapping from category names to their lists");
      return;
    }
    std::set<std::string> seen;
    for (const auto& kv : cats) {
      const std::string name = kv.first.Scalar();
      if (!seen.insert(name).second) {
        error(kv.first, "category " + quote(name) + " is defined twice");
        continue;
      }
      const std::string what = "category " + quote(name);
      const YAML::Node& n = kv.second;
      if (!check_map(n, what, {"description", "locked", "circumvention", "domains", "domain_files", "urls",
                               "url_files", "patterns", "ut1", "feed"}))
        continue;
      category c;
      c.name = name;
      if (n["description"]) {
        if (auto s = scalar(n["description"], what + " description")) c.description = *s;
      }
      if (n["locked"]) {
        if (auto b = boolean(n["locked"], what + " locked")) c.locked = *b;
      }
      // A category fed by a locked feed (illegal-content lists) is locked, whatever it says.
      const auto fed = n["feed"] ? feed_lists(n["feed"], what) : std::vector<feed_list>{};
      for (const auto& f : fed) c.locked = c.locked || p_->feeds[f.feed].locked;
      c.circumvention = name == "circumvention";
      if (n["circumvention"]) {
        if (auto b = boolean(n["circumvention"], what + " circumvention")) c.circumvention = *b;
      }
      auto set = new_set(name, p_->categories.size(), c.locked, kv.first);
      if (!set) return;
      c.set = *set;
      // A locked category cannot be allowed (an error when the rules are loaded).
      allow_check check{"", name, kv.first, std::nullopt};
      if (const auto it = allowing_.find(name); it != allowing_.end() && !c.locked) {
        check.allowed_by = it->second;
        checking_ = &check;
      }
      load_inline_lists(n, what, c.set, &c);
      if (n["domain_files"]) {
        for (const auto& f : items(n["domain_files"], what + " domain_files")) {
          if (auto s = scalar(f, what + " domain file")) {
            bool read = false;
            const auto added = load_list_file(resolve(*s), list_kind::domains, c.set, f, true, &read);
            if (read && added == 0) empty_list(f, c, resolve(*s).string());
            c.domain_count += added;
            c.sources.push_back({*s, added});
          }
        }
      }
      if (n["url_files"]) {
        for (const auto& f : items(n["url_files"], what + " url_files")) {
          if (auto s = scalar(f, what + " url file")) {
            bool read = false;
            const auto added = load_list_file(resolve(*s), list_kind::urls, c.set, f, true, &read);
            if (read && added == 0) empty_list(f, c, resolve(*s).string());
            c.url_count += added;
            c.sources.push_back({*s, added});
          }
        }
      }
      if (n["ut1"]) {
        for (const auto& u : items(n["ut1"], what + " ut1")) {
          auto s = scalar(u, what + " ut1 category");
          if (!s) continue;
          if (ut1_dir_.empty()) {
            error(u, what + " imports UT1 category " + quote(*s) +
                         " but the policy sets no ut1_dir (the folder that holds the UT1 'blacklists' categories)");
            continue;
          }
          if (s->find('/') != std::string::npos || s->find("..") != std::string::npos) {
            error(u, quote(*s) + " is not a UT1 category name");
            continue;
          }
          const fs::path dir = ut1_dir_ / *s;
          std::error_code ec;
          if (!fs::is_directory(dir, ec)) {
            error(u, "UT1 category " + quote(*s) + " not found: " + dir.string() + " is not a folder");
            continue;
          }
          const bool has_domains = fs::exists(dir / "domains", ec), has_urls = fs::exists(dir / "urls", ec);
          if (!has_domains && !has_urls) {
            error(u, "UT1 category " + quote(*s) + " has neither a 'domains' nor a 'urls' file in " + dir.string());
            continue;
          }
          bool read_domains = false, read_urls = false;
          std::size_t added = 0;
          if (has_domains) {
            const auto n_domains = load_list_file(dir / "domains", list_kind::domains, c.set, u, true, &read_domains);
            c.domain_count += n_domains;
            added += n_domains;
          }
          if (has_urls) {
            const auto n_urls = load_list_file(dir / "urls", list_kind::urls, c.set, u, true, &read_urls);
            c.url_count += n_urls;
            added += n_urls;
          }
          if ((read_domains || read_urls) && added == 0) empty_list(u, c, "UT1 category " + quote(*s) + " in " + dir.string());
          c.sources.push_back({"ut1:" + *s, added});
        }
      }
      for (const auto& f : fed) load_feed_list(f, c);
      checking_ = nullptr;
      if (check.block_only) block_only_sets_[name] = *check.block_only;
      category_names_.push_back(name);
      p_->categories.push_back(std::move(c));
    }
  }

  // ---- feeds --------------------------------------------------------------------------------
  // One `feed: NAME/LIST` entry of a category.
  struct feed_list {
    std::size_t feed = 0;  // index into p_->feeds
    std::string list;      // the feed's own category: `gambling`, or `list` for a lines feed
    YAML::Node where;
  };

  static bool valid_feed_name(std::string_view s) {
    return !s.empty() && s.size() <= 64 && std::all_of(s.begin(), s.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
    });
  }

  void load_feeds(const YAML::Node& feeds) {
    if (!feeds.IsMap()) {
      error(feeds, "feeds must be a mapping from feed names to their settings (url, format, ...), and 'required'");
      return;
    }
    std::set<std::string> seen;
    for (const auto& kv : feeds) {
      const std::string name = kv.first.Scalar();
      if (name == "required") {
        if (auto b = boolean(kv.second, "feeds.required")) p_->feeds_required = *b;
        continue;
      }
      if (!seen.insert(name).second) {
        error(kv.first, "feed " + quote(name) + " is defined twice");
        continue;
      }
      if (!valid_feed_name(name)) {
        error(kv.first, quote(name) + " is not a feed name: letters, digits, '-' and '_' only (it names a folder)");
        continue;
      }
      const std::string what = "feed " + quote(name);
      const YAML::Node& n = kv.second;
      feed f;
      f.name = name;
      if (check_map(n, what, {"url", "format", "credentials_file", "ca_file", "min_entries", "locked",
                              "connect_timeout", "timeout", "max_mib"})) {
        if (n["connect_timeout"]) {
          if (auto d = duration(n["connect_timeout"], what + " connect_timeout")) {
            f.connect_timeout = std::max(std::chrono::seconds{1}, std::chrono::ceil<std::chrono::seconds>(*d));
          }
        }
        if (n["timeout"]) {
          if (auto d = duration(n["timeout"], what + " timeout")) {
            f.timeout = std::max(std::chrono::seconds{1}, std::chrono::ceil<std::chrono::seconds>(*d));
          }
        }
        if (n["max_mib"]) {
          if (auto m = integer(n["max_mib"], what + " max_mib", 1, 65536)) f.max_bytes = static_cast<std::uint64_t>(*m) << 20;
        }
        if (!n["url"]) {
          error(kv.first, what + " has no url: where `hallpass feeds update` downloads it from");
        } else if (auto u = scalar(n["url"], what + " url")) {
          if (u->starts_with("https://")) {
            f.url = *u;
          } else if (u->starts_with("http://")) {
            f.url = *u;
            const auto mark = n["url"].Mark();
            warnings_.push_back({file_, mark.line + 1, mark.column + 1,
                                 what + " url is plain http: nothing proves the lists come from their publisher; "
                                        "use https where the publisher offers it"});
          } else {
            error(n["url"], what + " url must be an https:// (or http://) URL, not " + quote(*u));
          }
        }
        if (!n["format"]) {
          error(kv.first, what + " has no format: 'ut1' (a UT1 tarball, blacklists/<category>/{domains,urls}) "
                                 "or 'lines' (one domain or URL per line)");
        } else if (auto fm = scalar(n["format"], what + " format")) {
          if (*fm == "ut1") f.format = feed_format::ut1;
          else if (*fm == "lines") f.format = feed_format::lines;
          else
            error(n["format"], what + " format must be 'ut1' or 'lines', not " + quote(*fm) +
                                   did_you_mean(*fm, {"ut1", "lines"}));
        }
        if (n["credentials_file"]) {
          if (auto c = scalar(n["credentials_file"], what + " credentials_file")) f.credentials_file = resolve(*c).string();
        }
        if (n["ca_file"]) {
          // Read by `feeds update` (libcurl), not here: a missing file is its clear error then.
          if (auto c = scalar(n["ca_file"], what + " ca_file")) f.ca_file = resolve(*c).string();
        }
        if (n["min_entries"]) {
          if (auto m = integer(n["min_entries"], what + " min_entries", 0, 1'000'000'000)) {
            f.min_entries = static_cast<std::size_t>(*m);
          }
        }
        if (n["locked"]) {
          if (auto b = boolean(n["locked"], what + " locked")) f.locked = *b;
        }
      }
      if (!opt_.feeds_dir.empty()) {
        f.dir = (fs::path(opt_.feeds_dir) / name / "current").string();
        std::error_code ec;
        f.present = fs::is_directory(f.dir, ec);
        if (f.present) {
          // `current` is a link that `feeds update` may switch while this load reads: resolve
          // it once, so that every list of the feed comes from the same version.
          if (auto real = fs::canonical(f.dir, ec); !ec) f.dir = real.string();
          f.fetched_at = read_fetched_at(fs::path(f.dir) / "feed.info");
        }
      }
      p_->feeds.push_back(std::move(f));
      feed_nodes_.push_back(kv.first);
      feed_users_.emplace_back();
    }
  }

  // A category's `feed:` key: one FEED/LIST or a list of them.
  std::vector<feed_list> feed_lists(const YAML::Node& n, const std::string& what) {
    std::vector<feed_list> out;
    std::vector<std::string> names;
    for (const auto& f : p_->feeds) names.push_back(f.name);
    for (const auto& e : items(n, what + " feed")) {
      auto s = scalar(e, what + " feed");
      if (!s) continue;
      const auto slash = s->find('/');
      if (slash == std::string::npos || slash == 0 || slash + 1 == s->size() ||
          s->find('/', slash + 1) != std::string::npos || s->find("..") != std::string::npos) {
        error(e, what + " feed " + quote(*s) + " must be FEED/LIST, like ut1/gambling (or iwf/list for a 'lines' feed)");
        continue;
      }
      const std::string name = s->substr(0, slash), list = s->substr(slash + 1);
      const auto it = std::find(names.begin(), names.end(), name);
      if (it == names.end()) {
        error(e, what + " names feed " + quote(name) + ", which the feeds section does not define" +
                     did_you_mean(name, names));
        continue;
      }
      const auto index = static_cast<std::size_t>(it - names.begin());
      if (p_->feeds[index].format == feed_format::lines && list != "list") {
        error(e, "feed " + quote(name) + " is a 'lines' feed: its one list is " + quote(name + "/list"));
        continue;
      }
      out.push_back({index, list, e});
    }
    return out;
  }

  // Loads one feed list into category c, from the feed's current version on disk.
  void load_feed_list(const feed_list& fl, category& c) {
    auto& f = p_->feeds[fl.feed];
    auto& users = feed_users_[fl.feed];
    if (std::find(users.begin(), users.end(), c.name) == users.end()) users.push_back(c.name);
    c.sources.push_back({"feed:" + f.name + "/" + fl.list, 0});  // its entries once read, below
    // Each list once in f.lists (check, feeds status and the metrics' series), however many
    // categories use it; each category still gets its own copy of the entries.
    const bool recorded = std::any_of(f.lists.begin(), f.lists.end(), [&](const auto& l) { return l.first == fl.list; });
    if (!f.present) {
      if (!recorded) f.lists.emplace_back(fl.list, 0);  // reported once per feed, by report_missing_feeds
      return;
    }
    const fs::path cur(f.dir);
    std::vector<std::pair<fs::path, list_kind>> files;
    if (f.format == feed_format::lines) {
      files.emplace_back(cur / "list", list_kind::mixed);
    } else {
      files.emplace_back(cur / "blacklists" / fl.list / "domains", list_kind::domains);
      files.emplace_back(cur / "blacklists" / fl.list / "urls", list_kind::urls);
    }
    std::size_t added = 0;
    bool any = false;
    for (const auto& [path, kind] : files) {
      std::error_code ec;
      if (!fs::exists(path, ec)) continue;
      any = true;
      const auto n = load_list_file(path, kind, c.set, fl.where, true, nullptr, nullptr, false);
      c.url_count += last_url_entries_;
      c.domain_count += n - last_url_entries_;
      added += n;
    }
    if (!recorded) f.lists.emplace_back(fl.list, added);
    c.sources.back().entries = added;
    const std::string shown = "feed list " + f.name + "/" + fl.list;
    if (!any) {
      // The feed is there but not this list: renamed upstream, or a typo in the policy.
      const std::string msg = "category " + quote(c.name) + ": " + shown + " is not in the feed (" +
                              (f.format == feed_format::lines ? (cur / "list").string()
                                                              : (cur / "blacklists" / fl.list).string() +
                                                                    " has neither a domains nor a urls file") +
                              ")";
      if (c.locked) {
        error(fl.where, msg + "; the category is locked, so it must not block nothing");
      } else {
        const auto mark = fl.where.Mark();
        warnings_.push_back({file_, mark.line + 1, mark.column + 1, msg + ": it blocks nothing from it"});
      }
      return;
    }
    if (added == 0) empty_list(fl.where, c, shown + " in " + f.dir);
  }

  // Once per feed that has never been fetched: a warning (the policy serves without it), or
  // with feeds.required an error (the policy does not load).
  void report_missing_feeds() {
    for (std::size_t i = 0; i < p_->feeds.size(); ++i) {
      const auto& f = p_->feeds[i];
      if (f.present) continue;
      std::string users;
      for (const auto& u : feed_users_[i]) users += (users.empty() ? "" : ", ") + u;
      const std::string msg =
          "feed " + quote(f.name) + " is missing (" +
          (f.dir.empty() ? std::string("no state directory was given") : f.dir + " does not exist") + "): " +
          (users.empty() ? std::string("no category uses it") : "categories " + users + " block nothing from it") +
          " until `" + p_->feeds_update_command + " --feed " + f.name + "` fetches it";
      const auto mark = feed_nodes_[i].Mark();
      if (p_->feeds_required && !opt_.feeds_may_be_missing) {
        error_at(mark, msg + " (feeds.required is true: the policy does not load without every feed)");
      } else {
        warnings_.push_back({file_, mark.line + 1, mark.column + 1, msg});
      }
    }
  }

  // ---- roles and rules ----------------------------------------------------------------------
  std::uint64_t parse_during(const YAML::Node& n, const std::string& what, std::string& text) {
    const auto& tt = p_->timetable;
    std::uint64_t mask = 0;
    std::vector<std::string> words = {"lessons", "breaks", "lunch", "other", "school_hours",
                                      "outside_school_hours", "any_time"};
    for (const auto& name : tt.period_names) words.push_back(name);
    std::vector<std::string> shown;
    for (const auto& item : items(n, what)) {
      auto s = scalar(item, what);
      if (!s) continue;
      std::string w = *s;
      std::uint64_t bits = 0;
      if (w == "lessons" || w == "lesson") bits = tt.bits_of_kind(period_kind::lesson);
      else if (w == "breaks" || w == "break") bits = tt.bits_of_kind(period_kind::break_time);
      else if (w == "lunch") bits = tt.bits_of_kind(period_kind::lunch);
      else if (w == "other") bits = tt.bits_of_kind(period_kind::other);
      else if (w == "school_hours") bits = tt.all_period_bits();
      else if (w == "outside_school_hours") bits = 1ull << timetable::outside_bit;
      else if (w == "any_time") bits = ~0ull;
      else {
        auto it = std::find(tt.period_names.begin(), tt.period_names.end(), w);
        if (it == tt.period_names.end()) {
          if (!timetable_failed_) {
            error(item, what + " names " + quote(w) + ", which is neither a period of the timetable nor one of "
                            "lessons, breaks, lunch, other, school_hours, outside_school_hours, any_time" +
                            did_you_mean(w, words));
          }
          continue;
        }
        bits = 1ull << (it - tt.period_names.begin());
      }
      if (bits == 0) {
        // After a timetable error the period may be the one that failed: that error says it.
        if (!timetable_failed_) error(item, what + " names " + quote(w) + " but the timetable has no such period");
        continue;
      }
      mask |= bits;
      shown.push_back(w);
    }
    text = mask == ~0ull ? "at any time" : "during " + join(shown, ", ");
    return mask;
  }

  std::vector<rule> load_rules(const YAML::Node& list, const std::string& owner) {
    std::vector<rule> out;
    if (!list.IsSequence()) {
      error(list, "the rules of " + owner + " must be a list");
      return out;
    }
    int index = 0;
    for (const auto& n : list) {
      ++index;
      const std::string what = "rule " + std::to_string(index) + " of " + (owner == "everyone" ? "everyone" : "role " + owner);
      if (!check_map(n, what, {"name", "action", "categories", "domains", "urls", "patterns", "methods",
                               "during", "clause", "reason"}))
        continue;
      rule r;
      r.id = (owner == "everyone" ? std::string("everyone") : owner) + " rule " + std::to_string(index);
      if (n["name"]) {
        if (auto s = text(n["name"], what + " name")) r.id += " (" + *s + ")";
      }
      if (!n["action"]) {
        error(n, what + " has no action: say 'action: allow' or 'action: block'");
        continue;
      }
      auto act = parse_action(n["action"], what + " action");
      if (!act) continue;
      r.act = *act;
      // A key given with nothing in it (`categories:` whose items were commented out, `~`, `[]`)
      // is an editing mistake, not a choice: a block rule so written blocked nothing, while the
      // same rule without the key blocks everything (outside-in audit H, 2026-12-05).
      bool empty_key = false;
      for (const char* key : {"categories", "domains", "urls", "patterns", "methods", "during"}) {
        const YAML::Node v = n[key];
        if (v && (v.IsNull() || (v.IsSequence() && v.size() == 0))) {
          error(v.IsNull() ? n : v, what + " has an empty '" + key + "' (items commented out?): name at least one, " +
                                        "or leave the key out");
          empty_key = true;
        }
      }
      if (empty_key) continue;
      std::vector<std::string> target_words;
      if (n["categories"]) {
        for (const auto& c : items(n["categories"], what + " categories")) {
          const category* cat = named_category(c, what);
          if (!cat) continue;
          if (cat->locked && r.act == action::allow) {
            error(c, what + " allows category " + quote(cat->name) +
                         ", which is locked: illegal-content lists cannot be allowed by any rule or exception");
            continue;
          }
          add_category_sets(*cat, r.act == action::block, r.targets);
          if (p_->set_has_patterns[cat->set]) r.needs_patterns = true;
          target_words.push_back(cat->name);
        }
        r.has_targets = true;
      }
      if (n["domains"] || n["urls"] || n["patterns"]) {
        auto set = new_set("rule list of " + r.id, std::string::npos, false, n);
        if (!set) continue;
        allow_check check{r.id + " allows it", "", n, std::nullopt};
        if (r.act == action::allow) checking_ = &check;
        load_inline_lists(n, what, *set, nullptr);
        checking_ = nullptr;
        r.targets.push_back(*set);
        r.has_targets = true;
        if (p_->set_has_patterns[*set]) r.needs_patterns = true;
        if (n["domains"]) target_words.push_back("listed domains");
        if (n["urls"]) target_words.push_back("listed URLs");
        if (n["patterns"]) target_words.push_back("listed URL patterns");
      }
      if (n["methods"]) {
        for (const auto& m : items(n["methods"], what + " methods")) {
          auto s = scalar(m, what + " method");
          if (!s) continue;
          std::string up = *s;
          for (auto& ch : up) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
          if (up.empty() || !std::all_of(up.begin(), up.end(), [](char ch) { return ch >= 'A' && ch <= 'Z'; })) {
            error(m, what + " method " + quote(*s) + " is not an HTTP method name");
            continue;
          }
          // Any token is a method to HTTP, but one no client sends is a rule that never matches:
          // `methods: yes`, `PSOT` (outside-in audit H, 2026-12-05). Said, not refused (a
          // school's own WebDAV or API method may be missing here).
          static constexpr std::string_view known[] = {
              "GET",   "HEAD",      "POST",  "PUT",   "DELETE", "CONNECT", "OPTIONS", "TRACE",   "PATCH",
              "PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE",   "LOCK",    "UNLOCK",  "REPORT", "SEARCH",
              "MKCALENDAR", "ACL", "BIND", "UNBIND", "REBIND", "MERGE", "CHECKOUT", "CHECKIN", "UPDATE", "LABEL",
              "VERSION-CONTROL", "MKWORKSPACE", "MKACTIVITY", "BASELINE-CONTROL", "ORDERPATCH", "QUERY"};
          if (std::find(std::begin(known), std::end(known), up) == std::end(known)) {
            const auto mark = m.Mark();
            warnings_.push_back({file_, mark.line + 1, mark.column + 1,
                                 what + " method " + quote(*s) + " is not a method browsers or apps send (a typo?): "
                                        "the rule matches no request by it"});
          }
          r.methods.push_back(up);
        }
      }
      r.during_text = "at any time";
      if (n["during"]) r.during = parse_during(n["during"], what + " during", r.during_text);
      if (n["clause"]) {
        if (auto s = text(n["clause"], what + " clause")) r.clause = *s;
      }
      std::string targets = target_words.empty() ? "everything" : join(target_words, ", ");
      if (!r.methods.empty()) targets += " (" + join(r.methods, ", ") + " requests)";
      r.summary = std::string(to_string(r.act)) + " " + targets + " " + r.during_text;
      if (n["reason"]) {
        if (auto s = text(n["reason"], what + " reason")) r.reason = *s;
      } else {
        // In words for the block page: a category key's underscores read as spaces
        // ("Social media is blocked", not "Social_media").
        std::string words = targets;
        std::replace(words.begin(), words.end(), '_', ' ');
        r.reason = words + (r.act == action::block ? " is blocked" : " is allowed") + " for " +
                   (owner == "everyone" ? std::string("everyone") : owner) + " " + r.during_text + ".";
        r.reason[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(r.reason[0])));
      }
      out.push_back(std::move(r));
    }
    return out;
  }

  std::optional<ip_network> parse_network(const YAML::Node& n, const std::string& what) {
    auto s = scalar(n, what);
    if (!s) return std::nullopt;
    std::string why;
    auto net = ip_network::parse(*s, &why);
    if (!net) error(n, what + ": " + why);
    return net;
  }

  void load_roles(const YAML::Node& roles) {
    if (!roles.IsMap() || roles.size() == 0) {
      error(roles, "roles must be a mapping from role names (pupils, staff, ...) to their settings");
      return;
    }
    // Names first, so rules can be reported against them and the fallback found.
    std::set<std::string> seen;
    for (const auto& kv : roles) {
      const std::string name = kv.first.Scalar();
      const std::string what = "role " + quote(name);
      if (!seen.insert(name).second) {
        error(kv.first, what + " is defined twice");
        continue;
      }
      const YAML::Node& n = kv.second;
      if (!check_map(n, what, {"description", "networks", "default", "rules", "safesearch", "groups"})) continue;
      role r;
      r.name = name;
      if (n["description"]) {
        if (auto s = scalar(n["description"], what + " description")) r.description = *s;
      }
      if (n["default"]) {
        if (auto a = parse_action(n["default"], what + " default")) r.default_action = *a;
      } else {
        error(n, what + " has no 'default' (allow or block): say what happens when no rule matches");
      }
      r.default_id = "default for " + name;
      r.default_reason = r.default_action == action::allow
                             ? "No rule blocks this for " + name + ", so it is allowed."
                             : "Only sites the policy allows are open to " + name + ", and this is not one of them.";
      if (n["networks"]) {
        for (const auto& net : items(n["networks"], what + " networks")) {
          auto parsed = parse_network(net, what + " network");
          if (!parsed) continue;
          parsed->role = p_->roles.size();
          for (const auto& other : p_->networks) {
            if (other.prefix == parsed->prefix && other.base == parsed->base) {
              error(net, what + " network " + quote(parsed->text) + " is already given to role " +
                             quote(p_->roles.size() > other.role ? p_->roles[other.role].name : name));
            }
          }
          p_->networks.push_back(std::move(*parsed));
        }
      }
      if (n["rules"]) r.rules = load_rules(n["rules"], name);
      if (n["safesearch"]) load_safesearch(n["safesearch"], what, r.safesearch);
      if (r.safesearch.search != safesearch_level::off) {
        if (auto lock = search_front_end_lock(name, r.safesearch.clause)) r.rules.insert(r.rules.begin(), std::move(*lock));
      }
      if (n["groups"]) load_role_groups(n["groups"], what, r.groups);
      role_names_.push_back(name);
      p_->roles.push_back(std::move(r));
    }
    std::stable_sort(p_->networks.begin(), p_->networks.end(),
                     [](const ip_network& a, const ip_network& b) { return a.prefix > b.prefix; });
    // In policy order, so that a name listed twice keeps its first place (emplace keeps it).
    for (std::size_t i = 0; i < p_->roles.size(); ++i) {
      for (std::size_t g = 0; g < p_->roles[i].groups.size(); ++g) {
        p_->group_roles.emplace(p_->roles[i].groups[g], policy::group_role{i, g});
      }
    }
  }

  // roles.<name>.groups: directory group names, as the directory spells them ("Year 6").
  // Empty names and a group listed twice in one role are refused; a group listed by two roles
  // is allowed (the first in policy order wins) but warned about, since the second never applies.
  void load_role_groups(const YAML::Node& n, const std::string& what, std::vector<std::string>& out) {
    for (const auto& item : items(n, what + " groups")) {
      auto s = scalar(item, what + " group");
      if (!s) continue;
      if (s->empty()) {
        error(item, what + " groups: a group name cannot be empty");
        continue;
      }
      const auto same = [&s](const std::string& g) {
        return g.size() == s->size() && std::equal(g.begin(), g.end(), s->begin(), [](char a, char b) {
                 return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
               });
      };
      if (std::any_of(out.begin(), out.end(), same)) {
        error(item, what + " lists group " + quote(*s) + " twice");
        continue;
      }
      for (const auto& earlier : p_->roles) {
        if (std::any_of(earlier.groups.begin(), earlier.groups.end(), same)) {
          const auto m = item.Mark();
          warnings_.push_back({file_, m.line + 1, m.column + 1,
                               what + " group " + quote(*s) + " is already listed by role " + quote(earlier.name) +
                                   ", which comes first and wins: this entry never applies"});
        }
      }
      out.push_back(*s);
    }
  }

  // DuckDuckGo's HTML and lite pages have no locked front end to connect to, and take their
  // searches by POST, which the request rewrite cannot reach: relayed or inspected, a search
  // there was never locked (audit20 D1, D2). A role whose search is locked gets them blocked by
  // a rule of its own, before the role's rules (an "allow duckduckgo.com" there would open its
  // subdomains too), so that the block page, explain and the log say why.
  std::optional<rule> search_front_end_lock(const std::string& role, const std::string& clause) {
    static const char* const text =
        "[{name: SafeSearch lock, action: block, domains: [html.duckduckgo.com, lite.duckduckgo.com], "
        "reason: \"DuckDuckGo's HTML and lite pages cannot be locked to safe search, so they are closed where "
        "SafeSearch is on; duckduckgo.com is open, with safe search locked.\"}]";
    auto rules = load_rules(load_yaml(text), role);
    if (rules.size() != 1) return std::nullopt;
    rules[0].id = role + " SafeSearch lock";
    rules[0].summary = "block DuckDuckGo's HTML and lite pages, which cannot be locked to safe search";
    rules[0].clause = clause;
    return std::move(rules[0]);
  }

  // roles.<name>.safesearch: {search: strict|off, youtube: strict|moderate|off, clause: "..."}
  void load_safesearch(const YAML::Node& n, const std::string& role_what, safesearch_settings& out) {
    const std::string what = role_what + " safesearch";
    if (!check_map(n, what, {"search", "youtube", "clause"})) return;
    auto level = [&](const char* key, bool moderate_ok) -> std::optional<safesearch_level> {
      auto s = scalar(n[key], what + " " + key);
      if (!s) return std::nullopt;
      if (*s == "strict") return safesearch_level::strict;
      if (*s == "off") return safesearch_level::off;
      if (*s == "moderate" && moderate_ok) return safesearch_level::moderate;
      const std::vector<std::string> words =
          moderate_ok ? std::vector<std::string>{"strict", "moderate", "off"} : std::vector<std::string>{"strict", "off"};
      error(n[key], what + " " + key + " must be " + (moderate_ok ? "strict, moderate or off" : "strict or off") +
                        ", not " + quote(*s) +
                        (!moderate_ok && *s == "moderate"
                             ? " (search engines offer no locked moderate mode)"
                             : did_you_mean(*s, words)));
      return std::nullopt;
    };
    if (n["search"]) {
      if (auto l = level("search", false)) out.search = *l;
    }
    if (n["youtube"]) {
      if (auto l = level("youtube", true)) out.youtube = *l;
    }
    if (n["clause"]) {
      if (auto s = text(n["clause"], what + " clause")) out.clause = *s;
    }
  }

  // inspection: {never: {domains, domain_files}, inspect: [{name, roles, categories, domains,
  // safesearch, everything, clause, why}]}. Roles and categories must exist (read after them).
  void load_inspection(const YAML::Node& n) {
    if (!check_map(n, "inspection", {"never", "inspect"})) return;
    auto& ins = p_->inspection;
    if (const auto nv = n["never"]; nv && check_map(nv, "inspection.never", {"domains", "domain_files"})) {
      if (nv["domains"]) {
        each_domain(nv["domains"], "inspection.never", [&](const std::string& dom, const YAML::Node&) {
          ins.never.add(dom, 0);
          ++ins.never_count;
        });
      }
      if (nv["domain_files"]) {
        for (const auto& f : items(nv["domain_files"], "inspection.never domain_files")) {
          auto s = scalar(f, "inspection.never domain file");
          if (!s) continue;
          bool read = false;
          const auto added = load_list_file(resolve(*s), list_kind::domains, 0, f, true, &read, &ins.never);
          if (read && added == 0) {
            const auto mark = f.Mark();
            warnings_.push_back({file_, mark.line + 1, mark.column + 1,
                                 "inspection.never: " + resolve(*s).string() + " has no entries (empty list file)"});
          }
          ins.never_count += added;
          ins.never_sources.push_back(*s);
        }
      }
    }
    if (!n["inspect"]) return;
    if (!n["inspect"].IsSequence()) {
      error(n["inspect"], "inspection.inspect must be a list of entries ({roles, categories, domains, safesearch, "
                          "everything, why})");
      return;
    }
    int index = 0;
    for (const auto& e : n["inspect"]) {
      ++index;
      const std::string what = "inspection.inspect entry " + std::to_string(index);
      if (!check_map(e, what, {"name", "roles", "categories", "domains", "safesearch", "everything", "clause", "why"}))
        continue;
      if (ins.inspect.size() >= 65535) {  // entry indexes are the set ids of inspect_domains
        error(e, "inspection.inspect has more than 65,535 entries");
        return;
      }
      inspect_entry entry;
      entry.id = "inspection entry " + std::to_string(index);
      if (e["name"]) {
        if (auto s = text(e["name"], what + " name")) entry.id += " (" + *s + ")";
      }
      if (e["roles"]) {
        for (const auto& rn : items(e["roles"], what + " roles")) {
          auto s = scalar(rn, what + " role");
          if (!s) continue;
          const auto it = std::find(role_names_.begin(), role_names_.end(), *s);
          if (it == role_names_.end()) {
            error(rn, what + " names role " + quote(*s) + ", which is not defined" + did_you_mean(*s, role_names_));
            continue;
          }
          entry.roles.push_back(static_cast<std::size_t>(it - role_names_.begin()));
        }
      }
      if (e["categories"]) {
        for (const auto& c : items(e["categories"], what + " categories")) {
          if (const category* cat = named_category(c, what)) {
            add_category_sets(*cat, true, entry.categories);
          }
        }
      }
      if (e["domains"]) {
        each_domain(e["domains"], what, [&](const std::string& dom, const YAML::Node&) {
          ins.inspect_domains.add(dom, static_cast<set_id>(ins.inspect.size()));
          entry.has_domains = true;
        });
      }
      if (e["safesearch"]) {
        if (auto b = boolean(e["safesearch"], what + " safesearch")) entry.safesearch = *b;
      }
      if (e["everything"]) {
        if (auto b = boolean(e["everything"], what + " everything")) entry.everything = *b;
      }
      if (e["clause"]) {
        if (auto s = text(e["clause"], what + " clause")) entry.clause = *s;
      }
      if (e["why"]) {
        if (auto s = scalar(e["why"], what + " why")) entry.why = *s;
      }
      // Decrypting is a privacy matter: an entry says what it covers, never everything by omission.
      if (!e["categories"] && !e["domains"] && !entry.safesearch && !entry.everything) {
        error(e, what + " names nothing to inspect: give categories, domains, 'safesearch: true' or "
                        "'everything: true'");
        continue;
      }
      ins.inspect.push_back(std::move(entry));
    }
  }

  void choose_fallback(const YAML::Node& n) {
    if (n) {
      auto s = scalar(n, "fallback_role");
      if (!s) return;
      for (std::size_t i = 0; i < p_->roles.size(); ++i) {
        if (p_->roles[i].name == *s) {
          p_->fallback_role = i;
          return;
        }
      }
      error(n, "fallback_role names role " + quote(*s) + ", which is not defined" + did_you_mean(*s, role_names_));
      return;
    }
    // Not configured: the most restricted role there can be, never unfiltered.
    for (std::size_t i = 0; i < p_->roles.size(); ++i) {
      if (p_->roles[i].name == "unassigned") {
        p_->fallback_role = i;
        return;
      }
    }
    role r;
    r.name = "unassigned";
    r.description = "devices whose address is in no role's networks (fallback_role is not set)";
    r.default_action = action::block;
    r.default_id = "default for unassigned";
    r.default_reason =
        "This device's address is not in any network the school's policy knows, so everything is blocked. "
        "Ask the ICT technician to add it.";
    r.builtin = true;
    p_->fallback_role = p_->roles.size();
    p_->roles.push_back(std::move(r));
  }

  void finish_patterns() {
    if (pending_patterns_.empty()) return;
    RE2::Options o;
    o.set_max_mem(256 << 20);
    o.set_log_errors(false);
    auto set = std::make_unique<RE2::Set>(o, RE2::UNANCHORED);
    bool ok = true;
    for (const auto& pp : pending_patterns_) {
      std::string err;
      if (set->Add(pp.text, &err) < 0) {
        error_at(pp.mark, "URL pattern " + quote(pp.text) + " is not a valid RE2 regular expression: " + err);
        ok = false;
        continue;
      }
      p_->pattern_set.push_back(pp.set);
      if (p_->set_is_locked[pp.set]) p_->locked_has_patterns = true;
    }
    if (!ok) return;
    if (!set->Compile()) {
      error_at_file("the URL patterns together are too large to compile");
      return;
    }
    p_->patterns = std::move(set);
    const auto& ps = p_->pattern_set;
    if (std::all_of(ps.begin(), ps.end(), [&](set_id s) { return s == ps.front(); })) {
      p_->patterns_one_set = ps.front();
    }
  }

  struct pending_pattern {
    std::string text;
    set_id set;
    YAML::Mark mark;
  };

  const load_options& opt_;
  // Public suffixes in lists that allow (above): the categories an allow rule uses, with the
  // words that name the first such rule; while such a category's lists (or an allow rule's
  // own) are read, the check in force; and each category's block-only set, once made.
  struct allow_check {
    std::string allowed_by;  // "pupils rule 1 allows category 'x'", "pupils rule 2 allows it"
    std::string category;    // empty for a rule's own list
    YAML::Node where;
    std::optional<set_id> block_only;
  };
  std::map<std::string, std::string, std::less<>> allowing_;
  allow_check* checking_ = nullptr;
  std::map<std::string, set_id, std::less<>> block_only_sets_;
  // The sets that stand for a category where a rule or an inspection entry names it: its own,
  // and where it blocks (an inspection entry is there to show the block page) its block-only
  // set too. The one place that knows a category may have two.
  template <class Sets>  // std::vector<set_id> or target_sets
  void add_category_sets(const category& cat, bool blocks, Sets& out) const {
    out.push_back(cat.set);
    if (!blocks) return;
    if (const auto b = block_only_sets_.find(cat.name); b != block_only_sets_.end()) out.push_back(b->second);
  }
  fs::path ut1_dir_;
  std::size_t last_url_entries_ = 0;
  // Per feed (index into p_->feeds): its YAML node, and the categories that use it.
  std::vector<YAML::Node> feed_nodes_;
  std::vector<std::vector<std::string>> feed_users_;
  std::unique_ptr<policy> p_;
  std::vector<std::string> category_names_, role_names_;
  std::array<std::vector<YAML::Mark>, 7> period_marks_;
  bool timetable_failed_ = false;  // the timetable had an error (its periods may be missing)
  std::vector<pending_pattern> pending_patterns_;
  bool membership_overflow_reported_ = false;
};

}  // namespace

namespace {

// A feed list the school lets be empty (feeds.NAME.min_entries: 0): feeds update accepts an
// empty one, so neither a reload nor a start refuses it.
bool may_be_empty(const policy& p, std::string_view source) {
  if (!source.starts_with("feed:")) return false;
  const auto name = source.substr(5, source.find('/') == std::string_view::npos ? std::string_view::npos
                                                                                 : source.find('/') - 5);
  return std::any_of(p.feeds.begin(), p.feeds.end(),
                     [&](const feed& f) { return f.name == name && f.min_entries == 0; });
}

}  // namespace

source_counts count_sources(const policy& p) {
  source_counts out;
  for (const auto& c : p.categories) {
    auto& sources = out[c.name];
    for (const auto& s : c.sources) sources[s.name] = s.entries;
  }
  return out;
}

std::vector<std::string> emptied_sources(const source_counts& before, const policy& after, std::string_view before_was,
                                         std::string_view refused) {
  std::vector<std::string> out;
  for (const auto& c : after.categories) {
    const auto old = before.find(c.name);
    if (old == before.end()) continue;
    for (const auto& now : c.sources) {
      if (now.entries > 0 || may_be_empty(after, now.name)) continue;
      const auto was = old->second.find(now.name);
      if (was == old->second.end() || was->second == 0) continue;
      out.push_back("category " + quote(c.name) + ": " + now.name + " had " + std::to_string(was->second) +
                    " entries " + std::string(before_was) + " and has none now (emptied, cut short or the wrong "
                    "file?): " + std::string(refused) + "; to empty it on purpose, take it out of the policy (a "
                    "feed's list may be empty with feeds.NAME.min_entries: 0)");
    }
  }
  return out;
}

std::vector<std::string> emptied_sources(const policy& before, const policy& after) {
  return emptied_sources(count_sources(before), after, "in the policy in force",
                         "the reload is refused and the lists in force stay");
}

list_line classify_list_line(std::string_view raw, list_file_kind kind) {
  if (const auto hash = raw.find('#'); hash != std::string_view::npos) raw = raw.substr(0, hash);
  const std::string_view text = trim(raw);
  if (text.empty()) return {};
  const bool url = kind == list_file_kind::urls || (kind == list_file_kind::mixed && is_url_line(text));
  return {url ? list_line_kind::url : list_line_kind::domain, text};
}


// As load_list_file keeps the line: add_url makes a URL of a whole site a domain entry.
std::optional<std::string> list_entry(const list_line& line) {
  std::string why;
  switch (line.kind) {
    case list_line_kind::blank: return std::nullopt;
    case list_line_kind::url: {
      auto u = list_url(line.text, &why);
      if (!u) return std::nullopt;
      if (u->second == "/") return std::move(u->first);
      return u->first + u->second;
    }
    case list_line_kind::domain: return list_domain(line.text, &why);
  }
  return std::nullopt;
}

parsed_policy_yaml parse_policy_yaml(std::string_view yaml, const std::string& file_name) {
  parsed_policy_yaml out;
  out.blank = yaml.find_first_not_of(" \t\r\n") == std::string_view::npos;
  try {
    out.root = load_yaml(yaml);
  } catch (const yaml_too_large& e) {
    // Aliases that expand far beyond the file, an alias inside its own anchor's node, nesting
    // deeper than yaml-cpp reads: refused in words before anything walks the tree
    // (rules/yaml_load.hpp).
    out.errors.push_back({file_name, e.mark.line + 1, e.mark.column + 1, e.msg});
  } catch (const YAML::ParserException& e) {
    out.errors.push_back({file_name, e.mark.line + 1, e.mark.column + 1, "this is not valid YAML: " + e.msg});
  }
  return out;
}

load_result load_policy_parsed(const parsed_policy_yaml& parsed, const std::string& file_name,
                               const load_options& options) {
  loader l(options, file_name);
  return l.run(parsed);
}

load_result load_policy_text(std::string_view yaml, const std::string& file_name, const load_options& options) {
  return load_policy_parsed(parse_policy_yaml(yaml, file_name), file_name, options);
}

load_result load_policy(const std::string& path, const load_options& options) {
  std::string err;
  auto text = read_file(path, &err);
  if (!text) {
    load_result r;
    r.errors.push_back({path, 0, 0, err});  // "school.yaml: is a directory"
    return r;
  }
  return load_policy_text(*text, path, options);
}

std::optional<ip_network> ip_network::parse(std::string_view text, std::string* error, bool strict) {
  auto fail = [&](const std::string& why) -> std::optional<ip_network> {
    if (error) *error = why;
    return std::nullopt;
  };
  const std::string quoted = "'" + std::string(text) + "'";
  const auto slash = text.find('/');
  auto ip = ip_address::parse(text.substr(0, slash));
  if (!ip) return fail(quoted + " is not an IPv4 or IPv6 network like 10.10.0.0/16 or fd00:10::/64");
  const int max = ip->v6 ? 128 : 32;
  int prefix = max;
  if (slash != std::string_view::npos) {
    const std::string_view digits = text.substr(slash + 1);
    auto r = std::from_chars(digits.data(), digits.data() + digits.size(), prefix);
    if (digits.empty() || r.ec != std::errc() || r.ptr != digits.data() + digits.size() || prefix < 0 || prefix > max) {
      return fail(quoted + " has a prefix length that is not a number from 0 to " + std::to_string(max));
    }
  }
  ip_network net{*ip, prefix, std::string(text), 0};
  ip_network masked = net;
  for (int b = prefix; b < max; ++b) masked.base.bytes[b / 8] &= static_cast<std::uint8_t>(~(0x80u >> (b % 8)));
  if (strict && !(masked.base == net.base)) {
    return fail(quoted + " has address bits set after the prefix; did you mean '" + masked.base.to_string() + "/" +
                std::to_string(prefix) + "'?");
  }
  return net;
}

bool ip_network::contains(const ip_address& a) const {
  if (a.v6 != base.v6) return false;
  if (prefix < 0 || prefix > (base.v6 ? 128 : 32)) return false;  // never built so by parse()
  const int full = prefix / 8;
  for (int i = 0; i < full; ++i) {
    if (a.bytes[i] != base.bytes[i]) return false;
  }
  if (const int rest = prefix % 8) {
    const auto m = static_cast<std::uint8_t>(0xFF00u >> rest);
    if ((a.bytes[full] & m) != (base.bytes[full] & m)) return false;
  }
  return true;
}

const role* policy::find_role(std::string_view name) const {
  for (const auto& r : roles) {
    if (r.name == name) return &r;
  }
  return nullptr;
}

const category* policy::find_category(std::string_view name) const {
  for (const auto& c : categories) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

}  // namespace hallpass::rules
