// One request (or one tunnel) as it goes through a session: what was asked, what was
// decided, what happened, for the access log line and the metrics. Lives on the session's
// coroutine frame; used only on its worker's thread.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "proxy/configuration.hpp"
#include "rules/engine.hpp"
#include "rules/exception_index.hpp"

namespace hallpass {

class worker;
struct client_connection;
struct login_identity;
struct device_identity;
class device_table;

// How an exchange ended, for the access log's `action` and the metrics: one vocabulary for
// forwarded requests and tunnels alike.
enum class outcome : std::uint8_t {
  allow,  // decided allow and answered by the origin (or relayed, for a tunnel)
  block,  // decided block: the block page, a refused tunnel
  error,  // refused before a decision (malformed, too large, ...), or the origin failed
};
constexpr std::string_view to_string(outcome o) {
  switch (o) {
    case outcome::allow: return "allow";
    case outcome::block: return "block";
    case outcome::error: return "error";
  }
  return "error";
}

struct exchange {
  std::shared_ptr<const configuration> cfg;  // pinned for the whole exchange
  std::chrono::system_clock::time_point start = std::chrono::system_clock::now();
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  // When the answer was complete, if earlier than the end of the exchange (a tunnel's 200).
  std::optional<std::chrono::steady_clock::time_point> answered;
  std::string method, scheme, host, path, query;
  // Other methods the request names in method-override headers (rules::request_facts); empty
  // for nearly every request.
  std::vector<std::string> method_overrides;
  std::uint16_t port = 0;
  std::optional<rules::verdict> verdict;
  std::shared_ptr<const rules::exception_index> exceptions;  // pinned: the verdict may point into it
  // The asker's role when no verdict is made (the request form's POST is the proxy's own
  // page, not a request to decide), for the log line; the verdict's role otherwise.
  const rules::role* asker_role = nullptr;
  int status = 0;
  outcome action = outcome::error;
  std::uint64_t bytes_in = 0, bytes_out = 0;
  bool circumvention = false;
  // The exchange may not be the person's own doing: a page's image or script, a frame, or a
  // browser's CONNECT (which does not say whether a page embedded the site). An attempt to get
  // round the filter is then logged and alerted but not counted towards an automatic ban
  // (own_doing, exchange.cpp; outside-in audit of logins, 2026-12-06, H2).
  bool maybe_embedded = false;
  // A refusal by a daemon setting rather than by the policy (connect.ports, upstream.ports,
  // destination, connect.require_sni): the log's rule, in place of the verdict's.
  std::string_view rule_override;
  // A CONNECT decided on its host with its path to be seen later (an inspected host: plan_tunnel).
  bool decided_path_later = false;
  bool inspected = false;     // a decrypted tunnel's CONNECT, or a request inside one
  // A CONNECT whose school-CA handshake with the client failed: "rejected_ca" (the device does
  // not trust the school CA: a pinning app, a device without it) or "client_failed"; the log's
  // `tls` field, so that filtering the log on it finds the devices that still need the CA.
  std::string_view tls_failure;
  // forward() read the request's whole body from the client; else one not read to its end
  // (refused, blocked, answered early) leaves the connection to a lingering close.
  bool request_body_read = false;
  bool leaf_prepared = false;  // this CONNECT started its host's mint before its 200 (http_session.cpp)
  std::string connect_host;   // connect to this name's addresses instead (SafeSearch); "" for ex.host's
  std::string search_terms;   // of a search request (logged with access_log.search_terms)
  std::string note;            // for the technician; add_note() keeps what an earlier step said
  std::string_view reason_override;  // for errors decided before the policy (400, 502, ...)
  std::shared_ptr<const login_identity> login;  // who signed in (login_gate.hpp); null: nobody
  // device_of's answer, pinned with its table: nullopt until it is first asked.
  std::optional<const device_identity*> device;
  std::shared_ptr<const device_table> devices;

