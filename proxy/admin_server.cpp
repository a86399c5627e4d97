#include "proxy/admin_server.hpp"

#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <set>

#include "proxy/accept_next.hpp"
#include "proxy/admin_blocked_as.hpp"
#include "proxy/access_request_form.hpp"
#include "proxy/admin_request.hpp"
#include "proxy/alerts.hpp"
#include "proxy/run_loop.hpp"
#include "proxy/server.hpp"
#include "proxy/shared_state.hpp"
#include "proxy/public_suffix.hpp"
#include "rules/exception_index.hpp"
#include "rules/explain.hpp"
#include "rules/utf8.hpp"
#include "rules/yaml_reader.hpp"
#include "store/valid_json.hpp"

namespace hallpass {

namespace {

// Who HTTPS to `host` stays relayed for, whatever page entries it gets: there the proxy sees only
// the host, so a page's local block closes the whole site and a page's exception opens nothing
// (rules/exception_index.cpp: a relayed tunnel's path is unknown for good). With a school CA a
// page entry on a host makes it inspected (rules/inspection.hpp, step 3) unless the host is on
// the never-inspect list. "" when a page entry takes effect over HTTPS. For the admin's
// warnings: a page-only change that said "the page is blocked" closed the whole site over
// HTTPS, and an approval of one said "approved" and opened nothing (safeguarding audit,
// 2026-12-06, M2, M4; the review of the session: with a CA they do take effect).
std::string roles_relaying(const configuration& cfg, const std::string& host) {
  if (!cfg.inspecting()) return "every role (there is no school CA: tls.ca_dir)";
  const auto h = rules::normalize_host(host);
  if (h && rules::never_inspected(*cfg.policy, *h)) return "every role (the site is on the never-inspect list)";
  return {};
}


// When an exception ends, from a verb's 'for' (a duration) or 'until' (a school-local time):
// approve's and extend's. Within the longest an exception may last now (exceptions.max_duration,
// else the end of term, else 90 days), checked here, not only in hallpassctl: scripts speak the
// protocol directly. `shorter` is what the caller should do instead of a time too long.
struct exception_end {
  store::seconds_t until;
  std::string clock_note;  // an end in the hour the clocks skip or repeat: which instant it is
};
std::optional<exception_end> read_exception_end(const boost::json::object& args, const rules::policy& policy,
                                                store::seconds_t now, std::string_view shorter, std::string& err) {
  const auto limit = rules::max_exception_until(policy, now);
  exception_end end;
  std::string asked;
  // One of the two: with both, which one meant? (Taking 'for' silently: audit H, 2026-12-05.)
  // null is an argument not given (docs/admin-protocol.md): a script may send both keys, one null.
  const auto given = [&](std::string_view key) {
    const auto* v = args.if_contains(key);
    return v && !v->is_null();
  };
  if (given("for") && given("until")) {
    err = "give 'for' or 'until', not both";
    return std::nullopt;
  }
  if (auto d = admin_text_arg(args, "for")) {
    asked = "'for' " + *d;
    auto dur = admin_duration(*d, err);
    if (!dur) return std::nullopt;
    end.until = now + *dur;
  } else if (auto u = admin_text_arg(args, "until")) {
    asked = "'until' " + *u;
    auto when = rules::parse_school_time(policy.zone, *u);
    if (!when) {
      err = "'until' must be a school-local time like \"2026-11-23 15:15\"";
      return std::nullopt;
    }
    end.until = when->at;
    if (end.until <= now) {
      err = "'until' is in the past";
      return std::nullopt;
    }
    end.clock_note = when->note;
  } else {
    err = "give 'for' (a duration) or 'until' (a time)";
    return std::nullopt;
  }
  if (end.until > limit.until) {
    err = asked + " is longer than an exception may last: at most until " + rules::iso8601_local(policy.zone, limit.until) +
          " (" + limit.description + "); " + std::string(shorter) +
          ", or ask again then (exceptions.max_duration in the policy sets the limit)";
    return std::nullopt;
  }
  return end;
}

// The ban in force on whoever asked for a request (its device, and the user signed in on it),
// in words, or "": a ban wins over every exception (rules/ban.hpp), so an approval opens
// nothing for them while it lasts, and the headteacher is told so (it said only "approved":
// the sixth session's audit).
std::string asker_ban_note(const boost::json::value& request, const rules::exception_index* index,
                           const rules::time_zone& zone, std::chrono::sys_seconds now) {
  const auto* o = request.if_object();
  if (!o || !index) return {};
  const std::string client = admin_text_arg(*o, "client").value_or("");
  std::string user, device, mac;
  if (const auto* by = o->if_contains("asked_by"); by && by->is_object()) {
    user = admin_text_arg(by->get_object(), "user").value_or("");
    device = admin_text_arg(by->get_object(), "device").value_or("");
    mac = admin_text_arg(by->get_object(), "mac").value_or("");
  }
  if (client.empty() && user.empty()) return {};  // filed with hallpassctl: no asker to speak of
  rules::request_facts f;
  f.client = rules::ip_address::parse(client);
  f.user = user;
  f.device = device;
  f.mac = mac;
  f.time = now;
  const rules::ban_entry* ban = index->ban_for(f);
  if (!ban) return {};
  return std::string(ban->device ? "the device that asked (" : "the user who asked (") + ban->subject +
         ") is banned until " + rules::time_in_words(zone, ban->until) + " (" + ban->rule_id +
         "): a ban wins over exceptions, so this one opens nothing for them until then (hallpassctl bans; "
         "unban lifts it)";
}

// The locked category (illegal content) that blocks `target` whatever any exception says, or
// nullopt. A locked category can never be excepted: approve and extend say so rather than open
// in vain. A page or prefix is decided with its own path, where a locked URL prefix or pattern
// locks it (only the host was: such an approval said "approved" and opened nothing;
// differential audit of explain, 2026-12-05), over http and https alike.
std::optional<std::string> locked_category(const rules::policy& policy, const rules::target& target,
                                           store::seconds_t now) {
  const auto locked_verdict = [&](std::string_view scheme) {
    rules::request_facts f;
    f.role = policy.roles.front().name;
    f.method = "GET";
    f.scheme = scheme;
    f.host = target.host;
    if (target.kind != rules::target_kind::domain) f.path = target.path;
    f.time = now;
    return rules::decide(policy, f);
  };
  auto verdict = locked_verdict("https");
  if (verdict.by != rules::decided_by::locked_category) verdict = locked_verdict("http");
  if (verdict.by != rules::decided_by::locked_category) return std::nullopt;
  return std::string(verdict.category_name());
}

// What an exception just approved or extended (r.data: its request, with the exception) will
// not do, as warnings beside the answer: for people nobody can be (a user or a group where
// nobody signs in, a role the policy no longer has), for a banned asker, over HTTPS the proxy
// relays, against a reported page's local block; and that the page is in a category the school
// watches. Each once said only "approved" (audits of 2026-12-06 and 2026-12-07); extend said
// none of them (review of the ninth session).
void warn_about_exception(store::result& r, const configuration& cfg, const rules::exception_index* index,
                          std::int64_t id, const std::string& url, rules::target_kind kind, bool from_block_page,
                          store::seconds_t now) {
  const auto& policy = *cfg.policy;
  const auto* e = r.data.is_object() ? r.data.as_object().if_contains("exception") : nullptr;
  const auto* w = e && e->is_object() ? e->as_object().if_contains("who") : nullptr;
  if (w && w->is_object()) {
    const std::string who_kind = admin_text_arg(w->as_object(), "kind").value_or("");
    const std::string who_value = admin_text_arg(w->as_object(), "value").value_or("");
    if (who_kind == "group" && !cfg.daemon.logins.any()) {
      // A directory group reaches only people who sign in (safeguarding audit, 2026-12-06, M3).
      add_warning(r, "nobody signs in to this proxy (there is no logins section), so nobody is in group '" +
                         who_value + "' and this exception opens nothing; approve it for a role, a device or "
                                     "the pupil's own address instead (--who)");
    } else if (who_kind == "user" && !cfg.daemon.logins.any()) {
      add_warning(r, "nobody signs in to this proxy (there is no logins section), so nobody is user '" + who_value +
                         "' and this exception opens nothing; approve it for the device (--who device) or a role "
                         "instead");
    } else if (who_kind == "role") {
      std::string missing;
      for (std::size_t at = 0; at <= who_value.size();) {
        const auto end = std::min(who_value.find(',', at), who_value.size());
        const std::string role = who_value.substr(at, end - at);
        at = end + 1;
        if (role.empty()) continue;
        if (!policy.find_role(role)) missing += (missing.empty() ? "'" : ", '") + role + "'";
      }
      if (!missing.empty()) {
        add_warning(r, "the policy has no role " + missing +
                           " now, so this exception opens nothing for it; revoke it, and approve the request for a "
                           "role the policy has (file it again with hallpassctl request --role), or a device");
      }
    }
  }
  std::string terr;
  const auto target = rules::make_target(url, kind, &terr);
  if (target && kind != rules::target_kind::domain && url.starts_with("https://")) {
    if (const auto relayed = roles_relaying(cfg, target->host); !relayed.empty()) {
      add_warning(r, "HTTPS to " + target->host + " is not inspected for " + relayed +
                         ", where the proxy sees only the site's name: this " + std::string(rules::to_string(kind)) +
                         " exception opens the page over plain HTTP and on inspected HTTPS only; approve --scope "
                         "domain to open the whole site, or inspect the site (inspection.inspect, rules/README.md)");
    }
  }
  if (auto note = asker_ban_note(r.data, index, policy.zone, now); !note.empty()) add_warning(r, note);
  // What the page is blocked as: a category the school watches (the DSL's to know of), and a
  // reported page's block, which wins over this exception (people-side audit, 2026-12-07, H1,
  // M1: both said only "approved").
  if (const auto* o = r.data.if_object()) {
    if (const auto b = request_blocked_as(cfg, index, *o, now)) {
      if (b->watched) {
        add_warning(r, "the filter blocks this page as " + b->category + " (" + b->rule +
                           "), a category the school watches for safeguarding: what the pupil asked and wrote "
                           "may be a disclosure, " +
                           (!cfg.daemon.alerts.command.empty() && from_block_page
                                ? std::string("and the DSL was sent an alert about it")
                                : std::string("and the DSL should hear of it")) +
                           "; hallpassctl revoke " + std::to_string(id) + " closes it again");
      }
      if (!b->local_block.empty()) {
        add_warning(r, b->local_block + " (a reported page) blocks this page, and a local block wins over "
                           "exceptions: this exception opens nothing while it stands (hallpassctl unblock " +
                           std::to_string(rules::local_block_id(b->local_block).value_or(0)) + " removes it)");
      }
    }
  }
}

}  // namespace
namespace json = boost::json;
namespace {

constexpr std::size_t max_line = 64 * 1024;
constexpr std::size_t max_admin_connections = 16;
constexpr std::size_t max_connections_per_uid = 4;  // so one account cannot lock the others out
constexpr std::size_t max_roleless_connections = 4;  // users with no admin role, all together
constexpr auto admin_idle_timeout = std::chrono::seconds(30);  // for each read and write

struct caller {
  std::string user;
  std::set<std::string> roles;  // headteacher, technician, dsl
};

// A pupil's words in a request for a watched category may be a disclosure: the DSL's and the
// headteacher's to read (admin_blocked_as.hpp).
bool may_read_disclosures(const caller& c) { return c.roles.count("dsl") || c.roles.count("headteacher"); }

}  // namespace

// The connecting process's OS user and groups, from SO_PEERCRED and the name service (sssd,
// winbind: it may be slow), looked up once per connection, at accept.
admin_server::account admin_server::account_of(uid_t uid) {
  account a;
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* found = nullptr;
  if (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) != 0 || !found) {
    a.user = "uid " + std::to_string(uid);
    return a;
  }
  a.user = found->pw_name;
  int n = 64;
  std::vector<gid_t> gids(static_cast<std::size_t>(n));
  if (::getgrouplist(found->pw_name, found->pw_gid, gids.data(), &n) < 0) {
    gids.resize(static_cast<std::size_t>(n));
    ::getgrouplist(found->pw_name, found->pw_gid, gids.data(), &n);
  }
  gids.resize(static_cast<std::size_t>(std::max(n, 0)));
  for (gid_t g : gids) {
    group gr{};
    group* gfound = nullptr;
    if (::getgrgid_r(g, &gr, buf.data(), buf.size(), &gfound) == 0 && gfound) a.groups.insert(gfound->gr_name);
  }
  return a;
}

