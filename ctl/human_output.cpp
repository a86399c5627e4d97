#include "ctl/human_output.hpp"

#include <chrono>
#include <cstdio>
#include <initializer_list>
#include <set>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "rules/category_words.hpp"
#include "ctl/text_table.hpp"

namespace hallpass::ctl {
namespace {

namespace json = boost::json;

const json::value* find(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  return it == o.end() ? nullptr : &it->value();
}

const json::object* find_object(const json::object& o, std::string_view key) {
  const json::value* v = find(o, key);
  return v ? v->if_object() : nullptr;
}

// The list an answer holds under `key` ("requests", "bans", ...), or nullptr.
const json::array* find_rows(const json::object& o, std::string_view key) {
  const json::value* v = find(o, key);
  return v ? v->if_array() : nullptr;
}

// A flag argument the request gave as true ("all").
bool flag_set(const json::object& args, std::string_view key) {
  const json::value* v = find(args, key);
  return v && v->is_bool() && v->get_bool();
}

// The answer being rendered's `zone_names` (render_human sets it for the call): how text()
// names the offsets of the times it shows. hallpassctl renders one answer, on one thread.
const json::object* answer_zone_names = nullptr;

}  // namespace

std::string human_time(std::string_view iso, const json::object* zone_names) {
  // "2026-11-23T10:58:00+00:00": the daemon's times are school-local with their offset
  // (docs/admin-protocol.md); --json keeps them so.
  auto digits = [&](std::size_t at, std::size_t n) {
    int v = 0;
    for (std::size_t i = at; i < at + n; ++i) {
      if (iso[i] < '0' || iso[i] > '9') return -1;
      v = v * 10 + (iso[i] - '0');
    }
    return v;
  };
  if (iso.size() != 25 || iso[4] != '-' || iso[7] != '-' || iso[10] != 'T' || iso[13] != ':' || iso[16] != ':' ||
      (iso[19] != '+' && iso[19] != '-') || iso[22] != ':')
    return std::string(iso);
  const int y = digits(0, 4), mo = digits(5, 2), d = digits(8, 2), h = digits(11, 2), mi = digits(14, 2),
            s = digits(17, 2), oh = digits(20, 2), om = digits(23, 2);
  if (y < 0 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 || s < 0 || s > 60 || oh < 0 ||
      om < 0)
    return std::string(iso);
  const std::chrono::year_month_day ymd{std::chrono::year{y}, std::chrono::month{static_cast<unsigned>(mo)},
                                        std::chrono::day{static_cast<unsigned>(d)}};
  if (!ymd.ok()) return std::string(iso);
  static constexpr const char* weekdays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const std::chrono::weekday wd{std::chrono::sys_days{ymd}};
  // The offset by the name the school's zone gives it (the answer's zone_names: "BST" in
  // London, "CEST" in Paris); one the answer does not name as UTC+HH:MM. From a daemon that
  // sends no names (before 2026-12-07), the UK's two offsets by theirs.
  const std::string_view offset = iso.substr(19);
  std::string zone;
  if (zone_names) {
    if (const json::value* v = zone_names->if_contains(offset); v && v->is_string()) zone = v->get_string();
  } else if (offset == "+00:00" || offset == "+01:00") {
    zone = offset == "+00:00" ? "GMT" : "BST";
  }
  if (zone.empty()) zone = offset == "+00:00" ? "UTC" : "UTC" + std::string(offset);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s %d %s %d %02d:%02d ", weekdays[wd.c_encoding()], d, months[mo - 1], y, h, mi);
  return buf + zone;
}

namespace {

// Any value as text: strings as they are (a school-local time in words: human_time), numbers
// and booleans as written, null and absent as "", arrays of strings joined with ", ", anything
// else as compact JSON.
std::string text(const json::value* v) {
  if (!v || v->is_null()) return {};
  if (const auto* s = v->if_string()) return human_time(*s, answer_zone_names);
  if (const auto* a = v->if_array()) {
    std::string out;
    for (const auto& item : *a) {
      if (!out.empty()) out += ", ";
      out += item.is_string() ? std::string(item.get_string()) : json::serialize(item);
    }
    return out;
  }
  return json::serialize(*v);
}

std::string text(const json::object& o, std::string_view key) {
  return text(find(o, key));
}

// The first of `keys` that is present and not empty.
std::string first_of(const json::object& o, std::initializer_list<std::string_view> keys) {
  for (auto key : keys) {
    if (std::string t = text(o, key); !t.empty()) return t;
  }
  return {};
}

// Who an exception is for: "pupils, staff", "user jsmith", "group Year 6", "device
// pupil-laptop-07", "client 10.10.4.0/24". An approved request's exception says (its "who",
// approve --who); otherwise the scope the request was filed with.
std::string who(const json::object& request) {
  if (const json::object* e = find_object(request, "exception")) {
    if (const json::object* w = find_object(*e, "who")) {
      const std::string kind = text(*w, "kind");
      if (kind == "role") return text(*w, "value");
      std::string value = text(*w, "value");
      // A device by name is "NAME@ADDRESS" (that name at that address): said in words.
      if (const auto at = value.rfind('@'); kind == "device" && at != std::string::npos) value.replace(at, 1, " at ");
      if (!kind.empty()) return kind + " " + value;
    }
  }
  const json::object* scope = find_object(request, "scope");
  if (!scope) return {};
  if (std::string roles = text(*scope, "roles"); !roles.empty()) {
    // A pending request from the block page is approved, by default, for whoever asked (the
    // signed-in user, else the device), not the whole role: said so, as approve will do it (it
    // read "pupils": people-side audit, 2026-12-07, L6).
    const json::object* by = find_object(request, "asked_by");
    if (by && text(request, "status") == "pending") {
      if (std::string user = text(*by, "user"); !user.empty()) return "user " + user + " (of " + roles + ")";
      if (std::string device = text(*by, "device"); !device.empty()) return "device " + device + " (of " + roles + ")";
      if (std::string client = text(request, "client"); !client.empty()) return "device " + client + " (of " + roles + ")";
    }
    return roles;
  }
  if (std::string user = text(*scope, "user"); !user.empty()) return "user " + user;
  if (std::string client = text(*scope, "client"); !client.empty()) return "client " + client;
  return {};
}

// "www.facebook.com (domain)", or "" when there is no exception.
std::string opened(const json::object& exception) {
  std::string value = text(exception, "value");
  if (std::string kind = text(exception, "kind"); !kind.empty()) value += " (" + kind + ")";
  return value;
}

// A requester "NAME (signed in as USER)" (request_form_handler.cpp: the name typed is not the
// user's) keeps its "(signed in as USER)" whole in the list's column, and the typed name is cut
// instead: cut at the end, the column hid exactly that (audit, 2026-12-05).
std::string requester_cell(std::string s) {
  constexpr std::string_view marker = " (signed in as ";
  constexpr std::size_t name_room = 16;
  const auto at = s.rfind(marker);
  if (at == std::string::npos || s.back() != ')' || at <= name_room) return s;
  std::size_t cut = name_room - 3;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;  // a whole UTF-8 character
  return s.substr(0, cut) + "..." + s.substr(at);
}

std::string or_dash(std::string s) {
  return s.empty() ? "-" : std::move(s);
}

// The form's adult questions still empty, in the form's words: "identified risks and control
// measures"; "" when none is (or the daemon does not say).
std::string still_to_complete(const json::object& request) {
  const json::value* v = find(request, "to_complete");
  const json::array* fields = v ? v->if_array() : nullptr;
  if (!fields) return {};
  std::vector<std::string> words;
  for (const auto& f : *fields) {
    const std::string name = text(&f);
    words.push_back(name == "risks"              ? "identified risks"
                    : name == "control_measures" ? "control measures"
                                                 : name);
  }
  std::string out;
  for (std::size_t i = 0; i < words.size(); ++i) {
    if (i > 0) out += i + 1 == words.size() ? " and " : ", ";
    out += words[i];
  }
  return out;
}

// The list's FORM column: "complete (ict.tech)", naming who completed the adult questions
// (the reviewer, else whoever filed the form whole); "needs review" while pending and not
// complete; "incomplete" for a request decided so; "-" from a daemon that does not say.
std::string form_state(const json::object& request) {
  if (!find(request, "to_complete")) return "-";
  if (!still_to_complete(request).empty())
    return text(request, "status") == "pending" ? "needs review" : "incomplete";
  std::string by;
  if (const json::object* review = find_object(request, "review")) by = text(*review, "by");
  if (by.empty()) by = text(request, "filed_by");
  return by.empty() ? "complete" : "complete (" + by + ")";
}

// Lines of "Label:  value", values aligned; multi-line values continue under the value.
class labelled_lines {
 public:
  void add(std::string label, std::string value) {
    lines_.emplace_back(std::move(label), std::move(value));
  }

