// A school's time zone: converts instants to school-local wall time and back.
//
// GCC 12's <chrono> has no time-zone database, so the loader reads the system's compiled
// zone file (TZif, RFC 8536, from Debian's tzdata) once, when a policy is loaded; after that a
// time_zone is an immutable value and conversions are pure. Instants after the last transition
// in the file follow the POSIX TZ rule in its footer (e.g. "GMT0BST,M3.5.0/1,M10.5.0"), so the
// UK clock changes are right for every future year.
//
// Thread-safe once built (const member functions only).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hallpass::rules {

class time_zone {
 public:
  // Parses TZif bytes (versions 1-4). Returns nullopt with *error on malformed data.
  static std::optional<time_zone> from_tzif(std::string name, std::string_view bytes,
                                            std::string* error);
  // Parses a POSIX TZ string such as "GMT0BST,M3.5.0/1,M10.5.0" or "UTC0".
  static std::optional<time_zone> from_posix(std::string name, std::string_view tz,
                                             std::string* error);
  static time_zone utc();

  const std::string& name() const { return name_; }

  // UTC offset in force at the instant t.
  std::chrono::seconds offset_at(std::chrono::sys_seconds t) const;
  // The zone's own abbreviation at the instant t, as the zone file names it ("GMT", "BST",
  // "CET"; "+04" where tzdata has no letters for a zone): what rules::zone_label shows.
  const std::string& abbreviation_at(std::chrono::sys_seconds t) const;
  std::chrono::local_seconds to_local(std::chrono::sys_seconds t) const {
    return std::chrono::local_seconds{t.time_since_epoch() + offset_at(t)};
  }
  // Local wall time to an instant. An ambiguous time (the repeated hour in autumn) maps to its
  // first occurrence; a time in the spring gap maps to the instant the gap ends, shifted by
  // the missing amount (01:30 on the spring-forward day in London becomes 02:30 BST).
  std::chrono::sys_seconds to_sys(std::chrono::local_seconds t) const;

 private:
  struct posix_rule {
    // Mm.w.d/time: month 1-12, week 1-5 (5 = last), weekday 0-6 (Sunday = 0), seconds.
    int month = 0, week = 0, weekday = 0;
    std::int64_t time = 7200;
  };
  struct posix_tz {
    std::int64_t std_offset = 0;  // seconds east of UTC
    std::int64_t dst_offset = 0;
    bool has_dst = false;
    std::string std_name, dst_name;  // "GMT", "BST"; "+04" for "<+04>-4"
    posix_rule start, end;  // DST starts (local standard time) and ends (local DST time)
  };
  static std::optional<posix_tz> parse_posix(std::string_view tz, std::string* error);
  bool posix_in_dst(std::int64_t utc) const;

  // A local time type: its offset from UTC and its abbreviation ("BST", "+04").
  struct local_type {
    std::int32_t offset = 0;
    std::string name;
  };
  // The type the table gives for the instant `utc`, or null when the footer's rule applies
  // (after the last transition, or a zone of a POSIX rule alone).
  const local_type* table_type(std::int64_t utc) const;

  std::string name_;
  std::vector<std::int64_t> transitions_;  // UTC seconds, ascending
  std::vector<std::uint8_t> types_after_;  // the type (index into types_) in force from transitions_[i]
  std::vector<local_type> types_{{0, "UTC"}};  // types_[0] is in force before the first transition
  std::optional<posix_tz> footer_;
};

}  // namespace hallpass::rules
