// Forwarding an allowed plain-HTTP request: the request goes upstream with our own framing
// (hop-by-hop fields dropped, Via added), the response comes back with our own head and
// framing, bodies streamed both ways (body_relay.hpp), a WebSocket upgrade relayed, and the
// upstream connection returned to the pool only when its response ended exactly where its
// framing said. Refusals (origin unreachable, malformed answers, ...) go through
// local_response.hpp's table.
//
// Runs on the session's worker thread.
#pragma once

#include "proxy/exchange.hpp"
#include "proxy/net.hpp"
#include "proxy/request_parser.hpp"
#include "proxy/request_target.hpp"

namespace hallpass {

class worker;
struct client_connection;

// Whether the client connection may carry another request after this one.
enum class forward_outcome { keep_alive, close };

// Forwards the request whose head `rp` has read to target `t` (ex.host, the decided name, is
// the host connected to) and streams the response back. Fills ex (status, bytes, note; action
// error when the origin failed).
net::awaitable<forward_outcome> forward(worker& w, client_connection& c, exchange& ex, request_parser& rp,
                                        const parsed_target& t);

}  // namespace hallpass
