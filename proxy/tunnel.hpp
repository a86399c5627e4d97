// CONNECT: the tunnel after the decision. Connects upstream, answers 200, peeks at the TLS
// ClientHello (SNI missing, not TLS, or an SNI that differs from the CONNECT host is decided
// again on what was seen and flagged as circumvention), then relays bytes both ways with
// back-pressure and an idle timeout, and closes both sides cleanly.
//
// relay() is shared with WebSocket upgrades. Runs on the session's worker thread.
#pragma once

#include <cstdint>
#include <utility>

#include "proxy/exchange.hpp"
#include "proxy/net.hpp"

namespace hallpass {

class worker;
struct client_connection;
struct upstream_connection;

// Relays until both directions have ended or one side is idle for `idle`. Bytes already
// read into a_buffer / b_buffer are sent first. Returns (bytes a->b, bytes b->a).
net::awaitable<std::pair<std::uint64_t, std::uint64_t>> relay(worker& w, beast::tcp_stream& a,
                                                               beast::flat_buffer& a_buffer,
                                                               beast::tcp_stream& b,
                                                               beast::flat_buffer& b_buffer,
                                                               std::chrono::milliseconds idle);

// Handles an allowed CONNECT to ex.host:ex.port. Writes the response itself and fills ex.
net::awaitable<void> run_tunnel(worker& w, client_connection& c, exchange& ex);

}  // namespace hallpass
