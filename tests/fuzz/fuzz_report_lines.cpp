// libFuzzer target: the safeguarding report's reading of access log lines
// (proxy/safeguarding_report.hpp). The log is the proxy's own, but its fields hold what clients
// chose (hosts, paths, search terms, user names typed at a sign-in), and a damaged or foreign
// file may hold anything. The input is split into lines as the file would be.
//
// Asserted beyond "no crash, no sanitizer report":
//  - every line is either read or counted unreadable, never both and never neither in total:
//    requests() + unreadable() never exceeds the lines given;
//  - the report is valid UTF-8 and has no character that acts on a terminal but '\n', and every
//    row of a table has as many unescaped '|' as its header (no field breaks a row or adds a
//    column);
//  - an instant parse_log_time reads, written back as the log writes times, reads the same.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "proxy/safeguarding_report.hpp"
#include "rules/explain.hpp"
#include "rules/utf8.hpp"
#include "tests/fuzz/fuzz_require.hpp"

using namespace hallpass;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  static const rules::time_zone zone = [] {
    std::string error;
    return *rules::time_zone::from_posix("Europe/London", "GMT0BST,M3.5.0/1,M10.5.0", &error);
  }();
  static const rules::time_zone utc = [] {
    std::string error;
    return *rules::time_zone::from_posix("UTC", "UTC0", &error);
  }();
  const report_period period{std::chrono::sys_days{std::chrono::year{2026} / 1 / 1},
                             std::chrono::sys_days{std::chrono::year{2027} / 1 / 1}};
  report_builder b(period, {"self_harm", "extremism"}, 20);
  std::size_t lines = 0;
  for (std::size_t at = 0; at < input.size();) {
    const auto nl = input.find('\n', at);
    const auto end = nl == std::string_view::npos ? input.size() : nl;
    const std::string_view line = input.substr(at, end - at);
    b.add_line(line);
    ++lines;
    if (const auto t = parse_log_time(line)) {
      using namespace std::chrono;
      // Four-digit years only, as the log writes them (an offset can move 0000-01-01 before them).
      if (*t >= sys_days{year{1} / 1 / 1} && *t < sys_days{year{9999} / 1 / 1}) {
        FUZZ_REQUIRE(parse_log_time(rules::iso8601_local(utc, *t)) == t);
      }
    }
    at = end + 1;
  }
  FUZZ_REQUIRE(b.requests() + b.unreadable() <= lines);
  const std::string report = b.render(zone, "School", {"access.log"});
  FUZZ_REQUIRE(rules::is_valid_utf8(report));
  // Each table: its header's unescaped '|' count, which every row of it must have.
  std::size_t line_start = 0, columns = 0;
  for (std::size_t i = 0; i < report.size(); ++i) {
    if (report[i] != '\n') continue;
    const std::string_view row = std::string_view(report).substr(line_start, i - line_start);
    line_start = i + 1;
    if (row.empty() || row.front() != '|') {
      columns = 0;
      continue;
    }
    std::size_t pipes = 0;
    for (std::size_t k = 0; k < row.size(); ++k) {
      if (row[k] == '\\') {
        ++k;  // an escape: the next character is text
      } else if (row[k] == '|') {
        ++pipes;
      }
    }
    FUZZ_REQUIRE(row.back() == '|');
    if (columns == 0) columns = pipes;
    FUZZ_REQUIRE(pipes == columns);
  }
  rules::for_each_character(
      report, [](std::uint32_t cp, std::string_view) { FUZZ_REQUIRE(cp == '\n' || !rules::is_unsafe_on_a_terminal(cp)); },
      [](unsigned char) { FUZZ_REQUIRE(false); });
  return 0;
}
