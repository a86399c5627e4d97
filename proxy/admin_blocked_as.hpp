// What blocks the page a request asks for, for the people who decide it (`hallpassctl show`,
// `list` and `approve`): the policy's category and rule, whether the school watches that
// category for safeguarding (alerts.categories: a pupil asking for such a page may be
// disclosing something, and the DSL heard of it), and a local block (a reported page), which
// wins over any exception. Decided with the one decision function (rules/decision.hpp), so it
// says what the proxy does.
//
// People-side audit, 2026-12-07: a request for a self-harm page looked like any other in
// `show`, and `approve` opened it with no word of safeguarding (H1); an approval of a reported
// page said "approved" and opened nothing (M1); the technician could read a pupil's words in a
// request for a watched category, a possible disclosure (M10).
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <optional>
#include <string>

#include "proxy/configuration.hpp"
#include "rules/exception_index.hpp"

namespace hallpass {

struct request_block {
  std::string role;         // the role it was decided for
  std::string category;     // the policy's category name ("self_harm"), or ""
  std::string rule;         // "pupils rule 3", "default for pupils"
  std::string reason;       // the rule's reason, or ""
  std::string local_block;  // "local block 2" when a reported page's block covers it now, or ""
  bool watched = false;     // category is one of alerts.categories
};

// nullopt when the page is open to the request's people under the policy and the local
// entries (index may be null), or the request's URL cannot be read. A request for roles is
// decided for each (the first that blocks); for a client address, for the role its network
// gives; for a user (the proxy knows their role only when they sign in), for every role.
std::optional<request_block> request_blocked_as(const configuration& cfg, const rules::exception_index* index,
                                                const boost::json::object& request, std::chrono::sys_seconds now);

// Adds "blocked_as" to a request object of `show`, or to each of `list`'s ("requests"), and,
// for a caller who may not read disclosures (neither the DSL nor the headteacher), replaces
// the pupil's own words in a request for a watched category by a note saying why
// ("withheld"). The request's record is unchanged.
void annotate_requests(boost::json::value& data, const configuration& cfg, const rules::exception_index* index,
                       bool may_read_disclosures, std::chrono::sys_seconds now);

// The same withholding in an audit entry about a request (its "before" and "after" request
// objects), for a caller who may not read disclosures: the audit log kept the words the `show`
// of the same request withheld.
void withhold_watched_words_in_audit(boost::json::object& entry, const configuration& cfg,
                                     const rules::exception_index* index, std::chrono::sys_seconds now);

// The blocked_as object as annotate_requests writes it.
boost::json::object blocked_as_json(const request_block& b);

}  // namespace hallpass
