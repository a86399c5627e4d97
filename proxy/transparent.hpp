// Transparent gateway mode: connections that nftables redirected to a transparent listener
// (`listen: [{address: ..., mode: transparent, protocol: http | tls}]`,
// deploy/nftables-hallpass-transparent.nft) from devices that have no proxy setting.
//
// The request is decided on the name the client gave: plain HTTP on its Host field, HTTPS on
// its ClientHello's SNI (then relayed, inspected, or shown the HTTPS block page exactly as a
// CONNECT would be). The name is resolved (the worker's resolver, upstream.dns_timeout) and
// compared with the connection's original destination (original_destination.hpp): when one of
// its addresses is the destination, hallpass connects there (the device's own choice among a
// CDN's addresses); when none is, it connects to the name's own addresses instead, as an
// explicit proxy would, and notes it in the log line (`note`, beside `original_dst`). So the
// bytes always go to the site that was decided on: an allowed Host or SNI sent to a blocked
// site's address reaches the allowed site, not the blocked one (audit18 D1; before, the
// connection went to the destination and was only flagged). The SafeSearch front end, chosen
// by the policy, replaces both. A name whose lookup fails or times out is refused as an
// explicit proxy request for it would be (502, 504; a TLS connection is closed): fail closed.
// A TLS connection whose destination is one the school does not open (upstream.deny_networks,
// link-local, the gateway) is closed before its handshake, as a CONNECT there is refused.
//
// Runs on the session's worker thread.
#pragma once

#include <optional>
#include <string_view>

#include "proxy/exchange.hpp"
#include "proxy/net.hpp"
#include "proxy/worker.hpp"

namespace hallpass {

// Reads the original destination of a connection accepted on a transparent listener. A
// connection with none (no connection tracking) or whose original destination is the listener
// itself (a device that connected straight to the listener's port: relaying it would loop) gets
// `error` set; start_transparent then refuses it.
client_connection::transparent_origin transparent_origin_of(tcp::socket& s, bool tls);

// Where a transparent connection's requests go, for origin_address::address: its original
// destination; nullopt (the name is resolved) on an explicit-proxy connection, and when the
// name last decided on it does not resolve to the destination.
std::optional<tcp::endpoint> original_endpoint(const client_connection& c);

// The start of a transparent connection, before the request loop: refuses one without a
// usable original destination (logged, counted as loopback_refused); on a tls listener, reads
// the ClientHello and relays, refuses or hands over to inspection. Returns whether the session
// loop goes on reading HTTP requests on c (a plain-HTTP listener, or an inspected connection).
net::awaitable<bool> start_transparent(worker& w, client_connection& c);

// For a plain-HTTP request on a transparent listener whose target is in ex (host from the Host
// field): decides it on the Host and finds out where it goes (see above), leaving the verdict
// in ex.verdict. Returns false
// when the Host's lookup failed: the refusal (502 or 504) has been written and the connection
// must close.
net::awaitable<bool> decide_transparent_request(worker& w, client_connection& c, exchange& ex,
                                                std::optional<std::string_view> path, unsigned version);

}  // namespace hallpass
