// CONNECT: the tunnel after the decision. Connects upstream, answers 200, peeks at the TLS
// ClientHello (SNI missing, not TLS, or an SNI that differs from the CONNECT host is decided
// again on what was seen and flagged as circumvention), then relays bytes both ways with
// back-pressure and an idle timeout, and closes both sides cleanly.
//
// The relay itself is byte_relay.hpp (shared with WebSocket upgrades). Runs on the session's
// worker thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <utility>

#include "proxy/client_hello.hpp"
#include "proxy/exchange.hpp"
#include "proxy/net.hpp"

namespace hallpass {

class worker;
struct client_connection;
struct upstream_connection;

enum class tunnel_mode {
  relay,      // bytes both ways, end to end encrypted; spliced in the kernel
  inspect,    // answer 200 and check the ClientHello, then hand over to inspection.hpp
  own_page,   // as inspect, but decrypted only to show the proxy's own page (the HTTPS block
              // page, the sign-in page): nothing goes to the site, so a ClientHello without a
              // server name is served too, under the CONNECT host's certificate
  http_only,  // a port of connect.http_ports only: answer 200, then plain HTTP or nothing
};
enum class tunnel_end {
  closed,   // the tunnel is over (relayed to its end, refused, or failed): close the connection
  inspect,  // the ClientHello passed; it waits in c.buffer for start_inspection()
  http,     // the tunnel carries plain HTTP requests (a browser's ws:// WebSocket): the first
            // waits in c.buffer, and each is read, decided and forwarded as any request is
};

// Reads from the client into c.buffer until it holds a whole ClientHello (or proof that it is
// none: not_tls, malformed), within `timeout`; the bytes stay in c.buffer for the relay or the
// handshake. need_more means the client closed or the time ran out (`error` says which).
// Shared with transparent TLS listeners (transparent.hpp).
net::awaitable<hello_result> read_client_hello(client_connection& c, std::chrono::milliseconds timeout);

// Whether the bytes a tunnel starts with begin an HTTP/1 request line: after any empty lines
// (at most 8 bytes of them), a method (RFC 9110 tchars, at most max_method_length) and a space
// ("GET "): yes; no; or need_more, when all so far is empty lines and method characters. Pure.
inline constexpr std::size_t max_method_length = 32;
enum class http_start { yes, no, need_more };
http_start http_request_start(std::string_view bytes);

// Handles a CONNECT to ex.host:ex.port that may go ahead (allowed; or, for `own_page`, blocked
// with the HTTPS block page or the sign-in page to show). Writes the response itself and fills ex. A relayed tunnel
// connects to ex.connect_host's addresses when set (SafeSearch), the SNI unchanged.
net::awaitable<tunnel_end> run_tunnel(worker& w, client_connection& c, exchange& ex, tunnel_mode mode);

}  // namespace hallpass
