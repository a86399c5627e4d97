#include "proxy/admin_request.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <map>
#include <set>
#include <vector>

#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "rules/device_ref.hpp"
#include "rules/utf8.hpp"

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

// What an argument's value must be. Checked here, for every argument of every verb, before
// the verb runs: a verb then reads an optional argument as either absent or good, never a bad
// value taken for an absent one (admin audit, 2026-12-05, F4: "scope": ["url"] blocked the
// whole domain, a --who with a stray control character opened a site for the whole role, a
// reason with an ESC was stored as "").
enum class arg_kind {
  text,    // free text: tabs and line ends allowed (a reason, a form's answer)
  line,    // one line: a URL, a name, a time, a keyword; no control character at all
  names,   // a list of one-line names (roles)
  flag,    // true or false
  number,  // an id: the verb reads it (a JSON number or a string of digits)
};

struct arg_spec {
  std::string_view name;
  arg_kind kind;
};

// One row per verb: the admin roles that may use it (docs/admin-protocol.md "Authorisation")
// and the arguments it takes (the "args" column of the table under "Messages").
struct verb_spec {
  const std::set<std::string>* roles;
  std::vector<arg_spec> args;
  // For a verb that changes the store: what still holds when the change cannot be saved (said
  // to the caller: admin_server.cpp); nullptr for a verb that only reads.
  const char* unsaved = nullptr;
};

const verb_spec* find_verb_spec(std::string_view verb) {
  static const std::set<std::string> filing = {"technician", "headteacher"};
  // The e-safety officer's part of policy 000 (7.3: inappropriate content is reported to them
  // "so that the site can be blocked"; 7.5 and the appendix: the access form goes to them, and
  // they complete its part), which the DSL is in many schools: filing and completing forms,
  // reporting and blocking. Unblocking (it opens) stays the technician's and the headteacher's
  // (safeguarding audit, 2026-12-06, M8: the DSL could do none of it).
  static const std::set<std::string> e_safety = {"technician", "headteacher", "dsl"};
  static const std::set<std::string> deciding = {"headteacher"};
  static const std::set<std::string> reading = {"technician", "headteacher", "dsl"};
  // Bans (000 7.2; 002): the DSL and the headteacher ban and unban; a technician's `ban` is
  // only a proposal, which one of them confirms (admin_server.cpp, "ban").
  static const std::set<std::string> banning = {"dsl", "headteacher", "technician"};
  static const std::set<std::string> unbanning = {"dsl", "headteacher"};
  // Incident records: the DSL's and the headteacher's only, reading them too (need to know).
  static const std::set<std::string> safeguarding = {"dsl", "headteacher"};
  constexpr auto text = arg_kind::text, line = arg_kind::line, number = arg_kind::number, flag = arg_kind::flag;
  static const std::map<std::string, verb_spec, std::less<>> table = {
      {"request",
       {&e_safety,
        {{"url", line}, {"roles", arg_kind::names}, {"user", line}, {"client", line}, {"requester", text},
         {"reason", text}, {"site_content", text}, {"risks", text}, {"control_measures", text}},
        "the request was not filed"}},
      {"review",
       {&e_safety, {{"id", number}, {"risks", text}, {"control_measures", text}, {"site_content", text}, {"note", text}},
        "the review was not saved"}},
      {"report",
       {&e_safety, {{"url", line}, {"nature", text}, {"reporter", text}, {"individual", text}, {"block", flag}},
        "the report was not filed, and the page is NOT blocked"}},
      {"block", {&e_safety, {{"url", line}, {"scope", line}, {"reason", text}}, "the page is NOT blocked"}},
      {"unblock", {&filing, {{"id", number}, {"reason", text}}, "the block is still in force"}},
      {"reload", {&filing, {}}},
      {"approve",
       {&deciding, {{"id", number}, {"for", line}, {"until", line}, {"scope", line}, {"who", line}, {"reason", text}},
        "nothing was opened"}},
      {"deny", {&deciding, {{"id", number}, {"reason", text}}, "the request is still pending"}},
      {"revoke", {&deciding, {{"id", number}, {"reason", text}}, "the exception is still in force"}},
      {"extend",
       {&deciding, {{"id", number}, {"for", line}, {"until", line}, {"reason", text}}, "the exception's end is unchanged"}},
      {"list", {&reading, {{"filter", line}, {"before", number}}}},
      {"show", {&reading, {{"id", number}}}},
      {"status", {&reading, {}}},
      {"audit", {&reading, {{"since", line}, {"before", number}, {"limit", number}}}},
      {"reports", {&reading, {}}},
      {"blocks", {&reading, {{"all", flag}}}},
      {"ban",
       {&banning, {{"user", line}, {"device", line}, {"for", line}, {"reason", text}, {"confirm", number}},
        "no ban is in force"}},
      {"unban",
       {&unbanning, {{"id", number}, {"user", line}, {"device", line}, {"reason", text}}, "the ban is still in force"}},
      {"bans", {&reading, {{"all", flag}}}},
      {"incident",
       {&safeguarding,
        {{"id", number}, {"user", line}, {"device", line}, {"what", text}, {"category", line}, {"at", line},
         {"action", text}, {"outcome", text}},
        "the incident record was not saved"}},
      {"incidents", {&safeguarding, {{"all", flag}, {"user", line}, {"device", line}}}}};
  auto it = table.find(verb);
  return it == table.end() ? nullptr : &it->second;
}