  std::string render() const {
    std::size_t width = 0;
    for (const auto& [label, value] : lines_) width = std::max(width, display_width(label) + 1);
    std::string out;
    for (const auto& [label, value] : lines_) {
      std::string head = printable(label) + ":";
      head.append(width - display_width(label) - 1 + 2, ' ');
      std::string shown = value.empty() ? "-" : value;
      // A value of several lines (a pupil's reasons) keeps its lines, each after the field's
      // column and a "| ", so that no line of it reads as a field of its own: a form's
      // "\nStatus: approved" forged one (outside-in audit J, 2026-12-05). At most
      // max_value_lines of it; --json has the whole text.
      constexpr std::size_t max_value_lines = 20;
      std::size_t start = 0, line = 0;
      for (;;) {
        const std::size_t end = shown.find('\n', start);
        const std::string_view piece = std::string_view(shown).substr(
            start, end == std::string::npos ? std::string::npos : end - start);
        if (line == max_value_lines) {
          std::size_t rest = 1;
          for (std::size_t at = end; at != std::string::npos; at = shown.find('\n', at + 1)) ++rest;
          out += std::string(width + 2, ' ') + "| (" + std::to_string(rest) + " more lines: --json shows them)\n";
          break;
        }
        out += (line == 0 ? head : std::string(width + 2, ' ') + "| ") + printable(piece) + "\n";
        ++line;
        if (end == std::string::npos) break;
        start = end + 1;
      }
    }
    return out;
  }

