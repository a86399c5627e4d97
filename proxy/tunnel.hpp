// CONNECT: the tunnel after the decision. Connects upstream, answers 200, peeks at the TLS
// ClientHello (SNI missing, not TLS, or an SNI that differs from the CONNECT host is decided
// again on what was seen and flagged as circumvention), then relays bytes both ways with
// back-pressure and an idle timeout, and closes both sides cleanly.
//
// The relay itself is byte_relay.hpp (shared with WebSocket upgrades). Runs on the session's
// worker thread.
#pragma once

#include <cstdint>
#include <utility>

#include "proxy/exchange.hpp"
#include "proxy/net.hpp"

namespace hallpass {

class worker;
struct client_connection;
struct upstream_connection;

// Handles an allowed CONNECT to ex.host:ex.port. Writes the response itself and fills ex.
net::awaitable<void> run_tunnel(worker& w, client_connection& c, exchange& ex);

}  // namespace hallpass
