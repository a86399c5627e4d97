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

// The words a rule's `during` reads as spans of the school day rather than period names: each
// kind (plural and singular), all periods, outside school hours and any time. The loader takes
// both its `during` parsing and its warning about periods named like these from this one table.
struct during_keyword {
  enum class span : std::uint8_t { kind, school_hours, outside_school_hours, any_time };
  std::string_view word;
  span what;
  period_kind kind = period_kind::lesson;  // for span::kind
  bool listed = true;                      // shown in messages; false for singular spellings
};
inline constexpr during_keyword during_keywords[] = {
    {"lessons", during_keyword::span::kind, period_kind::lesson},
    {"lesson", during_keyword::span::kind, period_kind::lesson, false},
    {"breaks", during_keyword::span::kind, period_kind::break_time},
    {"break", during_keyword::span::kind, period_kind::break_time, false},
    {"lunch", during_keyword::span::kind, period_kind::lunch},
    {"other", during_keyword::span::kind, period_kind::other},
    {"school_hours", during_keyword::span::school_hours},
    {"outside_school_hours", during_keyword::span::outside_school_hours},
    {"any_time", during_keyword::span::any_time},
};
// Null when `word` is not a keyword (it may then name a period).
const during_keyword* find_during_keyword(std::string_view word);

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
  // The `during` mask a keyword stands for.
  std::uint64_t bits_of(const during_keyword& k) const;
};

}  // namespace hallpass::rules
