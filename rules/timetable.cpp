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

std::uint64_t timetable::bits_of_kind(period_kind k) const {
  std::uint64_t bits = 0;
  for (const auto& day : days) {
    for (const auto& p : day) {
      if (p.kind == k) bits |= 1ull << p.bit;
    }
  }
  return bits;
}

std::uint64_t timetable::all_period_bits() const {
  std::uint64_t bits = 0;
  for (const auto& day : days) {
    for (const auto& p : day) bits |= 1ull << p.bit;
  }
  return bits;
}

}  // namespace hallpass::rules
