// The school day: named periods per weekday, term dates and holidays, and the question
// "which period is it at this local time?".
//
// Immutable after loading; thread-safe. Works on school-local time only: converting an
// instant to local time is the time_zone's job.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hallpass::rules {

enum class period_kind : std::uint8_t { lesson, break_time, lunch, other };
std::string_view to_string(period_kind k);

struct period {
  std::string name;  // "Lesson 1", "Break", "Lunch"
  period_kind kind = period_kind::lesson;
  int start_minute = 0;  // minutes after local midnight, inclusive
  int end_minute = 0;    // exclusive
  int bit = 0;           // this period's bit in a rule's `during` mask (shared by equal names)
};

// Inclusive range of local dates.
struct date_range {
  std::string name;
  std::chrono::sys_days first;
  std::chrono::sys_days last;
  bool contains(std::chrono::sys_days d) const { return d >= first && d <= last; }
};

// Where in the school week a moment falls.
struct period_at {
  const period* current = nullptr;  // null when the school day is over (or not a school day)
  std::string_view outside_why;     // when current is null: "weekend", "holiday: Half term", ...
  std::uint64_t bit() const;        // the bit a `during` mask must contain to match
};

class timetable {
 public:
  static constexpr int outside_bit = 63;  // `during: [outside_school_hours]`
  static constexpr int max_periods = 63;  // distinct periods, by name and kind

  // days[0] is Sunday (std::chrono::weekday::c_encoding()).
  std::array<std::vector<period>, 7> days;
  std::vector<date_range> terms;     // empty: every week is a school week
  std::vector<date_range> holidays;  // closures within terms (and bank holidays)
  // Index = bit: one bit per name and kind (a name may have two kinds on different days).
  std::vector<std::string> period_names;
  std::vector<period_kind> period_kinds;

  period_at at(std::chrono::local_seconds t) const;
  // Bits of every period whose kind is k.
  std::uint64_t bits_of_kind(period_kind k) const;
  std::uint64_t all_period_bits() const;
};

}  // namespace hallpass::rules
