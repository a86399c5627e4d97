// The policy's school section: its name, its time zone (read from the system's tzdata), its
// timetable of named periods, and its terms and holidays.
#include "rules/loader.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cstdio>

namespace hallpass::rules::loading {

namespace {

std::string iso_day(std::chrono::sys_days d) {
  const std::chrono::year_month_day ymd{d};
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02u", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
  return buf;
}

}  // namespace

void loader::load_school(const YAML::Node& s) {
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

// Terms a school forgot to renew: once every listed term has ended, every day is outside
// term time, so no rule scoped to lessons (or any period) applies: blocks lapse without a
// word. And two terms that overlap are a typing slip (a year wrong).
void loader::warn_about_terms(const YAML::Node& where) {
  using namespace std::chrono;
  auto terms = p_->timetable.terms;
  if (terms.empty()) return;
  std::sort(terms.begin(), terms.end(),
            [](const date_range& a, const date_range& b) { return a.first < b.first; });
  const auto mark = where.Mark();
  for (std::size_t i = 1; i < terms.size(); ++i) {
    if (terms[i].first <= terms[i - 1].last) {
      warnings_.push_back({file_, mark.line + 1, mark.column + 1,
                           "school.terms: '" + terms[i - 1].name + "' and '" + terms[i].name +
                               "' overlap (a year mistyped?)"});
    }
  }
  // A term (or holiday) of more than a year is a year mistyped (2126 for 2026): it also lifts
  // the cap the end of term puts on exceptions (outside-in audit of time, 2026-12-07, F5).
  for (const auto& t : terms) {
    if (t.last - t.first > days(366)) {
      warnings_.push_back({file_, mark.line + 1, mark.column + 1,
                           "school.terms: '" + t.name + "' runs from " + iso_day(t.first) + " to " + iso_day(t.last) +
                               ", more than a year (a year mistyped?); exceptions may last to the end of term"});
    }
  }
  const auto now = opt_.now ? *opt_.now : floor<seconds>(system_clock::now());
  const sys_days today{floor<days>(p_->zone.to_local(now)).time_since_epoch()};
  const auto last =
      std::max_element(terms.begin(), terms.end(),
                       [](const date_range& a, const date_range& b) { return a.last < b.last; });
  if (last->last < today) {
    warnings_.push_back({file_, mark.line + 1, mark.column + 1,
                         "school.terms: the last term listed ('" + last->name + "') ended on " +
                             iso_day(last->last) +
                             ": every day since is outside term time, so no rule for lessons or "
                             "any other period applies; add the coming terms"});
  }
}

void loader::load_zone(const std::string& name, const YAML::Node& where) {
  const bool safe = !name.empty() && name.find("..") == std::string::npos && name.front() != '/' &&
                    std::all_of(name.begin(), name.end(), [](char c) {
                      return std::isalnum(static_cast<unsigned char>(c)) || c == '/' || c == '_' ||
                             c == '-' || c == '+';
                    });
  if (!safe) {
    error(where,
          "school.timezone " + quote(name) + " is not a time zone name like 'Europe/London'");
    return;
  }
  // Zones a school's clock must not follow: "right/..." counts leap seconds, which the
  // system clock does not (and Debian's copies stop at their last listed change, so they
  // keep summer time for ever); "posixrules" and "Factory" are tzdata's internals.
  if (name.starts_with("right/") || name == "posixrules" || name == "Factory") {
    error(where, "school.timezone " + quote(name) +
                     " is not a zone for a school's clock; use a place name like 'Europe/London'" +
                     (name.starts_with("right/") ? " ('" + name.substr(6) + "')" : std::string()));
    return;
  }
  // 'localtime' is the gateway's own setting (a link to /etc/localtime), not the school's: on a
  // gateway kept in UTC the timetable would be an hour out all summer, and it changes when
  // someone changes the machine (outside-in audit of time, 2026-12-07, F2: accepted silently).
  if (name == "localtime" || name.ends_with("/localtime")) {
    error(where, "school.timezone " + quote(name) +
                     " is whatever zone the gateway is set to, not the school's: name the school's zone, like "
                     "'Europe/London'");
    return;
  }
  // A zone with no summer time and no offset for a school that has one: 'GMT' is UTC all year,
  // so lessons and exceptions are an hour out from the end of March to the end of October
  // (explain audit, 2026-12-06, L5: check said nothing). Judged by the zone's own data, so
  // every spelling ('Etc/UTC', 'posix/Etc/GMT', 'Zulu') is caught (the time audit of
  // 2026-12-07 found 'posix/Etc/UTC' missed by a list of names).
  const auto warn_no_summer_time = [&](const time_zone& z) {
    using namespace std::chrono;
    const auto now = opt_.now ? *opt_.now : floor<seconds>(system_clock::now());
    const auto winter = z.offset_at(now), summer = z.offset_at(now + hours(24 * 182));
    if (winter != seconds(0) || summer != seconds(0)) return;
    const auto mark = where.Mark();
    warnings_.push_back({file_, mark.line + 1, mark.column + 1,
                         "school.timezone " + quote(name) +
                             " has no summer time: for a school in the UK, 'Europe/London' follows BST (the timetable "
                             "would be an hour out from the end of March to the end of October)"});
  };
  if (name == "UTC") {
    p_->zone = time_zone::utc();
    warn_no_summer_time(p_->zone);
    return;
  }
  std::string err;
  auto bytes = read_file(fs::path(opt_.tzdir) / name, &err);
  if (!bytes) {
    error(where, "school.timezone " + quote(name) + " is not a known time zone (" +
                     (fs::path(opt_.tzdir) / name).string() + " " + err + ")");
    return;
  }
  auto z = time_zone::from_tzif(name, *bytes, &err);
  if (!z) {
    error(where, err);
    return;
  }
  warn_no_summer_time(*z);
  p_->zone = std::move(*z);
}

std::optional<int> loader::parse_minute(const YAML::Node& n, const std::string& what) {
  auto s = scalar(n, what);
  if (!s) return std::nullopt;
  int h = -1, m = -1;
  const auto digit = [&](std::size_t i) { return (*s)[i] >= '0' && (*s)[i] <= '9'; };  // not isdigit: a char may be negative
  if (s->size() == 5 && (*s)[2] == ':' && digit(0) && digit(1) && digit(3) && digit(4)) {
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

std::optional<std::chrono::sys_days> loader::parse_date(const YAML::Node& n,
                                                        const std::string& what) {
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
  const std::chrono::year_month_day ymd{std::chrono::year{y}, std::chrono::month{mo},
                                        std::chrono::day{d}};
  if (!shape || !ymd.ok()) {
    error(n, what + " must be a date like 2026-09-03 (YYYY-MM-DD), not " + quote(*s));
    return std::nullopt;
  }
  return std::chrono::sys_days{ymd};
}

std::vector<date_range> loader::load_dates(const YAML::Node& list, const std::string& what) {
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
      if (n["from"] || n["to"])
        error(n, item + " has both 'date' and 'from'/'to'; use one or the other");
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

void loader::load_timetable(const YAML::Node& t) {
  static const std::vector<std::string> day_names = {"sunday",   "monday", "tuesday", "wednesday",
                                                     "thursday", "friday", "saturday"};
  if (!check_map(t, "school.timetable",
                 {"weekdays", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
                  "sunday"}))
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
    const std::string what =
        "school.timetable." + (from_weekdays[d] ? std::string("weekdays") : day_names[d]);
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
        // `during` reads these words as kinds (parse_during): a period so named cannot be chosen
        // alone by its name (policy audit, 2026-12-05).
        const bool first_reading = !from_weekdays[d] || d == 1;  // the weekdays' list is read for five days
        if (first_reading && find_during_keyword(pd.name)) {
          warn_at(n["name"], item + " is named " + quote(pd.name) + ", a word `during` reads as every period of its "
                                   "kind or time: `during: [" + pd.name + "]` does not select this period alone "
                                   "(give it another name, such as " + quote("Main " + pd.name) + ", to choose it by name)");
        }
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
        // One that crosses midnight (22:00-06:00) is two: say how to write it (outside-in audit
        // of time, 2026-12-07, F10).
        error(n["to"], item + " (" + pd.name + ") ends at or before it starts" +
                           (to < from ? std::string("; a period across midnight is two: one to \"24:00\", and one from "
                                                    "\"00:00\" on the next day")
                                      : std::string()));
        continue;
      }
      pd.start_minute = from;
      pd.end_minute = to;
      // A period's bit stands for its name and kind together: "Period 5" a lesson from Monday
      // to Thursday and golden time (other) on Friday are two bits, so that `during: [lessons]`
      // follows the kind in force that day. One bit per name let the Friday kind apply every
      // day (policy audit, 2026-12-05). `during: [Period 5]` selects both (parse_during).
      auto& names = p_->timetable.period_names;
      auto& kinds = p_->timetable.period_kinds;
      std::size_t bit = 0;
      while (bit < names.size() && !(names[bit] == pd.name && kinds[bit] == pd.kind)) ++bit;
      if (bit == names.size()) {
        if (names.size() >= timetable::max_periods) {
          error(n, "the timetable has more than 63 different periods (by name and kind)");
          continue;
        }
        names.push_back(pd.name);
        kinds.push_back(pd.kind);
      }
      pd.bit = static_cast<int>(bit);
      period_marks_[d].push_back(n.Mark());
      day.push_back(std::move(pd));
    }
    // Sort by start and reject overlaps.
    std::vector<std::size_t> order(day.size());
    for (std::size_t k = 0; k < order.size(); ++k) order[k] = k;
    std::sort(order.begin(), order.end(),
              [&](auto a, auto b) { return day[a].start_minute < day[b].start_minute; });
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
    const bool seen =
        std::any_of(errors_.begin() + static_cast<std::ptrdiff_t>(errors_before),
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

}  // namespace hallpass::rules::loading
