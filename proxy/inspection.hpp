// HTTPS inspection of one CONNECT tunnel: after the tunnel's 200 and the ClientHello checks
// (tunnel.hpp), the proxy completes the client's TLS handshake itself, presenting a leaf
// certificate for the CONNECT host minted from the school CA (certs/leaf_cache.hpp), and from
// then on the connection carries HTTP requests like any other (http_session.cpp), each
// decided with its method, path and query and forwarded to the origin over a verified TLS
// connection (upstream.hpp).
//
// Every handshake starts from the leaf cache's one shared server context, with the host's leaf
// set on its own SSL. A leaf already in the cache costs a lookup; a new host waits for its mint on
// the cache's own threads (the event loop goes on serving other connections meanwhile) and is
// posted back through the worker's mailbox.
//
// Runs on the session's worker thread.
#pragma once

#include "proxy/exchange.hpp"
#include "proxy/net.hpp"

namespace hallpass {

class worker;
struct client_connection;

// Completes the client's handshake on c (the ClientHello it already read is in c.buffer) as
// ex.host. On success c.io reads and writes TLS, c.inside names the tunnel's origin and the
// exchange is marked inspected; returns true. On failure (the client refused the school CA,
// no leaf could be made, the handshake failed or timed out) notes why in ex, counts it, and
// returns false: the connection then closes.
net::awaitable<bool> start_inspection(worker& w, client_connection& c, exchange& ex);

// Ends an inspected connection the way TLS should end: a close_notify alert to the client
// (so a client reading to the end sees the end, not a truncation), written within
// close_notify_timeout; the client's own close_notify is not waited for (RFC 8446 6.1 does not
// ask the closer to wait). Nothing is sent when the handshake did not complete or the
// connection already sent its alert (a failed handshake's). The caller closes the socket after.
net::awaitable<void> end_inspection(client_connection& c);

}  // namespace hallpass