namespace {

// The admin roles of an account under the configuration in force now (admin.roles: users and
// @groups), so that a reload's roles apply to the next command on an open connection.
caller roles_of(const admin_server::account& a, const daemon_config& d) {
  caller c;
  c.user = a.user;
  for (const auto& [role, entries] : d.admin.roles) {
    for (const auto& e : entries) {
      if ((e.front() == '@' && a.groups.count(e.substr(1))) || e == a.user) c.roles.insert(role);
    }
  }
  return c;
}

// The names the school's zone gives its offsets this year and next ("+00:00": "GMT",
// "+01:00": "BST"; a zone without letters for one: "UTC+04:00"), so that hallpassctl names the
// times of an answer as the school's clocks do (it has no zone files of its own to read).
json::object zone_names(const rules::time_zone& z) {
  using namespace std::chrono;
  json::object names;
  const auto now = floor<seconds>(system_clock::now());
  for (int quarter = 0; quarter < 8; ++quarter) {
    const sys_seconds t = now + hours(24 * 91 * quarter);
    names[rules::utc_offset_text(z.offset_at(t))] = rules::zone_label(z, t);
  }
  return names;
}

// Whose places a connection holds: the caller's most trusted role (headteacher, then dsl, then
// technician, then any other in name order), "" for a caller with none.
std::string place_pool(const caller& c) {
  for (const char* role : {"headteacher", "dsl", "technician"}) {
    if (c.roles.count(role)) return role;
  }
  return c.roles.empty() ? std::string() : *c.roles.begin();
}

std::string response(const store::result& r, const rules::time_zone* zone = nullptr) {
  json::object o;
  o["ok"] = r.ok;
  if (r.ok) {
    o["data"] = r.data;
    if (zone) o["zone_names"] = zone_names(*zone);
    // Text from outside (a form, a device's name) stored before it was checked: the answer is
    // valid UTF-8 whatever the store holds, so that hallpassctl can read it (valid_json.hpp).
    store::make_valid_utf8(o["data"]);
    if (!r.warning.empty()) o["warning"] = r.warning;
  } else {
    o["error"] = r.error;
    o["code"] = r.code;
  }
  return json::serialize(o) + "\n";
}

// A required text argument: nullopt with *err when it is missing, blank or bad. (A present
// one was checked by parse_admin_line already; checked again here, so this stands alone.)
std::optional<std::string> text_arg(const json::object& a, const char* key, std::string* err) {
  auto it = a.find(key);
  if (it == a.end() || it->value().is_null()) {
    *err = std::string("'") + key + "' is required";
    return std::nullopt;
  }
  if (!it->value().is_string()) {
    *err = std::string("'") + key + "' must be text";
    return std::nullopt;
  }
  std::string s(it->value().as_string());
  // Blanks alone are no text: a reason of "   " (or of invisible spaces: rules::is_blank) says
  // nothing the audit log could keep.
  if (rules::is_blank(s)) {
    *err = std::string("'") + key + "' must not be empty";
    return std::nullopt;
  }
  if (auto e = admin_text_error(key, s, /*one_line=*/false); !e.empty()) {
    *err = e;
    return std::nullopt;
  }
  return s;
}

std::optional<std::int64_t> id_arg(const json::object& a, std::string* err) {
  if (auto id = admin_positive_number(a, "id")) return id;
  *err = "'id' must be a request number";
  return std::nullopt;
}

}  // namespace

