#include "rules/timetable.hpp"

namespace hallpass::rules {

std::string_view to_string(period_kind k) {
  switch (k) {
    case period_kind::lesson: return "lesson";
    case period_kind::break_time: return "break";
    case period_kind::lunch: return "lunch";
    case period_kind::other: return "other";
  }
  return "other";
}

std::uint64_t period_at::bit() const {
  return current ? (1ull << current->bit) : (1ull << timetable::outside_bit);
}

period_at timetable::at(std::chrono::local_seconds t) const {
  using namespace std::chrono;
  const auto day = std::chrono::floor<std::chrono::days>(t);
  const sys_days date{day.time_since_epoch()};
  for (const auto& h : holidays) {
    if (h.contains(date)) return {nullptr, h.name};
  }
  if (!terms.empty()) {
    bool in_term = false;
    for (const auto& term : terms) in_term = in_term || term.contains(date);
    if (!in_term) return {nullptr, "outside term time"};
  }
  const weekday wd{date};
  const auto& today = days[wd.c_encoding()];
  if (today.empty()) {
    return {nullptr, (wd == Saturday || wd == Sunday) ? "weekend" : "no lessons on this day"};
  }
  const int minute = static_cast<int>(duration_cast<minutes>(t - day).count());
  for (const auto& p : today) {
    if (minute >= p.start_minute && minute < p.end_minute) return {&p, {}};
  }
  if (minute < today.front().start_minute) return {nullptr, "before the school day"};
  if (minute >= today.back().end_minute) return {nullptr, "after the school day"};
  return {nullptr, "between periods"};
}

const during_keyword* find_during_keyword(std::string_view word) {
  for (const auto& k : during_keywords) {
    if (k.word == word) return &k;
  }
  return nullptr;
}

// A bit is a name and kind (period_names, period_kinds), so the kinds need no walk of the days.
std::uint64_t timetable::bits_of_kind(period_kind k) const {
  std::uint64_t bits = 0;
  for (std::size_t b = 0; b < period_kinds.size(); ++b) {
    if (period_kinds[b] == k) bits |= 1ull << b;
  }
  return bits;
}

std::uint64_t timetable::all_period_bits() const {
  return period_kinds.size() >= 64 ? ~0ull : (1ull << period_kinds.size()) - 1;
}

std::uint64_t timetable::bits_of(const during_keyword& k) const {
  switch (k.what) {
    case during_keyword::span::kind: return bits_of_kind(k.kind);
    case during_keyword::span::school_hours: return all_period_bits();
    case during_keyword::span::outside_school_hours: return 1ull << outside_bit;
    case during_keyword::span::any_time: return ~0ull;
  }
  return 0;
}

}  // namespace hallpass::rules
