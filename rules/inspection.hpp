// Whether the proxy decrypts a CONNECT (HTTPS inspection with the school CA) or relays it
// untouched. The policy's `inspection:` section says what to inspect per role, category and
// domain, and what never to (banking, health, OS and app updates, apps that pin
// certificates); hosts that have entries needing the path or method are inspected by
// themselves, so that those entries apply to the page, not to the whole site. The keys and
// their defaults: rules/README.md, "HTTPS inspection".
//
// Pure: a const question over the compiled policy, the exception overlay and the CONNECT's
// facts. Any thread. The verdict owns its strings.
#pragma once

#include <cstdint>
#include <string>

#include "rules/decision.hpp"

namespace hallpass::rules {

enum class tls_handling : std::uint8_t { relay, inspect };
std::string_view to_string(tls_handling h);

struct inspection_verdict {
  tls_handling handling = tls_handling::relay;
  bool never = false;  // the host is on the never-inspect list (banking, health, updates, pinned apps)
  // One sentence for explain and the access log: "search engines are inspected for pupils
  // (SafeSearch)", "www.hsbc.co.uk is on the never-inspect list: ...".
  std::string why;
};

// Whether a CONNECT is decrypted. `connect` is decide_request's verdict for the CONNECT (host
// alone, facts.method "CONNECT", facts.path nullopt); its role and normalized host are used.
// Called only when a school CA is configured. In order:
//   1. an invalid host, or a host on the never list: relay (why says so);
//   2. an inspection.inspect entry for the role (every role when it names none) whose
//      targets cover the host (everything, its domains, its categories by domain, or the
//      role's SafeSearch hosts): inspect, with the entry's why;
//   3. entries that need the path or the method on this host, for this role: a rule (of
//      everyone or the role, at any time) or a locked category with URL prefixes on it, a
//      rule with `methods` whose domains or categories hold it, a local entry or an exception
//      (active, in scope) with a path on exactly this host: inspect;
//   4. otherwise relay: nothing needs more than the host name.
// A host-level block is not this function's business (the proxy shows the HTTPS block page).
// URL patterns and rules with methods but no targets do not turn inspection on by themselves
// (a pattern may match any host): name their hosts in inspection.inspect.
inspection_verdict decide_inspection(const policy& p, const exception_index* overlay, const request_facts& facts,
                                     const verdict& connect);

// Whether a host (as a verdict normalises it) is on the never-inspect list: decide_inspection's
// step 1, for the places that decrypt for the proxy's own page (the sign-in page), which the
// list forbids as it forbids the block page.
bool never_inspected(const policy& p, const normalized_host& host);

}  // namespace hallpass::rules