std::optional<std::chrono::seconds> admin_duration(const std::string& text, std::string& error) {
  // One or more whole numbers, each with its unit (s, m, h, d, w), largest first: "2w",
  // "1h30m" (a headteacher typed both and was refused: people-side audit, 2026-12-07, L3).
  const std::string shape = "'for' must be a duration like 45m, 2h, 1d, 2w or 1h30m (whole numbers, each with a unit)";
  if (!text.empty() && text.front() == '-') {
    error = "'for' " + text + " is negative: " + shape;
    return std::nullopt;
  }
  if (text.size() > 24) {
    error = "'for' " + text.substr(0, 24) + "... is far too long";
    return std::nullopt;
  }
  std::chrono::milliseconds total{0};
  std::size_t at = 0;
  int last_rank = 5;
  while (at < text.size()) {
    std::size_t digits = 0;
    while (at + digits < text.size() && text[at + digits] >= '0' && text[at + digits] <= '9') ++digits;
    const std::size_t unit_at = at + digits;
    const auto rank = unit_at < text.size() ? std::string_view("smhdw").find(text[unit_at]) : std::string_view::npos;
    if (digits == 0 || digits > 9 || rank == std::string_view::npos || static_cast<int>(rank) >= last_rank) {
      error = digits > 9 ? "'for' " + text + " is far too long" : shape + ", not '" + text + "'";
      return std::nullopt;
    }
    last_rank = static_cast<int>(rank);
    const auto part = rules::parse_duration(std::string_view(text).substr(at, digits + 1));
    if (!part || total > std::chrono::hours(24 * 366 * 100) - *part) {
      error = "'for' " + text + " is far too long";
      return std::nullopt;
    }
    total += *part;
    at = unit_at + 1;
  }
  if (total < std::chrono::seconds(1)) {
    error = text.empty() ? shape : "'for' " + text + " is zero: it must last at least 1s";
    return std::nullopt;
  }
  return std::chrono::ceil<std::chrono::seconds>(total);
}

admin_server::admin_server(shared_state& state, reload_fn reload) : state_(state), reload_(std::move(reload)) {}

admin_server::~admin_server() {
  stop();
  acceptor_.reset();  // its io_context is destroyed next (ioc_ is the last member)
}

// A store failure (SQLite's words: "database or disk is full", "database is locked", ...) said
// for the headteacher, the DSL or the technician at the command line: that nothing changed,
// what therefore still holds, and what to do. A revoke that failed on a full disk printed
// only "database or disk is full (internal)", and the exception stayed in force without a
// word (admin audit, 2026-12-06).
// `still_holds` is the verb's own words (admin_request.hpp, `unsaved`).
static std::string store_failure_in_words(const char* still_holds, const std::string& sqlite_error,
                                          const std::string& state_dir) {
  const bool full = sqlite_error.find("full") != std::string::npos;
  const bool locked = sqlite_error.find("locked") != std::string::npos || sqlite_error.find("busy") != std::string::npos;
  const bool read_only = sqlite_error.find("readonly") != std::string::npos ||
                         sqlite_error.find("read-only") != std::string::npos;
  std::string out = "the store could not save this, so nothing was changed: " + std::string(still_holds) + ". ";
  if (full) {
    out += "The gateway's disk is full: free space where the store is (df -h " + state_dir + "), then try again.";
  } else if (locked) {
    out += "Another program holds the store's lock (a backup or sqlite3 left open on " + state_dir +
           "/hallpass.db?): end it, then try again.";
  } else if (read_only) {
    out += "The store cannot be written (a read-only disk, or its files' owner changed): tell the ICT technician.";
  } else {
    out += "Tell the ICT technician.";
  }
  return out + " (SQLite: " + sqlite_error + ")";
}

// The other exceptions in force that open what `revoked` (a request object, as the store
// answers) opened, for the same people: "" when none, else a sentence naming them.
std::string admin_server::still_opened_by(const json::value& revoked, std::int64_t id) {
  const auto* request = revoked.if_object();
  const auto* gone = request ? request->if_contains("exception") : nullptr;
  if (!gone || !gone->is_object()) return {};
  const auto listed = store_->list(store::list_filter::active, list_limit);
  if (!listed.ok || !listed.data.is_object()) return {};
  const auto* rows = listed.data.as_object().if_contains("requests");
  if (!rows || !rows->is_array()) return {};
  const auto same = [](const json::object& a, const json::object& b, const char* key) {
    const auto* x = a.if_contains(key);
    const auto* y = b.if_contains(key);
    return x && y && *x == *y;
  };
  // Whether exception b's people take in exception a's: the same, or, for a device or a client
  // address, b's address or network holds a's address ("device 10.0.0.6" and "client 10.0.0.6"
  // are one device: revoke said "blocked again" while the other kept the site open: people-side
  // audit, 2026-12-07, L1).
  const auto covers = [&](const json::object& a, const json::object& b) {
    if (same(a, b, "who")) return true;
    const auto* wa = a.if_contains("who");
    const auto* wb = b.if_contains("who");
    if (!wa || !wb || !wa->is_object() || !wb->is_object()) return false;
    const std::string ka = admin_text_arg(wa->as_object(), "kind").value_or("");
    const std::string kb = admin_text_arg(wb->as_object(), "kind").value_or("");
    if ((ka != "device" && ka != "client") || (kb != "device" && kb != "client")) return false;
    const std::string value_b = admin_text_arg(wb->as_object(), "value").value_or("");
    // b by name too (NAME@ADDRESS) opens only while the name is there: not counted as covering.
    if (kb == "device" && value_b.find('@') != std::string::npos) return false;
    std::string value_a = admin_text_arg(wa->as_object(), "value").value_or("");
    if (const auto at = value_a.rfind('@'); at != std::string::npos) value_a.erase(0, at + 1);
    const auto address = rules::ip_address::parse(value_a);
    // Not strict, as the store reads a client network it applies (load_active): address bits
    // after the prefix are ignored there, so they are here.
    const auto network = rules::ip_network::parse(value_b, nullptr, false);
    return address && network && network->contains(*address);
  };
  std::string said;
  for (const auto& row : rows->as_array()) {
    const auto* o = row.if_object();
    if (!o || !o->if_contains("id") || o->at("id") == json::value(id)) continue;
    const auto* e = o->if_contains("exception");
    if (!e || !e->is_object()) continue;
    const auto& a = gone->as_object();
    const auto& b = e->as_object();
    if (!same(a, b, "value") || !same(a, b, "kind") || !covers(a, b)) continue;
    said += std::string(said.empty() ? "" : ", ") + "request " + json::serialize(o->at("id"));
    if (const auto* until = b.if_contains("until"); until && until->is_string())
      said += " until " + std::string(until->as_string());
  }
  if (said.empty()) return {};
  return "still open for them by " + said + " (revoke those too to block it)";
}

