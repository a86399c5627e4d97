// parse_admin_line: one line of the admin protocol, checked before the caller's roles are
// compared (docs/admin-protocol.md). The answers are the daemon's bad_request messages.
#include <doctest/doctest.h>

#include <string>

#include "proxy/admin_request.hpp"

using namespace hallpass;

namespace {

std::string refused(std::string_view line) {
  std::string error;
  INFO("line: " << std::string(line));
  REQUIRE_FALSE(parse_admin_line(line, error).has_value());
  return error;
}

}  // namespace

TEST_CASE("an admin line: verb, arguments and the roles that may use the verb") {
  std::string error;
  auto r = parse_admin_line(R"({"verb":"approve","args":{"id":7,"for":"2h"}})", error);
  REQUIRE(r.has_value());
  CHECK(r->verb == "approve");
  CHECK(r->args.at("id").as_int64() == 7);
  CHECK(r->args.at("for").as_string() == "2h");
  REQUIRE(r->allowed_roles != nullptr);
  CHECK(*r->allowed_roles == std::set<std::string>{"headteacher"});

  r = parse_admin_line(R"({"verb":"status"})", error);
  REQUIRE(r.has_value());
  CHECK(r->args.empty());
  CHECK(*r->allowed_roles == std::set<std::string>{"dsl", "headteacher", "technician"});
}

TEST_CASE("the protocol's authorisation table") {
  const std::set<std::string> filing{"headteacher", "technician"};
  const std::set<std::string> deciding{"headteacher"};
  const std::set<std::string> reading{"dsl", "headteacher", "technician"};
  for (const char* v : {"request", "report", "block", "unblock", "reload"})
    CHECK(*admin_verb_roles(v) == filing);
  for (const char* v : {"approve", "deny", "revoke"}) CHECK(*admin_verb_roles(v) == deciding);
  for (const char* v : {"list", "show", "status", "audit", "reports"})
    CHECK(*admin_verb_roles(v) == reading);
  CHECK(admin_verb_roles("shutdown") == nullptr);
  CHECK(admin_verb_roles("") == nullptr);
  CHECK(admin_verb_roles("Approve") == nullptr);
}

TEST_CASE("bad admin lines get the daemon's bad_request messages") {
  CHECK(refused("list pending") == "the message is not a JSON object");
  CHECK(refused("") == "the message is not a JSON object");
  CHECK(refused(R"(["verb","list"])") == "the message is not a JSON object");
  CHECK(refused(R"({"verb":"list"} trailing)") == "the message is not a JSON object");
  CHECK(refused(R"({"args":{}})") == "the message has no 'verb'");
  CHECK(refused(R"({"verb":7})") == "the message has no 'verb'");
  CHECK(refused(R"({"verb":"list","args":[1]})") == "'args' must be an object");
  CHECK(refused(R"({"verb":"list","args":null})") == "'args' must be an object");
  CHECK(refused(R"({"verb":"shutdown","args":{}})") == "unknown verb 'shutdown'");
  CHECK(refused(R"({"verb":"shutdown","args":5})") ==
        "'args' must be an object");  // checked first, as before
}

TEST_CASE("a number too large for a double is refused, not read as infinity") {
  // Found by fuzz_admin_line: Boost.JSON reads 2e308 as infinity and writes it back as
  // "Infinity", which is not JSON.
  CHECK(refused(R"({"verb":"status","args":{"a":[[[[{"b":2e308,"c":-0.0}]]]]}})") ==
        "a number in the message is too large");
  CHECK(refused(R"({"verb":"approve","args":{"id":-1e999,"for":"2h"}})") ==
        "a number in the message is too large");
  CHECK(refused(R"({"verb":"list","extra":1e400})") == "a number in the message is too large");
  std::string error;
  CHECK(parse_admin_line(
      R"({"verb":"status","args":{"a":1e308,"b":-0.0,"c":18446744073709551615}})", error));
}
