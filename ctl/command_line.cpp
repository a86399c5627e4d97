#include "ctl/command_line.hpp"

#include "rules/utf8.hpp"

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <optional>
#include <set>

#include <boost/json/array.hpp>

namespace hallpass::ctl {
namespace {

namespace json = boost::json;

enum class option_kind { value, repeated, flag };

struct option_spec {
  std::string_view name;  // with the leading "--"
  option_kind kind;
};

// One verb's arguments as they were typed, before the verb's own checks.
struct verb_arguments {
  std::map<std::string, std::vector<std::string>, std::less<>> values;
  std::set<std::string, std::less<>> flags;
  std::vector<std::string> positionals;

  const std::string* value(std::string_view name) const {
    auto it = values.find(name);
    return it == values.end() ? nullptr : &it->second.front();
  }
  bool has(std::string_view name) const { return values.contains(name) || flags.contains(name); }
};

// Fills `args` from the typed arguments; returns a usage error message, or "" when fine.
using build_function = std::string (*)(const verb_arguments&, json::object& args);

struct verb_spec {
  std::string_view name;
  std::string_view id_name;  // what the positional ID names; "" when the verb takes none
  std::vector<option_spec> options;
  std::string_view synopsis;
  std::string_view description;
  build_function build;
};

constexpr std::int64_t max_id = (std::int64_t{1} << 53) - 1;  // exact in any JSON reader

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      cur[j] =
          std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string did_you_mean(std::string_view word, const std::vector<std::string_view>& candidates) {
  std::string_view best;
  std::size_t best_distance = std::max<std::size_t>(2, word.size() / 3) + 1;
  for (auto c : candidates) {
    const std::size_t d = edit_distance(word, c);
    if (d < best_distance) {
      best_distance = d;
      best = c;
    }
  }
  return best.empty() ? std::string() : "; did you mean '" + std::string(best) + "'?";
}

std::string quote(std::string_view s) {
  return "'" + std::string(s) + "'";
}

// "missing --a", "missing --a and --b", "missing --a, --b and --c"; "" when none is missing.
std::string missing(const verb_arguments& a, std::initializer_list<std::string_view> required) {
  std::vector<std::string_view> absent;
  for (auto name : required) {
    if (!a.has(name)) absent.push_back(name);
  }
  if (absent.empty()) return {};
  std::string message = "missing ";
  for (std::size_t i = 0; i < absent.size(); ++i) {
    if (i > 0) message += i + 1 == absent.size() ? " and " : ", ";
    message += absent[i];
  }
  return message;
}

void copy_value(const verb_arguments& a, std::string_view flag, std::string_view key,
                json::object& out) {
  if (const std::string* v = a.value(flag)) out[key] = *v;
}

std::string take_id(const verb_arguments& a, std::string_view what, json::object& out) {
  if (a.positionals.empty()) return "missing the " + std::string(what);
  const std::string& text = a.positionals.front();
  std::int64_t id = 0;
  const bool digits =
      !text.empty() && text.size() <= 16 &&
      std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (digits) {
    for (char c : text) id = id * 10 + (c - '0');
  }
  if (!digits || id < 1 || id > max_id) {
    return "the " + std::string(what) + " must be a whole number such as 7, not " + quote(text);
  }
  out["id"] = id;
  return {};
}

std::string check_scope(const verb_arguments& a) {
  const std::string* scope = a.value("--scope");
  if (scope && *scope != "url" && *scope != "prefix" && *scope != "domain") {
    return "--scope must be url, prefix or domain, not " + quote(*scope);
  }
  return {};
}

// --who for approve: user, group:NAME, device or role (the daemon checks it against the request).
std::string check_who(const verb_arguments& a) {
  const std::string* who = a.value("--who");
  if (!who) return {};
  if (*who == "user" || *who == "device" || *who == "role") return {};
  if (who->starts_with("group:") && who->find_first_not_of(" \t", 6) != std::string::npos) return {};
  return "--who must be user, group:NAME (a directory group, such as \"group:Year 6\"), device or role, not " +
         quote(*who);
}

// --device for ban and unban, in the canonical form the daemon compares (rules/device_ref.hpp):
// a hardware address in lower case with colons, a DHCP name case-folded; an address as given
// (the daemon writes it canonically). Empty when `text` cannot be a device, with *error set.
std::string canonical_device(const std::string& text, std::string& error) {
  auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
  auto is_hex = [&](char c) { return (c >= '0' && c <= '9') || (lower(c) >= 'a' && lower(c) <= 'f'); };
  if (text.size() == 17 && (text[2] == ':' || text[2] == '-')) {
    std::string mac;
    for (std::size_t i = 0; i < text.size(); ++i) {
      const bool sep = i % 3 == 2;
      if (sep ? text[i] != text[2] : !is_hex(text[i])) {
        error = "--device " + quote(text) + " is not a hardware address like 3c:22:fb:12:9a:01";
        return {};
      }
      mac += sep ? ':' : lower(text[i]);
    }
    return mac;
  }
  if (text.find(':') != std::string::npos) return text;  // IPv6: the daemon checks it
  if (text.empty() || text.size() > 253) {
    error = "--device takes an address, a hardware address or a device name (1 to 253 characters)";
    return {};
  }
  std::string name;
  for (char c : text) {
    const char l = lower(c);
    if (!((l >= 'a' && l <= 'z') || (l >= '0' && l <= '9') || l == '.' || l == '-' || l == '_')) {
      error = "--device " + quote(text) +
              " is not a device: give an address (10.10.4.20), a hardware address (3c:22:fb:12:9a:01) or a "
              "device name from the DHCP leases (letters, digits, '.', '-', '_')";
      return {};
    }
    name += l;
  }
  return name;
}

std::string copy_device(const verb_arguments& a, json::object& out) {
  const std::string* d = a.value("--device");
  if (!d) return {};
  std::string error;
  const std::string canonical = canonical_device(*d, error);
  if (canonical.empty()) return error;
  out["device"] = canonical;
  return {};
}

std::string check_local_time(const verb_arguments& a, std::string_view flag) {
  const std::string* t = a.value(flag);
  if (t && !is_local_time(*t)) {
    // The right shape, but no such day or time (29 February in a common year, 31 April,
    // 24:00): said so, not "the wrong format" (admin audit, 2026-12-06).
    bool shaped = t->size() == 16;
    for (std::size_t i = 0; shaped && i < 16; ++i) {
      const char want = i == 4 || i == 7 ? '-' : i == 10 ? ' ' : i == 13 ? ':' : '0';
      shaped = want == '0' ? ((*t)[i] >= '0' && (*t)[i] <= '9') : (*t)[i] == want;
    }
    if (shaped) {
      return std::string(flag) + " " + quote(*t) +
             " is not a date and time that exists: check the month (01 to 12), the day of the month (February "
             "has 28 days but in a leap year, April, June, September and November 30) and the time (00:00 to 23:59)";
    }
    return std::string(flag) +
           " takes a school-local time \"YYYY-MM-DD HH:MM\" such as \"2026-11-23 15:30\" (or with its UTC offset, "
           "\"2026-10-25 01:30+00:00\"), not " +
           quote(*t);
  }
  return {};
}

// Each --role value may itself be a comma list: --role pupils --role staff,office.
std::string collect_roles(const verb_arguments& a, json::array& roles) {
  auto it = a.values.find("--role");
  if (it == a.values.end()) return {};
  for (const std::string& value : it->second) {
    std::size_t start = 0;
    while (start <= value.size()) {
      std::size_t comma = value.find(',', start);
      if (comma == std::string::npos) comma = value.size();
      std::string_view role(value.data() + start, comma - start);
      while (!role.empty() && role.front() == ' ') role.remove_prefix(1);
      while (!role.empty() && role.back() == ' ') role.remove_suffix(1);
      if (role.empty()) return "--role " + quote(value) + " has an empty role name";
      roles.emplace_back(role);
      start = comma + 1;
    }
  }
  return {};
}

std::string build_request(const verb_arguments& a, json::object& out) {
  if (auto m = missing(a, {"--url", "--requester", "--reason"}); !m.empty()) return m;
  json::array roles;
  if (auto e = collect_roles(a, roles); !e.empty()) return e;
  const int who = (roles.empty() ? 0 : 1) + (a.has("--user") ? 1 : 0) + (a.has("--client") ? 1 : 0);
  if (who == 0) return "say who the exception is for: --role ROLE, --user NAME or --client CIDR";
  if (who > 1) return "give only one of --role, --user and --client";
  copy_value(a, "--url", "url", out);
  if (!roles.empty()) out["roles"] = std::move(roles);
  copy_value(a, "--user", "user", out);
  copy_value(a, "--client", "client", out);
  copy_value(a, "--requester", "requester", out);
  copy_value(a, "--reason", "reason", out);
  copy_value(a, "--site-content", "site_content", out);
  copy_value(a, "--risks", "risks", out);
  copy_value(a, "--control-measures", "control_measures", out);
  return {};
}

// --for or --until, one of them, checked as the daemon will (approve, extend).
std::string check_exception_end(const verb_arguments& a) {
  const std::string* duration = a.value("--for");
  const std::string* until = a.value("--until");
  if (!duration && !until) {
    return "say how long: --for DURATION (45m, 2h, 1d, 2w, 1h30m) or --until \"YYYY-MM-DD HH:MM\"";
  }
  if (duration && until) return "give --for or --until, not both";
  if (duration && !is_duration(*duration)) {
    const std::string_view number = std::string_view(*duration).substr(0, duration->size() - 1);
    if (!number.empty() &&
        std::all_of(number.begin(), number.end(), [](char c) { return c == '0'; }) &&
        std::string_view("smhdw").find(duration->back()) != std::string_view::npos) {
      return "--for " + *duration + " is zero: an exception must last at least 1s";
    }
    if (duration->front() == '-') {
      return "--for " + *duration +
             " is negative: use whole numbers, each with a unit, such as 45m, 2h, 1d, 2w or 1h30m";
    }
    return quote(*duration) +
           " is not a duration: use whole numbers, each with a unit, such as 45m, 2h, 1d, 2w or 1h30m";
  }
  return check_local_time(a, "--until");
}

std::string build_approve(const verb_arguments& a, json::object& out) {
  if (auto e = take_id(a, "request ID", out); !e.empty()) return e;
  if (auto e = check_exception_end(a); !e.empty()) return e;
  if (auto e = check_scope(a); !e.empty()) return e;
  if (auto e = check_who(a); !e.empty()) return e;
  copy_value(a, "--for", "for", out);
  copy_value(a, "--until", "until", out);
  copy_value(a, "--scope", "scope", out);
  copy_value(a, "--who", "who", out);
  copy_value(a, "--reason", "reason", out);
  return {};
}

std::string build_extend(const verb_arguments& a, json::object& out) {
  if (auto e = take_id(a, "request ID", out); !e.empty()) return e;
  if (auto e = check_exception_end(a); !e.empty()) return e;
  copy_value(a, "--for", "for", out);
  copy_value(a, "--until", "until", out);
  copy_value(a, "--reason", "reason", out);
  return {};
}

// The adult questions of a pending request; at least one. Blank and over-long text is the
// daemon's to refuse, so that scripts on the socket get the same answers.
std::string build_review(const verb_arguments& a, json::object& out) {
  if (auto e = take_id(a, "request ID", out); !e.empty()) return e;
  if (!a.has("--risks") && !a.has("--control-measures") && !a.has("--site-content") &&
      !a.has("--note")) {
    return "nothing to complete: give --risks, --control-measures, --site-content or --note";
  }
  copy_value(a, "--risks", "risks", out);
  copy_value(a, "--control-measures", "control_measures", out);
  copy_value(a, "--site-content", "site_content", out);
  copy_value(a, "--note", "note", out);
  return {};
}

// deny, revoke (build_decision) and unblock: an ID and a required reason.
std::string build_id_and_reason(const verb_arguments& a, json::object& out, std::string_view what) {
  if (auto e = take_id(a, what, out); !e.empty()) return e;
  if (auto m = missing(a, {"--reason"}); !m.empty()) return m;
  copy_value(a, "--reason", "reason", out);
  return {};
}

std::string build_decision(const verb_arguments& a, json::object& out) {
  return build_id_and_reason(a, out, "request ID");
}

std::string build_unblock(const verb_arguments& a, json::object& out) {
  return build_id_and_reason(a, out, "block entry ID");
}

// --before ID, when given, as `before` (an id, checked as take_id checks one).
std::string take_before(const verb_arguments& a, std::string_view what, json::object& out) {
  const std::string* before = a.value("--before");
  if (!before) return {};
  verb_arguments only_id;
  only_id.positionals.push_back(*before);
  json::object parsed;
  if (auto e = take_id(only_id, what, parsed); !e.empty()) return e;
  out["before"] = parsed["id"];
  return {};
}

std::string build_list(const verb_arguments& a, json::object& out) {
  std::string_view filter = "pending";
  int given = 0;
  for (std::string_view f : {"pending", "active", "expired", "all"}) {
    if (a.flags.contains("--" + std::string(f))) {
      filter = f;
      ++given;
    }
  }
  if (given > 1) return "give only one of --pending, --active, --expired and --all";
  out["filter"] = filter;
  return take_before(a, "request ID of --before", out);
}

std::string build_show(const verb_arguments& a, json::object& out) {
  return take_id(a, "request ID", out);
}

std::string build_report(const verb_arguments& a, json::object& out) {
  if (auto m = missing(a, {"--url", "--nature", "--reporter"}); !m.empty()) return m;
  copy_value(a, "--url", "url", out);
  copy_value(a, "--nature", "nature", out);
  copy_value(a, "--reporter", "reporter", out);
  copy_value(a, "--individual", "individual", out);
  out["block"] = a.flags.contains("--block");
  return {};
}

std::string build_nothing(const verb_arguments&, json::object&) {
  return {};
}

std::string build_block(const verb_arguments& a, json::object& out) {
  if (auto m = missing(a, {"--url", "--reason"}); !m.empty()) return m;
  if (auto e = check_scope(a); !e.empty()) return e;
  copy_value(a, "--url", "url", out);
  copy_value(a, "--scope", "scope", out);
  copy_value(a, "--reason", "reason", out);
  return {};
}

std::string build_blocks(const verb_arguments& a, json::object& out) {
  out["all"] = a.flags.contains("--all");
  return {};
}

std::string build_audit(const verb_arguments& a, json::object& out) {
  if (auto e = check_local_time(a, "--since"); !e.empty()) return e;
  copy_value(a, "--since", "since", out);
  if (auto e = take_before(a, "audit entry ID of --before", out); !e.empty()) return e;
  if (const std::string* limit = a.value("--limit")) {
    const bool digits = !limit->empty() && limit->size() <= 4 &&
                        std::all_of(limit->begin(), limit->end(), [](char c) { return c >= '0' && c <= '9'; });
    const int n = digits ? std::stoi(*limit) : 0;
    if (n < 1 || n > 1000) return "--limit takes a whole number from 1 to 1000, not " + quote(*limit);
    out["limit"] = n;
  }
  return {};
}

// ban: --user NAME or --device ADDRESS, --for, --reason; or --confirm ID (a technician's
// proposal, confirmed by the DSL or the headteacher, with an optional --reason).
std::string build_ban(const verb_arguments& a, json::object& out) {
  if (const std::string* id = a.value("--confirm")) {
    if (a.has("--user") || a.has("--device") || a.has("--for")) {
      return "--confirm ID confirms a proposed ban as it was proposed: give no --user, --device or --for";
    }
    verb_arguments only_id;
    only_id.positionals.push_back(*id);
    json::object parsed;
    if (auto e = take_id(only_id, "ban ID of --confirm", parsed); !e.empty()) return e;
    out["confirm"] = parsed["id"];
    copy_value(a, "--reason", "reason", out);
    return {};
  }
  const int who = (a.has("--user") ? 1 : 0) + (a.has("--device") ? 1 : 0);
  if (who == 0) return "say who is banned: --user NAME or --device ADDRESS";
  if (who > 1) return "give --user or --device, not both";
  if (auto m = missing(a, {"--for", "--reason"}); !m.empty()) return m;
  const std::string& d = *a.value("--for");
  if (!is_duration(d)) {
    const bool zero = d.size() >= 2 && d.find_first_not_of('0') == d.size() - 1 && is_duration("1" + d);
    return quote(d) + (zero ? " is zero: a ban lasts from 1m to 366d"
                            : " is not a duration: use whole numbers, each with a unit, such as 45m, 6h, 3d or 2w");
  }
  copy_value(a, "--user", "user", out);
  if (auto e = copy_device(a, out); !e.empty()) return e;
  copy_value(a, "--for", "for", out);
  copy_value(a, "--reason", "reason", out);
  return {};
}

// unban: a ban ID, or --user NAME, or --device ADDRESS; and --reason.
std::string build_unban(const verb_arguments& a, json::object& out) {
  const int who = (a.positionals.empty() ? 0 : 1) + (a.has("--user") ? 1 : 0) + (a.has("--device") ? 1 : 0);
  if (who == 0) return "say which ban: a ban ID, --user NAME or --device ADDRESS";
  if (who > 1) return "give only one of a ban ID, --user and --device";
  if (!a.positionals.empty()) {
    if (auto e = take_id(a, "ban ID", out); !e.empty()) return e;
  }
  if (auto m = missing(a, {"--reason"}); !m.empty()) return m;
  copy_value(a, "--user", "user", out);
  if (auto e = copy_device(a, out); !e.empty()) return e;
  copy_value(a, "--reason", "reason", out);
  return {};
}

// incident: open one (--user or --device, --what; --category, --at, --action, --outcome), or,
// with an incident ID, record an --action, close it with an --outcome, or (neither) show it.
std::string build_incident(const verb_arguments& a, json::object& out) {
  if (!a.positionals.empty()) {
    if (auto e = take_id(a, "incident ID", out); !e.empty()) return e;
    for (const char* fixed : {"--user", "--device", "--what", "--category", "--at"}) {
      if (a.has(fixed)) {
        return std::string(fixed) + " is written when an incident is opened and never changed: with an ID give " +
               "--action, --outcome, or neither to show the incident";
      }
    }
  } else {
    const int who = (a.has("--user") ? 1 : 0) + (a.has("--device") ? 1 : 0);
    if (who == 0) return "say whom the incident is about: --user NAME or --device ADDRESS (or give an incident ID)";
    if (who > 1) return "give --user or --device, not both";
    if (auto m = missing(a, {"--what"}); !m.empty()) return m;
    if (auto e = check_local_time(a, "--at"); !e.empty()) return e;
    copy_value(a, "--user", "user", out);
    if (auto e = copy_device(a, out); !e.empty()) return e;
    copy_value(a, "--what", "what", out);
    copy_value(a, "--category", "category", out);
    copy_value(a, "--at", "at", out);
  }
  copy_value(a, "--action", "action", out);
  copy_value(a, "--outcome", "outcome", out);
  return {};
}

std::string build_incidents(const verb_arguments& a, json::object& out) {
  if (a.has("--user") && a.has("--device")) return "give --user or --device, not both";
  out["all"] = a.flags.contains("--all");
  copy_value(a, "--user", "user", out);
  return copy_device(a, out);
}

using k = option_kind;

const std::vector<verb_spec>& verbs() {
  static const std::vector<verb_spec> table = {
      {"request",
       "",
       {{"--url", k::value},
        {"--role", k::repeated},
        {"--user", k::value},
        {"--client", k::value},
        {"--requester", k::value},
        {"--reason", k::value},
        {"--site-content", k::value},
        {"--risks", k::value},
        {"--control-measures", k::value}},
       "hallpassctl request --url URL (--role ROLE ... | --user NAME | --client CIDR)\n"
       "                   --requester NAME --reason TEXT [--site-content TEXT] [--risks TEXT]\n"
       "                   [--control-measures TEXT]",
       "File a blocked content access request from the paper or block-page form (000 7.5 and\n"
       "appendix; 002): the full URL, who the exception would be for (one or more roles, one\n"
       "user, or one client address or network), the member of staff asking (--requester) and\n"
       "the reasons for access (--reason). --site-content, --risks and --control-measures carry\n"
       "the form's other fields. --role may be repeated or take a comma list (pupils,staff).\n"
       "The request then waits for the headteacher. Prints the new request's id.\n"
       "Allowed for: technician, headteacher, dsl.",
       build_request},
      {"review",
       "request ID",
       {{"--risks", k::value},
        {"--control-measures", k::value},
        {"--site-content", k::value},
        {"--note", k::value}},
       "hallpassctl review ID [--risks TEXT] [--control-measures TEXT] [--site-content TEXT]\n"
       "                  [--note TEXT]",
       "Complete the adult questions of a pending request's form (000 7.5 and appendix): the\n"
       "identified risks and the control measures, which the block page does not ask a pupil.\n"
       "--site-content adds your description of the site beside the requester's own words,\n"
       "which are never changed; --note is for the headteacher. Give at least one; each is at\n"
       "most 2,000 characters and replaces what an earlier review gave (the audit log keeps\n"
       "both). Only a pending request can be completed.\n"
       "Allowed for: technician, headteacher, dsl.",
       build_review},
      {"approve",
       "request ID",
       {{"--for", k::value},
        {"--until", k::value},
        {"--scope", k::value},
        {"--who", k::value},
        {"--reason", k::value}},
       "hallpassctl approve ID (--for DURATION | --until \"YYYY-MM-DD HH:MM\")\n"
       "                   [--scope url|prefix|domain] [--who user|group:NAME|device|role] [--reason TEXT]",
       "Approve a pending request. The exception starts at once and ends by itself after --for\n"
       "(45m, 2h, 1d, 2w, 1h30m) or at --until (school-local time): the block comes back with nobody\n"
       "acting. --scope says what it opens: the whole domain, every URL under the request's URL\n"
       "(prefix) or that one URL; the default is domain when the URL's path is /, else prefix.\n"
       "--who says whom it opens it for: the signed-in user who asked (user), a directory\n"
       "group such as a class (group:\"Year 6\"), the device the form came from (device: by\n"
       "its DHCP name when known, else its address) or the whole role (role). The default is\n"
       "the narrowest: the user when a signed-in user asked, else the device; a request filed\n"
       "with hallpassctl keeps the role, user or network it was filed for.\n"
       "A locked category is never opened. A request whose identified risks or control\n"
       "measures are still empty is approved too, with a warning on stderr (complete them\n"
       "with review), and the audit log says so. A block-page request's URL is stored without\n"
       "its query unless access_log.keep_query is on: --scope url then opens exactly that URL,\n"
       "not the page with a query, and a warning says so.\n"
       "Allowed for: headteacher.",
       build_approve},
      {"deny",
       "request ID",
       {{"--reason", k::value}},
       "hallpassctl deny ID --reason TEXT",
       "Refuse a pending request, with the reason recorded on the form.\n"
       "Allowed for: headteacher.",
       build_decision},
      {"revoke",
       "request ID",
       {{"--reason", k::value}},
       "hallpassctl revoke ID --reason TEXT",
       "End an approved exception now, before its end time. The block is back at once.\n"
       "Allowed for: headteacher.",
       build_decision},
      {"extend",
       "request ID",
       {{"--for", k::value}, {"--until", k::value}, {"--reason", k::value}},
       "hallpassctl extend ID (--for DURATION | --until \"YYYY-MM-DD HH:MM\") [--reason TEXT]",
       "Give an approved exception a later end: --for counts from now (45m, 2h, 1d, 2w, 1h30m),\n"
       "--until is a school-local time, and either must be later than its end now. One that has\n"
       "expired opens again; a revoked or denied one does not (file the request again). The\n"
       "longest an exception may last is as for approve. The audit log keeps the old end and\n"
       "the new.\n"
       "Allowed for: headteacher.",
       build_extend},
      {"list",
       "",
       {{"--pending", k::flag}, {"--active", k::flag}, {"--expired", k::flag}, {"--all", k::flag},
        {"--before", k::value}},
       "hallpassctl list [--pending | --active | --expired | --all] [--before ID]",
       "List access requests: waiting for a decision (--pending, the default), approved and\n"
       "running now (--active), whose exception has ended (--expired), or every request (--all).\n"
       "The newest 200 are shown; --before ID shows the 200 before request ID.\n"
       "Allowed for: technician, headteacher, dsl.",
       build_list},
      {"show",
       "request ID",
       {},
       "hallpassctl show ID",
       "Every field of one request: the form, who filed it, the decision and the exception.\n"
       "Allowed for: technician, headteacher, dsl.",
       build_show},
      {"report",
       "",
       {{"--url", k::value},
        {"--nature", k::value},
        {"--reporter", k::value},
        {"--individual", k::value},
        {"--block", k::flag}},
       "hallpassctl report --url URL --nature TEXT --reporter NAME [--individual NAME] [--block]",
       "File an inappropriate content report (000 7.3 and appendix): the URL, the nature of the\n"
       "content, who reported it, and the individual concerned if known. --block also blocks\n"
       "the page for everyone at once (a local block entry, shown in the answer).\n"
       "Allowed for: technician, headteacher, dsl.",
       build_report},
      {"reports",
       "",
       {},
       "hallpassctl reports",
       "List inappropriate content reports and the action taken.\n"
       "Allowed for: technician, headteacher, dsl.",
       build_nothing},
      {"block",
       "",
       {{"--url", k::value}, {"--scope", k::value}, {"--reason", k::value}},
       "hallpassctl block --url URL [--scope url|prefix|domain] --reason TEXT",
       "Add a local block entry for everyone: the URL's domain (the default), every URL under\n"
       "it (prefix) or that one URL. Prints the entry's id, for unblock.\n"
       "Allowed for: technician, headteacher, dsl.",
       build_block},
      {"blocks",
       "",
       {{"--all", k::flag}},
       "hallpassctl blocks [--all]",
       "List the local block entries in force (from block and report --block): id, when and by\n"
       "whom, what is blocked, its kind and the reason. --all includes removed entries and who\n"
       "removed them. The ID is what unblock takes.\n"
       "Allowed for: technician, headteacher, dsl.",
       build_blocks},
      {"unblock",
       "block entry ID",
       {{"--reason", k::value}},
       "hallpassctl unblock ID --reason TEXT",
       "Remove a local block entry (the ID printed by block or report --block).\n"
       "Allowed for: technician, headteacher.",
       build_unblock},
      {"audit",
       "",
       {{"--since", k::value}, {"--before", k::value}, {"--limit", k::value}},
       "hallpassctl audit [--since \"YYYY-MM-DD HH:MM\"] [--before ID] [--limit N]",
       "The audit log: every change and every refusal, with the OS user, the admin role, the\n"
       "object, the outcome and the reason, oldest first. It shows the newest 200 entries (or\n"
       "--limit N, 1 to 1000) and says how many older ones it left out; --before ID shows\n"
       "those older than entry ID (the first one shown), --since those from a school-local\n"
       "time. A long log's answer stays within what hallpassctl reads (16 MiB).\n"
       "Allowed for: technician, headteacher, dsl.",
       build_audit},
      {"reload",
       "",
       {},
       "hallpassctl reload",
       "Reload the policy file: validated aside and swapped in atomically; on any error the\n"
       "running policy stays and every error is printed.\n"
       "Allowed for: technician, headteacher.",
       build_nothing},
      {"ban",
       "",
       {{"--user", k::value},
        {"--device", k::value},
        {"--for", k::value},
        {"--reason", k::value},
        {"--confirm", k::value}},
       "hallpassctl ban (--user NAME | --device ADDRESS|NAME|HARDWARE-ADDRESS) --for DURATION --reason TEXT\n"
       "hallpassctl ban --confirm ID [--reason TEXT]",
       "Ban a user or one device from everything but the sites the policy lists\n"
       "for supervised use (bans.policy; 000 7.2, 002) for --for (45m, 6h, 3d; at most 366d).\n"
       "The reason is for staff: the pupil's page shows the school's neutral bans.message and\n"
       "the end time. --reason - reads it from standard input, off the command line (where\n"
       "other users of the machine see it in ps, and the shell keeps it). By the DSL or the headteacher the ban is in force at once; by a\n"
       "technician it is a proposal, with no effect until the DSL or the headteacher confirms\n"
       "it with --confirm ID (it then runs for its length from that moment).\n"
       "A device is named by its address, or by its name or hardware address from the DHCP\n"
       "leases (dhcp_leases): then the ban follows the device when its lease moves.\n"
       "Allowed for: dsl, headteacher (technician: proposals only).",
       build_ban},
      {"unban",
       "ban ID",
       {{"--user", k::value}, {"--device", k::value}, {"--reason", k::value}},
       "hallpassctl unban (ID | --user NAME | --device ADDRESS) --reason TEXT",
       "Lift a ban now: one ban by its ID (a proposal is withdrawn), or every ban in force or\n"
       "proposed on a user or a device. --reason - reads the reason from standard input.\n"
       "Allowed for: dsl, headteacher.",
       build_unban},
      {"bans",
       "",
       {{"--all", k::flag}},
       "hallpassctl bans [--all]",
       "The bans in force and the proposals waiting, with who, why, how (command, proposal,\n"
       "automatic) and until when. --all includes ended, lifted and withdrawn ones.\n"
       "Allowed for: technician, headteacher, dsl.",
       build_blocks},
      {"incident",
       "incident ID",
       {{"--user", k::value},
        {"--device", k::value},
        {"--what", k::value},
        {"--category", k::value},
        {"--at", k::value},
        {"--action", k::value},
        {"--outcome", k::value}},
       "hallpassctl incident (--user NAME | --device ADDRESS) --what TEXT [--category NAME]\n"
       "                     [--at \"YYYY-MM-DD HH:MM\"] [--action TEXT] [--outcome TEXT]\n"
       "hallpassctl incident ID [--action TEXT] [--outcome TEXT]",
       "The incident record (DfE filtering and monitoring standards: a record of action and\n"
       "outcome): what happened to a user or a device, what was done, and how it ended.\n"
       "Without an ID, opens one: --what says what happened (an alert, what a teacher saw),\n"
       "--at when (school-local; default now), --category the alert's category. With an ID:\n"
       "--action records one thing done (each with who and when; never edited), --outcome\n"
       "closes it (once; what follows is recorded as actions), neither shows the record.\n"
       "Each text is at most 2000 characters. The record stays in the store (retention.incidents,\n"
       "default forever) and every change is in the audit log, shown to the DSL and the\n"
       "headteacher only.\n"
       "Allowed for: dsl, headteacher.",
       build_incident},
      {"incidents",
       "",
       {{"--all", k::flag}, {"--user", k::value}, {"--device", k::value}},
       "hallpassctl incidents [--all] [--user NAME | --device ADDRESS]",
       "The open incident records (--all: closed ones too), oldest first, each with whom it is\n"
       "about, when it happened, who opened it, how many actions it has and what happened;\n"
       "--user or --device lists one person's or one device's. The newest 200 are shown.\n"
       "Allowed for: dsl, headteacher.",
       build_incidents},
      {"status",
       "",
       {},
       "hallpassctl status",
       "The daemon's version, policy generation, uptime, active exceptions and pending requests.\n"
       "Allowed for: technician, headteacher, dsl.",
       build_nothing},
  };
  return table;
}

const verb_spec* find_verb(std::string_view name) {
  for (const auto& v : verbs()) {
    if (v.name == name) return &v;
  }
  return nullptr;
}

const option_spec* find_option(const verb_spec& verb, std::string_view name) {
  for (const auto& o : verb.options) {
    if (o.name == name) return &o;
  }
  return nullptr;
}

bool looks_like_option(std::string_view s) {
  return s.size() >= 2 && s.substr(0, 2) == "--";
}

bool is_help(std::string_view s) {
  return s == "--help" || s == "-h";
}

// The verb the user meant, for --help anywhere on the line: the first word that is not an
// option or the value of --socket.
std::string find_verb_word(const std::vector<std::string>& args) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--socket") {
      ++i;
    } else if (!args[i].empty() && args[i][0] != '-') {
      return args[i];
    }
  }
  return {};
}