std::string admin_socket_path_problem(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return {};
  if (!S_ISSOCK(st.st_mode)) {
    return "admin.socket " + path + " exists and is not a socket (left as it is): name a path of its own, such as "
           "/run/hallpass/admin.sock";
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return {};  // bind() will say so
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return {};
  const int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  const int err = errno;
  ::close(fd);
  // Connected, or its queue is full (EAGAIN): something is serving there. Refused: a socket
  // left by a daemon that ended, which start() replaces. Anything else (no permission to it):
  // not known to be stale, so left alone (review, 2026-12-06).
  if (rc == 0 || err == EAGAIN || err == EINPROGRESS) {
    return "admin.socket " + path + " is in use: another hallpass is running with it (stop that one first, or give "
           "this one an admin.socket of its own)";
  }
  if (err == ECONNREFUSED) return {};
  return "admin.socket " + path + " is a socket this process cannot check (" + std::strerror(err) +
         "): left as it is; remove it if no hallpass runs with it";
}

std::string admin_server::start() {
  const auto cfg = state_.configs.current();
  const auto& d = cfg->daemon;
  std::string err;
  store_ = store::exception_store::open(d.state_dir, cfg->policy->zone, &err);
  if (!store_) return "cannot open the exception store in " + d.state_dir + ": " + err;
  if (store_->made_now()) {
    std::cerr << "hallpass: made a new, empty store in " << d.state_dir
              << " (hallpass.db): if the school's exceptions, local blocks and bans are in another directory (a "
                 "changed state_dir), stop hallpass and move hallpass.db and hallpass.db.made here\n";
  }
  // Without the local blocks the filter would be open where a technician closed it: do not
  // start until the store can be read.
  if (auto e = publish_index(); !e.empty()) return "cannot read the exception store in " + d.state_dir + ": " + e;
  if (!d.admin.socket.empty()) {
    socket_path_ = d.admin.socket;
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(socket_path_).parent_path(), ec);
    // A socket file left by a previous run: removed only if it is a socket no daemon answers
    // on. Anything else is refused and left as it is: a path naming the store or the policy
    // (a typo) was deleted by the failed start's clean-up, and a second daemon given the same
    // path replaced the running one's socket, which then had no admin interface (audit,
    // 2026-12-06).
    if (const auto e = admin_socket_path_problem(socket_path_); !e.empty()) return e;
    struct stat st {};
    if (::lstat(socket_path_.c_str(), &st) == 0) ::unlink(socket_path_.c_str());
    const mode_t old = ::umask(0177);  // the socket is born 0600
    acceptor_ = std::make_unique<net::local::stream_protocol::acceptor>(ioc_);
    error_code bec;
    acceptor_->open(net::local::stream_protocol(), bec);
    if (!bec) acceptor_->bind(net::local::stream_protocol::endpoint(socket_path_), bec);
    if (!bec) acceptor_->listen(net::socket_base::max_listen_connections, bec);
    ::umask(old);
    if (bec) return "cannot listen on admin socket " + socket_path_ + ": " + bec.message();
    // The socket this daemon made: the only file stop() removes.
    if (::lstat(socket_path_.c_str(), &st) == 0) made_socket_ = std::pair{st.st_dev, st.st_ino};
    if (!d.admin.socket_group.empty()) {
      const group* g = ::getgrnam(d.admin.socket_group.c_str());
      if (!g) return "admin.socket_group '" + d.admin.socket_group + "' is not a group on this system";
      if (::chown(socket_path_.c_str(), static_cast<uid_t>(-1), g->gr_gid) != 0 ||
          ::chmod(socket_path_.c_str(), 0660) != 0) {
        return "cannot give admin socket " + socket_path_ + " to group " + d.admin.socket_group + ": " +
               std::strerror(errno);
      }
    }
    net::co_spawn(ioc_, accept_loop(), stop_daemon_on_failure{"admin socket accept loop"});
  }
  apply_retention();
  net::co_spawn(ioc_, prune_loop(), stop_daemon_on_failure{"exception store prune loop"});
  thread_ = std::thread([this] { run_until_stopped(ioc_, "admin"); });
  return {};
}

void admin_server::stop() {
  if (thread_.joinable()) {
    net::post(ioc_, [this] {
      if (acceptor_) {
        error_code ignored;
        acceptor_->close(ignored);
      }
      ioc_.stop();
    });
    thread_.join();
  }
  // Only the socket this daemon made, still there: never a file the path names instead.
  struct stat st {};
  if (made_socket_ && ::lstat(socket_path_.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) &&
      std::pair{st.st_dev, st.st_ino} == *made_socket_) {
    ::unlink(socket_path_.c_str());
  }
  made_socket_.reset();
}

std::string admin_server::publish_index() {
  std::string err;
  auto active = store_->load_active(store::now_seconds(), &err);
  if (!active) {
    // Keep the index in force (never publish a partial one: that would drop local blocks);
    // the prune loop tries again every 10 seconds until it succeeds.
    index_stale_ = true;
    std::cerr << "hallpass: admin: cannot read exceptions and local entries from the store (" << err
              << "); the previous ones stay in force\n";
    return err;
  }
  auto bans = store_->load_bans(store::now_seconds(), &err);
  if (!bans) {
    index_stale_ = true;
    std::cerr << "hallpass: admin: cannot read bans from the store (" << err << "); the previous ones stay in force\n";
    return err;
  }
  index_stale_ = false;
  state_.exceptions.store(
      rules::exception_index::build(std::move(active->first), std::move(active->second), std::move(*bans)));
  return {};
}

net::awaitable<void> admin_server::prune_loop() {
  // Expired exceptions stop matching by themselves; this only keeps the index small.
  // Every 10 minutes, or every 10 seconds while the last attempt to read the store failed.
  net::steady_timer t(ioc_);
  auto last = std::chrono::steady_clock::now();
  for (;;) {
    t.expires_after(std::chrono::seconds(10));
    auto [ec] = co_await t.async_wait(nothrow);
    if (ec) co_return;
    store_files_replaced();  // every 10 s: said in the journal when the store's files go
    if (!index_stale_ && std::chrono::steady_clock::now() - last < std::chrono::minutes(10)) continue;
    last = std::chrono::steady_clock::now();
    publish_index();
    apply_retention();
  }
}

void admin_server::apply_retention() {
  const auto cfg = state_.configs.current();
  const auto& keep = cfg->daemon.retention.records;
  const auto& keep_incidents = cfg->daemon.retention.incidents;
  if (!keep && !keep_incidents) return;  // both forever
  store_->set_zone(cfg->policy->zone);
  const auto now = store::now_seconds();
  // A jump of the system clock forwards (a hand's mistake, a bad time source) is not time passing:
  // deleting by it would delete closed records early, for good. Retention goes by the earlier of
  // the clock and the time that has passed since its first run (the steady clock), so a clock
  // set forward deletes nothing early; it says so once. A clock that was wrong
  // at the start is not caught (a restart once it is right re-anchors it). Deleting late can be
  // put right; deleting early cannot (outside-in audit of time, 2026-12-07, F6; the review of the
  // session: a first version skipped one run, and the next deleted by the wrong clock).
  // Both clocks to the nanosecond, read together: floored to seconds, the two readings made the
  // time passed up to 2 s short, and a 3 s period deleted late (CI caught it). The anchor moves
  // with the clock while the clock is not ahead of it (below).
  const auto steady_now = std::chrono::steady_clock::now();
  const auto wall_now = std::chrono::system_clock::now();
  if (!retention_clock_) retention_clock_ = {wall_now, steady_now};
  const auto by_time_passed_exact = retention_clock_->first + (steady_now - retention_clock_->second);
  const auto by_time_passed = std::chrono::floor<std::chrono::seconds>(by_time_passed_exact);
  const auto retention_now =
      std::chrono::floor<std::chrono::seconds>(std::min(wall_now, by_time_passed_exact));
  const bool ahead = now - by_time_passed > std::chrono::minutes(5);
  if (ahead && !retention_clock_said_) {
    std::cerr << "hallpass: retention: the system clock is " << rules::duration_text(now - by_time_passed)
              << " ahead of the time that has passed since hallpass started: records are deleted by the time that "
                 "has passed, not the clock (check the gateway's NTP; if the clock was wrong when hallpass started "
                 "and is right now, restart hallpass)"
              << std::endl;
  }
  retention_clock_said_ = ahead;
  // Not ahead: the clock is taken as the new anchor, so that the two clocks' slow drift (NTP's
  // slewing, some seconds a day) never adds up to a warning or a lag over months of running.
  if (!ahead) retention_clock_ = {wall_now, steady_now};
  // The settings in force, as the audit entry names them: "retention.records 365d", with
  // ", retention.incidents 2190d" when incidents have a period too.
  std::string rule = "retention.records " + (keep ? rules::duration_text(*keep) : std::string("forever"));
  if (keep_incidents) rule += ", retention.incidents " + rules::duration_text(*keep_incidents);
  const auto r = store_->apply_retention(keep ? std::optional(retention_now - *keep) : std::nullopt,
                                         keep_incidents ? std::optional(retention_now - *keep_incidents) : std::nullopt,
                                         rule);
  if (!r.ok) {
    // Nothing was deleted; the next try is in ten minutes. Filtering does not depend on it.
    std::cerr << "hallpass: retention: closed records could not be deleted from the store (" << r.error
              << "); trying again in 10 minutes\n";
  }
  // Said once when it starts: deleted text is still in the write-ahead log.
  if (store_->checkpoint_owed() && !checkpoint_owed_said_) {
    std::cerr << "hallpass: retention: deleted records are gone from the tables but may still be in "
                 "hallpass.db-wal, because another program is reading the store (a backup or an sqlite3 "
                 "session?); trying again every 10 minutes\n";
  }
  checkpoint_owed_said_ = store_->checkpoint_owed();
}