 private:
  std::vector<std::pair<std::string, std::string>> lines_;
};

// Fields the daemon sends that this client does not know yet are still shown.
void add_unknown_fields(labelled_lines& lines, const json::object& o,
                        std::initializer_list<std::string_view> known,
                        std::string_view prefix = {}) {
  const std::set<std::string_view> names(known);
  for (const auto& field : o) {
    if (!names.contains(field.key())) {
      lines.add(std::string(prefix) + std::string(field.key()), text(&field.value()));
    }
  }
}

std::string render_request_filed(const json::object& data) {
  const std::string id = text(data, "id");
  const std::string status = text(data, "status");
  if (status == "pending" || status.empty()) {
    return printable("request " + id + " filed: pending approval by the headteacher") + "\n";
  }
  return printable("request " + id + " filed: " + status) + "\n";
}

std::string render_decision(std::string_view verb, const json::object& request) {
  const std::string id = text(request, "id");
  const std::string for_whom = who(request);
  const json::object* exception = find_object(request, "exception");
  std::string line;
  if (verb == "approve") {
    line =
        "approved request " + id + ": " + (exception ? opened(*exception) : text(request, "url"));
    if (!for_whom.empty()) line += " for " + for_whom;
    if (exception) {
      if (std::string until = text(*exception, "until"); !until.empty()) line += " until " + until;
    }
  } else if (verb == "extend") {
    line = "extended request " + id + ": " + (exception ? opened(*exception) : text(request, "url"));
    if (!for_whom.empty()) line += " for " + for_whom;
    if (exception) {
      if (std::string until = text(*exception, "until"); !until.empty()) line += " is open until " + until;
    }
  } else if (verb == "deny") {
    line = "denied request " + id + ": " + text(request, "url");
    if (!for_whom.empty()) line += " for " + for_whom;
  } else if (const std::string still_open = text(request, "still_open"); !still_open.empty()) {
    // Another exception in force opens the same for the same people (admin_server.cpp).
    line = "revoked request " + id + ": " + (exception ? opened(*exception) : text(request, "url"));
    if (!for_whom.empty()) line += " for " + for_whom;
    line += " is " + still_open;
  } else if (const json::value* allows = find(request, "policy_allows"); allows && allows->is_bool() &&
                                                                          allows->get_bool()) {
    // The policy does not block it for those people: revoking closed nothing.
    line = "revoked request " + id + ": " + (exception ? opened(*exception) : text(request, "url"));
    if (!for_whom.empty()) line += " for " + for_whom;
    line += ": the policy itself does not block it, so it stays open (unless a local block closes it)";
  } else {
    line = "revoked request " + id + ": " +
           (exception ? opened(*exception) : text(request, "url")) + " is blocked again";
    if (!for_whom.empty()) line += " for " + for_whom;
  }
  return printable(line) + "\n";
}

std::string render_list(const json::object& data, const json::object& args) {
  const json::array* rows = find_rows(data, "requests");
  if (!rows || rows->empty()) {
    const std::string filter = text(args, "filter");
    return filter == "all" || filter.empty() ? "no requests\n" : "no " + filter + " requests\n";
  }
  text_table table({"ID", "STATUS", "REQUESTER", "URL", "SCOPE", "UNTIL", "FORM"});
  table.limit_width(2, 48);  // a plain name is seldom long; "(signed in as USER)" must show whole
  table.limit_width(3, 60);
  for (const auto& row : *rows) {
    const json::object* r = row.if_object();
    if (!r) continue;
    const json::object* exception = find_object(*r, "exception");
    std::string scope = who(*r);
    if (exception) {
      if (std::string kind = text(*exception, "kind"); !kind.empty()) scope += " (" + kind + ")";
    }
    // A page in a category the school watches (self-harm, extremism) is marked, so that it is
    // not decided as any other (people-side audit, 2026-12-07, H1).
    std::string form = form_state(*r);
    const json::object* b = find_object(*r, "blocked_as");
    if (b && flag_set(*b, "watched")) {
      form += ", SAFEGUARDING";
    }
    table.add_row({text(*r, "id"), text(*r, "status"), requester_cell(text(*r, "requester")), text(*r, "url"),
                   or_dash(scope), or_dash(exception ? text(*exception, "until") : ""), form});
  }
  std::string out = table.render();
  if (const json::value* omitted = find(data, "omitted"); omitted && omitted->is_int64() && omitted->as_int64() > 0) {
    // How to read them: the oldest waiting are the ones that waited longest (a flood of forms
    // hid them without a way to page: safeguarding audit, 2026-12-06, M1).
    const json::object* first = rows->empty() ? nullptr : rows->front().if_object();
    const std::string first_id = first ? text(*first, "id") : "";
    const auto n = omitted->as_int64();
    out += std::to_string(n) + (n == 1 ? " older request" : " older requests") + " not shown (the newest " +
           std::to_string(rows->size()) + " are): hallpassctl list " +
           (first_id.empty() ? std::string() : "--before " + printable(first_id) + " ") + "for older ones\n";
  }
  return out;
}

// "self harm (pupils rule 3: Content that ...)": the category as people read it, the rule
// that blocks it, and its reason.
std::string blocked_as_words(const json::object& b) {
  const std::string category = rules::category_words(text(b, "category"));
  std::string out = category.empty() ? std::string("the policy") : category;
  if (std::string rule = text(b, "rule"); !rule.empty()) {
    out += " (" + rule;
    if (std::string reason = text(b, "reason"); !reason.empty()) out += ": " + reason;
    out += ")";
  } else if (!text(b, "local_block").empty()) {
    out = "a reported page";
  }
  return out;
}

std::string render_show(const json::object& r) {
  labelled_lines lines;
  lines.add("Request", text(r, "id"));
  lines.add("Status", text(r, "status"));
  lines.add("Created", text(r, "created"));
  lines.add("Requester", text(r, "requester"));
  lines.add("URL", text(r, "url"));
  if (const json::object* b = find_object(r, "blocked_as")) {
    // What the filter blocks the page as, now: for whoever decides (show_blocked_as).
    lines.add("Blocked as", blocked_as_words(*b));
    if (flag_set(*b, "watched")) {
      lines.add("Safeguarding", "a category the school watches: what the pupil asked and wrote may be a disclosure, "
                                "for the DSL to follow up");
    }
    if (std::string local = text(*b, "local_block"); !local.empty()) {
      lines.add("Local block", local + " (a reported page) blocks it, whatever exception is approved");
    }
  }
  // The pupil's words, or why this caller is not shown them (admin_blocked_as.hpp).
  const std::string withheld = text(r, "withheld");
  const auto words = [&](std::string_view key) {
    const json::value* v = find(r, key);
    return !withheld.empty() && v && v->is_null() ? "(withheld: " + withheld + ")" : text(r, key);
  };
  lines.add("Site content", words("site_content"));
  lines.add("Reasons for access", words("reasons"));
  lines.add("Identified risks", text(r, "risks"));
  lines.add("Control measures", text(r, "control_measures"));
  if (find(r, "to_complete")) {
    const std::string missing = still_to_complete(r);
    lines.add("Form", missing.empty() ? "complete"
                      : text(r, "status") == "pending"
                          ? "to complete: " + missing + " (hallpassctl review)"
                          : "decided without " + missing);
  }
  lines.add("For", who(r));
  lines.add("Filed by", text(r, "filed_by"));
  lines.add("Source", text(r, "source"));
  lines.add("Client", text(r, "client"));
  if (const json::object* by = find_object(r, "asked_by")) {
    // Who asked from the block page, as the proxy knew it (approve --who narrows to them).
    std::string asked;
    if (std::string u = text(*by, "user"); !u.empty()) asked = "user " + u;
    if (std::string d = text(*by, "device"); !d.empty()) asked += (asked.empty() ? "" : ", ") + ("device " + d);
    if (std::string m = text(*by, "mac"); !m.empty()) asked += (asked.empty() ? "" : " ") + ("(" + m + ")");
    if (!asked.empty()) lines.add("Asked by", asked);
  }
  if (const json::object* review = find_object(r, "review")) {
    std::string by = text(*review, "by");
    if (std::string role = text(*review, "role"); !role.empty()) by += " (" + role + ")";
    lines.add("Completed by", by);
    lines.add("Completed at", text(*review, "at"));
    if (std::string site = text(*review, "site_content"); !site.empty())
      lines.add("Site content, reviewer", site);
    if (std::string note = text(*review, "note"); !note.empty()) lines.add("Reviewer's note", note);
    add_unknown_fields(lines, *review, {"by", "role", "at", "site_content", "note"}, "Review ");
  } else if (find(r, "review")) {
    lines.add("Completed by", "not reviewed");
  }
  if (const json::object* d = find_object(r, "decision")) {
    if (find(*d, "outcome")) lines.add("Decision", text(*d, "outcome"));
    lines.add("Decided by", text(*d, "by"));
    lines.add("Decided at", text(*d, "at"));
    lines.add("Decision reason", text(*d, "reason"));
    add_unknown_fields(lines, *d, {"outcome", "by", "at", "reason"}, "Decision ");
  } else {
    lines.add("Decision", "none yet");
  }
  if (const json::object* e = find_object(r, "exception")) {
    lines.add("Exception", opened(*e));
    lines.add("From", text(*e, "from"));
    lines.add("Until", text(*e, "until"));
    if (const json::object* revoked = find_object(*e, "revoked")) {
      lines.add("Revoked by", text(*revoked, "by"));
      lines.add("Revoked at", text(*revoked, "at"));
      lines.add("Revoke reason", text(*revoked, "reason"));
    }
    add_unknown_fields(lines, *e, {"kind", "value", "from", "until", "revoked", "who"}, "Exception ");
  } else {
    lines.add("Exception", "none");
  }
  add_unknown_fields(lines, r,
                     {"id", "status", "created", "requester", "url", "site_content", "reasons",
                      "risks", "control_measures", "to_complete", "review", "scope", "filed_by",
                      "source", "client", "decision", "exception", "asked_by", "blocked_as", "withheld"});
  return lines.render();
}

// After review: what was completed, and whether the form is ready for the headteacher.
std::string render_review(const json::object& request, const json::object& args) {
  std::vector<std::string> given;
  for (auto [key, words] :
       {std::pair{"risks", "identified risks"}, std::pair{"control_measures", "control measures"},
        std::pair{"site_content", "site content"}, std::pair{"note", "note"}}) {
    if (find(args, key)) given.push_back(words);
  }
  std::string line = "request " + text(request, "id") + " completed:";
  for (std::size_t i = 0; i < given.size(); ++i) line += (i ? ", " : " ") + given[i];
  if (find(request, "to_complete")) {
    const std::string missing = still_to_complete(request);
    line += missing.empty() ? "; the form is ready for the headteacher"
                            : "; still to complete: " + missing;
  }
  return printable(line) + "\n";
}

std::string render_report_filed(const json::object& data) {
  std::string line = "report " + text(data, "id") + " filed";
  const json::value* blocked = find(data, "blocked");
  if (blocked && blocked->is_bool() && blocked->get_bool()) {
    line += "; the page is blocked for everyone now";
    if (std::string entry = text(data, "entry"); !entry.empty())
      line += " (local block entry " + entry + ")";
  } else {
    line += "; the page was not blocked";
  }
  return printable(line) + "\n";
}

std::string render_reports(const json::object& data) {
  const json::array* rows = find_rows(data, "reports");
  if (!rows || rows->empty()) return "no reports\n";
  text_table table({"ID", "DATE", "REPORTER", "INDIVIDUAL", "URL", "NATURE", "ACTION"});
  table.limit_width(4, 50);
  table.limit_width(5, 40);
  for (const auto& row : *rows) {
    const json::object* r = row.if_object();
    if (!r) continue;
    std::string action;
    if (const json::object* taken = find_object(*r, "action")) {
      // {"taken": "blocked", "by": "ict.tech", "at": "...", "entry": 12}
      action = text(*taken, "taken");
      if (std::string by = text(*taken, "by"); !by.empty()) action += " by " + by;
      if (std::string entry = text(*taken, "entry"); !entry.empty())
        action += " (entry " + entry + ")";
      // The block removed since (unblock): the page is open again.
      if (const json::object* removed = find_object(*taken, "removed")) {
        action += "; block removed by " + text(*removed, "by") + " at " + text(*removed, "at") + ", no longer in force";
      }
    } else {
      action = text(*r, "action");
    }
    if (action.empty()) {
      const json::value* blocked = find(*r, "blocked");
      if (blocked && blocked->is_bool() && blocked->get_bool()) {
        action = "blocked";
        if (std::string entry = text(*r, "entry"); !entry.empty())
          action += " (entry " + entry + ")";
      }
    }
    table.add_row({text(*r, "id"), first_of(*r, {"created", "date", "at"}), text(*r, "reporter"),
                   or_dash(text(*r, "individual")), first_of(*r, {"url", "urls"}),
                   text(*r, "nature"), or_dash(action)});
  }
  return table.render();
}

std::string render_blocks(const json::object& data, const json::object& args) {
  const json::array* rows = find_rows(data, "blocks");
  const bool all = flag_set(args, "all");
  if (!rows || rows->empty())
    return all ? "no local block entries\n" : "no local block entries in force\n";
  std::vector<std::string> header{"ID", "CREATED", "BY", "VALUE", "KIND", "REASON"};
  if (all) header.push_back("REMOVED");
  text_table table(header);
  table.limit_width(3, 50);
  table.limit_width(5, 40);
  for (const auto& row : *rows) {
    const json::object* b = row.if_object();
    if (!b) continue;
    std::vector<std::string> cells{text(*b, "id"),    text(*b, "created"), text(*b, "created_by"),
                                   text(*b, "value"), text(*b, "kind"),    text(*b, "reason")};
    if (all) {
      const json::object* removed = find_object(*b, "removed");
      cells.push_back(removed ? text(*removed, "at") + " by " + text(*removed, "by") : "-");
    }
    table.add_row(cells);
  }
  return table.render();
}

// "device 10.10.4.20", "user ava.b".
std::string ban_subject(const json::object& b) { return text(b, "kind") + " " + text(b, "subject"); }

// One ban's answer: "ban 4: device 10.10.4.20 is on supervised use until ...", or the proposal.
std::string render_ban(const json::object& b) {
  const std::string status = text(b, "status");
  if (status == "proposed") {
    return printable("ban " + text(b, "id") + " proposed: " + ban_subject(b) + " for " + text(b, "length") +
                     "; no effect until the DSL or the headteacher confirms it (hallpassctl ban --confirm " +
                     text(b, "id") + ")") +
           "\n";
  }
  return printable("ban " + text(b, "id") + ": " + ban_subject(b) + " is on supervised use only until " +
                   text(b, "until") + " (" + text(b, "reason") + ")") +
         "\n";
}

std::string render_bans(const json::object& data, const json::object& args) {
  const json::array* rows = find_rows(data, "bans");
  const bool all = flag_set(args, "all");
  if (!rows || rows->empty()) return all ? "no bans\n" : "no bans in force or proposed\n";
  text_table table({"ID", "STATUS", "WHO", "HOW", "BY", "CREATED", "UNTIL", "REASON"});
  table.limit_width(7, 40);
  for (const auto& row : *rows) {
    const json::object* b = row.if_object();
    if (!b) continue;
    std::string until = text(*b, "until");
    if (until.empty()) until = "(" + text(*b, "length") + " once confirmed)";
    std::string status = text(*b, "status");
    if (const json::object* lifted = find_object(*b, "lifted")) status += " by " + text(*lifted, "by");
    table.add_row({text(*b, "id"), status, ban_subject(*b), text(*b, "how"), text(*b, "by"), text(*b, "created"),
                   until, text(*b, "reason")});
  }
  return table.render();
}

std::string render_unban(const json::object& data) {
  const json::array* rows = find_rows(data, "bans");
  std::string out;
  if (!rows) return "lifted\n";
  for (const auto& row : *rows) {
    const json::object* b = row.if_object();
    if (!b) continue;
    out += printable("ban " + text(*b, "id") + " " + text(*b, "status") + ": " + ban_subject(*b)) + "\n";
  }
  return out;
}

// One incident record, whole: what happened, each action, and the outcome when closed.
std::string render_incident(const json::object& i) {
  labelled_lines lines;
  lines.add("Incident", text(i, "id") + " (" + text(i, "status") + ")");
  lines.add("About", ban_subject(i));
  lines.add("What happened", text(i, "what"));
  if (std::string c = text(i, "category"); !c.empty()) lines.add("Category", c);
  lines.add("Happened at", text(i, "happened"));
  if (const json::object* o = find_object(i, "opened")) {
    lines.add("Opened", text(*o, "at") + " by " + text(*o, "by") + " (" + text(*o, "role") + ")");
  }
  if (const json::value* acts = find(i, "actions"); acts && acts->is_array()) {
    for (const auto& a : acts->as_array()) {
      if (const json::object* act = a.if_object()) {
        lines.add("Action", text(*act, "at") + " " + text(*act, "by") + ": " + text(*act, "action"));
      }
    }
    if (acts->as_array().empty()) lines.add("Action", "none recorded yet");
  }
  if (const json::object* c = find_object(i, "closed")) {
    lines.add("Outcome", text(*c, "outcome"));
    lines.add("Closed", text(*c, "at") + " by " + text(*c, "by"));
  } else {
    lines.add("Outcome", "open: record one with hallpassctl incident " + text(i, "id") + " --outcome TEXT");
  }
  add_unknown_fields(lines, i, {"id", "status", "kind", "subject", "what", "category", "happened", "opened", "actions", "closed"});
  return lines.render();
}

// After `incident` opened one or recorded on one: a line saying what was done, then the record.
std::string render_incident_change(const json::object& i, const json::object& args) {
  const std::string id = text(i, "id");
  std::string head;
  if (!find(args, "id")) {
    head = "incident " + id + " opened" + (text(i, "status") == "closed" ? " and closed" : "") +
           ": record each action with hallpassctl incident " + id + " --action TEXT, and the outcome with --outcome TEXT";
  } else if (find(args, "action") || find(args, "outcome")) {
    head = std::string("incident ") + id + ": " +
           (find(args, "outcome") ? (find(args, "action") ? "action recorded and closed" : "closed") : "action recorded");
  }
  return (head.empty() ? std::string() : printable(head) + "\n\n") + render_incident(i);
}

std::string render_incidents(const json::object& data, const json::object& args) {
  const json::array* rows = find_rows(data, "incidents");
  const bool all = flag_set(args, "all");
  if (!rows || rows->empty()) return all ? "no incidents\n" : "no open incidents\n";
  text_table table({"ID", "STATUS", "ABOUT", "CATEGORY", "HAPPENED", "OPENED BY", "ACTIONS", "WHAT HAPPENED"});
  table.limit_width(2, 40);  // a user name may be 256 characters
  table.limit_width(7, 50);
  for (const auto& row : *rows) {
    const json::object* i = row.if_object();
    if (!i) continue;
    const json::object* opened = find_object(*i, "opened");
    const json::value* acts = find(*i, "actions");
    table.add_row({text(*i, "id"), text(*i, "status"), ban_subject(*i), or_dash(text(*i, "category")),
                   text(*i, "happened"), opened ? text(*opened, "by") : "",
                   acts && acts->is_array() ? std::to_string(acts->as_array().size()) : "", text(*i, "what")});
  }
  std::string out = table.render();
  if (const json::value* omitted = find(data, "omitted"); omitted && omitted->is_int64() && omitted->as_int64() > 0) {
    out += std::to_string(omitted->as_int64()) + " older incidents not shown (the newest " +
           std::to_string(rows->size()) + " are): hallpassctl incident ID, or --user / --device to narrow\n";
  }
  return out;
}

std::string render_audit(const json::object& data, const json::object& args) {
  const json::array* rows = find_rows(data, "entries");
  if (!rows || rows->empty()) {
    const std::string since = text(args, "since");
    return since.empty() ? "no audit entries\n"
                         : "no audit entries since " + printable(since) + "\n";
  }
  text_table table({"TIME", "OS USER", "ROLE", "ACTION", "OBJECT", "OUTCOME", "REASON"});
  table.limit_width(4, 40);
  for (const auto& row : *rows) {
    const json::object* e = row.if_object();
    if (!e) continue;
    table.add_row({text(*e, "at"), text(*e, "os_user"), or_dash(text(*e, "admin_role")),
                   text(*e, "action"), or_dash(text(*e, "object")), text(*e, "outcome"),
                   text(*e, "reason")});
  }
  std::string out = table.render();
  // The daemon answers with the newest entries only (admin audit, 2026-12-05, F3): say how
  // many older ones there are and how to read them.
  if (const json::value* omitted = find(data, "omitted"); omitted && omitted->is_int64() && omitted->as_int64() > 0) {
    const json::object* first = rows->front().if_object();
    const std::string first_id = first ? text(*first, "id") : "";
    out += std::to_string(omitted->as_int64()) + " older audit entries not shown (the newest " +
           std::to_string(rows->size()) + " are): hallpassctl audit " +
           (first_id.empty() ? std::string() : "--before " + printable(first_id) + " ") +
           "for older ones, --since \"YYYY-MM-DD HH:MM\" to narrow, --limit N (at most 1000) for more\n";
  }
  return out;
}

std::string render_status(const json::object& data) {
  labelled_lines lines;
  lines.add("Version", text(data, "version"));
  lines.add("Policy generation", text(data, "generation"));
  const json::value* uptime = find(data, "uptime_seconds");
  if (uptime && uptime->is_int64()) {
    lines.add("Uptime", duration_text(uptime->get_int64()));
  } else if (uptime && uptime->is_uint64()) {
    lines.add("Uptime", duration_text(static_cast<long long>(uptime->get_uint64())));
  } else {
    lines.add("Uptime", text(uptime));
  }
  lines.add("Active exceptions", text(data, "active_exceptions"));
  lines.add("Pending requests", text(data, "pending_requests"));
  if (find(data, "active_bans")) lines.add("Active bans", text(data, "active_bans"));
  if (find(data, "open_incidents")) lines.add("Open incidents", text(data, "open_incidents"));
  add_unknown_fields(lines, data,
                     {"version", "generation", "uptime_seconds", "active_exceptions", "pending_requests", "active_bans",
                      "open_incidents"});
  return lines.render();
}

}  // namespace

std::string duration_text(long long seconds) {
  if (seconds < 0) seconds = 0;
  const long long days = seconds / 86400, hours = seconds / 3600 % 24, minutes = seconds / 60 % 60,
                  secs = seconds % 60;
  std::string out;
  auto part = [&](long long n, char unit) {
    if (!out.empty()) out += ' ';
    out += std::to_string(n) + unit;
  };
  if (days) part(days, 'd');
  if (days || hours) part(hours, 'h');
  if (days || hours || minutes) part(minutes, 'm');
  part(secs, 's');
  return out;
}

std::string render_human(const command& request, const json::object& data, const json::object* zone_names) {
  struct zone_names_for_this_answer {
    explicit zone_names_for_this_answer(const json::object* z) { answer_zone_names = z; }
    ~zone_names_for_this_answer() { answer_zone_names = nullptr; }
  } in_force(zone_names);
  const std::string& verb = request.verb;
  if (verb == "request") return render_request_filed(data);
  if (verb == "approve" || verb == "deny" || verb == "revoke" || verb == "extend") return render_decision(verb, data);
  if (verb == "review") return render_review(data, request.args);
  if (verb == "list") return render_list(data, request.args);
  if (verb == "show") return render_show(data);
  if (verb == "report") return render_report_filed(data);
  if (verb == "reports") return render_reports(data);
  if (verb == "blocks") return render_blocks(data, request.args);
  if (verb == "block") {
    // The daemon may say what it blocked ("value", "kind"); else the request's URL and scope.
    std::string what = text(data, "value"), kind = text(data, "kind");
    if (what.empty()) what = text(request.args, "url");
    if (kind.empty()) kind = text(request.args, "scope");
    if (kind.empty()) kind = "domain";  // the protocol's default
    return printable("local block entry " + text(data, "id") + " added: " + what + " (" + kind +
                     ") is blocked for everyone") +
           "\n";
  }
  if (verb == "unblock") return "local block entry " + printable(text(data, "id")) + " removed\n";
  if (verb == "audit") return render_audit(data, request.args);
  if (verb == "reload") {
    std::string out = "policy reloaded: generation " + printable(text(data, "generation")) + "\n";
    // The loader's warnings (a list file with no entries, skipped lines), one a line.
    const std::string warnings = text(data, "warnings");
    for (std::size_t start = 0; start < warnings.size();) {
      const auto end = std::min(warnings.find('\n', start), warnings.size());
      if (end > start) out += "warning: " + printable(warnings.substr(start, end - start)) + "\n";
      start = end + 1;
    }
    if (const auto e = text(data, "audit_error"); !e.empty()) {
      out += "warning: the reload is not in the audit log (" + printable(e) + ")\n";
    }
    return out;
  }
  if (verb == "status") return render_status(data);
  if (verb == "ban") return render_ban(data);
  if (verb == "unban") return render_unban(data);
  if (verb == "bans") return render_bans(data, request.args);
  if (verb == "incident") return render_incident_change(data, request.args);
  if (verb == "incidents") return render_incidents(data, request.args);
  labelled_lines lines;  // a verb this renderer does not know: show what came back
  add_unknown_fields(lines, data, {});
  return lines.render();
}

}  // namespace hallpass::ctl
