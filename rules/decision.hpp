// The one decision hallpass makes about a request: the compiled policy first (rules, role
// defaults, locked categories), then the overlay of the headteacher's exceptions and the
// technician's local block/allow entries (never over a locked category), then the bans in the
// same overlay (rules/ban.hpp: a banned user or device gets the supervised-use list of the
// policy's `bans:` section, and nothing else). The proxy, `hallpass
// explain` and the admin socket all call this function, so what explain prints is what the
// proxy does.
//
// Pure; any thread. The verdict's views point into `p` and into `overlay`: keep both alive
// (pin the shared_ptrs) for as long as the verdict.
#pragma once

#include "rules/engine.hpp"
#include "rules/exception_index.hpp"

namespace hallpass::rules {

// overlay may be null (no store, or none loaded yet): the policy alone decides.
verdict decide_request(const policy& p, const exception_index* overlay, const request_facts& facts);

}  // namespace hallpass::rules
