// certs/handshake_pool: handshake steps on the pool's threads complete real TLS handshakes
// (a leaf from a test school CA, verified by the client), failures come back with their
// OpenSSL error, a full queue refuses, and a stopping pool answers what it never ran.
#include <doctest/doctest.h>
#include <openssl/err.h>

#include <chrono>
#include <future>
#include <latch>

#include "certs/handshake_pool.hpp"
#include "certs/leaf_minter.hpp"
#include "certs_fixture.hpp"

using namespace hallpass::certs;
using hallpass::certs::testing::make_ca;
using hallpass::certs::testing::temp_dir;

namespace {

using ssl_ptr = std::unique_ptr<SSL, openssl_deleter<SSL_free>>;
using ssl_ctx_ptr = std::unique_ptr<SSL_CTX, openssl_deleter<SSL_CTX_free>>;

struct pair_of_ends {
  temp_dir dir;
  std::shared_ptr<const authority> ca = make_ca(dir.path);
  std::shared_ptr<const leaf_minter> minter = [this] {
    auto m = leaf_minter::create(ca);
    REQUIRE_MESSAGE(m.ok(), m.error());
    return *m;
  }();
  ssl_ctx_ptr client_ctx{SSL_CTX_new(TLS_client_method())};
  ssl_ptr server, client;
  BIO* server_in = BIO_new(BIO_s_mem());
  BIO* server_out = BIO_new(BIO_s_mem());
  BIO* client_in = BIO_new(BIO_s_mem());
  BIO* client_out = BIO_new(BIO_s_mem());

  // A server presenting a leaf for `leaf_host`, a client that verifies `expected`.
  pair_of_ends(const char* leaf_host, const char* expected) {
    X509_STORE_add_cert(SSL_CTX_get_cert_store(client_ctx.get()), ca->certificate.get());
    SSL_CTX_set_verify(client_ctx.get(), SSL_VERIFY_PEER, nullptr);
    server.reset(SSL_new(minter->server_context().get()));
    client.reset(SSL_new(client_ctx.get()));
    auto leaf = minter->mint(leaf_host);
    REQUIRE(leaf.ok());
    REQUIRE(minter->use_leaf(server.get(), leaf->get()));
    for (BIO* b : {server_in, server_out, client_in, client_out}) BIO_set_mem_eof_return(b, -1);
    SSL_set_bio(server.get(), server_in, server_out);
    SSL_set_bio(client.get(), client_in, client_out);
    SSL_set_accept_state(server.get());
    SSL_set_connect_state(client.get());
    SSL_set_tlsext_host_name(client.get(), expected);
    SSL_set1_host(client.get(), expected);
  }

  // What one end wrote goes to the other, as a socket would carry it.
  static void carry(BIO* from, BIO* to) {
    char buf[4096];
    for (int n; (n = BIO_read(from, buf, sizeof buf)) > 0;) REQUIRE(BIO_write(to, buf, n) == n);
  }
};

handshake_pool::step on_pool(handshake_pool& pool, SSL* ssl) {
  auto p = std::make_shared<std::promise<handshake_pool::step>>();
  auto f = p->get_future();
  REQUIRE(pool.submit(ssl, [p](const handshake_pool::step& s) { p->set_value(s); }));
  REQUIRE(f.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
  return f.get();
}

// Steps both ends on the pool until both are done or one fails (at most 20 steps each).
std::pair<handshake_pool::step, handshake_pool::step> handshake_on(handshake_pool& pool, pair_of_ends& e) {
  handshake_pool::step c, s;
  for (int i = 0; i < 20; ++i) {
    if (c.ret != 1) c = on_pool(pool, e.client.get());
    pair_of_ends::carry(e.client_out, e.server_in);
    if (c.ret != 1 && c.ssl_error != SSL_ERROR_WANT_READ) break;
    if (s.ret != 1) s = on_pool(pool, e.server.get());
    pair_of_ends::carry(e.server_out, e.client_in);
    if (s.ret != 1 && s.ssl_error != SSL_ERROR_WANT_READ) break;
    if (c.ret == 1 && s.ret == 1) break;
  }
  return {c, s};
}

}  // namespace

TEST_CASE("steps run on the pool complete a verified TLS handshake") {
  handshake_pool pool(2, 16);
  CHECK(pool.threads() == 2);
  pair_of_ends e("school-test.test", "school-test.test");
  const auto [c, s] = handshake_on(pool, e);
  CHECK(c.ret == 1);
  CHECK(s.ret == 1);
  CHECK(SSL_get_verify_result(e.client.get()) == X509_V_OK);
  CHECK(pool.stats().steps >= 4);  // at least two steps each
  CHECK(pool.stats().refused == 0);
  // The pool dropped its references: ours are the last (a leak would show under ASan).
}

TEST_CASE("a failed step brings its OpenSSL error back from the pool thread") {
  handshake_pool pool(1, 16);
  pair_of_ends e("school-test.test", "other-site.test");  // the leaf names another host
  const auto [c, s] = handshake_on(pool, e);
  CHECK(c.ret != 1);
  CHECK(c.ssl_error == SSL_ERROR_SSL);
  CHECK(ERR_GET_REASON(c.error) == SSL_R_CERTIFICATE_VERIFY_FAILED);
  CHECK(SSL_get_verify_result(e.client.get()) == X509_V_ERR_HOSTNAME_MISMATCH);
  CHECK(ERR_peek_error() == 0);  // nothing left on this thread's queue
}

TEST_CASE("a full queue refuses a step, and a stopping pool answers the steps it never ran") {
  pair_of_ends e("school-test.test", "school-test.test");
  std::latch release(1);
  std::latch busy(1);
  std::atomic<int> stopped_answers{0}, ran{0};
  std::thread releaser;
  {
    handshake_pool pool(1, 1);
    // The one thread runs a step whose completion waits: the thread stays busy.
    REQUIRE(pool.submit(e.client.get(), [&](const handshake_pool::step&) {
      busy.count_down();
      release.wait();
    }));
    busy.wait();
    // One waits in the queue; the next is refused.
    REQUIRE(pool.submit(e.server.get(), [&](const handshake_pool::step& s) {
      if (s.ret != 1 && s.ssl_error == SSL_ERROR_SSL && s.error == 0) {
        ++stopped_answers;
      } else {
        ++ran;
      }
    }));
    CHECK_FALSE(pool.submit(e.server.get(), [](const handshake_pool::step&) {}));
    CHECK(pool.stats().refused == 1);
    // The busy step ends 200 ms into the destructor, which has already taken the queued step:
    // the thread then stops, and the destructor answers that step as never run.
    releaser = std::thread([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      release.count_down();
    });
  }
  releaser.join();
  CHECK(stopped_answers == 1);
  CHECK(ran == 0);
}

TEST_CASE("run() is the same step on the calling thread") {
  pair_of_ends e("school-test.test", "school-test.test");
  const auto first = handshake_pool::run(e.client.get());
  CHECK(first.ret != 1);
  CHECK(first.ssl_error == SSL_ERROR_WANT_READ);  // the ClientHello is written; waiting for the server
  CHECK(BIO_ctrl_pending(e.client_out) > 0);
}
