// decide_exchange and finish_exchange: the decision of one exchange and its record (the
// access log line and the metrics). Shared by the session and the tunnel, so neither calls
// back into the other.
#include "proxy/exchange.hpp"

#include <algorithm>
#include <array>

#include "proxy/access_record.hpp"
#include "proxy/admin_server.hpp"
#include "proxy/alerts.hpp"
#include "proxy/dhcp_leases.hpp"
#include "proxy/login_gate.hpp"
#include "proxy/login_service.hpp"
#include "proxy/public_suffix.hpp"
#include "proxy/shared_state.hpp"
#include "proxy/worker.hpp"
#include "rules/decision.hpp"
#include "rules/inspection.hpp"
#include "rules/safesearch.hpp"

namespace hallpass {

namespace {

rules::request_facts facts_of(worker& w, const client_connection& c, exchange& ex,
                              std::optional<std::string_view> path, bool path_seen_later) {
  rules::request_facts f;
  f.client = c.ip;
  if (ex.login) {
    f.user = ex.login->user;
    f.groups = ex.login->groups;
  }
  // The device's DHCP name and hardware address, for bans and exceptions that name a device
  // (the same lookup the block page and the log line use: one per exchange).
  if (const device_identity* d = device_of(w, c, ex)) {
    f.device = d->name;
    f.mac = d->hardware_address;
  }
  f.method = ex.method;
  f.method_overrides = ex.method_overrides;
  f.scheme = ex.scheme;
  f.host = ex.host;
  f.port = ex.port;
  f.path = path;
  f.path_seen_later = path_seen_later;
  f.time = std::chrono::floor<std::chrono::seconds>(ex.start);
  return f;
}

}  // namespace

std::string pool_client(const client_connection& c, const exchange& ex) {
  std::string key = c.ip_text;
  if (ex.login) key += " " + ex.login->user;  // a space: in neither an address nor a key's other parts
  if (c.origin_sign_in != 0) key += " #" + std::to_string(c.origin_sign_in);  // this connection's alone
  return key;
}

void note_origin_sign_in(client_connection& c, std::string_view authorization) {
  if (c.origin_sign_in != 0) return;
  const auto scheme = authorization.substr(0, authorization.find(' '));
  if (!beast::iequals(scheme, "NTLM") && !beast::iequals(scheme, "Negotiate")) return;
  static std::atomic<std::uint64_t> next{0};  // unique for the process's life: never reused
  c.origin_sign_in = next.fetch_add(1, std::memory_order_relaxed) + 1;
}

std::string tunnel_no_longer_inspected(worker& w, const client_connection& c, const exchange& ex,
                                       const std::shared_ptr<const configuration>& cfg,
                                       const rules::exception_index* exceptions) {
  if (!cfg->inspecting()) return "HTTPS inspection is off now (no school CA: tls.ca_dir)";
  if (!c.inside) return {};
  // The tunnel's CONNECT, as plan_tunnel decided it: the host alone, the client's facts.
  exchange connect;
  connect.cfg = cfg;
  connect.method = "CONNECT";
  connect.scheme = "https";
  connect.host = c.inside->host;
  connect.port = c.inside->port;
  connect.login = ex.login;
  const auto facts = facts_of(w, c, connect, std::nullopt, false);
  const rules::verdict v = rules::decide_request(*cfg->policy, exceptions, facts);
  if (v.by == rules::decided_by::unchecked) return {};  // each request inside is decided (and refused)
  const auto inspection = rules::decide_inspection(*cfg->policy, exceptions, facts, v);
  if (inspection.never) return inspection.why;
  if (v.act == rules::action::block) return {};  // each request gets the HTTPS block page, as a new tunnel would
  if (inspection.handling != rules::tls_handling::inspect) return inspection.why;
  return {};
}

std::function<bool()> decision_still_holds(worker& w, const client_connection& c, exchange& ex,
                                           std::optional<std::string> path, std::optional<std::string> sni_host) {
  // The policy and index this relay was last decided with, its own: ex.cfg and ex.exceptions
  // stay those of the decision that opened the relay (its log line reports that decision), so
  // they cannot say whether anything changed since the last check.
  struct pinned {
    std::shared_ptr<const configuration> cfg;
    std::shared_ptr<const rules::exception_index> exceptions;
    std::chrono::steady_clock::time_point decided;
  };
  auto last = std::make_shared<pinned>(pinned{ex.cfg, ex.exceptions, std::chrono::steady_clock::now()});
  // Who the relay is decided as: the sign-in it opened under, while it holds as a tunnel's
  // (login_gate.hpp, tunnel_identity_now). A relayed tunnel carries no requests for sign_in()
  // to check, so it kept a sign-in (and its groups) for its whole life, and went on as a
  // teacher after the teacher signed out of the sign-in page (outside-in audit of identity,
  // 2026-12-07, F2 and F3).
  const bool page_binding = ex.login && login_mode_of(w, c, ex.cfg->daemon.logins) == login_mode::page;
  const auto identity_until = c.inside ? c.inside->until : tunnel_identity_until(c);
  return [&w, &c, &ex, path = std::move(path), sni_host = std::move(sni_host), last, page_binding,
          identity_until]() -> bool {
    auto cfg = w.config();
    auto exceptions = w.state().exceptions.load(std::memory_order_acquire);
    const auto now = std::chrono::steady_clock::now();
    // Once a second, before the 5 s shortcut: a lapse or a sign-out changes no pointer. The
    // network's mode is looked up only for a tunnel opened by nobody.
    const auto& logins = cfg->daemon.logins;
    const login_mode mode = ex.login ? login_mode::none : login_mode_of(w, c, logins);
    if (const auto identity = tunnel_identity_now(w, c, ex.login.get(), page_binding, identity_until, mode, logins);
        identity != tunnel_identity::holds) {
      ex.add_note("closed while open: " + std::string(describe(identity)) +
                  ", for the client to sign in again on a new tunnel");
      return false;
    }
    if (cfg == last->cfg && exceptions == last->exceptions && now - last->decided < std::chrono::seconds(5)) return true;
    *last = pinned{cfg, exceptions, now};
    // Decided as the relay's own request was, on a copy: the log line keeps the first decision.
    // By the one decision function, not decide_exchange: a re-check is not a request, so it is
    // not observed in hallpass_decision_seconds (it would skew that histogram towards idle
    // tunnels, one observation per tunnel every 5 s).
    const std::array<const std::string*, 2> hosts{&ex.host, sni_host ? &*sni_host : nullptr};
    for (const std::string* host : hosts) {
      if (!host) continue;
      exchange again;
      again.cfg = cfg;
      again.method = ex.method;
      again.scheme = ex.scheme;
      again.host = *host;
      again.port = ex.port;
      again.login = ex.login;
      const auto facts =
          facts_of(w, c, again, path ? std::optional<std::string_view>(*path) : std::nullopt, false);
      const rules::verdict v = rules::decide_request(*cfg->policy, exceptions.get(), facts);
      if (v.act != rules::action::allow) {
        ex.add_note("closed while open: " + *host + " now blocked (" + std::string(v.rule_id) +
                    (v.reason.empty() ? std::string() : ": " + std::string(v.reason)) + ")");
        return false;
      }
      if (path) {
        // A WebSocket inside a decrypted tunnel: decrypted only while its host would be.
        if (c.inside && c.inside->tls && !c.inside->block_page_only) {
          if (auto why = tunnel_no_longer_inspected(w, c, ex, cfg, exceptions.get()); !why.empty()) {
            ex.add_note("closed while open: HTTPS to " + c.inside->host + " is no longer inspected (" + why + ")");
            return false;
          }
        }
        continue;
      }
      // A TLS tunnel relayed unseen must still be one that plan_tunnel would relay, to the
      // same address. A host now inspected (a page blocked on it, a path rule, an inspection
      // entry) or now sent to SafeSearch's front end is filtered in a way this relay skips:
      // the page a reload blocked was still reached through a tunnel opened before it
      // (hostile-input audit, 2026-12-05, F1). Closed, the browser opens a new tunnel, which
      // is planned with the policy in force.
      if (cfg->inspecting() && v.by != rules::decided_by::unchecked) {
        const auto inspection = rules::decide_inspection(*cfg->policy, exceptions.get(), facts, v);
        if (inspection.handling == rules::tls_handling::inspect) {
          ex.add_note("closed while open: " + *host + " is now inspected (" + inspection.why + ")");
          return false;
        }
      }
      const auto front_end = rules::safesearch_connect_host(*cfg->policy, v, *host).value_or(std::string_view());
      if (front_end != ex.connect_host) {
        ex.add_note("closed while open: " + *host + (front_end.empty() ? " is no longer" : " is now") +
                    " sent to SafeSearch's locked front end");
        return false;
      }
    }
    return true;
  };
}

namespace {
const rules::verdict& decide_with(worker& w, exchange& ex, const rules::request_facts& f);
}  // namespace

const rules::verdict& decide_exchange(worker& w, const client_connection& c, exchange& ex,
                                      std::optional<std::string_view> path, bool path_seen_later) {
  return decide_with(w, ex, facts_of(w, c, ex, path, path_seen_later));
}

const rules::verdict& decide_as_its_connect(worker& w, const client_connection& c, exchange& ex) {
  rules::request_facts f = facts_of(w, c, ex, std::nullopt, c.inside && c.inside->decided_path_later);
  f.method = "CONNECT";
  f.method_overrides = {};
  return decide_with(w, ex, f);
}

namespace {
const rules::verdict& decide_with(worker& w, exchange& ex, const rules::request_facts& f) {
  const auto t0 = std::chrono::steady_clock::now();
  // The one decision function (rules/decision.hpp), the same explain uses: the policy, then the
  // headteacher's exceptions and local entries (never over a locked category). The index is
  // pinned with the verdict, whose views point into it.
  ex.exceptions = w.state().exceptions.load(std::memory_order_acquire);
  ex.verdict.emplace(rules::decide_request(*ex.cfg->policy, ex.exceptions.get(), f));
  // A blocked VPN, web proxy or DNS-over-HTTPS host is an attempt to get round the filter.
  const auto& v = *ex.verdict;
  if (v.act == rules::action::block && v.matched_category && v.matched_category->circumvention) ex.circumvention = true;
  for (auto& n : rules::path_notes(v)) ex.add_note(std::move(n));  // none, and no allocation, for most
  w.state().metrics.decision_seconds.Observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return *ex.verdict;
}
}  // namespace

bool may_show_own_https_page(const exchange& ex, const rules::verdict& v) {
  return ex.cfg->inspecting() && v.by != rules::decided_by::unchecked &&
         !rules::never_inspected(*ex.cfg->policy, v.host);
}

void note_asker_role(worker& w, const client_connection& c, exchange& ex) {
  // The role comes from the client's facts alone (address, user, groups); no exception or
  // local entry changes it, so the policy alone answers.
  ex.asker_role = rules::decide_request(*ex.cfg->policy, nullptr, facts_of(w, c, ex, std::nullopt, false)).chosen_role;
}

// Every browser's User-Agent begins with "Mozilla/" (Chrome, Edge, Safari, Firefox alike); apps,
// update agents and command-line tools send their own. Only a browser can show a page in
// answer to a blocked HTTPS site; other clients get the plain refusal.
bool looks_like_browser(std::string_view user_agent) { return user_agent.starts_with("Mozilla/"); }

bool own_doing(std::string_view fetch_mode, std::string_view fetch_dest, std::string_view user_agent,
               std::string_view upgrade_insecure_requests) {
  if (!fetch_mode.empty()) return fetch_mode == "navigate" && (fetch_dest.empty() || fetch_dest == "document");
  if (!looks_like_browser(user_agent)) return true;
  return upgrade_insecure_requests == "1";
}

tunnel_plan plan_tunnel(worker& w, const client_connection& c, exchange& ex, std::string_view user_agent) {
  const auto& policy = *ex.cfg->policy;
  const rules::verdict* v = &decide_exchange(w, c, ex, std::nullopt);
  if (!v->host.text.empty()) ex.host = v->host.text;
  // A transparent TLS connection shows no User-Agent before its handshake (proxy/transparent.hpp).
  const bool browser = looks_like_browser(user_agent) || c.transparent.has_value();
  if (ex.cfg->inspecting() && v->by != rules::decided_by::unchecked) {
    const auto facts = facts_of(w, c, ex, std::nullopt, false);
    const auto inspection = rules::decide_inspection(policy, ex.exceptions.get(), facts, *v);
    if (inspection.handling == rules::tls_handling::inspect) {
      // Decided on the host alone now; what needs the path applies to each request inside. The
      // note says "inspected" only of a tunnel that will be decrypted (a refused CONNECT's line
      // said the host "is inspected": outside-in audit with real clients, 2026-12-07, L6).
      v = &decide_exchange(w, c, ex, std::nullopt, true);
      ex.decided_path_later = true;
      if (v->act == rules::action::block && !browser) return tunnel_plan::refuse;
      ex.add_note(inspection.why);
      return v->act == rules::action::block ? tunnel_plan::block_page : tunnel_plan::inspect;
    }
    if (inspection.never) {
      ex.add_note(v->act == rules::action::block
                      ? "on the never-inspect list: blocked without the HTTPS block page (never decrypted)"
                      : inspection.why);
    }
    // A blocked site is shown its block page even when it is not inspected otherwise: the
    // handshake then serves only the proxy's own page, and nothing goes to the site. Not a
    // host on the never-inspect list: that promise (banking, health) is never decrypted,
    // whatever else asks for it; the browser shows its own connection error instead.
    if (v->act == rules::action::block) {
      return browser && !inspection.never ? tunnel_plan::block_page : tunnel_plan::refuse;
    }
  } else if (v->act == rules::action::block) {
    return tunnel_plan::refuse;
  }
  // Relayed: SafeSearch by address (forcesafesearch.google.com's for www.google.com, ...), the
  // client's TLS to the real name untouched.
  if (const auto mapped = rules::safesearch_connect_host(policy, *v, ex.host)) ex.connect_host = std::string(*mapped);
  return tunnel_plan::relay;
}

namespace {

// The rule and the category the access log and an alert name. A refusal by a setting
// (rule_override: connect.ports, upstream.ports, a destination, connect.require_sni, ...) names
// the setting and no category: the verdict it overrides is the policy's allow, whose category
// was logged beside "block" (and could alert as a watched category's block).
std::string_view logged_rule(const exchange& ex) {
  if (!ex.rule_override.empty()) return ex.rule_override;
  return ex.verdict ? ex.verdict->rule_id : std::string_view();
}

std::string_view logged_category(const exchange& ex) {
  return ex.verdict && ex.rule_override.empty() ? ex.verdict->category_name() : std::string_view();
}

}  // namespace

bool blocked_in_watched_category(const exchange& ex) {
  if (!ex.cfg || ex.action != outcome::block) return false;
  const std::string_view category = logged_category(ex);
  const auto& watched = ex.cfg->daemon.alerts.categories;
  return !category.empty() && std::find(watched.begin(), watched.end(), category) != watched.end();
}

namespace {

// Counts the attempt for bans.threshold; a subject that reaches it is banned through the
// store thread (admin_server::file_automatic_ban), in force at once (000 7.2; 002).
void note_circumvention(worker& w, const client_connection& c, exchange& ex) {
  auto& state = w.state();
  if (!ex.cfg || !state.admin) return;
  const auto& bans = ex.cfg->policy->bans;
  if (bans.attempts == 0) return;
  if (ex.maybe_embedded) {
    ex.add_note(ex.method == "CONNECT"
                    ? "not counted towards a ban: a browser's tunnel shown the HTTPS block page (the request inside counts when it is a navigation)"
                    : "not counted towards a ban: not a page the person opened (a page's image, script or frame)");
    return;
  }
  // The signed-in user, when logins know one; the device always: by its hardware address when
  // the DHCP leases name it (a new address from DHCP does not escape the count or the ban; the
  // host name is not used, since a device chooses its own), else by its address.
  const std::string_view user = ex.login ? std::string_view(ex.login->user) : std::string_view();
  const device_identity* d = device_of(w, c, ex);
  const std::string device = d && !d->hardware_address.empty() ? d->hardware_address : c.ip.to_string();
  const auto now = std::chrono::floor<std::chrono::seconds>(ex.start);
  // One site, one attempt a minute (circumvention_tracker.hpp): a browser's parallel
  // connections and retries for one visit are one attempt.
  const auto reached = state.circumvention.note_attempt(device, user, registrable_domain(ex.host), now, bans);
  for (const auto& s : reached) {
    std::string reason = std::to_string(bans.attempts) + " attempts to get round the filter within " +
                         rules::duration_text(bans.within) + " (the last: " + ex.host;
    if (const auto category = logged_category(ex); !category.empty()) reason += ", " + std::string(category);
    reason += ")";
    if (!state.admin->file_automatic_ban(s.device, s.name, bans.duration, std::move(reason))) {
      state.circumvention.not_filed(s, now, bans);
    }
  }
}

// An alert for the DSL when the exchange is one the school asked to hear of at once
// (alerts.categories, alerts.circumvention; proxy/alerts.hpp): a block in a watched category
// first, else an attempt to get round the filter.
void raise_alert(worker& w, const client_connection& c, exchange& ex, std::int64_t request = 0) {
  const auto& settings = ex.cfg->daemon.alerts;
  const rules::verdict* v = ex.verdict ? &*ex.verdict : nullptr;
  const std::string_view category = logged_category(ex);
  const bool watched = blocked_in_watched_category(ex);
  const bool circumvention = settings.circumvention && ex.circumvention;
  if (!watched && !circumvention) return;
  if (request != 0 && !watched) return;  // a request alerts for a watched category only
  alert a;
  a.kind = watched ? alert_kind::category : alert_kind::circumvention;
  a.at = std::chrono::floor<std::chrono::seconds>(ex.start);
  a.category = category;
  for (const auto& k : ex.cfg->policy->categories) {
    if (k.name == category) a.category_description = k.description;
  }
  a.client = c.ip_text;
  if (ex.login) a.user = ex.login->user;
  const rules::role* role = v ? v->chosen_role : ex.asker_role;
  if (role) a.role = role->name;
  if (const device_identity* d = device_of(w, c, ex)) {
    a.device_name = d->name;
    a.hardware_address = d->hardware_address;
  }
  // What was asked for, without the query or path parameters (";jsessionid=..."): personal
  // data and session tokens, which the log keeps only by choice, and a mail leaves the gateway.
  a.url = ex.method == "CONNECT" ? ex.host + ":" + std::to_string(ex.port)
                                 : alert_url(ex.scheme, ex.host, ex.port, ex.path);
  using kept = daemon_config::access_log_settings::search_terms_kept;
  const kept terms = ex.cfg->daemon.access_log.search_terms;  // as the log keeps them, no more
  if (terms == kept::all || (terms == kept::blocked && ex.action == outcome::block)) a.search = ex.search_terms;
  a.rule = logged_rule(ex);
  if (v && ex.rule_override.empty()) a.clause = v->clause;
  a.note = ex.note;
  a.request = request;
  w.state().alerts->raise(std::move(a), settings, ex.cfg->policy->school_name, ex.cfg->policy->zone,
                          w.state().access_log, ex.cfg->generation);
}

}  // namespace

void raise_request_alert(worker& w, const client_connection& c, exchange& asked, std::int64_t request) {
  if (!asked.cfg || !asked.cfg->daemon.alerts.enabled() || !w.state().alerts || request <= 0) return;
  asked.circumvention = false;  // the form itself gets round nothing
  raise_alert(w, c, asked, request);
}

const device_identity* device_of(worker& w, const client_connection& c, exchange& ex) {
  if (!ex.device) {
    if (ex.cfg && !ex.cfg->daemon.dhcp_leases.path.empty()) {
      ex.devices = w.state().devices.load(std::memory_order_acquire);
    }
    ex.device = ex.devices ? ex.devices->find(c.ip) : nullptr;
  }
  return *ex.device;
}

std::string_view hardware_address_of(worker& w, const client_connection& c, exchange& ex) {
  const device_identity* d = device_of(w, c, ex);
  return d ? std::string_view(d->hardware_address) : std::string_view();
}

void finish_exchange(worker& w, const client_connection& c, exchange& ex) {
  auto& m = w.state().metrics;
  if (c.inside && !ex.verdict && !ex.asker_role && ex.cfg) {
    // A request refused inside a tunnel before its decision (another site named: 421; its
    // framing) is the tunnel's: its identity and role, known from the CONNECT, go with it to
    // the circumvention count, the alert and the log line, which had an empty role and no
    // user (audit of pupils' ways round the filter, 2026-12-06, F6).
    if (!ex.login) ex.login = c.inside->who;
    note_asker_role(w, c, ex);
  }
  m.bytes_from_clients.Increment(static_cast<double>(ex.bytes_in));
  m.bytes_to_clients.Increment(static_cast<double>(ex.bytes_out));
  if (ex.circumvention) {
    m.circumvention_attempts.Increment();
    note_circumvention(w, c, ex);
  }
  const auto ended = ex.answered.value_or(std::chrono::steady_clock::now());
  m.observe_exchange(ex.status, std::chrono::duration<double>(ended - ex.started).count());
  const rules::verdict* v = ex.verdict ? &*ex.verdict : nullptr;
  if (v && v->chosen_role && ex.action != outcome::error) {
    const auto& counters = w.role_counters();
    const auto index = static_cast<std::size_t>(v->chosen_role - ex.cfg->policy->roles.data());
    if (index < counters.size() && ex.cfg->generation == w.config()->generation) {
      (ex.action == outcome::allow ? counters[index].allowed : counters[index].blocked)->Increment();
    }
  }
  if (ex.cfg && ex.cfg->daemon.alerts.enabled() && w.state().alerts) raise_alert(w, c, ex);
  if (!w.state().access_log.enabled() || !ex.cfg) return;
  access_record r;
  r.start = ex.start;
  r.client = c.ip_text;
  if (const device_identity* d = device_of(w, c, ex)) {
    r.device_name = d->name;
    r.hardware_address = d->hardware_address;
  }
  if (ex.login) r.user = ex.login->user;
  const rules::role* role = v ? v->chosen_role : ex.asker_role;
  r.role = role ? std::string_view(role->name) : std::string_view();
  r.method = ex.method;
  r.scheme = ex.scheme;
  r.host = ex.host;
  r.port = ex.port;
  r.path = ex.path;
  r.query = ex.query;
  r.status = ex.status;
  r.action = to_string(ex.action);
  r.rule = logged_rule(ex);
  r.category = logged_category(ex);
  r.reason = !ex.reason_override.empty() ? ex.reason_override : v ? v->reason : std::string_view();
  r.bytes_from_client = ex.bytes_in;
  r.bytes_to_client = ex.bytes_out;
  r.duration_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - ex.started).count();
  r.circumvention = ex.circumvention;
  r.ban = v && v->ban ? v->ban->id : 0;
  r.tls = ex.inspected ? std::string_view("inspected") : ex.tls_failure;
  using kept = daemon_config::access_log_settings::search_terms_kept;
  const kept terms = ex.cfg->daemon.access_log.search_terms;
  if (terms == kept::all || (terms == kept::blocked && ex.action == outcome::block)) r.search = ex.search_terms;
  r.note = ex.note;
  if (c.transparent) r.original_dst = c.transparent->text;
  w.state().access_log.write(format_access_record(r, ex.cfg->policy->zone, ex.cfg->daemon.access_log.keep_query));
}
}  // namespace hallpass