  // Adds to the note after what is there ("; " between), so a later step does not erase an
  // earlier one's (the transparent path's "does not resolve to the original destination").
  void add_note(std::string_view text) {
    if (!note.empty()) note += "; ";
    note += text;
  }
};

// The device that holds the client's address (dhcp_leases), or null when none is known.
// Looked up once per exchange, so the block page and the access log line name the same device
// for one load and one hash lookup; with dhcp_leases unset not even the atomic load is paid.
const device_identity* device_of(worker& w, const client_connection& c, exchange& ex);
// The device's hardware address as device_of finds it; empty when none is known.
std::string_view hardware_address_of(worker& w, const client_connection& c, exchange& ex);

// Whose pooled origin connections a request may use (origin_address::client, upstream.hpp):
// the device's address, and the signed-in user when there is one, so that users who share an
// address (a terminal server, a NAT) never share a connection, and whatever an origin sends
// late on one reaches no other user. forward.cpp and origin_prefetch.cpp ask with the same key.
std::string pool_client(const client_connection& c, const exchange& ex);

// Marks `c` as signed in to origins by connection (client_connection::origin_sign_in) when
// `authorization` (the request's Authorization field) is an NTLM or Negotiate one.
void note_origin_sign_in(client_connection& c, std::string_view authorization);

// Whether a User-Agent is a browser's (one that can show a page in answer to an HTTPS site).
bool looks_like_browser(std::string_view user_agent);

// Whether a request is surely the person's own doing, for the circumvention count: with Fetch
// Metadata (HTTPS, inspected) a top-level navigation only (Sec-Fetch-Mode navigate, Sec-Fetch-
// Dest document or none); without it, from a browser, a navigation as browsers mark them on
// plain HTTP (Upgrade-Insecure-Requests: 1); anything else that is not a browser (an app, a
// VPN client, a tool) is. A page can make a browser load images, scripts and frames from any
// site, and a pupil could so get another person banned (outside-in audit, 2026-12-06, H2).
bool own_doing(std::string_view fetch_mode, std::string_view fetch_dest, std::string_view user_agent,
               std::string_view upgrade_insecure_requests);

// What to do with a CONNECT, decided by plan_tunnel.
enum class tunnel_plan : std::uint8_t {
  refuse,      // blocked: a 403 naming the reason (no CA, or not a browser)
  relay,       // allowed and not inspected: bytes both ways (to ex.connect_host when set)
  inspect,     // allowed and inspected: each request inside is decided and forwarded
  block_page,  // blocked, from a browser, with a CA: the handshake only to show the HTTPS block page
};

// Decides a CONNECT to ex.host:ex.port with the pinned policy and exceptions, and chooses how
// the tunnel goes: with a school CA the policy's inspection rules (rules/inspection.hpp) say
// whether it is decrypted, and a decrypted tunnel is decided on the host alone now (its
// path-level rules apply to each request inside). Sets ex.verdict, ex.host (normalised),
// ex.connect_host (SafeSearch) and ex.note. `user_agent` tells a browser (which can show the
// HTTPS block page) from other clients.
tunnel_plan plan_tunnel(worker& w, const client_connection& c, exchange& ex, std::string_view user_agent);

// Why a tunnel the proxy decrypts for inspection (c.inside, tls, not block_page_only) would not
// be decrypted if it were opened now, with `cfg` and `exceptions`: "" when it would. No school CA
// any more, or the host now on the never-inspect list (blocked or not), or an allowed host the
// policy now relays. Such a tunnel is closed (its next request unanswered, a WebSocket inside
// it ended) so that the browser's next CONNECT is planned afresh: after a reload that put a
// host on the never list, open connections stayed decrypted and logged each path (outside-in
// audit of HTTPS, 2026-12-07, finding 2).
std::string tunnel_no_longer_inspected(worker& w, const client_connection& c, const exchange& ex,
                                       const std::shared_ptr<const configuration>& cfg,
                                       const rules::exception_index* exceptions);

// Whether the proxy may complete a TLS handshake with the school CA only to show its own page
// (the HTTPS block page, the sign-in page) to the host of verdict v: a school CA is configured,
// the host is valid, and it is not on the never-inspect list (never decrypted, whatever asks).
bool may_show_own_https_page(const exchange& ex, const rules::verdict& v);

// Whether `ex` is a block in a category the school watches (alerts.categories): what raises a
// category alert, and what the block page's form files past the cap on a device's pending
// requests (store::max_pending_per_asker).
bool blocked_in_watched_category(const exchange& ex);

// An alert for the DSL when the block page's form filed request `request` for a page the asker
// is blocked from in a category the school watches (alerts.categories): what they wrote may be
// a disclosure, and the visit's own alert was held as a repeat or came before it (safeguarding
// audit, 2026-12-06, M6). `asked` is the page decided for the asker (its verdict and action).
void raise_request_alert(worker& w, const client_connection& c, exchange& asked, std::int64_t request);

// Writes the access log line for the exchange and counts it. Call once per exchange.
void finish_exchange(worker& w, const client_connection& c, exchange& ex);

// Whether this exchange's pages are read by an adult (the role's `audience: adults`): the
// verdict's role, else the asker's; a child when neither is known.
inline bool read_by_adult(const exchange& ex) {
  if (ex.verdict && ex.verdict->chosen_role) return ex.verdict->chosen_role->adults;
  return ex.asker_role != nullptr && ex.asker_role->adults;
}

// Sets ex.asker_role: the role the policy gives whoever sends this exchange (address, user,
// groups), as decide_exchange would choose it, without deciding the request.
void note_asker_role(worker& w, const client_connection& c, exchange& ex);

// For a relay that ex's allow opened (a tunnel, a WebSocket): asked once a second, true while
// that decision holds. The request is decided again, with the policy and the store's index in
// force and the time now, when either has changed since the last check (an exception revoked, a
// ban, a local block, a reload) and at least every 5 s (an exception's end, a lesson's start);
// a block ends the relay, and ex's note says why (the log line keeps the decision that opened
// it). Before 2026-12-05 an open tunnel outlived a revocation, a ban and an expiry (audit).
// `path`: the request's path and query for a WebSocket; nullopt for a TLS tunnel relayed unseen,
// which also ends when its host would now be inspected or sent to SafeSearch's front end (a
// relay would get round the filtering that a new tunnel gets). `sni_host`: the name a relayed
// tunnel's TLS named when it differs from the CONNECT host (decided at the start too, so
// decided again with it: a block of either ends the tunnel).
std::function<bool()> decision_still_holds(worker& w, const client_connection& c, exchange& ex,
                                           std::optional<std::string> path,
                                           std::optional<std::string> sni_host = std::nullopt);

// Decides the exchange's request with the pinned policy; records timing metrics.
// `path_seen_later`: a CONNECT that will be inspected (rules::request_facts).
// A request inside a blocked host's tunnel that was decrypted only to show the HTTPS block page
// (client_connection::tunnel_origin::block_page_only): decided as its CONNECT was, on the host
// alone (method CONNECT, no path), as explain decides it. Its own path and method never open
// what the CONNECT blocked (differential audit of explain, 2026-12-06, H1: an allow pattern for
// a page of a blocked host reached the site from a browser while explain said blocked).
const rules::verdict& decide_as_its_connect(worker& w, const client_connection& c, exchange& ex);

const rules::verdict& decide_exchange(worker& w, const client_connection& c, exchange& ex,
                                      std::optional<std::string_view> path, bool path_seen_later = false);

}  // namespace hallpass
