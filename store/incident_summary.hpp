// One incident record as the weekly report lists it (proxy/safeguarding_report.hpp): never its
// words (what happened, the actions, the outcome), which are the DSL's and the headteacher's,
// while a report is mailed. Read by exception_store::incident_summaries (store/incidents.cpp).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace hallpass::store {

struct incident_summary {
  std::int64_t id = 0;
  bool device = false;
  std::string subject, category;  // category "" when none was given
  std::chrono::sys_seconds happened{};
  std::size_t actions = 0;
  std::optional<std::chrono::sys_seconds> last_action, closed;  // closed: nullopt while open
};

}  // namespace hallpass::store
