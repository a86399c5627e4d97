// parse_admin_line: one line of the admin protocol, checked before the caller's roles are
// compared (docs/admin-protocol.md). The answers are the daemon's bad_request messages.
#include <doctest/doctest.h>

#include <string>

#include "proxy/admin_request.hpp"

using namespace hallpass;

namespace {

// The refusal of `line`: the whole line's (no request), or its arguments' (a request whose
// bad_argument is answered after the caller's roles are checked).
std::string refused_line(std::string_view line) {
  std::string error;
  INFO("line: " << std::string(line));
  const auto r = parse_admin_line(line, error);
  if (r) {
    REQUIRE_FALSE(r->bad_argument.empty());
    return r->bad_argument;
  }
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

TEST_CASE("the verbs that write the store say what still holds when they cannot, the others write nothing") {
  std::string error;
  for (const char* v : {"request", "review", "report", "block", "unblock", "approve", "deny", "revoke", "ban", "unban",
                        "incident"}) {
    auto r = parse_admin_line(std::string(R"({"verb":")") + v + R"("})", error);
    REQUIRE(r.has_value());
    INFO(v);
    CHECK(r->unsaved != nullptr);
  }
  for (const char* v : {"list", "show", "status", "audit", "reports", "blocks", "bans", "incidents", "reload"}) {
    auto r = parse_admin_line(std::string(R"({"verb":")") + v + R"("})", error);
    REQUIRE(r.has_value());
    INFO(v);
    CHECK(r->unsaved == nullptr);
  }
  auto r = parse_admin_line(R"({"verb":"block"})", error);
  CHECK(std::string(r->unsaved) == "the page is NOT blocked");
}

TEST_CASE("the protocol's authorisation table") {
  const std::set<std::string> filing{"headteacher", "technician"};
  const std::set<std::string> deciding{"headteacher"};
  const std::set<std::string> reading{"dsl", "headteacher", "technician"};
  for (const char* v : {"unblock", "reload"}) CHECK(*admin_verb_roles(v) == filing);
  // The e-safety officer's part of policy 000 (7.3, 7.5), which the DSL often is.
  for (const char* v : {"request", "review", "report", "block"})
    CHECK(*admin_verb_roles(v) == std::set<std::string>{"dsl", "headteacher", "technician"});
  for (const char* v : {"approve", "deny", "revoke"}) CHECK(*admin_verb_roles(v) == deciding);
  for (const char* v : {"list", "show", "status", "audit", "reports"})
    CHECK(*admin_verb_roles(v) == reading);
  CHECK(admin_verb_roles("shutdown") == nullptr);
  CHECK(admin_verb_roles("") == nullptr);
  CHECK(admin_verb_roles("Approve") == nullptr);
}

TEST_CASE("bad admin lines get the daemon's bad_request messages") {
  CHECK(refused_line("list pending").starts_with("the message is not valid JSON ("));
  CHECK(refused_line("").starts_with("the message is not valid JSON ("));
  CHECK(refused_line(R"(["verb","list"])") == "the message is not a JSON object");
  CHECK(refused_line(R"({"verb":"list"} trailing)").starts_with("the message is not valid JSON ("));
  // Not UTF-8, or half a character escaped: said as such (admin audit, 2026-12-06).
  CHECK(refused_line("{\"verb\":\"list\",\"args\":{\"filter\":\"caf\xe9\"}}") ==
        "the message is not UTF-8 text (JSON is UTF-8): retype the non-ASCII text");
  CHECK(refused_line(R"({"verb":"list","args":{"filter":"\ud800"}})").find("lone surrogate") != std::string::npos);
  CHECK(refused_line(R"({"args":{}})") == "the message has no 'verb'");
  CHECK(refused_line(R"({"verb":7})") == "the message has no 'verb'");
  CHECK(refused_line(R"({"verb":"list","args":[1]})") == "'args' must be an object");
  CHECK(refused_line(R"({"verb":"list","args":null})") == "'args' must be an object");
  CHECK(refused_line(R"({"verb":"shutdown","args":{}})") == "unknown verb 'shutdown'");
  CHECK(refused_line(R"({"verb":"shutdown","args":5})") ==
        "'args' must be an object");  // checked first, as before
}

TEST_CASE("a number too large for a double is refused, not read as infinity") {
  // Found by fuzz_admin_line: Boost.JSON reads 2e308 as infinity and writes it back as
  // "Infinity", which is not JSON.
  CHECK(refused_line(R"({"verb":"status","args":{"a":[[[[{"b":2e308,"c":-0.0}]]]]}})") ==
        "a number in the message is too large");
  CHECK(refused_line(R"({"verb":"approve","args":{"id":-1e999,"for":"2h"}})") ==
        "a number in the message is too large");
  CHECK(refused_line(R"({"verb":"list","extra":1e400})") == "a number in the message is too large");
  std::string error;
  CHECK(parse_admin_line(R"({"verb":"approve","args":{"id":1e308,"for":"2h"}})", error));
  CHECK(parse_admin_line(R"({"verb":"show","args":{"id":18446744073709551615}})", error));
  CHECK(parse_admin_line(R"({"verb":"unban","args":{"id":-0.0,"reason":"r"}})", error));
}

TEST_CASE("a bad value of an optional argument is refused naming it, never read as absent") {
  // Each of these ran the verb with the argument's default (admin audit, 2026-12-05, F4):
  // the whole domain blocked for "scope": ["url"], a site opened for the whole role for a
  // --who with a stray vertical tab, a decision reason stored as "" for one with an ESC.
  CHECK(refused_line(R"({"verb":"approve","args":{"id":1,"for":"1h","scope":["url"]}})") == "'scope' must be text");
  CHECK(refused_line(R"({"verb":"approve","args":{"id":1,"for":"1h","scope":1}})") == "'scope' must be text");
  CHECK(refused_line(R"({"verb":"approve","args":{"id":1,"for":"1h","scope":"url\u0000"}})") ==
        "'scope' must not contain control characters (it is one line: no tab or line end either)");
  CHECK(refused_line(R"({"verb":"approve","args":{"id":1,"for":"1h","who":"group:Year 6\u000b"}})") ==
        "'who' must not contain control characters (it is one line: no tab or line end either)");
  CHECK(refused_line(R"({"verb":"approve","args":{"id":1,"for":"1h","who":["group:Year 6"]}})") == "'who' must be text");
  CHECK(refused_line(R"({"verb":"approve","args":{"id":1,"for":"1h","reason":"agreed \u001b[0m"}})") ==
        "'reason' must not contain control characters");
  CHECK(refused_line(R"({"verb":"block","args":{"url":"http://news.test/one","scope":["url"],"reason":"r"}})") ==
        "'scope' must be text");
  for (const char* key : {"site_content", "risks", "control_measures"}) {
    INFO(key);
    CHECK(refused_line(std::string(R"({"verb":"request","args":{"url":"http://a.test/","roles":["pupils"],)") +
                  R"("requester":"a","reason":"b",")" + key + R"(":"strangers\fbullying"}})") ==
          "'" + std::string(key) + "' must not contain control characters");
    CHECK(refused_line(std::string(R"({"verb":"request","args":{"url":"http://a.test/","roles":["pupils"],)") +
                  R"("requester":"a","reason":"b",")" + key + R"(":7}})") ==
          "'" + std::string(key) + "' must be text");
  }
  CHECK(refused_line(R"({"verb":"report","args":{"url":"u","nature":"n","reporter":"r","individual":"x\u007f"}})") ==
        "'individual' must not contain control characters");
  CHECK(refused_line(R"({"verb":"list","args":{"filter":["all"]}})") == "'filter' must be text");
  CHECK(refused_line(R"({"verb":"audit","args":{"since":20261205}})") == "'since' must be text");
  CHECK(refused_line(R"({"verb":"ban","args":{"confirm":3,"reason":"r\u0000"}})") ==
        "'reason' must not contain control characters");
  CHECK(refused_line(R"({"verb":"ban","args":{"user":"pupil9\u0000x","for":"1h","reason":"r"}})") ==
        "'user' must not contain control characters (it is one line: no tab or line end either)");
  CHECK(refused_line(R"({"verb":"request","args":{"roles":["pupils",3]}})") == "'roles' must be a list of names");
  CHECK(refused_line(R"({"verb":"request","args":{"roles":"pupils"}})") == "'roles' must be a list of names");
  CHECK(refused_line(R"({"verb":"bans","args":{"all":"yes"}})") == "'all' must be true or false");
  CHECK(refused_line(std::string(R"({"verb":"review","args":{"id":1,"note":")") + std::string(8193, 'x') + R"("}})") ==
        "'note' is longer than 8192 bytes (in UTF-8: fewer characters outside ASCII)");

  // Free text keeps its tabs and line ends; null is an argument not given.
  std::string error;
  CHECK(parse_admin_line(R"({"verb":"approve","args":{"id":1,"for":"1h","reason":"line one\n\tline two\r\n"}})",
                         error));
  CHECK(parse_admin_line(R"({"verb":"approve","args":{"id":1,"for":"1h","scope":null,"who":null}})", error));
  CHECK(admin_text_error("url", "http://a.test/\t", true) ==
        "'url' must not contain control characters (it is one line: no tab or line end either)");
  CHECK(admin_text_error("reason", "ok\tfine\n", false).empty());
}

TEST_CASE("an argument the verb does not take is refused, naming the ones it takes") {
  // A misspelt name would otherwise run the verb with the default it did not ask for:
  // "scpoe" opened the whole domain, "untill" was refused only for a missing "for".
  CHECK(refused_line(R"({"verb":"approve","args":{"id":7,"for":"2h","scpoe":"url"}})") ==
        R"('approve' takes no argument "scpoe" (it takes id, for, until, scope, who, reason))");
  CHECK(refused_line(R"({"verb":"approve","args":{"id":7,"for":"2h","force":true}})") ==
        R"('approve' takes no argument "force" (it takes id, for, until, scope, who, reason))");
  CHECK(refused_line(R"({"verb":"status","args":{"verbose":true}})") ==
        R"('status' takes no argument "verbose" (it takes none))");
  CHECK(refused_line(R"({"verb":"bans","args":{"All":true}})") ==
        R"('bans' takes no argument "All" (it takes all))");
  // The caller's text comes back as JSON: no raw control character.
  CHECK(refused_line("{\"verb\":\"show\",\"args\":{\"id\":1,\"\\u001b[31m\":1}}") ==
        R"('show' takes no argument "\u001b[31m" (it takes id))");
  // Keys beside verb and args are refused too.
  CHECK(refused_line(R"({"verb":"status","user":"mrs.head"})") == R"(the message has "user" beside 'verb' and 'args')");

  // Every argument hallpassctl sends, for each verb (ctl/command_line.cpp), is taken.
  std::string error;
  for (const char* line : {
           R"({"verb":"request","args":{"url":"u","roles":["p"],"user":"u","client":"c","requester":"r",)"
           R"("reason":"r","site_content":"s","risks":"r","control_measures":"c"}})",
           R"({"verb":"review","args":{"id":1,"risks":"r","control_measures":"c","site_content":"s","note":"n"}})",
           R"({"verb":"approve","args":{"id":1,"for":"1h","until":"u","scope":"url","who":"user","reason":"r"}})",
           R"({"verb":"deny","args":{"id":1,"reason":"r"}})", R"({"verb":"revoke","args":{"id":1,"reason":"r"}})",
           R"({"verb":"list","args":{"filter":"all"}})", R"({"verb":"show","args":{"id":1}})",
           R"({"verb":"report","args":{"url":"u","nature":"n","reporter":"r","individual":"i","block":true}})",
           R"({"verb":"reports","args":{}})", R"({"verb":"blocks","args":{"all":true}})",
           R"({"verb":"block","args":{"url":"u","scope":"url","reason":"r"}})",
           R"({"verb":"unblock","args":{"id":1,"reason":"r"}})", R"({"verb":"audit","args":{"since":"s"}})",
           R"({"verb":"reload","args":{}})", R"({"verb":"status","args":{}})",
           R"({"verb":"ban","args":{"user":"u","device":"d","for":"1d","reason":"r"}})",
           R"({"verb":"ban","args":{"confirm":1,"reason":"r"}})",
           R"({"verb":"unban","args":{"id":1,"user":"u","device":"d","reason":"r"}})",
           R"({"verb":"bans","args":{"all":false}})"}) {
    INFO(line);
    const auto r = parse_admin_line(line, error);
    REQUIRE(r.has_value());
    CHECK(r->bad_argument.empty());
  }
}

TEST_CASE("a key given twice in one object of an admin line is refused, naming the key") {
  // Boost.JSON keeps the last of two equal keys: {"id":3,"id":4} acted on request 4 while a
  // reader of the line (a log, a reviewer, another JSON library) saw 3 (outside-in audit,
  // 2026-12-05, second session).
  CHECK(refused_line(R"({"verb":"approve","args":{"id":3,"for":"2h","id":4}})") ==
        R"(the message has the key "id" twice in one object)");
  CHECK(refused_line(R"({"verb":"deny","args":{"id":3,"reason":"a","reason":"b"}})") ==
        R"(the message has the key "reason" twice in one object)");
  // At the top, and at any depth.
  CHECK(refused_line(R"({"verb":"status","verb":"reload"})") == R"(the message has the key "verb" twice in one object)");
  CHECK(refused_line(R"({"verb":"list","args":{"filter":"all"},"args":{"filter":"pending"}})") ==
        R"(the message has the key "args" twice in one object)");
  CHECK(refused_line(R"({"verb":"request","args":{"roles":[[{"a":1,"b":{"c":1,"c":2}}]]}})") ==
        R"(the message has the key "c" twice in one object)");
  // Two spellings of one key are one key; the name comes back as JSON (no raw control byte).
  CHECK(refused_line(R"({"verb":"show","args":{"id":1,"\u0069d":2}})") ==
        R"(the message has the key "id" twice in one object)");
  CHECK(refused_line("{\"verb\":\"show\",\"args\":{\"\\u001b\":1,\"\\u001b\":2}}") ==
        R"(the message has the key "\u001b" twice in one object)");

  // The same key in different objects, or a key equal to a value, is no repeat. (An id is
  // the verb's to check, whatever its JSON: these lines pass the parse and the verb refuses them.)
  std::string error;
  CHECK(parse_admin_line(R"({"verb":"show","args":{"id":[{"url":1},{"url":2}]}})", error));
  CHECK(parse_admin_line(R"({"verb":"approve","args":{"id":1,"for":"id","reason":"for"}})", error));
  CHECK(parse_admin_line(R"({"verb":"show","args":{"id":{"a":{"a":{"a":1}}}}})", error));
}

TEST_CASE("a user name loses the blanks at its ends, whatever they are, and may hold no invisible character") {
  // A name pasted from a mail or a document: a ban of "ava.b" + U+00A0 was a ban of nobody that
  // looked right in `bans` (safeguarding audit, 2026-12-06, M5).
  std::string err;
  CHECK(hallpass::admin_user_name("user", "ava.b\u00a0", err) == "ava.b");
  CHECK(hallpass::admin_user_name("user", "\u200b ava.b \u3000", err) == "ava.b");
  CHECK(hallpass::admin_user_name("user", "Mrs Head", err) == "Mrs Head");
  CHECK(hallpass::admin_user_name("user", "zo\u00eb", err) == "zo\u00eb");
  for (const char* bad : {"ava\u200bb", "\u2060ava.b\u2060x", "ava\u202e.b", "ava\u00a0b"}) {
    CAPTURE(bad);
    err.clear();
    CHECK_FALSE(hallpass::admin_user_name("user", bad, err));
    CHECK(err.find("invisible or unusual space character (U+") != std::string::npos);
  }
  err.clear();
  CHECK_FALSE(hallpass::admin_user_name("user", "\u00a0\u200b", err));
  CHECK(err.find("not blank") != std::string::npos);
}