net::awaitable<void> admin_server::accept_loop() {
  for (;;) {
    auto socket = co_await accept_next(*acceptor_);
    if (!socket) co_return;  // stop()
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(socket->native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) continue;
    // Over a limit: one line saying so, written without waiting (a fresh socket's buffer takes
    // it), then closed; hallpassctl reads it as the answer to its request.
    const auto refuse = [&](const std::string& why) {
      const std::string line = response(store::result::fail("busy", why));
      [[maybe_unused]] const auto sent = ::send(socket->native_handle(), line.data(), line.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    };
    // Places by role (place_pool): a user with no admin role (root, a socket-group member
    // without one) can only be refused, and such connections have 4 places of their own (admin
    // audit and review, 2026-12-06: three such accounts held 12 of the 16 for 30 s at a time);
    // each role has 16 of its own, so that four technicians' accounts holding theirs cannot keep
    // the headteacher out (outside-in audit of the admin socket, 2026-12-07, M1). Commands of
    // users with no role are still answered and audited.
    auto who = account_of(cred.uid);
    std::string pool = place_pool(roles_of(who, state_.configs.current()->daemon));
    const bool roleless = pool.empty();
    std::size_t& live = connections_by_pool_[pool];
    const std::size_t most = roleless ? max_roleless_connections : max_admin_connections;
    if (connections_by_uid_[cred.uid] >= max_connections_per_uid) {
      refuse("this OS user has " + std::to_string(max_connections_per_uid) +
             " admin connections open, the most one user may: close one (another hallpassctl?) and try again");
      continue;
    }
    if (live >= most) {
      refuse("the admin socket has " + std::to_string(most) + " connections open" +
             (roleless ? std::string(" from users with no admin role") : " from users with the " + pool + " role") +
             ", its most: try again");
      continue;
    }
    ++live;
    ++connections_by_uid_[cred.uid];
    // A member coroutine, not a lambda: GCC 12 mishandles coroutine lambdas made inside a coroutine.
    net::co_spawn(ioc_,
                  serve(std::make_shared<admin_connection>(std::move(*socket), cred.uid, std::move(pool), std::move(who))),
                  net::detached);
  }
}

// Closes the connection when its deadline passes; serve() moves the deadline before each
// read and write, and closes the socket when it ends, which ends this too.
net::awaitable<void> admin_server::watchdog(std::shared_ptr<admin_connection> c) {
  while (c->socket.is_open()) {
    co_await c->deadline.async_wait(nothrow);
    if (c->deadline.expiry() <= std::chrono::steady_clock::now()) {
      error_code ignored;
      c->socket.close(ignored);
      co_return;
    }
  }
}

net::awaitable<void> admin_server::serve(std::shared_ptr<admin_connection> c) {
  struct release {
    admin_server& s;
    admin_connection& c;
    ~release() {
      if (--s.connections_by_pool_[c.pool] == 0) s.connections_by_pool_.erase(c.pool);
      if (--s.connections_by_uid_[c.uid] == 0) s.connections_by_uid_.erase(c.uid);
      error_code ignored;
      c.socket.close(ignored);
      c.deadline.cancel();
    }
  } counted{*this, *c};
  c->deadline.expires_after(admin_idle_timeout);
  net::co_spawn(ioc_, watchdog(c), net::detached);
  auto& socket = c->socket;
  std::string buffer;
  for (;;) {
    // A line at a time, bounded in size and time.
    c->deadline.expires_after(admin_idle_timeout);
    auto [ec, n] = co_await net::async_read_until(socket, net::dynamic_buffer(buffer, max_line + 1), '\n', nothrow);
    if (ec) {
      if (ec == net::error::not_found || buffer.size() > max_line) {
        const std::string err = response(store::result::fail("bad_request", "the message is longer than 64 KiB"));
        c->deadline.expires_after(admin_idle_timeout);
        co_await net::async_write(socket, net::buffer(err), nothrow);
      }
      co_return;
    }
    std::string line = buffer.substr(0, n - 1);
    buffer.erase(0, n);
    // The user's groups as the system has them now: one taken out of the group that gives a role
    // lost it only on a new connection, and kept it on one held open (outside-in audit of the
    // admin socket, 2026-12-07, M2). A lookup on this thread (the admin's), never a worker's.
    c->who = account_of(c->uid);
    bool no_role = false;
    const std::string reply = handle_line(line, c->who, no_role);
    c->deadline.expires_after(admin_idle_timeout);
    auto [wec, wn] = co_await net::async_write(socket, net::buffer(reply), nothrow);
    if (wec) co_return;
    // A caller with no admin role can be refused only: its connection is not kept open, where
    // three such accounts (root, socket-group members) held 12 of the 16 places for 30 s at a
    // time and kept the headteacher out (admin audit, 2026-12-06).
    if (no_role) co_return;
  }
}

void admin_server::audit_reload(std::string source, bool ok, std::uint64_t generation, std::string errors) {
  net::post(ioc_, [this, source = std::move(source), ok, generation, errors = std::move(errors)] {
    if (store_) {
      store_->audit_event(store::actor{source, "signal"}, "reload", "policy generation " + std::to_string(generation),
                          errors, ok ? "ok" : "failed");
      if (ok) apply_retention();  // retention.records may have changed
    }
  });
}

// Every refusal is audited, but a flood of them must not bury the audit log (nor make `audit`
// too long to answer): at most refusals_audited_per_minute per OS user, whichever verb was
// refused (audit, 2026-12-05: 300 refused lines with 60 KB ids did both; admin audit,
// 2026-12-05, F2: a technician's refused `ban --confirm` was audited every time, 400 a second).
std::string admin_server::audit_refusal(const store::actor& who, const std::string& action, const std::string& object,
                                        const std::string& why) {
  auto& [since, count] = refusals_by_user_[who.os_user];
  const auto now = std::chrono::steady_clock::now();
  if (now - since >= std::chrono::minutes(1)) {
    since = now;
    count = 0;
  }
  if (++count > refusals_audited_per_minute) {
    return why + " (more than " + std::to_string(refusals_audited_per_minute) +
           " refusals within a minute: this one is not audited)";
  }
  store_->audit_refusal(who, action, object, why);
  return why;
}

store::result admin_server::file_form(const store::request_form& form) {
  if (auto gone = store_files_replaced(); !gone.empty()) return store::result::fail("internal", std::move(gone));
  auto r = store_->file_request(store::actor{"block page", "requester"}, form);
  return r;
}

std::string admin_server::store_files_replaced() {
  const std::string gone = store_->files_replaced();
  // Said in the journal when it starts (and when it ends), not at every check.
  if (gone != replaced_said_) {
    if (!gone.empty()) {
      std::cerr << "hallpass: admin: " << gone << "; no change is taken until hallpass restarts (systemctl restart "
                << "hallpass), which opens the store that is there now" << std::endl;
    }
    replaced_said_ = gone;
  }
  if (gone.empty()) return {};
  return gone + ". Nothing was changed: restart hallpass (systemctl restart hallpass) so that it opens the store "
                "that is there now; what is in force stays in force until then";
}

std::string admin_server::handle_line(const std::string& line, const account& caller_account, bool& no_role) {
  const auto cfg = state_.configs.current();
  store_->set_zone(cfg->policy->zone);
  std::string err;
  const std::optional<caller> who = roles_of(caller_account, cfg->daemon);  // (optional: the uses below read who->)
  no_role = who->roles.empty();

  auto parsed = parse_admin_line(line, err);
  if (!parsed) return response(store::result::fail("bad_request", err));
  const std::string& verb = parsed->verb;
  json::object& args = parsed->args;
  const auto* allowed = parsed->allowed_roles;
  std::string as_role;
  for (const auto& r : who->roles) {
    if (allowed->count(r)) {
      as_role = r;
      break;
    }
  }
  if (as_role.empty()) {
    std::string have;
    for (const auto& r : who->roles) have += (have.empty() ? "" : ", ") + r;
    std::string need;
    for (const auto& r : *allowed) need += (need.empty() ? "" : " or ") + r;
    const std::string why = "OS user '" + who->user + "' (" + (have.empty() ? "no admin role" : "admin role " + have) +
                            ") may not " + verb + ": that needs the " + need + " role";
    // The id as sent at most 64 bytes (audit, 2026-12-05: 60 KB ids in refused lines).
    const char* record = verb == "incident" ? "incident " : verb.ends_with("ban") ? "ban " : "request ";
    std::string object = args.count("id") ? record + json::serialize(args["id"]) : verb;
    if (object.size() > 72) object = object.substr(0, 72) + "...";
    return response(store::result::fail(
        "forbidden", audit_refusal(store::actor{who->user, have.empty() ? "none" : have}, verb, object, why)));
  }
  if (!parsed->bad_argument.empty()) return response(store::result::fail("bad_request", parsed->bad_argument));
  const store::actor actor{who->user, as_role};
  // A change to a store whose files were deleted or replaced under it would be lost at the
  // next start: refused, saying so (admin audit, 2026-12-06).
  if (parsed->unsaved) {
    if (auto gone = store_files_replaced(); !gone.empty()) {
      return response(store::result::fail("internal", std::move(gone)));
    }
  }
  const auto& policy = *cfg->policy;
  bool changed = false;
  store::result r;

  auto bad = [&](const std::string& e) { return response(store::result::fail("bad_request", e)); };

  if (verb == "request") {
    store::request_form f;
    auto url = text_arg(args, "url", &err);
    auto requester = text_arg(args, "requester", &err);
    auto reason = text_arg(args, "reason", &err);
    if (!url || !requester || !reason) return bad(err);
    std::string url_err;
    if (!rules::make_target(*url, rules::target_kind::url, &url_err)) return bad("'url': " + url_err);
    f.url = url_without_credentials(*url);
    f.requester = *requester;
    f.reasons = *reason;
    f.site_content = admin_text_arg(args, "site_content").value_or("");
    f.risks = admin_text_arg(args, "risks").value_or("");
    f.control_measures = admin_text_arg(args, "control_measures").value_or("");
    if (auto it = args.find("roles"); it != args.end() && it->value().is_array()) {
      for (const auto& role : it->value().as_array()) {
        if (!role.is_string()) return bad("'roles' must be a list of role names");
        const std::string name(role.as_string());
        if (!policy.find_role(name)) {
          std::vector<std::string> names;
          for (const auto& pr : policy.roles) names.push_back(pr.name);
          return bad("the policy has no role '" + name + "'" + rules::yaml_reader::did_you_mean(name, names));
        }
        // Each role once ("pupils, pupils" was stored as given: admin audit, 2026-12-06).
        if (std::find(f.roles.begin(), f.roles.end(), name) == f.roles.end()) f.roles.push_back(name);
      }
    }
    // A user name as bans take it (admin_user_name): "   " or "" named nobody, and its approval
    // said "approved ... for user    " (admin audit, 2026-12-05, F7).
    if (auto u = admin_text_arg(args, "user")) {
      f.user = admin_user_name("user", *u, err);
      if (!f.user) return bad(err);
    }
    f.client = admin_text_arg(args, "client");
    std::string wide_client;
    if (f.client) {
      std::string why;
      const auto net = rules::ip_network::parse(*f.client, &why);
      if (!net) return bad("'client' must be an address or a network: " + why);
      // 0.0.0.0/0 (or any network wider than a /8, a /32 in IPv6) is no device: it is every
      // device on every network, staff and guests included, and the approval said only "for
      // client 0.0.0.0/0" (admin audit, 2026-12-06).
      if (net->prefix < (net->base.v6 ? 32 : 8)) {
        wide_client = "'client' " + *f.client + " is not one device but " +
                      (net->prefix == 0 ? std::string("every device on every network") : "a network of millions of addresses") +
                      ", staff and guests included: an approval opens the site for all of them (use roles for a group, "
                      "or a device's own address)";
      }
    }
    const int scopes = !f.roles.empty() + f.user.has_value() + f.client.has_value();
    if (scopes != 1) return bad("give exactly one scope: roles, user or client");
    r = store_->file_request(actor, f);
    changed = r.ok;
    if (r.ok && !wide_client.empty()) add_warning(r, wide_client);
  } else if (verb == "approve") {
    auto id = id_arg(args, &err);
    if (!id) return bad(err);
    const auto requested = store_->request_url(*id);
    if (!requested) return response(store::result::fail("not_found", "there is no request " + std::to_string(*id)));
    const std::string* url = &requested->url;
    const auto now = store::now_seconds();
    const auto end = read_exception_end(args, policy, now, "approve a shorter time", err);
    if (!end) return bad(err);
    const store::seconds_t until = end->until;
    const std::string& clock_note = end->clock_note;
    auto kind = rules::default_target_kind(*url);
    if (auto s = admin_text_arg(args, "scope")) {
      auto k = rules::parse_target_kind(*s);
      if (!k) return bad("'scope' must be url, prefix or domain");
      kind = *k;
    }
    std::string terr;
    auto target = rules::make_target(*url, kind, &terr);
    if (!target) return bad("the request's URL cannot be used: " + terr);
    if (kind == rules::target_kind::domain && is_public_suffix(target->host)) {
      return bad("'" + target->host + "' is a public suffix (a top-level domain, or a name under which anyone " +
                 "registers sites, like co.uk): a domain exception would open every site under it; approve " +
                 "--scope prefix or url, or a request for the site's own name");
    }
    if (const auto locked = locked_category(policy, *target, now)) {
      const std::string why = "the site is in locked category '" + *locked + "' (illegal content): no exception can allow it";
      return response(
          store::result::fail("forbidden", audit_refusal(actor, "approve", "request " + std::to_string(*id), why)));
    }
    // 'who' (user, group:NAME, device, role) is checked by the store against the request.
    const auto narrow = admin_text_arg(args, "who");
    r = store_->approve(actor, *id, now, until, *target,
                        admin_text_arg(args, "reason").value_or(""), narrow);
    changed = r.ok;
    // An end in the hour the clocks skip or repeat: say which instant it is.
    if (r.ok && !clock_note.empty()) {
      const std::string note = "'until' " + clock_note;
      add_warning(r, note);
    }
    if (r.ok) {
      warn_about_exception(r, *cfg, state_.exceptions.load().get(), *id, requested->url, kind,
                           requested->from_block_page, now);
    }
    // The block page's form keeps a URL's query only where the access log does: an exception
    // for exactly that URL does not open the same page with a query (a video's "?v=..."), so
    // the headteacher is told, rather than the pupil finding the page still blocked.
    if (r.ok && kind == rules::target_kind::url && requested->from_block_page && !cfg->daemon.access_log.keep_query) {
      const std::string note = "the block page stored this request's URL without its query string "
                               "(access_log.keep_query is off), so the exception opens " + target->text +
                               " exactly, not that page with a query string (" + target->text +
                               "?...); if the pupil's page had one, revoke this exception and file the full address with "
                               "hallpassctl request --url, or approve with --scope prefix";
      add_warning(r, note);
    }
  } else if (verb == "review") {
    auto id = id_arg(args, &err);
    if (!id) return bad(err);
    // Only the type is checked here: what may be completed, how long it may be (the line's
    // 64 KiB bounds it first) and when, is the store's (exception_store::review).
    store::request_review review;
    for (auto [key, field] : {std::pair{"risks", &review.risks},
                              std::pair{"control_measures", &review.control_measures},
                              std::pair{"site_content", &review.site_content}, std::pair{"note", &review.note}}) {
      auto it = args.find(key);
      if (it == args.end() || it->value().is_null()) continue;
      if (!it->value().is_string()) return bad(std::string("'") + key + "' must be text");
      *field = std::string(it->value().as_string());
    }
    r = store_->review(actor, *id, review);
    // Its answer is the request: a pupil's words withheld as show withholds them (review of
    // the session, 2026-12-07: `review --json` gave the technician what `show` withheld).
    if (r.ok) annotate_requests(r.data, *cfg, state_.exceptions.load().get(), may_read_disclosures(*who), store::now_seconds());
  } else if (verb == "extend") {
    // A later end for an approved exception (or one that has expired: it opens again), within
    // the longest an exception may last, as approve's (ctl/README.md, "Extending an exception").
    auto id = id_arg(args, &err);
    if (!id) return bad(err);
    const auto now = store::now_seconds();
    const auto end = read_exception_end(args, policy, now, "extend it to an earlier time", err);
    if (!end) return bad(err);
    // What it opens, as stored: a site the policy now puts in a locked category is refused, as
    // approve refuses it (an expired exception reopened under a changed policy, say).
    const auto requested = store_->request_url(*id);
    if (!requested) return response(store::result::fail("not_found", "there is no request " + std::to_string(*id)));
    std::optional<rules::target_kind> kind;
    if (const auto shown = store_->show(*id); shown.ok && shown.data.is_object()) {
      const auto* e = shown.data.as_object().if_contains("exception");
      if (e && e->is_object()) {
        if (const auto k = admin_text_arg(e->as_object(), "kind")) kind = rules::parse_target_kind(*k);
      }
    }
    std::string terr;
    const auto target = kind ? rules::make_target(requested->url, *kind, &terr) : std::nullopt;
    if (target) {
      if (const auto locked = locked_category(policy, *target, now)) {
        const std::string why = "the site is in locked category '" + *locked + "' (illegal content): no exception can allow it";
        return response(
            store::result::fail("forbidden", audit_refusal(actor, "extend", "request " + std::to_string(*id), why)));
      }
    }
    r = store_->extend(actor, *id, end->until, admin_text_arg(args, "reason").value_or(""));
    changed = r.ok;
    if (r.ok && !end->clock_note.empty()) add_warning(r, "'until' " + end->clock_note);
    if (r.ok && kind) {
      warn_about_exception(r, *cfg, state_.exceptions.load().get(), *id, requested->url, *kind,
                           requested->from_block_page, now);
    }
  } else if (verb == "deny" || verb == "revoke") {
    auto id = id_arg(args, &err);
    auto reason = text_arg(args, "reason", &err);
    if (!id || !reason) return bad(err);
    r = verb == "deny" ? store_->deny(actor, *id, *reason) : store_->revoke(actor, *id, *reason);
    changed = r.ok;
    if (r.ok && verb == "revoke") {
      // Another exception in force for the same site and the same people keeps it open:
      // "blocked again" would be untrue (admin audit, 2026-12-06), so the answer names it.
      if (const auto others = still_opened_by(r.data, *id); !others.empty() && r.data.is_object()) {
        r.data.as_object()["still_open"] = others;
      } else if (r.data.is_object()) {
        // "Blocked again" only where the policy blocks it, for the people the request was for
        // (explain audit, 2026-12-06, M2: a page the policy allows was said to be "blocked
        // again"): request_blocked_as with no index asks the policy alone, as show does.
        const auto& o = r.data.as_object();
        const auto* url_value = o.if_contains("url");
        std::string terr;
        const bool readable = url_value && url_value->is_string() &&
                              rules::make_target(url_value->as_string(), rules::target_kind::url, &terr);
        if (readable && !request_blocked_as(*cfg, nullptr, o, store::now_seconds())) {
          r.data.as_object()["policy_allows"] = true;
        }
      }
    }
  } else if (verb == "list") {
    const std::string filter = admin_text_arg(args, "filter").value_or("pending");
    store::list_filter lf;
    if (filter == "pending") lf = store::list_filter::pending;
    else if (filter == "active") lf = store::list_filter::active;
    else if (filter == "expired") lf = store::list_filter::expired;
    else if (filter == "all") lf = store::list_filter::all;
    else return bad("'filter' must be pending, active, expired or all");
    // The newest list_limit only, and how many older ones were left out: a store that pupils'
    // forms have filled (each up to 4 KiB of URL and the answers) must still answer the
    // headteacher's `list` well within hallpassctl's 16 MiB (audit, 2026-12-05: it did not).
    // The store reads only those rows and counts the rest.
    std::optional<std::int64_t> before;
    if (auto* v = args.if_contains("before"); v && !v->is_null()) {
      before = admin_positive_number(*v);
      if (!before) return bad("'before' must be a request's id, a whole number above 0");
    }
    r = store_->list(lf, list_limit, before);
    if (r.ok) annotate_requests(r.data, *cfg, state_.exceptions.load().get(), may_read_disclosures(*who), store::now_seconds());
  } else if (verb == "show") {
    auto id = id_arg(args, &err);
    if (!id) return bad(err);
    r = store_->show(*id);
    if (r.ok) annotate_requests(r.data, *cfg, state_.exceptions.load().get(), may_read_disclosures(*who), store::now_seconds());
  } else if (verb == "report") {
    auto url = text_arg(args, "url", &err);
    auto nature = text_arg(args, "nature", &err);
    auto reporter = text_arg(args, "reporter", &err);
    if (!url || !nature || !reporter) return bad(err);
    bool block = false;
    if (auto it = args.find("block"); it != args.end()) {
      if (!it->value().is_bool()) return bad("'block' must be true or false");
      block = it->value().as_bool();
    }
    std::optional<rules::target> target;
    std::string terr;
    auto t = rules::make_target(*url, rules::target_kind::url, &terr);
    if (!t) return bad("'url': " + terr);
    if (block) target = t;
    r = store_->file_report(actor, url_without_credentials(*url), *nature, *reporter,
                            admin_text_arg(args, "individual"), target);
    changed = r.ok && block;
    if (r.ok && block) {
      if (const auto relayed = roles_relaying(*cfg, t->host); !relayed.empty()) {
        add_warning(r, "HTTPS to " + t->host + " is not inspected for " + relayed +
                           ", where the proxy sees only the site's name: there the whole site " + t->host +
                           " is blocked, not only this page, until it is inspected (inspection.inspect, rules/README.md)");
      }
    }
  } else if (verb == "reports") {
    r = store_->reports();
  } else if (verb == "block") {
    auto url = text_arg(args, "url", &err);
    auto reason = text_arg(args, "reason", &err);
    if (!url || !reason) return bad(err);
    auto kind = rules::target_kind::domain;
    if (auto s = admin_text_arg(args, "scope")) {
      auto k = rules::parse_target_kind(*s);
      if (!k) return bad("'scope' must be url, prefix or domain");
      kind = *k;
    }
    std::string terr;
    auto t = rules::make_target(*url, kind, &terr);
    if (!t) return bad("'url': " + terr);
    if (kind == rules::target_kind::domain && is_public_suffix(t->host, /*listed_only=*/true)) {
      return bad("'" + t->host + "' is a public suffix (a top-level domain, or a name under which anyone " +
                 "registers sites, like co.uk): a local block would close every site under it for everyone; " +
                 "block the site's own name, or put such a rule in the policy");
    }
    r = store_->add_local(actor, true, *t, *reason);
    changed = r.ok;
    if (r.ok && kind != rules::target_kind::domain) {
      if (const auto relayed = roles_relaying(*cfg, t->host); !relayed.empty()) {
        add_warning(r, "HTTPS to " + t->host + " is not inspected for " + relayed +
                           ", where the proxy sees only the site's name: there the whole site " + t->host +
                           " is blocked, not only this " + std::string(rules::to_string(kind)) +
                           ", until it is inspected (inspection.inspect, rules/README.md)");
      }
    }
  } else if (verb == "blocks") {
    bool all = false;
    if (auto it = args.find("all"); it != args.end()) {
      if (!it->value().is_bool()) return bad("'all' must be true or false");
      all = it->value().as_bool();
    }
    r = store_->local_blocks(all);
  } else if (verb == "unblock") {
    auto id = id_arg(args, &err);
    auto reason = text_arg(args, "reason", &err);
    if (!id || !reason) return bad(err);
    r = store_->remove_local(actor, *id, *reason);
    changed = r.ok;
    // A block a report put on a page (000 7.3): the DSL hears that it was removed, and by whom
    // (known gap, eighth session: a technician could remove it without the DSL hearing of it).
    const auto* report = r.ok && r.data.is_object() ? r.data.as_object().if_contains("report") : nullptr;
    if (report && report->is_object() && state_.alerts && cfg->daemon.alerts.unblocked_reports) {
      const auto& o = report->as_object();
      alert a;
      a.kind = alert_kind::report_unblocked;
      a.at = store::now_seconds();
      a.entry = *id;
      a.report = o.at("id").to_number<std::int64_t>();
      // Without the query and path parameters, as every alert's address (a reported search, a
      // link with a share token: review of the ninth session).
      const std::string value = admin_text_arg(r.data.as_object(), "value").value_or("");
      std::string url_error;
      const auto parts = rules::split_url(value, &url_error);
      a.url = parts ? alert_url(parts->scheme, parts->host, parts->port, parts->path) : value.substr(0, value.find('?'));
      a.report_nature = admin_text_arg(o, "nature").value_or("");
      a.reporter = admin_text_arg(o, "reporter").value_or("");
      a.removed_by = actor.os_user + " (" + actor.admin_role + ")";
      a.removed_reason = *reason;
      state_.alerts->raise(std::move(a), cfg->daemon.alerts, policy.school_name, policy.zone, state_.access_log,
                           cfg->generation);
    }
  } else if (verb == "audit") {
    std::optional<store::seconds_t> since;
    if (auto s = admin_text_arg(args, "since")) {
      auto when = rules::parse_school_time(policy.zone, *s);
      if (!when) return bad("'since' must be a school-local time like \"2026-11-23 08:00\"");
      since = when->at;
    }
    // The newest `limit` (default audit_limit), older than entry `before` when given: a bounded
    // answer, as list's, with "omitted" saying how many older ones were left out.
    std::optional<std::int64_t> before, limit;
    if (auto* v = args.if_contains("before"); v && !v->is_null()) {
      before = admin_positive_number(*v);
      if (!before) return bad("'before' must be an audit entry's id, a whole number above 0");
    }
    if (auto* v = args.if_contains("limit"); v && !v->is_null()) {
      limit = admin_positive_number(*v);
      if (!limit || *limit > static_cast<std::int64_t>(max_audit_limit))
        return bad("'limit' must be a whole number from 1 to " + std::to_string(max_audit_limit));
    }
    r = store_->audit(since, before, limit ? static_cast<std::size_t>(*limit) : audit_limit);
    // Ban reasons are the DSL's and the headteacher's (admin_bans.cpp, withhold_ban_reasons).
    // So are incident records, whole (admin_incidents.cpp).
    if (!who->roles.count("dsl") && !who->roles.count("headteacher") && r.ok && r.data.is_object()) {
      if (auto* entries = r.data.as_object().if_contains("entries"); entries && entries->is_array()) {
        const auto index = state_.exceptions.load();
        const auto now = store::now_seconds();
        for (auto& e : entries->as_array()) {
          if (!e.is_object()) continue;
          withhold_ban_reasons_in_audit(e.as_object(), who->user);
          withhold_incident_in_audit(e.as_object());
          withhold_watched_words_in_audit(e.as_object(), *cfg, index.get(), now);  // a pupil's words: admin_blocked_as.hpp
        }
      }
    }
  } else if (verb == "reload") {
    const auto [errors, warnings, generation] = reload_();
    const auto unaudited = store_->audit_event(actor, "reload", "policy generation " + std::to_string(generation),
                                               errors, errors.empty() ? "ok" : "failed");
    if (!errors.empty()) {
      r = store::result::fail("bad_request", "the policy was not reloaded; still serving generation " +
                                                 std::to_string(state_.configs.generation()) + ":\n" + errors);
    } else {
      r.data = json::object{{"generation", generation}};
      if (!warnings.empty()) r.data.as_object()["warnings"] = warnings;
      if (!unaudited.empty()) r.data.as_object()["audit_error"] = unaudited;
      apply_retention();  // retention.records may have changed
    }
  } else if (verb == "ban" || verb == "unban" || verb == "bans") {
    r = handle_ban_verb(verb, args, who->user, who->roles, changed);
  } else if (verb == "incident" || verb == "incidents") {
    r = handle_incident_verb(verb, args, actor);
  } else if (verb == "status") {
    auto idx = state_.exceptions.load();
    r.data = json::object{
        {"generation", state_.configs.generation()},
        {"uptime_seconds",
         std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_).count()},
        {"active_exceptions", idx ? idx->active_exceptions(store::now_seconds()) : 0},
        {"active_bans", idx ? idx->active_bans(store::now_seconds()) : 0},
        {"pending_requests", store_->pending_requests()},
        {"open_incidents", store_->open_incidents()},
        {"version", HALLPASS_VERSION}};
  }
  if (changed) {
    if (auto e = publish_index(); !e.empty()) {
      r = store::result::fail("internal", "the change is saved but not yet in force: the store could not be read back (" +
                                              e + "); hallpass tries again every 10 seconds");
    }
  } else if (!r.ok && r.code == "internal" && parsed->unsaved) {
    r.error = store_failure_in_words(parsed->unsaved, r.error, cfg->daemon.state_dir);
    // The technician's trace: the journal says it too (admin audit, 2026-12-06: nothing did).
    std::cerr << "hallpass: admin: " << verb << " by " << who->user << " was not saved: " << r.error << std::endl;
  }
  return response(r, &policy.zone);
}

}  // namespace hallpass
