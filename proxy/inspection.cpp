#include "proxy/inspection.hpp"

#include <openssl/err.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>

#include "proxy/client_departure.hpp"
#include "proxy/login_gate.hpp"
#include "proxy/shared_state.hpp"
#include "proxy/thread_answer.hpp"
#include "proxy/worker.hpp"
#include "rules/host.hpp"
#include "rules/utf8.hpp"

namespace hallpass {
namespace {

// Long enough to write one alert to a client that is reading; a client that is not reading
// (its window full) does not hold the session longer than this.
constexpr std::chrono::seconds close_notify_timeout{2};
using lookup = certs::leaf_cache::lookup;

// A new host's certificate, minted on the leaf cache's threads (certs/leaf_minter.hpp), with
// a deadline (thread_answer.hpp): with a P-256 school CA a mint takes some 260 us, but a school
// that brings an RSA-4096 CA pays milliseconds a signature, and the first lesson after a
// restart asks for thousands of hosts at once; the handshake waited without a deadline behind
// a queue of up to 10,000 (event-loop review, 2026-12-06). Past it the connection closes, as
// for a failed mint, and the mint itself goes on for the next visit.
constexpr auto leaf_deadline = std::chrono::seconds(10);

struct leaf_start {
  certs::leaf_cache* cache;
  std::string host;
  std::weak_ptr<const void> interest;
  template <class Callback>
  void operator()(Callback done) const {
    cache->async_get(host, std::move(done), interest);
  }
};

struct leaf_late {
  lookup operator()() const {
    return lookup::failure("it was not made within " + std::to_string(leaf_deadline.count()) +
                           " s (the minting threads are busy)");
  }
};

net::awaitable<lookup> wait_for_leaf(worker& w, certs::leaf_cache& cache, const std::string& host,
                                     std::weak_ptr<const void> interest) {
  leaf_start start{&cache, host, std::move(interest)};
  leaf_late late;
  auto result = co_await answer_from_thread<lookup>(w, leaf_deadline, std::move(start), std::move(late));
  co_return result;
}

// Did the client end the handshake with an alert that says it does not trust our certificate?
// (OpenSSL reports a received alert N as reason 1000 + N: 42 bad_certificate, 46
// certificate_unknown, 48 unknown_ca.)
bool rejected_certificate(const error_code& ec) {
  if (ec.category() != net::error::get_ssl_category()) return false;
  const int reason = ERR_GET_REASON(static_cast<unsigned long>(ec.value()));
  return reason == SSL_R_SSLV3_ALERT_BAD_CERTIFICATE || reason == SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN ||
         reason == SSL_R_TLSV1_ALERT_UNKNOWN_CA;
}

// A client that closed without a word once our certificate was on its way: what Node.js (npm,
// VS Code, Electron apps) and some mobile apps do when they reject the school CA, where
// browsers, curl and Python send an alert first. In TLS 1.3 the server's whole flight
// (certificate and Finished) is out when OpenSSL waits for the client's Finished; in TLS 1.2
// the ServerHelloDone. A scanner or a cancelled page that closes there is counted with them;
// the note says "probably" (outside-in audit of real clients, 2026-12-05, F5).
bool closed_after_our_certificate(const error_code& ec, SSL* ssl) {
  // An orderly close only: a reset is a client (or a middlebox) that dropped the connection
  // outright, which rejecting a certificate does not look like (Node.js closes with a FIN), and
  // counting resets made the technician's list of devices without the CA noisy (audit of the
  // CONNECT path, 2026-12-06).
  const bool silent_close = ec == net::ssl::error::stream_truncated || ec == net::error::eof;
  if (!silent_close) return false;
  const OSSL_HANDSHAKE_STATE st = SSL_get_state(ssl);
  // TLS 1.3: OpenSSL moves to TLS_ST_EARLY_DATA once its Finished is written (waiting for the
  // client's end of early data or Finished).
  return st == TLS_ST_SW_FINISHED || st == TLS_ST_EARLY_DATA || st == TLS_ST_SW_SRVR_DONE;
}

}  // namespace

net::awaitable<bool> start_inspection(worker& w, client_connection& c, exchange& ex) {
  auto& m = w.state().metrics;
  auto& cache = *ex.cfg->leaves;
  const std::string host = ex.host;
  certs::leaf_cache::certificate leaf = cache.find(host);
  if (leaf) {
    // Ready, but minted for this CONNECT (leaf_prepared) if it started the mint before its 200.
    (ex.leaf_prepared ? m.tls_leaf_minted : m.tls_leaf_cached).Increment();
  } else if (peek_client(c.stream.socket()) == client_peek::gone) {
    // Its ClientHello and then its close came together (a flood of new names, each connection
    // closed at once): nothing is asked for it, and the mint prepare() started for it is
    // dropped unminted when its turn comes, this connection being gone (leaf_cache.hpp).
    ex.note = "the client closed before its certificate was ready";
    co_return false;
  } else {
    auto interest = c.mint_interest();
    const auto got = co_await wait_for_leaf(w, cache, host, std::move(interest));
    if (!got) {
      ex.note = "no certificate could be made for the host: " + got.error();
      m.tls_client_failed.Increment();
      co_return false;
    }
    leaf = *got;
    m.tls_leaf_minted.Increment();
  }
  // The one shared server context, with the host's leaf on this SSL: a new host costs one
  // mint, not a context of its own (certs/leaf_minter.hpp).
  SSL* ssl = SSL_new(cache.server_context().get());
  // Sessions resume for this host only: the session ID context is a digest of the host, and a
  // session (or ticket) made for another is refused for resumption (a full handshake, with this
  // host's certificate). One context serves every host, so without it a session from one site
  // resumed under another's name, and the client saw no certificate for it (audit, 2026-12-05).
  unsigned char host_digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(host.data()), host.size(), host_digest);
  if (ssl == nullptr || SSL_set_session_id_context(ssl, host_digest, sizeof host_digest) != 1 ||
      !cache.minter().use_leaf(ssl, leaf.get())) {
    if (ssl != nullptr) SSL_free(ssl);
    ERR_clear_error();
    ex.note = "cannot start TLS with the client";
    m.tls_client_failed.Increment();
    co_return false;
  }
  c.tls = std::make_unique<tls_stream>(c.stream, ssl);  // owns ssl from here
  // The ClientHello the tunnel peeked at goes to OpenSSL first.
  auto& pre = c.tls->next_layer().prefix();
  const auto hello = c.buffer.data();
  pre.commit(net::buffer_copy(pre.prepare(hello.size()), hello));
  ex.bytes_in += c.buffer.size();
  c.buffer.consume(c.buffer.size());
  c.stream.expires_after(ex.cfg->daemon.connect.hello_timeout);
  auto [ec] = co_await c.tls->async_handshake(net::ssl::stream_base::server, nothrow);
  if (ec) {
    // The name the client asked for: a certificate made for the CONNECT host cannot satisfy a
    // client that asked for another (a CONNECT to an address with a name as its SNI), whatever
    // CA it trusts. Not a device without the school CA (audit of the CONNECT path, 2026-12-06:
    // counted as one, and the note said to install the CA).
    const char* asked = SSL_get_servername(c.tls->native_handle(), TLSEXT_NAMETYPE_host_name);
    const auto asked_host = asked ? rules::normalize_host(asked) : std::nullopt;
    const bool other_name = asked_host && asked_host->text != host;
    if (other_name && (rejected_certificate(ec) || closed_after_our_certificate(ec, c.tls->native_handle()))) {
      ex.note = "the device rejected the certificate made for " + host + ": it asked for " +
                rules::terminal_safe(asked_host->text) + " (its SNI), a name the tunnel was not opened for (" +
                ec.message() + ")";
      m.tls_client_failed.Increment();
      ex.tls_failure = "client_failed";
    } else if (rejected_certificate(ec)) {
      ex.note = "the device rejected the school CA's certificate (" + ec.message() +
                "): install the school CA on it, or add the site to the never-inspect list";
      m.tls_client_rejected_ca.Increment();
      ex.tls_failure = "rejected_ca";
    } else if (closed_after_our_certificate(ec, c.tls->native_handle())) {
      ex.note = "the device closed the connection without a word after the school CA's certificate, probably "
                "rejecting it (as Node.js, npm and some apps do): install the school CA on it (for npm: its "
                "cafile setting), or add the site to the never-inspect list";
      m.tls_client_rejected_ca.Increment();
      ex.tls_failure = "rejected_ca";
    } else {
      // A device that offers only TLS 1.0 or 1.1 is old, not broken: the note says so (outside-in
      // audit of HTTPS, 2026-12-07: "unsupported protocol" alone).
      const bool old_device = ec.category() == net::error::get_ssl_category() &&
                              (ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == SSL_R_UNSUPPORTED_PROTOCOL ||
                               ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == SSL_R_VERSION_TOO_LOW);
      ex.note = old_device ? "the device offered only TLS 1.0 or 1.1, older than the 1.2 the proxy requires (" +
                                 ec.message() + "): update it, or add the site to the never-inspect list"
                           : "TLS handshake with the client failed: " + ec.message();
      m.tls_client_failed.Increment();
      ex.tls_failure = "client_failed";
    }
    co_return false;
  }
  c.io.use_tls(*c.tls);
  c.inside = client_connection::tunnel_origin{ex.host, ex.port, true, ex.login, tunnel_identity_until(c)};
  c.inside->mark_inspected_under(ex.cfg->generation, ex.exceptions);
  ex.inspected = true;
  m.tls_inspected.Increment();
  co_return true;
}

net::awaitable<void> end_inspection(client_connection& c) {
  SSL* ssl = c.tls->native_handle();
  if (SSL_is_init_finished(ssl) != 1 || (SSL_get_shutdown(ssl) & SSL_SENT_SHUTDOWN) != 0) co_return;
  // As if the client's close_notify had arrived: SSL_shutdown then completes once ours is
  // written, and Asio's shutdown does not wait to read the client's.
  SSL_set_shutdown(ssl, SSL_get_shutdown(ssl) | SSL_RECEIVED_SHUTDOWN);
  c.stream.expires_after(close_notify_timeout);
  auto [ec] = co_await c.tls->async_shutdown(nothrow);
  c.stream.expires_never();
  if (ec) ERR_clear_error();
}

}  // namespace hallpass
