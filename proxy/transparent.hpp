// Transparent gateway mode: connections that nftables redirected to a transparent listener
// (`listen: [{address: ..., mode: transparent, protocol: http | tls}]`,
// deploy/nftables-hallpass-transparent.nft) from devices that have no proxy setting.
//
// The connection's original destination (original_destination.hpp) is where hallpass
// connects, never an address of a name the client chose (the SafeSearch front end, chosen by
// the policy, is the one exception). The request is decided on the name the client gave:
// plain HTTP on its Host field, HTTPS on its ClientHello's SNI (then relayed, inspected, or
// shown the HTTPS block page exactly as a CONNECT would be). When that name does not resolve
// (through the worker's resolver, with upstream.dns_timeout) to the original destination, the
// request is decided on both, the name and the destination address, blocked if either is
// blocked, flagged as a circumvention attempt (exchange.circumvention) and logged (access log
// `original_dst`, `circumvention`, `note`). A name whose lookup fails or times out is refused
// as an explicit proxy request for it would be (502, 504; a TLS connection is closed): fail
// closed, not flagged.
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

// The original destination of a transparent connection, for origin_address::address; nullopt
// on an explicit-proxy connection.
std::optional<tcp::endpoint> original_endpoint(const client_connection& c);

// The start of a transparent connection, before the request loop: refuses one without a
// usable original destination (logged, counted as loopback_refused); on a tls listener, reads
// the ClientHello and relays, refuses or hands over to inspection. Returns whether the session
// loop goes on reading HTTP requests on c (a plain-HTTP listener, or an inspected connection).
net::awaitable<bool> start_transparent(worker& w, client_connection& c);

// For a plain-HTTP request on a transparent listener whose target is in ex (host from the Host
// field): decides it on the Host and, when the Host does not lead to the original destination,
// on the destination address too (see above), leaving the verdict in ex.verdict. Returns false
// when the Host's lookup failed: the refusal (502 or 504) has been written and the connection
// must close.
net::awaitable<bool> decide_transparent_request(worker& w, client_connection& c, exchange& ex,
                                                std::optional<std::string_view> path, unsigned version);

}  // namespace hallpass
