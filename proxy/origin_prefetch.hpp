// The origin connection of an inspected tunnel, opened while the client's TLS handshake runs.
//
// An inspected CONNECT used to reach its origin only when the first request arrived inside the
// tunnel: after the leaf (minted on a first visit) and the client's whole handshake, the
// request then waited for a TCP connection and a TLS handshake to the origin. Started when
// the tunnel is known to be inspected and allowed (tunnel_plan::inspect), before its 200 is
// written (so that it overlaps the client's round trip for the 200 and its ClientHello too), the origin's
// connection and handshake run in parallel with the leaf and the client's handshake, and the
// first request takes the connection (or the failure, answered as acquire()'s would be) when
// it is ready. Like acquire(), a pooled connection to that origin is taken first when one is
// idle; a failed prefetch is dropped, and an unused one goes back to the pool when the client
// connection ends (return_unused_prefetch). Only a request
// forward.cpp may retry (no body, an idempotent method) takes it: the origin may have closed it
// while it waited, and only a retry recovers from that. A reload meanwhile that denies its
// address drops it (upstream::still_allowed), as it would a pooled one.
//
// The connection is made to the tunnel's own origin only (a CONNECT the policy allowed), with
// the same checks as any other (the destination rules, upstream verification): nothing is
// sent on it until a request inside the tunnel was decided. A blocked tunnel shown the HTTPS
// block page (tunnel_plan::block_page) prefetches nothing.
//
// Used only on the owning worker's thread; the prefetch is shared between the connecting
// coroutine and the client connection, so either may end first.
#pragma once

#include <memory>
#include <optional>

#include "proxy/net.hpp"
#include "proxy/upstream.hpp"

namespace hallpass {

class worker;
struct client_connection;
struct configuration;
struct exchange;

struct origin_prefetch {
  explicit origin_prefetch(net::any_io_executor ex) : ready(ex, std::chrono::steady_clock::time_point::max()) {}
  origin_address to;
  std::optional<acquire_result> result;  // set when acquire() has ended
  net::steady_timer ready;               // expired when acquire() ends: wakes a waiting request, now or later
};

// The origin an inspected tunnel's first request will be forwarded to: the tunnel's host and
// port over TLS; SafeSearch's front end for a search engine, as forward.cpp maps it;
// transparent mode's original destination; the device's own pool.
origin_address inspected_tunnel_origin(const client_connection& c, const exchange& ex);

// For an inspected tunnel (tunnel_plan::inspect) whose handshake is about to start: sets
// c.prefetch to a connection being made to `to` (inspected_tunnel_origin).
void prefetch_tunnel_origin(worker& w, client_connection& c, const exchange& ex, origin_address to);

// For an inspected tunnel whose origin's name could not be looked up (the destination check
// before its 200): c.prefetch holds that failure, ready, as acquire() would have said it, so
// the first request shows it without a second lookup (which waited upstream.dns_timeout again).
void prefetch_failed(worker& w, client_connection& c, origin_address to, upstream_error error, std::string detail);

// At the end of a client connection: a prefetched origin connection no request took (a
// browser's speculative tunnel, a tunnel whose requests were all blocked) goes back to the
// worker's pool rather than being closed, so that a pooled connection the prefetch took is
// not lost. upstream::give_back_unused first reads what arrived through OpenSSL (a fresh TLS
// 1.3 connection's session tickets, which the peek before reuse would take for stray bytes);
// release() and that peek then decide whether it can serve again.
void return_unused_prefetch(worker& w, client_connection& c);

// The prefetched connection (or failure) when `p` was started for exactly `to` (host, port,
// scheme, connect_host, address), waiting for it if it is still connecting; nullopt when there
// is none for `to` (then `p` is left as it is). A prefetch serves one request: `p` is reset
// when it matched.
net::awaitable<std::optional<acquire_result>> take_prefetched(std::shared_ptr<origin_prefetch>& p,
                                                              const origin_address& to);

}  // namespace hallpass
