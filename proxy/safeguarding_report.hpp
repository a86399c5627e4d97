// The weekly safeguarding report (`hallpass safeguarding-report`; README.md, "The weekly
// safeguarding report"): the access log of a period read into what the designated safeguarding
// lead needs, in words a person who is not technical can read. The DfE filtering and
// monitoring standards ask for weekly reports and an incident record (who tried what, when,
// from which device); the policies have the e-safety officer monitor use (000 7.4; 002) and act
// on attempts to get round the filter (000 7.2; 002).
//
// report_builder is pure: it takes access log lines one at a time (proxy/README.md, "Access
// log") and keeps counts and a bounded number of rows, never the lines, so a month of a large
// school's log needs little memory. Lines that are not the log's JSON are counted and skipped.
// The files (the log and logrotate's rotations, gzip or not) are read by log_files.hpp, and
// the command is safeguarding_report_command.cpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "rules/time_zone.hpp"
#include "store/incident_summary.hpp"

namespace hallpass {

struct report_period {
  std::chrono::sys_seconds from{}, to{};
};

class report_builder {
 public:
  // `high_risk`: the categories whose blocks are listed one by one (alerts.categories).
  // `max_rows`: the most rows kept for each list; the rest are counted.
  report_builder(report_period period, std::vector<std::string> high_risk, std::size_t max_rows = 200);

  // One line of the access log (without its newline). Lines outside the period are skipped.
  void add_line(std::string_view line);

  // The report, Markdown that reads as plain text: times school-local. `sources` names the
  // files read, `problems` what could not be read or was read only in part (said near the top:
  // the report is then incomplete).
  std::string render(const rules::time_zone& zone, std::string_view school_name,
                     const std::vector<std::string>& sources, const std::vector<std::string>& problems = {}) const;

  // The incident records (store/incidents.cpp; README.md "Incident records") open at any time
  // in the period, as exception_store::incident_summaries reads them: numbers, whom, dates,
  // never the words (a report is mailed). `problem`: why they could not be read; `omitted`:
  // how many more there are than the rows given.
  void set_incident_records(std::vector<store::incident_summary> records, std::string problem = {},
                            std::uint64_t omitted = 0);

  std::uint64_t requests() const { return requests_; }
  std::uint64_t unreadable() const { return unreadable_; }

 private:
  struct person {
    std::string user, role;
    std::string device;      // for people: "pc-08 (10.0.0.8)", its DHCP name or hardware address and its address
    std::string device_key;  // the device as counted: its hardware address when known, else its address
    std::string key() const;
  };
  struct incident {  // blocks of one site for one person within 10 minutes of each other
    std::chrono::sys_seconds first, last;
    person who;
    std::string category, site, search;
    std::uint64_t count = 0;
  };
  struct attempts {  // attempts to get round the filter by one person
    std::chrono::sys_seconds first, last;
    person who;
    std::uint64_t count = 0;
    std::vector<std::string> sites;  // the first few distinct
  };
  struct ban_row {
    std::chrono::sys_seconds at;
    std::string how, kind, subject, until;
    std::int64_t id = 0;
  };
  struct search_row {
    std::chrono::sys_seconds at;
    person who;
    std::string search, category;
  };
  struct tally {
    std::uint64_t blocks = 0;
    std::set<std::string> devices;  // at most max_devices_per_tally kept
  };

  void add_request(const person& who, std::chrono::sys_seconds at, bool blocked, bool circumvention,
                   const std::string& category, const std::string& site, const std::string& search);

  report_period period_;
  std::vector<std::string> high_risk_;
  std::size_t max_rows_;
  std::uint64_t requests_ = 0, blocked_ = 0, unreadable_ = 0, outside_ = 0;
  std::uint64_t alerts_[3] = {0, 0, 0};  // category, circumvention, ban
  // Requests sent with the block page's form for a page in a watched category (their alert
  // lines: "request"): a possible disclosure each, listed by number, never with the words.
  struct watched_request {
    std::chrono::sys_seconds at;
    person who;
    std::string category;
    std::int64_t id = 0;
  };
  std::vector<watched_request> watched_requests_;
  std::uint64_t watched_requests_total_ = 0;
  // What the log read covers: its earliest line, and whether any line is from before the period
  // (a log that starts inside the period leaves its beginning out of the report, said so).
  std::optional<std::chrono::sys_seconds> earliest_;
  bool before_period_ = false;
  std::vector<incident> incidents_;
  std::uint64_t incidents_left_out_ = 0;
  std::unordered_map<std::string, std::size_t> open_incident_;  // person key + site -> index
  // Rows each person has: one device's 210 sites filled the table's 200 rows, and a later
  // child's self-harm block was in no row (outside-in audit, 2026-12-06, H2).
  std::unordered_map<std::string, std::size_t> incident_rows_;
  std::vector<attempts> attempts_;
  std::unordered_map<std::string, std::size_t> attempts_by_person_;
  std::uint64_t attempts_left_out_ = 0;
  std::vector<ban_row> bans_;
  std::vector<search_row> searches_;
  std::uint64_t searches_left_out_ = 0;
  std::map<std::string, tally> categories_;
  std::unordered_map<std::string, std::pair<std::uint64_t, std::string>> sites_;  // blocked host -> count, category
  std::uint64_t sites_left_out_ = 0;
  std::set<std::string> people_;  // distinct people (or devices) with any request, bounded
  std::set<std::string> high_risk_people_, attempt_people_;  // the same, bounded
  std::uint64_t high_risk_blocks_ = 0, attempts_total_ = 0, bans_total_ = 0;
  std::optional<std::vector<store::incident_summary>> records_;  // nullopt: not given (no section)
  std::string records_problem_;
  std::uint64_t records_omitted_ = 0;
};

// "2026-11-23T11:00:00.123+00:00" (the access log's time) as an instant; nullopt if malformed.
std::optional<std::chrono::sys_seconds> parse_log_time(std::string_view text);

// The whole school week before the one `now` is in: Monday 00:00 to Monday 00:00, school time
// (the weekly report's default period, the same whenever in the week it runs).
report_period last_school_week(const rules::time_zone& zone, std::chrono::sys_seconds now);

}  // namespace hallpass
