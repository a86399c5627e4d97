#include "proxy/admin_request.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <set>
#include <vector>

#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

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

// Boost.JSON's parser keeps the last of two equal keys in one object, and 1.81 has no option to
// refuse them: {"id":3,"id":4} acted on request 4 while the line, read by a person or another
// JSON reader, names 3 (outside-in audit, 2026-12-05, second session). So the line's keys are
// read once more, by a handler that builds no value and stops at the first key that one object
// has twice, at any depth; keys compare unescaped ("\u0069d" is "id"). The parser's own depth
// limit (32) and the line's 64 KiB bound what it keeps.
class duplicate_key_finder {
 public:
  static constexpr std::size_t max_object_size = std::size_t(-1);
  static constexpr std::size_t max_array_size = std::size_t(-1);
  static constexpr std::size_t max_key_size = std::size_t(-1);
  static constexpr std::size_t max_string_size = std::size_t(-1);

  std::optional<std::string> duplicate;  // the first key given twice, unescaped

  bool on_document_begin(json::error_code&) { return true; }
  bool on_document_end(json::error_code&) { return true; }
  bool on_array_begin(json::error_code&) { return true; }
  bool on_array_end(std::size_t, json::error_code&) { return true; }
  bool on_object_begin(json::error_code&) {
    open_.emplace_back();
    return true;
  }
  bool on_object_end(std::size_t, json::error_code&) {
    open_.pop_back();
    return true;
  }
  bool on_string_part(json::string_view, std::size_t, json::error_code&) { return true; }
  bool on_string(json::string_view, std::size_t, json::error_code&) { return true; }
  bool on_key_part(json::string_view s, std::size_t, json::error_code&) {
    key_.append(s.data(), s.size());
    return true;
  }
  bool on_key(json::string_view s, std::size_t, json::error_code& ec) {
    key_.append(s.data(), s.size());
    if (!open_.back().insert(key_).second) {
      duplicate = std::move(key_);
      ec = make_error_code(boost::system::errc::invalid_argument);  // stops the parse
      return false;
    }
    key_.clear();
    return true;
  }
  bool on_number_part(json::string_view, json::error_code&) { return true; }
  bool on_int64(std::int64_t, json::string_view, json::error_code&) { return true; }
  bool on_uint64(std::uint64_t, json::string_view, json::error_code&) { return true; }
  bool on_double(double, json::string_view, json::error_code&) { return true; }
  bool on_bool(bool, json::error_code&) { return true; }
  bool on_null(json::error_code&) { return true; }
  bool on_comment_part(json::string_view, json::error_code&) { return true; }
  bool on_comment(json::string_view, json::error_code&) { return true; }

 private:
  std::vector<std::set<std::string, std::less<>>> open_;  // the keys of each object being read, innermost last
  std::string key_;                                        // the key being read
};

// The first key that one object of `line` has twice, or nullopt.
std::optional<std::string> duplicate_key(std::string_view line) {
  json::basic_parser<duplicate_key_finder> p{json::parse_options{}};
  json::error_code ec;
  p.write_some(false, line.data(), line.size(), ec);
  return std::move(p.handler().duplicate);
}

}  // namespace

namespace {

// One row per verb: the admin roles that may use it (docs/admin-protocol.md "Authorisation")
// and the argument names it takes (the "args" column of the table under "Messages").
struct verb_spec {
  const std::set<std::string>* roles;
  std::vector<std::string_view> args;
};

const verb_spec* find_verb_spec(std::string_view verb) {
  static const std::set<std::string> filing = {"technician", "headteacher"};
  static const std::set<std::string> deciding = {"headteacher"};
  static const std::set<std::string> reading = {"technician", "headteacher", "dsl"};
  // Bans (000 7.2; 002): the DSL and the headteacher ban and unban; a technician's `ban` is
  // only a proposal, which one of them confirms (admin_server.cpp, "ban").
  static const std::set<std::string> banning = {"dsl", "headteacher", "technician"};
  static const std::set<std::string> unbanning = {"dsl", "headteacher"};
  static const std::map<std::string, verb_spec, std::less<>> table = {
      {"request",
       {&filing,
        {"url", "roles", "user", "client", "requester", "reason", "site_content", "risks", "control_measures"}}},
      {"review", {&filing, {"id", "risks", "control_measures", "site_content", "note"}}},
      {"report", {&filing, {"url", "nature", "reporter", "individual", "block"}}},
      {"block", {&filing, {"url", "scope", "reason"}}},
      {"unblock", {&filing, {"id", "reason"}}},
      {"reload", {&filing, {}}},
      {"approve", {&deciding, {"id", "for", "until", "scope", "who", "reason"}}},
      {"deny", {&deciding, {"id", "reason"}}},
      {"revoke", {&deciding, {"id", "reason"}}},
      {"list", {&reading, {"filter"}}},
      {"show", {&reading, {"id"}}},
      {"status", {&reading, {}}},
      {"audit", {&reading, {"since"}}},
      {"reports", {&reading, {}}},
      {"blocks", {&reading, {"all"}}},
      {"ban", {&banning, {"user", "device", "for", "reason", "confirm"}}},
      {"unban", {&unbanning, {"id", "user", "device", "reason"}}},
      {"bans", {&reading, {"all"}}}};
  auto it = table.find(verb);
  return it == table.end() ? nullptr : &it->second;
}

// A message that names an argument the verb does not take is refused rather than run without
// it: a script's misspelt "scpoe" or "untill" would otherwise get the default it did not ask
// for (a whole domain opened, say). Empty when every name is known.
std::string unknown_argument(std::string_view verb, const verb_spec& spec, const json::object& args) {
  for (const auto& kv : args) {
    const std::string_view name = kv.key();
    if (std::find(spec.args.begin(), spec.args.end(), name) != spec.args.end()) continue;
    std::string takes;
    for (auto a : spec.args) takes += (takes.empty() ? "" : ", ") + std::string(a);
    // The name is the caller's text: printed as JSON, so a control character cannot reach a
    // terminal raw.
    return "'" + std::string(verb) + "' takes no argument " + json::serialize(json::string(name)) +
           (takes.empty() ? " (it takes none)" : " (it takes " + takes + ")");
  }
  return {};
}

}  // namespace

const std::set<std::string>* admin_verb_roles(std::string_view verb) {
  const verb_spec* spec = find_verb_spec(verb);
  return spec ? spec->roles : nullptr;
}

std::optional<admin_request> parse_admin_line(std::string_view line, std::string& error) {
  boost::system::error_code jec;
  json::value v = json::parse(line, jec);
  if (jec || !v.is_object()) {
    error = "the message is not a JSON object";
    return std::nullopt;
  }
  if (auto key = duplicate_key(line)) {
    // As JSON: the caller's text, so a control character cannot reach a terminal raw.
    error = "the message has the key " + json::serialize(json::string(*key)) + " twice in one object";
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
  for (const auto& kv : o) {
    if (kv.key() != "verb" && kv.key() != "args") {
      error = "the message has " + json::serialize(json::string(kv.key())) + " beside 'verb' and 'args'";
      return std::nullopt;
    }
  }
  const verb_spec* spec = find_verb_spec(r.verb);
  if (!spec) {
    error = "unknown verb '" + r.verb + "'";
    return std::nullopt;
  }
  if (error = unknown_argument(r.verb, *spec, r.args); !error.empty()) return std::nullopt;
  r.allowed_roles = spec->roles;
  return r;
}

}  // namespace hallpass
