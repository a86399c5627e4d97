// `hallpass safeguarding-report` (README.md, "The weekly safeguarding report"): reads the
// access log's files (log_files.hpp) into a report_builder (safeguarding_report.hpp), and
// prints the report or mails it through alerts.command (alerts.hpp).
#include <algorithm>
#include <filesystem>
#include <iostream>
#include <set>

#include "proxy/alerts.hpp"
#include "proxy/configuration.hpp"
#include "proxy/log_files.hpp"
#include "proxy/offline_commands.hpp"
#include "proxy/safeguarding_report.hpp"
#include "rules/explain.hpp"
#include "rules/yaml_reader.hpp"
#include "store/exception_store.hpp"

namespace hallpass {

int run_safeguarding_report(const std::vector<std::string>& args) {
  constexpr const char* usage_text =
      "usage: hallpass safeguarding-report [--since DURATION] [--config FILE] [--log FILE ...] "
      "[--categories A,B] [--state-dir DIR] [--send]\n"
      "  (default: the last whole school week, Monday to Monday in school time; --config "
      "/etc/hallpass/school.yaml; --log: the access log and its rotations beside it; --state-dir: the store\n"
      "  whose incident records it lists, default the config's state_dir)\n";
  std::string config = default_config_path, since_text, categories_text, state_dir, error;
  std::vector<std::string> logs;
  bool send = false, categories_given = false;
  std::set<std::string> seen;
  for (std::size_t i = 0; i < args.size() && error.empty(); ++i) {
    const std::string& a = args[i];
    if (a == "--send") {
      send = true;
      continue;
    }
    if (a != "--since" && a != "--config" && a != "--log" && a != "--categories" && a != "--state-dir") {
      error = "unknown argument '" + a + "'";
      break;
    }
    if (i + 1 >= args.size() || args[i + 1].empty()) {
      error = a + " needs a value";
      break;
    }
    if (a != "--log" && !seen.insert(a).second) {
      error = a + " is given twice";
      break;
    }
    const std::string& v = args[++i];
    if (a == "--since") since_text = v;
    if (a == "--config") config = v;
    if (a == "--state-dir") state_dir = v;
    if (a == "--log") logs.push_back(v);
    if (a == "--categories") {
      categories_text = v;
      categories_given = true;
    }
  }
  // A file named twice would be counted twice (outside-in audit, 2026-12-06).
  // Compared as resolved paths where they resolve, else as written.
  const auto resolved = [](const std::string& f) {
    std::error_code ec;
    auto p = std::filesystem::weakly_canonical(f, ec);
    return ec ? std::filesystem::path(f) : p;
  };
  for (std::size_t i = 0; i < logs.size() && error.empty(); ++i) {
    for (std::size_t j = 0; j < i && error.empty(); ++j) {
      if (resolved(logs[j]) == resolved(logs[i])) error = "--log names " + logs[i] + " twice";
    }
  }
  // --since: a rolling period up to now, in whole seconds; 0 for the default (the last week).
  std::chrono::seconds rolling{0};
  if (error.empty() && !since_text.empty()) {
    const auto d = rules::parse_duration(since_text);
    if (!d || *d < std::chrono::minutes(1) || *d > std::chrono::days(366)) {
      error = "--since must be a duration from 1m to 366d, like 7d or 24h, not '" + since_text + "'";
    } else {
      rolling = std::chrono::ceil<std::chrono::seconds>(*d);
    }
  }
  if (!error.empty()) {
    std::cerr << "hallpass safeguarding-report: " << error << "\n" << usage_text;
    return 2;
  }
  overrides o;
  if (!state_dir.empty()) o.state_dir = state_dir;
  const auto loaded = load_configuration(config, o, 1);
  if (!loaded.config) {
    for (const auto& e : loaded.errors) std::cerr << e.to_string() << "\n";
    std::cerr << "hallpass safeguarding-report: " << config << " is not valid; no report was made\n";
    return 1;
  }
  const auto& c = *loaded.config;
  std::vector<std::string> high_risk = c.daemon.alerts.categories;
  if (categories_given) {
    high_risk.clear();
    for (std::size_t at = 0; at <= categories_text.size();) {
      const auto comma = std::min(categories_text.find(',', at), categories_text.size());
      std::string name = categories_text.substr(at, comma - at);
      if (!name.empty()) high_risk.push_back(std::move(name));
      at = comma + 1;
    }
    // A misspelt name would list nothing and read as "no blocks": a false reassurance
    // (outside-in audit, 2026-12-06).
    std::string unknown;
    for (const auto& name : high_risk) {
      if (!c.policy->find_category(name)) unknown += (unknown.empty() ? "" : ", ") + rules::quote(name);
    }
    if (high_risk.empty() || !unknown.empty()) {
      std::cerr << "hallpass safeguarding-report: --categories "
                << (high_risk.empty() ? std::string("names no category") : "names no category of the policy: " + unknown)
                << "; the policy's categories are " << c.policy->category_list() << "\n";
      return 2;
    }
  }
  if (send && c.daemon.alerts.command.empty()) {
    std::cerr << "hallpass safeguarding-report: --send needs alerts.command (and alerts.to) in " << config
              << ": the program that sends mail\n";
    return 2;
  }
  const auto now = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
  // By default the last whole school week: the same report whenever the timer runs in the
  // week (a run caught up after the gateway was off, a clock change), so weekly reports
  // neither overlap nor leave a gap. --since: the time up to now.
  const report_period period =
      // The period ends before its `to` (a line at Monday 00:00 is the next week's): a rolling
      // one takes in the second it runs in too.
      rolling.count() > 0 ? report_period{now - rolling, now + std::chrono::seconds(1)}
                          : last_school_week(c.policy->zone, now);
  std::vector<std::string> files;
  if (logs.empty()) {
    const std::string& path = c.daemon.access_log.path;
    if (path.empty() || path == "-" || path == "off") {
      std::cerr << "hallpass safeguarding-report: " << config << " writes no access log file (access_log.path is "
                << (path.empty() ? "off" : path) << "): name the files with --log\n";
      return 1;
    }
    files = access_log_files(path, period.from);
  } else {
    files = logs;
  }
  report_builder report(period, high_risk);
  std::vector<std::string> read, problems;
  for (const auto& f : files) {
    const std::string e = read_log_lines(f, [&](std::string_view line) { report.add_line(line); });
    if (!e.empty()) {
      std::cerr << "hallpass safeguarding-report: " << e << "\n";
      problems.push_back(e);  // said in the report too: the DSL reads it, not the journal
      if (e.find("were read") == std::string::npos) continue;
    }
    read.push_back(f);
  }
  {
    // The incident records, read-only from the daemon's store (never created or changed here),
    // without their words.
    std::string store_error;
    std::uint64_t omitted = 0;
    std::optional<std::vector<store::incident_summary>> rows;
    if (auto store = store::exception_store::open_read_only(c.daemon.state_dir, c.policy->zone, &store_error)) {
      rows = store->incident_summaries(period.from, period.to, 200, &omitted, &store_error);
    }
    if (rows) {
      report.set_incident_records(std::move(*rows), {}, omitted);
    } else {
      // The report is then incomplete: said in it and by the exit code, as a log that could
      // not be read is (audit, 2026-12-06: exit 0 hid it from the timer).
      const std::string e = "the incident records in " + c.daemon.state_dir + ": " + store_error;
      std::cerr << "hallpass safeguarding-report: " << e << "\n";
      problems.push_back(e);
      report.set_incident_records({}, store_error);
    }
  }
  const int failures = static_cast<int>(problems.size());
  if (read.empty()) {
    std::cerr << "hallpass safeguarding-report: no access log could be read; no report was made\n";
    return 1;
  }
  const std::string text = report.render(c.policy->zone, c.policy->school_name, read, problems);
  if (!send) {
    std::cout << text;
    return failures ? 1 : 0;
  }
  std::string message;
  message += mail_to_header(c.daemon.alerts.to);
  message += "Subject: [hallpass] Safeguarding report, " + rules::local_minutes(c.policy->zone, period.from) +
             " to " + rules::local_minutes(c.policy->zone, period.to) + "\n";
  message += "Auto-Submitted: auto-generated\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
             "Content-Transfer-Encoding: 8bit\n\n" + text;
  const std::string why = run_alert_command(c.daemon.alerts.command, message, std::chrono::seconds(60));
  if (!why.empty()) {
    std::cerr << "hallpass safeguarding-report: the report was not sent: " << c.daemon.alerts.command.front() << " "
              << why << "\n";
    return 1;
  }
  std::cout << "Sent the report to " << (c.daemon.alerts.to.empty() ? c.daemon.alerts.command.front() : mail_address_list(c.daemon.alerts.to))
            << ".\n";
  return failures ? 1 : 0;
}

}  // namespace hallpass