constexpr std::string_view general_synopsis = "hallpassctl [--socket PATH] VERB ... [--json]";

}  // namespace

// "45m", "2w", "1h30m": whole numbers, each with a unit (s, m, h, d, w), largest first, not all
// zero. The daemon checks it again (admin_duration), and the range.
bool is_duration(std::string_view text) {
  if (text.size() < 2 || text.size() > 24) return false;
  bool above_zero = false;
  std::size_t last_rank = 5;
  while (!text.empty()) {
    std::size_t digits = 0;
    while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
    if (digits == 0 || digits > 9 || digits == text.size()) return false;
    const auto rank = std::string_view("smhdw").find(text[digits]);
    if (rank == std::string_view::npos || rank >= last_rank) return false;
    last_rank = rank;
    above_zero = above_zero || text.substr(0, digits).find_first_not_of('0') != std::string_view::npos;
    text.remove_prefix(digits + 1);
  }
  return above_zero;
}

bool is_local_time(std::string_view t) {
  // YYYY-MM-DD HH:MM, and optionally its UTC offset (+01:00, -05:00, Z): the way to name the
  // second of an autumn night's two 01:30s (rules::parse_school_time; the daemon checks it too).
  if (t.size() == 17 && t[16] == 'Z') t.remove_suffix(1);
  if (t.size() == 22 && (t[16] == '+' || t[16] == '-') && t[19] == ':') {
    const auto d = [&](std::size_t i) { return t[i] >= '0' && t[i] <= '9'; };
    if (!d(17) || !d(18) || !d(20) || !d(21)) return false;
    t.remove_suffix(6);
  }
  if (t.size() != 16 || t[4] != '-' || t[7] != '-' || t[10] != ' ' || t[13] != ':') return false;
  auto number = [&](std::size_t at, std::size_t len, int& out) {
    out = 0;
    for (std::size_t i = at; i < at + len; ++i) {
      if (t[i] < '0' || t[i] > '9') return false;
      out = out * 10 + (t[i] - '0');
    }
    return true;
  };
  int year, month, day, hour, minute;
  if (!number(0, 4, year) || !number(5, 2, month) || !number(8, 2, day) || !number(11, 2, hour) ||
      !number(14, 2, minute)) {
    return false;
  }
  if (year < 1970 || month < 1 || month > 12 || hour > 23 || minute > 59) return false;
  static constexpr int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  const int last = days[month - 1] + (month == 2 && leap ? 1 : 0);
  return day >= 1 && day <= last;
}

