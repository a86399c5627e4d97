#include "proxy/tls_handshake.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>

#include <array>

#include <boost/asio/ssl/error.hpp>

#include "certs/handshake_pool.hpp"
#include "proxy/metrics.hpp"

namespace hallpass {
namespace {

constexpr auto nothrow = net::as_tuple(net::use_awaitable);
using step = certs::handshake_pool::step;
// Bytes moved per read or write: a server's first flight with its certificate chain is a few
// KiB, so most flights move in one.
constexpr std::size_t chunk_size = 8 * 1024;

// The initiation of one offloaded step: queued on the pool, its outcome posted back through the
// worker's mailbox (never to a worker that has stopped). Refused by a full pool, the step runs
// here and its outcome is posted to this loop. A named type, not a lambda inside a coroutine
// (proxy/README.md, GCC 12).
struct step_wait {
  const handshake_offload* offload;
  SSL* ssl;

  template <class Handler>
  void operator()(Handler&& handler) const {
    auto held = std::make_shared<std::decay_t<Handler>>(std::forward<Handler>(handler));
    auto box = offload->box;
    const bool queued = offload->pool->submit(
        ssl, [box, held](const step& s) { post_to(box, [held, s]() mutable { (*held)(s); }); });
    if (queued) {
      if (offload->metrics) offload->metrics->tls_steps_on_threads.Increment();
      return;
    }
    if (offload->metrics) offload->metrics->tls_steps_on_loop.Increment();
    const step s = certs::handshake_pool::run(ssl);
    net::post(box->ex, [held, s]() mutable { (*held)(s); });
  }
};

net::awaitable<step> run_step(const handshake_offload& offload, SSL* ssl) {
  if (offload.pool == nullptr || !offload.box) {
    if (offload.metrics) offload.metrics->tls_steps_on_loop.Increment();
    co_return certs::handshake_pool::run(ssl);
  }
  step_wait wait{&offload, ssl};
  auto s = co_await net::async_initiate<const net::use_awaitable_t<>&, void(step)>(std::move(wait),
                                                                                   net::use_awaitable);
  co_return s;
}

// What a failed step means, as Asio's engine reports it: the OpenSSL error in the SSL
// category; an end of stream without one as a truncation.
error_code step_error(const step& s) {
  if (s.error != 0) return error_code(static_cast<int>(s.error), net::error::get_ssl_category());
  if (s.ssl_error == SSL_ERROR_ZERO_RETURN) return net::error::eof;
  if (s.ssl_error == SSL_ERROR_SYSCALL) return net::ssl::error::stream_truncated;
  return net::error::operation_aborted;  // the pool stopped before the step ran
}

// Sends everything the last step wrote to `out`.
net::awaitable<error_code> flush(beast::tcp_stream& s, BIO* out, std::array<char, chunk_size>& chunk) {
  while (BIO_ctrl_pending(out) > 0) {
    const int n = BIO_read(out, chunk.data(), static_cast<int>(chunk.size()));
    if (n <= 0) break;
    auto [ec, written] = co_await net::async_write(s, net::buffer(chunk.data(), static_cast<std::size_t>(n)), nothrow);
    if (ec) co_return ec;
  }
  co_return error_code{};
}

}  // namespace

net::awaitable<error_code> run_tls_handshake(beast::tcp_stream& s, SSL* ssl, bool server, beast::flat_buffer& bytes,
                                             const handshake_offload& offload) {
  BIO* in = BIO_new(BIO_s_mem());
  BIO* out = BIO_new(BIO_s_mem());
  if (in == nullptr || out == nullptr) {
    BIO_free(in);
    BIO_free(out);
    ERR_clear_error();
    co_return make_error_code(boost::system::errc::not_enough_memory);
  }
  // An empty input BIO means "wait for more" (retry), not the end of the stream.
  BIO_set_mem_eof_return(in, -1);
  SSL_set_bio(ssl, in, out);  // ssl owns both from here
  if (server) {
    SSL_set_accept_state(ssl);
  } else {
    SSL_set_connect_state(ssl);
  }
  auto chunk = std::make_unique<std::array<char, chunk_size>>();
  for (;;) {
    if (bytes.size() > 0) {
      const auto data = bytes.data();
      if (BIO_write(in, data.data(), static_cast<int>(data.size())) != static_cast<int>(data.size())) {
        ERR_clear_error();
        co_return make_error_code(boost::system::errc::not_enough_memory);
      }
      bytes.consume(bytes.size());
    }
    const step st = co_await run_step(offload, ssl);
    // The next flight, or the alert of a failure: sent either way.
    const error_code sent = co_await flush(s, out, *chunk);
    if (st.ret == 1) {
      if (sent) co_return sent;
      break;
    }
    if (st.ssl_error != SSL_ERROR_WANT_READ && st.ssl_error != SSL_ERROR_WANT_WRITE) co_return step_error(st);
    if (sent) co_return sent;
    if (st.ssl_error == SSL_ERROR_WANT_WRITE) continue;  // a memory BIO takes everything: not expected
    auto [ec, n] = co_await s.async_read_some(net::buffer(*chunk), nothrow);
    if (ec) co_return ec;
    bytes.commit(net::buffer_copy(bytes.prepare(n), net::buffer(chunk->data(), n)));
  }
  // What arrived behind the handshake (the client's first request, a TLS 1.3 ticket) is the
  // stream's to read.
  if (const std::size_t left = BIO_ctrl_pending(in); left > 0) {
    const auto room = bytes.prepare(left);
    const int n = BIO_read(in, room.data(), static_cast<int>(left));
    bytes.commit(n > 0 ? static_cast<std::size_t>(n) : 0);
  }
  co_return error_code{};
}

}  // namespace hallpass
