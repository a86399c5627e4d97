#include "proxy/admin_request.hpp"

#include <cmath>
#include <map>

#include <boost/json/parse.hpp>

namespace hallpass {
namespace json = boost::json;
namespace {

// Boost.JSON reads a number beyond the range of a double (1e999) as infinity, which it then
// writes back as "Infinity", which is not JSON. Found by tests/fuzz/fuzz_admin_line.cpp.
// The parser's depth limit (32) bounds the recursion.
bool has_non_finite_number(const json::value& v) {
  switch (v.kind()) {
    case json::kind::double_:
      return !std::isfinite(v.get_double());
    case json::kind::array:
      for (const auto& e : v.get_array()) {
        if (has_non_finite_number(e)) return true;
      }
      return false;
    case json::kind::object:
      for (const auto& kv : v.get_object()) {
        if (has_non_finite_number(kv.value())) return true;
      }
      return false;
    default:
      return false;
  }
}

}  // namespace

const std::set<std::string>* admin_verb_roles(std::string_view verb) {
  static const std::set<std::string> filing = {"technician", "headteacher"};
  static const std::set<std::string> deciding = {"headteacher"};
  static const std::set<std::string> reading = {"technician", "headteacher", "dsl"};
  // Bans (000 7.2; 002): the DSL and the headteacher ban and unban; a technician's `ban` is
  // only a proposal, which one of them confirms (admin_server.cpp, "ban").
  static const std::set<std::string> banning = {"dsl", "headteacher", "technician"};
  static const std::set<std::string> unbanning = {"dsl", "headteacher"};
  static const std::map<std::string, const std::set<std::string>*, std::less<>> table = {
      {"request", &filing}, {"review", &filing},    {"report", &filing},  {"block", &filing},
      {"unblock", &filing}, {"reload", &filing},    {"approve", &deciding}, {"deny", &deciding},
      {"revoke", &deciding},
      {"list", &reading},   {"show", &reading},     {"status", &reading}, {"audit", &reading},
      {"reports", &reading}, {"blocks", &reading},
      {"ban", &banning},    {"unban", &unbanning},  {"bans", &reading}};
  auto it = table.find(verb);
  return it == table.end() ? nullptr : it->second;
}

std::optional<admin_request> parse_admin_line(std::string_view line, std::string& error) {
  boost::system::error_code jec;
  json::value v = json::parse(line, jec);
  if (jec || !v.is_object()) {
    error = "the message is not a JSON object";
    return std::nullopt;
  }
  if (has_non_finite_number(v)) {
    error = "a number in the message is too large";
    return std::nullopt;
  }
  auto& o = v.as_object();
  auto verb_it = o.find("verb");
  if (verb_it == o.end() || !verb_it->value().is_string()) {
    error = "the message has no 'verb'";
    return std::nullopt;
  }
  admin_request r;
  r.verb = std::string(verb_it->value().as_string());
  if (auto a = o.find("args"); a != o.end()) {
    if (!a->value().is_object()) {
      error = "'args' must be an object";
      return std::nullopt;
    }
    r.args = std::move(a->value().as_object());
  }
  r.allowed_roles = admin_verb_roles(r.verb);
  if (!r.allowed_roles) {
    error = "unknown verb '" + r.verb + "'";
    return std::nullopt;
  }
  return r;
}

}  // namespace hallpass
