#include "rules/decision.hpp"

namespace hallpass::rules {

verdict decide_request(const policy& p, const exception_index* overlay, const request_facts& facts) {
  verdict v = decide(p, facts);
  if (overlay) overlay->apply(v, facts);
  return v;
}

}  // namespace hallpass::rules