parse_result parse_command_line(const std::vector<std::string>& args) {
  // --help anywhere wins, so "approve 7 --for 90 --help" shows the help rather than an error.
  const std::string verb_word = find_verb_word(args);
  if (verb_word == "help") {
    for (std::size_t i = 0; i + 1 < args.size(); ++i) {
      if (args[i] == "help") return help_request{find_verb(args[i + 1]) ? args[i + 1] : ""};
    }
    return help_request{};
  }
  if (std::any_of(args.begin(), args.end(), [](const std::string& a) { return is_help(a); })) {
    return help_request{find_verb(verb_word) ? verb_word : ""};
  }

  command cmd;
  const verb_spec* verb = nullptr;
  verb_arguments typed;
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string name = args[i];
    std::optional<std::string> inline_value;  // --name=value
    if (looks_like_option(name)) {
      if (auto eq = name.find('='); eq != std::string::npos) {
        inline_value = name.substr(eq + 1);
        name.resize(eq);
      }
    }
    const std::string verb_name = verb ? std::string(verb->name) : std::string();
    auto take_value = [&]() -> std::optional<std::string> {
      if (inline_value) return inline_value;
      if (i + 1 < args.size() && !looks_like_option(args[i + 1])) return args[++i];
      return std::nullopt;
    };

    if (name == "--version") return version_request{};
    if (name == "--json") {
      if (inline_value) return usage_error{verb_name, "--json takes no value"};
      cmd.json_output = true;
      continue;
    }
    if (name == "--socket") {
      auto v = take_value();
      if (!v || v->empty()) return usage_error{verb_name, "--socket needs a path"};
      cmd.socket_path = *v;
      continue;
    }

    if (!verb) {
      if (!name.empty() && name[0] == '-') {
        return usage_error{"",
                           "unknown option " + quote(name) +
                               did_you_mean(name, {"--socket", "--json", "--help", "--version"})};
      }
      verb = find_verb(name);
      if (!verb) {
        std::vector<std::string_view> names;
        for (const auto& v : verbs()) names.push_back(v.name);
        return usage_error{"", "unknown verb " + quote(name) + did_you_mean(name, names)};
      }
      continue;
    }

    if (name.size() > 1 && name[0] == '-') {
      const option_spec* option = find_option(*verb, name);
      if (!option) {
        std::vector<std::string_view> names{"--socket", "--json", "--help"};
        for (const auto& o : verb->options) names.push_back(o.name);
        return usage_error{verb_name, "unknown option " + quote(name) + " for " + verb_name +
                                          did_you_mean(name, names)};
      }
      if (option->kind == option_kind::flag) {
        if (inline_value) return usage_error{verb_name, name + " takes no value"};
        typed.flags.insert(name);
        continue;
      }
      auto v = take_value();
      if (!v) return usage_error{verb_name, name + " needs a value"};
      if (v->empty()) return usage_error{verb_name, name + " must not be empty"};
      // Said here, by name: the daemon could only say the message was not JSON (audit14 D9).
      if (!rules::is_valid_utf8(*v)) {
        return usage_error{verb_name, name + " is not UTF-8 text (check the terminal's or the script's encoding)"};
      }
      auto& slot = typed.values[name];
      if (!slot.empty() && option->kind == option_kind::value) {
        return usage_error{verb_name, name + " given twice"};
      }
      slot.push_back(std::move(*v));
      continue;
    }

    if (!rules::is_valid_utf8(args[i])) return usage_error{verb_name, "an argument is not UTF-8 text"};
    typed.positionals.push_back(args[i]);
  }

  if (!verb) return usage_error{"", "missing the verb"};
  const std::string verb_name(verb->name);
  const std::size_t allowed_positionals = verb->id_name.empty() ? 0 : 1;
  if (typed.positionals.size() > allowed_positionals) {
    return usage_error{verb_name,
                       "unexpected argument " + quote(typed.positionals[allowed_positionals])};
  }
  json::object out;
  if (std::string e = verb->build(typed, out); !e.empty())
    return usage_error{verb_name, std::move(e)};
  cmd.verb = verb_name;
  cmd.args = std::move(out);
  return cmd;
}