// A message that names an argument the verb does not take is refused rather than run without
// it: a script's misspelt "scpoe" or "untill" would otherwise get the default it did not ask
// for (a whole domain opened, say). So is an argument whose value is not of its kind (arg_kind).
// Empty when every argument is known and of its kind. A null value is an argument not given.
std::string bad_argument(std::string_view verb, const verb_spec& spec, const json::object& args) {
  for (const auto& kv : args) {
    const std::string_view name = kv.key();
    const auto known = std::find_if(spec.args.begin(), spec.args.end(), [&](const arg_spec& a) { return a.name == name; });
    if (known == spec.args.end()) {
      std::string takes;
      for (const auto& a : spec.args) takes += (takes.empty() ? "" : ", ") + std::string(a.name);
      // The name is the caller's text: printed as JSON, so a control character cannot reach a
      // terminal raw.
      return "'" + std::string(verb) + "' takes no argument " + json::serialize(json::string(name)) +
             (takes.empty() ? " (it takes none)" : " (it takes " + takes + ")");
    }
    const json::value& v = kv.value();
    if (v.is_null()) continue;
    const std::string key(name);
    switch (known->kind) {
      case arg_kind::text:
      case arg_kind::line:
        if (!v.is_string()) return "'" + key + "' must be text";
        if (auto e = admin_text_error(key, v.get_string(), known->kind == arg_kind::line); !e.empty()) return e;
        break;
      case arg_kind::names:
        if (!v.is_array()) return "'" + key + "' must be a list of names";
        for (const auto& item : v.get_array()) {
          if (!item.is_string()) return "'" + key + "' must be a list of names";
          if (auto e = admin_text_error(key, item.get_string(), true); !e.empty()) return e;
        }
        break;
      case arg_kind::flag:
        if (!v.is_bool()) return "'" + key + "' must be true or false";
        break;
      case arg_kind::number:
        break;  // the verb's: each says what number it wants
    }
  }
  return {};
}

}  // namespace

std::string admin_text_error(std::string_view key, std::string_view value, bool one_line) {
  const std::string k = "'" + std::string(key) + "'";
  if (value.size() > max_admin_text_bytes) {
    return k + " is longer than " + std::to_string(max_admin_text_bytes) +
           " bytes (in UTF-8: fewer characters outside ASCII)";
  }
  // A NUL or another control byte is no part of a URL, a name or a reason: refused, not stored
  // or cut at (audit14 D11: "127.0.0.61\0x" banned 127.0.0.61). Free text may have tabs and
  // line ends; a one-line value none ("ava.c\t" banned nobody: admin audit, 2026-12-05, F5).
  bool control = std::any_of(value.begin(), value.end(), [&](char ch) {
    const auto u = static_cast<unsigned char>(ch);
    if (u == 0x7f) return true;
    if (u >= 0x20) return false;
    return one_line || (ch != '\t' && ch != '\n' && ch != '\r');
  });
  // C1 controls too (U+0080 to U+009F, in UTF-8 0xC2 0x80-0x9F): U+009B starts a terminal
  // control sequence as ESC [ does (audit, 2026-12-06).
  for (std::size_t i = 0; !control && i + 1 < value.size(); ++i) {
    control = static_cast<unsigned char>(value[i]) == 0xC2 && static_cast<unsigned char>(value[i + 1]) >= 0x80 &&
              static_cast<unsigned char>(value[i + 1]) <= 0x9F;
  }
  if (control) {
    return k + (one_line ? " must not contain control characters (it is one line: no tab or line end either)"
                         : " must not contain control characters");
  }
  return {};
}

