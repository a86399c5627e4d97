// libFuzzer target: parse_admin_line(), one line of the admin socket protocol
// (proxy/admin_request.hpp, docs/admin-protocol.md), as the admin thread parses it before it
// compares the caller's roles and touches the store.
//
// Asserted beyond "no crash, no sanitizer report":
//  - failure always says why;
//  - success only for a known verb, with the verb's roles from the protocol's table;
//  - the request written back as {"verb": ..., "args": {...}} parses to the same verb and
//    arguments (nothing in the line is lost or changed by the parse; fractional numbers to
//    within Boost.JSON's rounding, see same_json).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <boost/json/serialize.hpp>

#include "proxy/admin_request.hpp"
#include "tests/fuzz/fuzz_require.hpp"

using namespace hallpass;

namespace {

// Equal, except that doubles may differ in their last bits: Boost.JSON 1.81 does not round
// decimal numbers exactly (12e26 and its own output 1.2E27 read back one ULP apart). No
// admin argument is a fractional number; ids are integers or text.
bool same_json(const boost::json::value& a, const boost::json::value& b) {
  if (a.is_double() && b.is_double()) {
    const double x = a.get_double(), y = b.get_double();
    return x == y || std::fabs(x - y) <= 1e-15 * std::max(std::fabs(x), std::fabs(y));
  }
  if (a.kind() != b.kind()) return false;
  if (a.is_array()) {
    const auto &p = a.get_array(), &q = b.get_array();
    if (p.size() != q.size()) return false;
    for (std::size_t i = 0; i < p.size(); ++i) {
      if (!same_json(p[i], q[i])) return false;
    }
    return true;
  }
  if (a.is_object()) {
    const auto &p = a.get_object(), &q = b.get_object();
    if (p.size() != q.size()) return false;
    for (const auto& kv : p) {
      const auto* other = q.if_contains(kv.key());
      if (!other || !same_json(kv.value(), *other)) return false;
    }
    return true;
  }
  return a == b;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // The daemon hands over at most 64 KiB, without the '\n' that ended the line.
  if (size > 64 * 1024) return 0;
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  std::string error;
  const auto r = parse_admin_line(line, error);
  if (!r) {
    FUZZ_REQUIRE(!error.empty());
    return 0;
  }
  FUZZ_REQUIRE(r->allowed_roles != nullptr && r->allowed_roles == admin_verb_roles(r->verb));
  FUZZ_REQUIRE(!r->allowed_roles->empty());
  for (const auto& role : *r->allowed_roles) {
    FUZZ_REQUIRE(role == "headteacher" || role == "technician" || role == "dsl");
  }

  boost::json::object o;
  o["verb"] = r->verb;
  o["args"] = r->args;
  std::string error2;
  const auto again = parse_admin_line(boost::json::serialize(o), error2);
  FUZZ_REQUIRE(again.has_value() && again->verb == r->verb && same_json(again->args, r->args));
  return 0;
}
