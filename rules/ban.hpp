// How a ban decides (000 7.2: "a ban from using school computing equipment, other than with
// close supervision"; 002 the same). A banned user or device is on the restricted policy of
// the policy's `bans:` section: a request to a host on its supervised-use list (bans.policy:
// domains with their subdomains, and categories by domain) is decided exactly as it would be
// without the ban (the role's rules, local blocks, exceptions, locked categories); anything
// else is blocked by the ban, whatever an exception or the role would allow. A locked
// category or an invalid host stays decided as it was (blocked, with its own reason).
//
// The supervised list narrows, never widens: a site on it that the policy blocks stays blocked.
//
// Pure; any thread. rules::decide_request calls apply_ban after the exception overlay.
#pragma once

#include "rules/engine.hpp"
#include "rules/exception_index.hpp"

namespace hallpass::rules {

// Whether `host` is on the supervised-use list of p.bans.
bool on_supervised_list(const policy& p, const normalized_host& host);

// Overlays ban `b` on v (see above). The verdict then points into `b` (v.ban, v.rule_id) and
// into p (v.reason, the school's neutral bans.message). A request the policy blocked anyway
// keeps its matched_category, so a blocked circumvention site is still an attempt.
void apply_ban(const policy& p, const ban_entry& b, verdict& v);

}  // namespace hallpass::rules