std::optional<std::string> admin_user_name(std::string_view key, std::string_view text, std::string& error) {
  // Blanks at either end go, whatever they are: a name pasted from a mail or a document often
  // carries a no-break space (U+00A0) or a zero-width one (safeguarding audit, 2026-12-06, M5:
  // "ava.b" + U+00A0 was stored, a ban of nobody that looked right in `bans`).
  const auto trim_front = [&] {
    for (std::uint32_t cp = 0; !text.empty();) {
      const auto n = rules::utf8_sequence(text, 0, cp);
      if (n == 0 || !rules::shows_as_blank(cp)) break;
      text.remove_prefix(n);
    }
  };
  const auto trim_back = [&] {
    while (!text.empty()) {
      std::size_t start = text.size() - 1;
      while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80 && text.size() - start < 4) --start;
      std::uint32_t cp = 0;
      const auto n = rules::utf8_sequence(text, start, cp);
      if (n != text.size() - start || !rules::shows_as_blank(cp)) break;
      text.remove_suffix(n);
    }
  };
  trim_front();
  trim_back();
  if (text.empty()) {
    error = "'" + std::string(key) + "' must be a user name, not blank";
    return std::nullopt;
  }
  // Inside it, only the ASCII space may be blank: a zero-width or bidi character makes a name
  // no directory has, shown as the real one.
  for (std::size_t i = 0; i < text.size();) {
    std::uint32_t cp = 0;
    const auto n = rules::utf8_sequence(text, i, cp);
    if (n == 0) break;  // not UTF-8: admin_text_error below says so
    if (cp != ' ' && rules::shows_as_blank(cp)) {
      char code[16];
      std::snprintf(code, sizeof code, "U+%04X", static_cast<unsigned>(cp));
      error = "'" + std::string(key) + "' holds an invisible or unusual space character (" + code +
              ") that no user name has: type the name again rather than paste it";
      return std::nullopt;
    }
    i += n;
  }
  if (text.size() > 256) {
    error = "'" + std::string(key) + "' must be a user name (1 to 256 characters)";
    return std::nullopt;
  }
  if (auto e = admin_text_error(key, text, true); !e.empty()) {
    error = e;
    return std::nullopt;
  }
  return std::string(text);
}

std::optional<std::pair<bool, std::string>> admin_subject(const json::object& args, std::string& error) {
  const auto user = admin_text_arg(args, "user");
  const auto device = admin_text_arg(args, "device");
  if (user && device) {
    error = "give 'user' or 'device', not both";
    return std::nullopt;
  }
  if (user) {
    // "ava.b " was stored as typed, a ban of nobody that `unban --user ava.b` could not find;
    // "   " banned nobody (admin audit, 2026-12-05, F5).
    auto name = admin_user_name("user", *user, error);
    if (!name) return std::nullopt;
    return std::pair{false, *name};
  }
  if (device) {
    // One device (a network would ban a whole classroom): a DHCP name or hardware address
    // follows the device when its lease moves.
    std::string why;
    const auto d = rules::parse_device(*device, &why);
    if (!d) {
      error = "'device': " + why;
      return std::nullopt;
    }
    return std::pair{true, d->text};
  }
  return std::pair{false, std::string()};
}

const std::set<std::string>* admin_verb_roles(std::string_view verb) {
  const verb_spec* spec = find_verb_spec(verb);
  return spec ? spec->roles : nullptr;
}

namespace {
// Whether `line` holds a \uD800-\uDFFF escape: Boost.JSON 1.81 calls a lone one a syntax error.
bool has_surrogate_escape(std::string_view line) {
  for (std::size_t i = line.find("\\u"); i != std::string_view::npos; i = line.find("\\u", i + 1)) {
    if (i + 3 < line.size() && (line[i + 2] == 'd' || line[i + 2] == 'D') &&
        std::string_view("89abcdefABCDEF").find(line[i + 3]) != std::string_view::npos)
      return true;
  }
  return false;
}
}  // namespace

std::optional<admin_request> parse_admin_line(std::string_view line, std::string& error) {
  boost::system::error_code jec;
  json::value v = json::parse(line, jec);
  if (jec || !v.is_object()) {
    // Bytes that are not UTF-8 (a lone surrogate escaped, a Latin-1 name pasted in) said as
    // such, not as "not a JSON object" (admin audit, 2026-12-06).
    if (!rules::is_valid_utf8(line)) error = "the message is not UTF-8 text (JSON is UTF-8): retype the non-ASCII text";
    else if (jec && has_surrogate_escape(line))
      error = "the message is not valid JSON: it holds a \\u escape of half a character (a lone surrogate?), "
              "which is no text";
    else error = jec ? "the message is not valid JSON (" + jec.message() + ")" : "the message is not a JSON object";
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
  r.bad_argument = bad_argument(r.verb, *spec, r.args);
  r.allowed_roles = spec->roles;
  r.unsaved = spec->unsaved;
  return r;
}

std::optional<std::string> admin_text_arg(const json::object& args, std::string_view key) {
  const auto* v = args.if_contains(key);
  if (v == nullptr || !v->is_string()) return std::nullopt;
  return std::string(v->get_string());
}

std::optional<std::int64_t> admin_positive_number(const json::value& v) {
  if (v.is_int64() && v.get_int64() > 0) return v.get_int64();
  if (!v.is_string()) return std::nullopt;
  const auto& s = v.get_string();
  std::int64_t n = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec != std::errc() || end != s.data() + s.size() || n <= 0) return std::nullopt;
  return n;
}

std::optional<std::int64_t> admin_positive_number(const json::object& args, std::string_view key) {
  const auto* v = args.if_contains(key);
  return v == nullptr ? std::nullopt : admin_positive_number(*v);
}

}  // namespace hallpass
