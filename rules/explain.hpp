// What `hallpass check` and `hallpass explain` print. Pure: they format a loaded policy and
// verdicts computed by decide(), the same function the proxy calls.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rules/decision.hpp"
#include "rules/engine.hpp"
#include "rules/policy.hpp"

namespace hallpass::rules {

// A short human summary: roles, categories with entry counts, timetable.
std::string policy_summary(const policy& p);

// Splits an absolute URL (http://, https://, ws://, wss://; or host[:port][/path]) into facts.
// The returned views point into `url`. Returns an error message on a malformed URL.
struct url_parts {
  std::string_view scheme, host, path;
  std::uint16_t port = 0;
};
std::optional<url_parts> split_url(std::string_view url, std::string* error);

// Parses "YYYY-MM-DD HH:MM" as local wall time.
std::optional<std::chrono::local_seconds> parse_local_time(std::string_view text);

struct explanation {
  verdict v;
  std::vector<std::string> would_allow;  // for a block: what would let it through
  std::vector<std::string> notes;        // what the reader should know about how it was decided
};
// Decides with decide_request (decision.hpp), the proxy's own function: the policy, then the
// exceptions and local entries in `overlay` (null: the policy alone).
explanation explain(const policy& p, const request_facts& facts, const exception_index* overlay = nullptr);

std::string explanation_text(const policy& p, const request_facts& facts, const explanation& e);
std::string explanation_json(const policy& p, const request_facts& facts, const explanation& e);

// ISO 8601 with the offset, e.g. "2026-03-30T09:00:00+01:00".
std::string iso8601_local(const time_zone& z, std::chrono::sys_seconds t);

}  // namespace hallpass::rules