std::string general_usage() {
  return R"(hallpassctl - the admin client of the hallpass web filter

usage: hallpassctl [--socket PATH] VERB ... [--json]

Access requests (the blocked content access request form):      who may
  request   file a request for a blocked page                    technician, headteacher, dsl
  review    complete a pending request's risks and controls      technician, headteacher, dsl
  approve   approve a request for a time; it ends by itself      headteacher
  deny      refuse a request                                     headteacher
  revoke    end an approved exception now                        headteacher
  list      requests: --pending (default), --active, --expired   any admin role
  show      every field of one request                           any admin role
Inappropriate content reports and local blocks:
  report    file a report; --block blocks the page for everyone  technician, headteacher, dsl
  reports   list the reports                                     any admin role
  block     add a local block entry                              technician, headteacher, dsl
  blocks    list the local block entries; --all with removed     any admin role
  unblock   remove a local block entry                           technician, headteacher
Circumvention bans (000 7.2):
  ban       ban a user or device; a technician's is a proposal    dsl, headteacher (propose: technician)
  unban     lift a ban now                                       dsl, headteacher
  bans      list the bans; --all with lifted and ended           any admin role
Incident records (what the DSL did about an alert, and how it ended):
  incident  open one; with an ID record an action or the outcome dsl, headteacher
  incidents list the open ones; --all with closed                dsl, headteacher
The daemon:
  audit     who changed what, and every refusal                  any admin role
  reload    reload the policy; on any error the old one stays    technician, headteacher
  status    generation, uptime, exceptions, pending requests     any admin role

Options:
  --socket PATH   the admin socket (default: $HALLPASS_SOCKET, else /run/hallpass/admin.socket)
  --json          print the answer's data as one JSON object, for scripts
  --help          this text; 'hallpassctl VERB --help' for one verb
  --version

Times are school-local "YYYY-MM-DD HH:MM"; durations are 45m, 2h, 1d, 2w, 1h30m.
Environment: HALLPASS_SOCKET; HALLPASSCTL_TIMEOUT (seconds to wait for the daemon, default 30).
Exit codes: 0 done, 1 the daemon refused or failed, 2 bad usage, 3 cannot connect.
)";
}

std::string verb_usage(std::string_view name) {
  const verb_spec* verb = find_verb(name);
  if (!verb) return {};
  return "usage: " + std::string(verb->synopsis) + "\n\n" + std::string(verb->description) +
         "\n\nEvery verb also takes --socket PATH (default: $HALLPASS_SOCKET, else\n"
         "/run/hallpass/admin.socket) and --json (the answer's data as one JSON object).\n";
}

std::string usage_hint(const usage_error& error) {
  if (const verb_spec* verb = find_verb(error.verb)) {
    return "usage: " + std::string(verb->synopsis) + "\ntry 'hallpassctl " + error.verb +
           " --help' for more\n";
  }
  std::string names;
  for (const auto& v : verbs()) names += " " + std::string(v.name);
  return "usage: " + std::string(general_synopsis) + "\nverbs:" + names +
         "\ntry 'hallpassctl --help' for more\n";
}

}  // namespace hallpass::ctl
