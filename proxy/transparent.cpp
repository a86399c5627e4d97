#include "proxy/transparent.hpp"

#include <algorithm>

#include "proxy/byte_relay.hpp"
#include "proxy/inspection.hpp"
#include "proxy/origin_prefetch.hpp"
#include "proxy/local_response.hpp"
#include "proxy/login_gate.hpp"
#include "proxy/shared_state.hpp"
#include "proxy/signin_handler.hpp"
#include "proxy/tunnel.hpp"
#include "proxy/request_target.hpp"

namespace hallpass {
namespace {

// Whether `e` is the address `a` (an IPv4-mapped IPv6 answer counts as its IPv4 address).
bool same_address(const tcp::endpoint& e, const rules::ip_address& a) {
  auto ip = e.address();
  if (ip.is_v6() && ip.to_v6().is_v4_mapped()) ip = net::ip::make_address_v4(net::ip::v4_mapped, ip.to_v6());
  if (ip.is_v4() != !a.v6) return false;
  if (ip.is_v4()) {
    const auto b = ip.to_v4().to_bytes();
    return std::equal(b.begin(), b.end(), a.bytes.begin());
  }
  const auto b = ip.to_v6().to_bytes();
  return std::equal(b.begin(), b.end(), a.bytes.begin());
}

tcp::endpoint endpoint_of(const socket_address& a) {
  error_code ignored;
  return {net::ip::make_address(a.ip.to_string(), ignored), a.port};
}

// Decides ex (ex.host: the Host or SNI as sent) on the name, and finds out whether the name
// leads to c's original destination: when it does, the connection goes there (the device's
// own choice among a CDN's addresses); when it does not, it goes to the name's own addresses
// (c.transparent->name_leads_there), so that the bytes reach the site that was decided on.
// Connecting to the destination instead would let an allowed name carry a blocked site's
// traffic (a Host or SNI of an allowed site sent to a blocked site's address: audit18 D1, the
// CVE-2009-0801 pattern). A blocked name needs no lookup. Returns the lookup's failure, when
// the name could not be resolved (nothing is forwarded then: fail closed).
net::awaitable<upstream_error> decide_name_and_destination(worker& w, client_connection& c, exchange& ex,
                                                           std::optional<std::string_view> path) {
  auto& t = *c.transparent;
  // Fail closed: until a lookup shows the name leads to the destination, the name's own
  // addresses are used (a name blocked here and opened later by a page exception, in
  // plan_tunnel, is never compared, and must not go to the destination unchecked).
  t.name_leads_there = false;
  const rules::verdict& by_name = decide_exchange(w, c, ex, path);
  if (by_name.act == rules::action::block) co_return upstream_error::none;
  const std::string name = by_name.host.text;
  bool leads_there = false;
  if (by_name.host.kind != rules::host_kind::name) {
    const auto literal = rules::ip_address::parse(name);
    leads_there = literal && *literal == t.dst.ip;
  } else {
    std::string detail;
    auto resolved = co_await w.upstream().resolve(name, t.dst.port, *ex.cfg, detail);
    if (resolved.second != upstream_error::none) {
      ex.add_note("the name '" + name + "' could not be checked against the original destination " + t.text + ": " +
                  detail);
      w.state().metrics.upstream_failed(metrics::upstream_failure::dns).Increment();
      co_return resolved.second;
    }
    // CDNs: a name with many addresses leads there when any of them is the destination.
    for (const auto& e : resolved.first) leads_there = leads_there || same_address(e, t.dst.ip);
  }
  t.name_leads_there = leads_there;
  if (!leads_there) {
    // Not counted as circumvention: a device whose resolver answers otherwise than the
    // gateway's (another CDN node) does this innocently, and it now gains nothing.
    ex.add_note("'" + name + "' does not resolve to the original destination " + t.text +
                ": connected to the name's own address instead");
  }
  co_return upstream_error::none;
}

// A transparent connection that is not redirected traffic: logged and closed.
void refuse_unredirected(worker& w, client_connection& c) {
  exchange ex;
  ex.cfg = w.config();
  ex.scheme = c.transparent->tls ? "https" : "http";
  ex.host = c.transparent->dst.port ? c.transparent->dst.ip.to_string() : std::string();
  ex.port = c.transparent->dst.port;
  ex.reason_override = "not a connection nftables redirected to the transparent listener";
  ex.note = c.transparent->error;
  w.state().metrics.rejected(metrics::rejection::loopback_refused).Increment();
  finish_exchange(w, c, ex);
}

// Ends a transparent TLS connection that is not relayed: nothing can be said to a TLS client
// before its handshake, so closing is the answer. Decides on the destination address first
// when nothing was decided yet, so that the line names the client's role.
void close_tls(worker& w, client_connection& c, exchange& ex, outcome action, std::string_view reason) {
  if (!ex.verdict) {
    const std::string host = ex.host;
    ex.host = c.transparent->dst.ip.to_string();
    decide_exchange(w, c, ex, std::nullopt);
    ex.host = host;
  }
  ex.action = action;
  if (!reason.empty()) ex.reason_override = reason;
  ex.bytes_in += c.buffer.size();
  finish_exchange(w, c, ex);
}

// A transparent TLS connection (port 443 redirected): the ClientHello, the decision on its SNI
// and the original destination, then the relay or the hand-over to inspection.
net::awaitable<bool> serve_transparent_tls(worker& w, client_connection& c) {
  exchange ex;
  ex.cfg = w.config();
  const auto& daemon = ex.cfg->daemon;
  const auto& dst = c.transparent->dst;
  // Logged like a CONNECT (the policy decides it as one), with the original destination.
  ex.method = "CONNECT";
  ex.scheme = "https";
  ex.host = dst.ip.to_string();
  ex.port = dst.port;
  hello_result hello = co_await read_client_hello(c, daemon.connect.hello_timeout);
  switch (hello.status) {
    case hello_status::need_more:
      ex.note = std::move(hello.error);
      close_tls(w, c, ex, outcome::error, "the connection ended before its TLS ClientHello");
      co_return false;
    case hello_status::not_tls:
      ex.circumvention = true;
      ex.note = "the connection to port " + std::to_string(dst.port) + " does not carry TLS";
      close_tls(w, c, ex, outcome::block, "connections to HTTPS ports must carry HTTPS");
      co_return false;
    case hello_status::malformed:
      ex.circumvention = true;
      ex.note = "malformed TLS ClientHello: " + hello.error;
      close_tls(w, c, ex, outcome::block, "the TLS handshake is malformed");
      co_return false;
    case hello_status::ok:
      break;
  }
  if (!hello.hello.sni || hello.hello.sni_is_address) {
    // No name to decide on (an address as the SNI names none: RFC 6066 3): connect.require_sni
    // as for a CONNECT; otherwise decided on the destination address alone (ex.host already is it).
    ex.circumvention = true;
    ex.note = hello.hello.sni ? "TLS with an IP address as its server name (SNI '" + *hello.hello.sni + "')"
                              : "TLS without a server name (SNI)";
    if (daemon.connect.require_sni) {
      close_tls(w, c, ex, outcome::block, "HTTPS without a server name is not allowed on the school network");
      co_return false;
    }
  } else {
    ex.host = *hello.hello.sni;
  }
  const auto& ports = daemon.connect.ports;
  if (std::find(ports.begin(), ports.end(), ex.port) == ports.end()) {
    w.state().metrics.rejected(metrics::rejection::port_not_allowed).Increment();
    close_tls(w, c, ex, outcome::block, "tunnels to this port are not allowed");
    co_return false;
  }
  if (login_mode_of(w, c, ex.cfg->daemon.logins) == login_mode::required) {
    // A redirected TLS connection carries no Proxy-Authorization, so nothing can sign it in: on
    // a network whose logins say `required` it is closed (fail closed), never relayed under the
    // address's role (outside-in audit, 2026-12-05: it was, staff's role for a staff network).
    // Plain HTTP on the transparent listener gets the 407 as on the explicit proxy. Such a
    // network's devices need the proxy setting (or the PAC file), or `login: page`.
    ex.note = "a transparent HTTPS connection cannot carry a proxy sign-in; the device needs the proxy setting "
              "(or the PAC file), or its network login: page";
    close_tls(w, c, ex, outcome::block, "not signed in (login: required)");
    co_return false;
  }
  bool groups_stale = false;
  bool missing = signin_missing(w, c, ex, &groups_stale);
  if (!missing && groups_stale) {
    // Bound through the sign-in page, with groups cache_ttl old: read again before anything is
    // decided on them, as on the explicit proxy (login_gate.cpp; review, 2026-12-05).
    const bool fresh = co_await refresh_page_groups(w, c, ex, ex.cfg->daemon.logins);
    if (!fresh) {
      close_tls(w, c, ex, outcome::error, "login directory unavailable");
      co_return false;
    }
    missing = !ex.login;  // the user has left the directory: the binding has ended
  }
  if (missing) {
    // login: page and not signed in: only the sign-in page is served, inside a handshake with
    // the school CA (signin_handler.hpp); without a CA nothing can be shown, so it is closed.
    const rules::verdict& v = decide_exchange(w, c, ex, std::nullopt);  // the log line's role
    if (!v.host.text.empty()) ex.host = v.host.text;
    if (!may_show_own_https_page(ex, v)) {
      close_tls(w, c, ex, outcome::block,
                ex.cfg->inspecting() ? "not signed in (login: page; the page cannot be shown to this host over HTTPS)"
                                     : "not signed in (login: page; no school CA to show the page over HTTPS)");
      co_return false;
    }
    ex.action = outcome::block;
    ex.reason_override = "not signed in (login: page)";
    const bool inspected = co_await start_inspection(w, c, ex);
    if (inspected) ex.note = "inspected to show the sign-in page";
    finish_exchange(w, c, ex);
    co_return inspected;
  }
  // The co_await's result in a named local, never in the condition (proxy/README.md, GCC 12 rule 4).
  const upstream_error lookup = co_await decide_name_and_destination(w, c, ex, std::nullopt);
  if (lookup != upstream_error::none) {
    close_tls(w, c, ex, outcome::error, describe(lookup));
    co_return false;
  }
  if (c.transparent->name_leads_there) {
    // The destination is where the connection goes: one the school does not open (a private
    // network, the gateway itself, link-local) is closed before any handshake, as a CONNECT
    // to it is refused before its 200, rather than shown a page under a school-CA
    // certificate for the name (audit18 D4).
    if (const auto v = w.upstream().check(endpoint_of(dst), *ex.cfg); v != destination_verdict::allowed) {
      w.upstream().count_refused(v);
      close_tls(w, c, ex, outcome::block, describe(v));
      co_return false;
    }
  } else {
    // The connection goes to the name's own addresses (decide_name_and_destination): those
    // are checked, as an inspected CONNECT's are before its 200 (review, 2026-12-06).
    const origin_address to = inspected_tunnel_origin(c, ex);
    const auto checked = co_await w.upstream().check_destination_of(to, *ex.cfg);
    if (checked.refused) {
      w.upstream().count_refused(*checked.refused);
      ex.add_note(checked.address);
      close_tls(w, c, ex, outcome::block, describe(*checked.refused));
      co_return false;
    }
  }
  // Decided again on the name with the inspection choice, as for a CONNECT. No User-Agent is
  // seen before the handshake, so a blocked site with a CA always gets the block page's
  // handshake (a client without the school CA fails it, which closes the connection anyway).
  const tunnel_plan plan = plan_tunnel(w, c, ex, {});
  if (plan == tunnel_plan::refuse) {
    close_tls(w, c, ex, outcome::block, {});
    co_return false;
  }
  ex.action = plan == tunnel_plan::block_page ? outcome::block : outcome::allow;
  if (plan == tunnel_plan::relay) {
    origin_address to;
    to.host = ex.host;
    to.port = ex.port;
    to.connect_host = ex.connect_host;
    to.address = original_endpoint(c);
    auto acquired = co_await w.upstream().acquire(to, *ex.cfg, upstream_use::tunnel, false);
    if (!acquired.conn) {
      ex.add_note(std::string(acquired.reason) + ": " + acquired.detail);
      close_tls(w, c, ex, outcome::error, acquired.reason);
      co_return false;
    }
    auto up = std::move(acquired.conn);
    ex.answered = std::chrono::steady_clock::now();
    // The ClientHello in c.buffer goes first, untouched.
    // A named local, moved in (proxy/README.md, GCC 12 rule 2).
    relay_check still_allowed = decision_still_holds(w, c, ex, std::nullopt);
    auto [in, out] = co_await relay(w, c.io, c.buffer, up->io, up->buffer, daemon.upstream.idle_timeout,
                                    std::move(still_allowed));
    ex.bytes_in += in;
    ex.bytes_out += out;
    finish_exchange(w, c, ex);
    co_return false;
  }
  // Inspected, or the HTTPS block page: the handshake with a leaf for the SNI, then requests
  // (an inspected one's origin connection made meanwhile, origin_prefetch.hpp).
  // (Its destination was checked above, before any handshake.)
  if (plan == tunnel_plan::inspect) prefetch_tunnel_origin(w, c, ex, inspected_tunnel_origin(c, ex));
  // As on the explicit proxy (http_session.cpp, serve_connect): the block page's tunnel is not an
  // attempt by itself, the navigation inside it is; one whose handshake fails is.
  ex.maybe_embedded = plan == tunnel_plan::block_page;
  const bool inspected = co_await start_inspection(w, c, ex);
  if (!inspected) ex.maybe_embedded = false;
  if (inspected && plan == tunnel_plan::block_page) {
    ex.add_note("inspected to show the HTTPS block page");
    // Every request inside gets the block page, decided as the connection was: the same rule as
    // the explicit proxy's (http_session.cpp; review of the session, 2026-12-06: set there only).
    if (c.inside) {
      c.inside->block_page_only = true;
      c.inside->decided_path_later = ex.decided_path_later;
    }
  }
  finish_exchange(w, c, ex);
  co_return inspected;
}

}  // namespace

client_connection::transparent_origin transparent_origin_of(tcp::socket& s, bool tls) {
  client_connection::transparent_origin t;
  t.tls = tls;
  error_code ec;
  const bool v6 = s.local_endpoint(ec).address().is_v6();
  std::string error;
  const auto dst = original_destination(s.native_handle(), v6, error);
  if (!dst) {
    t.error = "no original destination (" + error + ")";
    return t;
  }
  t.dst = *dst;
  t.text = host_for_url(dst->ip.to_string()) + ":" + std::to_string(dst->port);
  const auto local = local_address(s.native_handle());
  if (local && local->ip == dst->ip && local->port == dst->port) {
    t.error = "the connection was made to the transparent listener itself, not redirected to it (a loop)";
  }
  return t;
}

std::optional<tcp::endpoint> original_endpoint(const client_connection& c) {
  if (!c.transparent || !c.transparent->error.empty() || !c.transparent->name_leads_there) return std::nullopt;
  return endpoint_of(c.transparent->dst);
}

net::awaitable<bool> start_transparent(worker& w, client_connection& c) {
  if (!c.transparent->error.empty()) {
    refuse_unredirected(w, c);
    co_return false;
  }
  if (!c.transparent->tls) co_return true;
  c.idle = false;
  const bool go_on = co_await serve_transparent_tls(w, c);
  co_return go_on;
}

net::awaitable<bool> decide_transparent_request(worker& w, client_connection& c, exchange& ex,
                                                std::optional<std::string_view> path, unsigned version) {
  const upstream_error lookup = co_await decide_name_and_destination(w, c, ex, path);
  if (lookup == upstream_error::none) co_return true;
  const auto reason = describe(lookup);  // a static string: it is the log's reason
  co_await refuse(w, c, ex, refusal_for(lookup), reason, version);
  co_return false;
}

}  // namespace hallpass
