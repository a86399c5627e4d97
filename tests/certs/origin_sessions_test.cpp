#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "certs/openssl_handles.hpp"
#include "certs/origin_context.hpp"
#include "certs/origin_sessions.hpp"

using namespace hallpass::certs;

namespace {

// A session OpenSSL would offer: it has an id (a TLS 1.2 session; a TLS 1.3 ticket works alike).
SSL_SESSION* resumable_session(unsigned char id) {
  SSL_SESSION* s = SSL_SESSION_new();
  const unsigned char bytes[4] = {id, 1, 2, 3};
  SSL_SESSION_set1_id(s, bytes, sizeof bytes);
  SSL_SESSION_set_protocol_version(s, TLS1_2_VERSION);
  return s;
}

// An origin connection's SSL attached to `store` under `key`, as upstream.cpp does; then the
// origin issues a session (the context's new-session callback).
void issue(SSL_CTX* ctx, origin_sessions& store, const std::string& key, unsigned char id) {
  ssl_ptr ssl(SSL_new(ctx));
  REQUIRE(ssl);
  store.attach(ssl.get(), key);
  SSL_SESSION* s = resumable_session(id);
  CHECK(origin_sessions::on_new_session(ssl.get(), s) == 0);  // OpenSSL keeps its own reference
  SSL_SESSION_free(s);
}

// Whether a new connection for `key` would be offered a session, and the session's id byte.
int offered(SSL_CTX* ctx, origin_sessions& store, const std::string& key) {
  ssl_ptr ssl(SSL_new(ctx));
  if (!store.attach(ssl.get(), key)) return -1;
  unsigned int length = 0;
  const unsigned char* id = SSL_SESSION_get_id(SSL_get0_session(ssl.get()), &length);
  return length > 0 ? id[0] : -2;
}

}  // namespace

TEST_CASE("origin sessions: kept per key, the newest wins, bounded with the oldest key dropped") {
  auto ctx = make_origin_context("");
  REQUIRE(ctx);
  origin_sessions store(2);
  CHECK(offered(ctx->get(), store, "https://a.test:443") == -1);  // nothing kept yet
  issue(ctx->get(), store, "https://a.test:443", 1);
  issue(ctx->get(), store, "https://a.test:443", 2);  // a second ticket replaces the first
  CHECK(store.size() == 1);
  CHECK(offered(ctx->get(), store, "https://a.test:443") == 2);
  CHECK(offered(ctx->get(), store, "https://b.test:443") == -1);  // never another key's
  issue(ctx->get(), store, "https://b.test:443", 3);
  issue(ctx->get(), store, "https://c.test:443", 4);  // full: a.test, the oldest, goes
  CHECK(store.size() == 2);
  CHECK(offered(ctx->get(), store, "https://a.test:443") == -1);
  CHECK(offered(ctx->get(), store, "https://b.test:443") == 3);
  CHECK(offered(ctx->get(), store, "https://c.test:443") == 4);
  store.forget("https://b.test:443");  // a failed handshake
  CHECK(offered(ctx->get(), store, "https://b.test:443") == -1);
}

TEST_CASE("origin sessions: an SSL not attached to a store keeps nothing") {
  auto ctx = make_origin_context("");
  REQUIRE(ctx);
  origin_sessions store(4);
  const std::string key = "https://a.test:443";  // attach keeps its address: it must outlive the SSL
  ssl_ptr attached(SSL_new(ctx->get()));
  store.attach(attached.get(), key);  // another connection of the same context
  ssl_ptr ssl(SSL_new(ctx->get()));
  SSL_SESSION* s = resumable_session(9);
  CHECK(origin_sessions::on_new_session(ssl.get(), s) == 0);
  SSL_SESSION_free(s);
  CHECK(store.size() == 0);
  CHECK(offered(ctx->get(), store, key) == -1);
}

TEST_CASE("origin sessions: the kept session survives its connection ending without a close_notify") {
  auto ctx = make_origin_context("");
  REQUIRE(ctx);
  origin_sessions store(4);
  const std::string key = "https://a.test:443";  // attach keeps its address: it must outlive the SSL
  ssl_ptr ssl(SSL_new(ctx->get()));
  store.attach(ssl.get(), key);
  SSL_SESSION* s = resumable_session(5);
  CHECK(origin_sessions::on_new_session(ssl.get(), s) == 0);
  // What SSL_free does to the connection's session when no close_notify was sent (a pooled
  // origin connection dropped): marks it not resumable.
  SSL_CTX_remove_session(ctx->get(), s);
  CHECK(SSL_SESSION_is_resumable(s) == 0);
  SSL_SESSION_free(s);
  CHECK(offered(ctx->get(), store, key) == 5);
}

TEST_CASE("origin sessions: a session that cannot be resumed is neither kept nor offered") {
  auto ctx = make_origin_context("");
  REQUIRE(ctx);
  origin_sessions store(4);
  const std::string key = "https://a.test:443";  // attach keeps its address: it must outlive the SSL
  ssl_ptr ssl(SSL_new(ctx->get()));
  store.attach(ssl.get(), key);
  SSL_SESSION* none = SSL_SESSION_new();  // no id, no ticket
  CHECK(origin_sessions::on_new_session(ssl.get(), none) == 0);
  SSL_SESSION_free(none);
  CHECK(store.size() == 0);
}
