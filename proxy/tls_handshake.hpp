// A TLS handshake run from a worker's event loop with its CPU elsewhere: the worker only moves
// bytes between the socket and the SSL's memory BIOs, and each SSL_do_handshake step (key
// exchange, signing, the origin's certificate verification: 300-600 us of OpenSSL each) runs
// on the handshake threads (certs/handshake_pool.hpp), its outcome posted back through the
// worker's mailbox. Other connections on the worker are served meanwhile. Used for both legs
// of an inspected tunnel: the client's handshake with the school CA's leaf (inspection.cpp)
// and the origin's verified handshake (upstream.cpp).
//
// Without a pool (tls.handshake_threads: 0), or when its queue is full, a step runs on the
// worker itself, as Asio's own async_handshake would: the same bytes, the same errors.
//
// When the handshake is done the SSL is handed to a tls_stream (Asio's engine puts its own BIO
// pair in place of the memory BIOs), with the bytes read past the handshake's end as the
// stream's prefix (duplex_stream.hpp), so a request sent right behind the client's Finished is
// not lost.
#pragma once

#include <openssl/ssl.h>

#include <memory>

#include "proxy/mailbox.hpp"
#include "proxy/net.hpp"

namespace hallpass {

namespace certs {
class handshake_pool;
}

class metrics;

struct handshake_offload {
  certs::handshake_pool* pool = nullptr;  // null: every step on the event loop
  std::shared_ptr<mailbox> box;           // the worker's: where a step's outcome is posted back
  class metrics* metrics = nullptr;       // hallpass_tls_handshake_steps_total, when set
};

// Runs ssl's handshake over s, as the server (the client's leg) or as the client (the origin's
// leg). `bytes`: on entry, bytes already read off the socket that start the handshake (the
// ClientHello the tunnel peeked at), or none; on success, the bytes read past the handshake's
// end. Returns an empty error_code on success; else the TLS error as Asio reports one (the SSL
// category, the OpenSSL error code: ERR_GET_REASON applies), or the socket's (a timeout, an
// EOF). The caller's deadline on s bounds every read and write. An alert OpenSSL writes on
// failure is sent before returning.
// REQUIRES: ssl has no BIOs and no handshake started; ssl outlives the call; used on s's
// executor only.
net::awaitable<error_code> run_tls_handshake(beast::tcp_stream& s, SSL* ssl, bool server, beast::flat_buffer& bytes,
                                             const handshake_offload& offload);

}  // namespace hallpass
