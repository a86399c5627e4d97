// libFuzzer target: parse_admin_line(), one line of the admin socket protocol
// (proxy/admin_request.hpp, docs/admin-protocol.md), as the admin thread parses it before it
// compares the caller's roles and touches the store.
//
// Asserted beyond "no crash, no sanitizer report":
//  - failure always says why;
//  - success only for a known verb, with the verb's roles from the protocol's table;
//  - the request written back as {"verb": ..., "args": {...}} parses to the same verb and
//    arguments (nothing in the line is lost or changed by the parse).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <boost/json/serialize.hpp>

#include "proxy/admin_request.hpp"

using namespace hallpass;

namespace {

void require(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // The daemon hands over at most 64 KiB, without the '\n' that ended the line.
  if (size > 64 * 1024) return 0;
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  std::string error;
  const auto r = parse_admin_line(line, error);
  if (!r) {
    require(!error.empty());
    return 0;
  }
  require(r->allowed_roles != nullptr && r->allowed_roles == admin_verb_roles(r->verb));
  require(!r->allowed_roles->empty());
  for (const auto& role : *r->allowed_roles) {
    require(role == "headteacher" || role == "technician" || role == "dsl");
  }

  boost::json::object o;
  o["verb"] = r->verb;
  o["args"] = r->args;
  std::string error2;
  const auto again = parse_admin_line(boost::json::serialize(o), error2);
  require(again.has_value() && again->verb == r->verb && again->args == r->args);
  return 0;
}
