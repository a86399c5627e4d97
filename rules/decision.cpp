#include "rules/decision.hpp"

#include "rules/ban.hpp"

namespace hallpass::rules {

verdict decide_request(const policy& p, const exception_index* overlay, const request_facts& facts) {
  verdict v = decide(p, facts);
  if (overlay) {
    overlay->apply(v, facts);
    // A ban wins over exceptions (it is applied after them); locked categories stay locked.
    if (const ban_entry* b = overlay->ban_for(facts)) apply_ban(p, *b, v);
  }
  return v;
}

}  // namespace hallpass::rules
