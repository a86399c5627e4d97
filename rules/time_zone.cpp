#include "rules/time_zone.hpp"

#include <algorithm>
#include <cstring>

namespace hallpass::rules {
namespace {

void set_error(std::string* error, std::string message) {
  if (error) *error = std::move(message);
}

std::int64_t read_be(std::string_view b, std::size_t at, int size) {
  std::uint64_t v = 0;
  for (int i = 0; i < size; ++i) v = (v << 8) | static_cast<unsigned char>(b[at + i]);
  if (size == 4) return static_cast<std::int32_t>(static_cast<std::uint32_t>(v));
  return static_cast<std::int64_t>(v);
}

// Seconds since the start of `year` (UTC-like local count) at which rule r fires.
std::int64_t rule_day_start(int y, int month, int week, int weekday) {
  using namespace std::chrono;
  const year_month ym{year{y}, std::chrono::month{static_cast<unsigned>(month)}};
  sys_days d;
  if (week == 5) {
    d = sys_days{ym / weekday_last{std::chrono::weekday{static_cast<unsigned>(weekday)}}};
  } else {
    d = sys_days{ym / std::chrono::weekday{static_cast<unsigned>(weekday)}[week]};
  }
  return d.time_since_epoch().count() * 86400;
}

}  // namespace

time_zone time_zone::utc() {
  time_zone z;
  z.name_ = "UTC";
  return z;
}

std::optional<time_zone::posix_tz> time_zone::parse_posix(std::string_view tz, std::string* error) {
  std::size_t i = 0;
  auto fail = [&](const char* what) -> std::optional<posix_tz> {
    set_error(error, std::string("time zone rule '") + std::string(tz) + "': " + what);
    return std::nullopt;
  };
  auto name = [&](std::string& out) -> bool {
    if (i < tz.size() && tz[i] == '<') {
      auto close = tz.find('>', i);
      if (close == tz.npos) return false;
      out = std::string(tz.substr(i + 1, close - i - 1));
      i = close + 1;
      return true;
    }
    std::size_t start = i;
    while (i < tz.size() && std::isalpha(static_cast<unsigned char>(tz[i]))) ++i;
    out = std::string(tz.substr(start, i - start));
    return i - start >= 3;
  };
  // [+-]hh[:mm[:ss]] -> seconds
  auto hms = [&](std::int64_t& out) -> bool {
    int sign = 1;
    if (i < tz.size() && (tz[i] == '+' || tz[i] == '-')) sign = tz[i++] == '-' ? -1 : 1;
    std::int64_t parts[3] = {0, 0, 0};
    for (int p = 0; p < 3; ++p) {
      if (i >= tz.size() || !std::isdigit(static_cast<unsigned char>(tz[i]))) {
        if (p == 0) return false;
        break;
      }
      std::int64_t v = 0;
      while (i < tz.size() && std::isdigit(static_cast<unsigned char>(tz[i]))) v = v * 10 + (tz[i++] - '0');
      parts[p] = v;
      if (p < 2 && i < tz.size() && tz[i] == ':') {
        ++i;
      } else {
        break;
      }
    }
    out = sign * (parts[0] * 3600 + parts[1] * 60 + parts[2]);
    return true;
  };
  auto number = [&](int& out) -> bool {
    if (i >= tz.size() || !std::isdigit(static_cast<unsigned char>(tz[i]))) return false;
    out = 0;
    while (i < tz.size() && std::isdigit(static_cast<unsigned char>(tz[i]))) out = out * 10 + (tz[i++] - '0');
    return true;
  };
  auto rule = [&](posix_rule& r) -> bool {
    if (i >= tz.size() || tz[i] != 'M') return false;  // only the Mm.w.d form is used by tzdata
    ++i;
    if (!number(r.month) || i >= tz.size() || tz[i++] != '.') return false;
    if (!number(r.week) || i >= tz.size() || tz[i++] != '.') return false;
    if (!number(r.weekday)) return false;
    if (r.month < 1 || r.month > 12 || r.week < 1 || r.week > 5 || r.weekday > 6) return false;
    r.time = 7200;
    if (i < tz.size() && tz[i] == '/') {
      ++i;
      if (!hms(r.time)) return false;
    }
    return true;
  };

  posix_tz out;
  std::int64_t std_west = 0;
  if (!name(out.std_name)) return fail("missing standard time name");
  if (!hms(std_west)) return fail("missing standard offset");
  out.std_offset = -std_west;
  if (i == tz.size()) return out;
  if (!name(out.dst_name)) return fail("bad daylight-saving name");
  out.has_dst = true;
  out.dst_offset = out.std_offset + 3600;
  if (i < tz.size() && tz[i] != ',') {
    std::int64_t dst_west = 0;
    if (!hms(dst_west)) return fail("bad daylight-saving offset");
    out.dst_offset = -dst_west;
  }
  if (i >= tz.size() || tz[i++] != ',') return fail("daylight saving without rules");
  if (!rule(out.start)) return fail("bad daylight-saving start rule (only Mm.w.d is supported)");
  if (i >= tz.size() || tz[i++] != ',') return fail("missing daylight-saving end rule");
  if (!rule(out.end)) return fail("bad daylight-saving end rule (only Mm.w.d is supported)");
  if (i != tz.size()) return fail("unexpected text at the end");
  return out;
}

bool time_zone::posix_in_dst(std::int64_t utc) const {
  const posix_tz& p = *footer_;
  if (!p.has_dst) return false;
  using namespace std::chrono;
  const auto ymd = year_month_day{floor<days>(sys_seconds{seconds{utc + p.std_offset}})};
  const int y = static_cast<int>(ymd.year());
  // Both transitions expressed as UTC instants for this year.
  std::int64_t start = rule_day_start(y, p.start.month, p.start.week, p.start.weekday) + p.start.time - p.std_offset;
  std::int64_t end = rule_day_start(y, p.end.month, p.end.week, p.end.weekday) + p.end.time - p.dst_offset;
  return start < end ? (utc >= start && utc < end) : !(utc >= end && utc < start);
}

std::optional<time_zone> time_zone::from_posix(std::string name, std::string_view tz, std::string* error) {
  auto p = parse_posix(tz, error);
  if (!p) return std::nullopt;
  time_zone z;
  z.name_ = std::move(name);
  z.footer_ = *p;
  z.types_ = {{static_cast<std::int32_t>(p->std_offset), p->std_name}};
  return z;
}

std::optional<time_zone> time_zone::from_tzif(std::string name, std::string_view b, std::string* error) {
  auto fail = [&](const std::string& what) -> std::optional<time_zone> {
    set_error(error, "time zone file for '" + name + "': " + what);
    return std::nullopt;
  };
  if (b.size() < 44 || b.substr(0, 4) != "TZif") return fail("not a TZif file");
  const char version = b[4];
  struct counts {
    std::int64_t isutc, isstd, leap, time, type, chars;
  };
  auto header = [&](std::size_t at) -> counts {
    return {read_be(b, at + 20, 4), read_be(b, at + 24, 4), read_be(b, at + 28, 4),
            read_be(b, at + 32, 4), read_be(b, at + 36, 4), read_be(b, at + 40, 4)};
  };
  auto block_size = [](const counts& c, int tsize) -> std::size_t {
    return c.time * tsize + c.time + c.type * 6 + c.chars + c.leap * (tsize + 4) + c.isstd + c.isutc;
  };
  std::size_t at = 0;
  counts c = header(0);
  int tsize = 4;
  if (c.time < 0 || c.type <= 0 || c.chars < 0 || c.leap < 0 || c.isstd < 0 || c.isutc < 0)
    return fail("bad header counts");
  if (version >= '2') {
    at = 44 + block_size(c, 4);
    if (b.size() < at + 44 || b.substr(at, 4) != "TZif") return fail("missing version 2 header");
    c = header(at);
    tsize = 8;
    if (c.time < 0 || c.type <= 0 || c.chars < 0 || c.leap < 0 || c.isstd < 0 || c.isutc < 0)
      return fail("bad version 2 header counts");
  }
  std::size_t data = at + 44;
  if (b.size() < data + block_size(c, tsize)) return fail("truncated");

  time_zone z;
  z.name_ = std::move(name);
  z.types_.assign(static_cast<std::size_t>(c.type), {});
  const std::size_t types_at = data + c.time * tsize + c.time;
  const std::size_t chars_at = types_at + c.type * 6;
  const std::string_view chars = b.substr(chars_at, static_cast<std::size_t>(c.chars));
  for (std::int64_t t = 0; t < c.type; ++t) {
    z.types_[t].offset = static_cast<std::int32_t>(read_be(b, types_at + t * 6, 4));
    // The abbreviation: a NUL-terminated string at its index into the characters.
    const auto index = static_cast<unsigned char>(b[types_at + t * 6 + 5]);
    if (index < chars.size()) z.types_[t].name = std::string(chars.substr(index, chars.find('\0', index) - index));
  }
  z.transitions_.reserve(c.time);
  for (std::int64_t t = 0; t < c.time; ++t) {
    z.transitions_.push_back(read_be(b, data + t * tsize, tsize));
    auto idx = static_cast<unsigned char>(b[data + c.time * tsize + t]);
    if (idx >= z.types_.size()) return fail("transition names a type that does not exist");
    z.types_after_.push_back(idx);
  }
  if (!std::is_sorted(z.transitions_.begin(), z.transitions_.end())) return fail("transitions out of order");

  if (version >= '2') {
    std::size_t footer = data + block_size(c, tsize);
    if (footer < b.size() && b[footer] == '\n') {
      auto close = b.find('\n', footer + 1);
      if (close != std::string_view::npos && close > footer + 1) {
        std::string perr;
        auto p = parse_posix(b.substr(footer + 1, close - footer - 1), &perr);
        if (!p) return fail(perr);
        z.footer_ = *p;
      }
    }
  }
  return z;
}

const time_zone::local_type* time_zone::table_type(std::int64_t utc) const {
  if (transitions_.empty() || utc >= transitions_.back()) {
    if (footer_) return nullptr;
    return transitions_.empty() ? &types_[0] : &types_[types_after_.back()];
  }
  const auto it = std::upper_bound(transitions_.begin(), transitions_.end(), utc);
  if (it == transitions_.begin()) return &types_[0];
  return &types_[types_after_[static_cast<std::size_t>(it - transitions_.begin() - 1)]];
}

std::chrono::seconds time_zone::offset_at(std::chrono::sys_seconds t) const {
  const std::int64_t s = t.time_since_epoch().count();
  if (const local_type* type = table_type(s)) return std::chrono::seconds{type->offset};
  return std::chrono::seconds{posix_in_dst(s) ? footer_->dst_offset : footer_->std_offset};
}

const std::string& time_zone::abbreviation_at(std::chrono::sys_seconds t) const {
  const std::int64_t s = t.time_since_epoch().count();
  if (const local_type* type = table_type(s)) return type->name;
  return posix_in_dst(s) ? footer_->dst_name : footer_->std_name;
}

std::chrono::sys_seconds time_zone::to_sys(std::chrono::local_seconds t) const {
  using namespace std::chrono;
  const std::int64_t local = t.time_since_epoch().count();
  // Offsets never exceed 26 hours; probe the offsets in force around the candidate instants.
  // Take the earliest instant whose local time equals t (first occurrence when ambiguous).
  std::optional<std::int64_t> best;
  for (std::int64_t probe : {local - 86400 * 2, local - 86400, local, local + 86400, local + 86400 * 2}) {
    const std::int64_t off = offset_at(sys_seconds{seconds{probe}}).count();
    const std::int64_t candidate = local - off;
    if (offset_at(sys_seconds{seconds{candidate}}).count() == off) {
      if (!best || candidate < *best) best = candidate;
    }
  }
  if (best) return sys_seconds{seconds{*best}};
  // In a gap: use the offset before the gap, which lands just after it.
  const std::int64_t before = offset_at(sys_seconds{seconds{local - 86400}}).count();
  return sys_seconds{seconds{local - before}};
}

}  // namespace hallpass::rules
