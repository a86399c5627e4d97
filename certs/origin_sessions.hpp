// Client-side TLS sessions towards origins, kept so that a new connection to an origin the
// proxy has spoken to before resumes (an abbreviated handshake: no certificate chain sent or
// verified, no signature) instead of paying a full handshake on both sides.
//
// One session is kept per key (the upstream pool's key: scheme, host, port and the address
// used, proxy/upstream.hpp), the newest the origin issued: TLS 1.2 sessions at the end of the
// handshake, TLS 1.3 tickets when they arrive (with the first response, usually). At most
// `capacity` keys; when full, the oldest key is dropped. Only a session whose full handshake
// verified the origin as that key's host exists here (a failed verification ends the
// handshake before any session is issued), and a store is tied to one origin SSL_CTX: the
// proxy makes a new store when a reload makes a new context (new trust), so a session
// verified under the old trust is never resumed under the new one.
//
// Not thread-safe: one store per event-loop thread (a worker's upstream), used only from that
// thread. The new-session callback runs inside SSL_read or the handshake on the SSL's own
// thread, so the store is only touched from that thread too.
#pragma once

#include <openssl/ssl.h>

#include <cstddef>
#include <list>
#include <string>
#include <unordered_map>

namespace hallpass::certs {

class origin_sessions {
 public:
  explicit origin_sessions(std::size_t capacity);
  ~origin_sessions();
  origin_sessions(const origin_sessions&) = delete;
  origin_sessions& operator=(const origin_sessions&) = delete;

  // Before the handshake of a new origin connection: offers the session kept for `key` (when
  // there is one and it is still resumable), and arranges that the sessions the origin issues
  // on this connection replace it. Returns whether a session was offered (the origin may
  // still refuse it: SSL_session_reused after the handshake says).
  // REQUIRES: ssl was made from a context prepared by make_origin_context (its new-session
  // callback); `key` and this store outlive every read and handshake on ssl.
  bool attach(SSL* ssl, const std::string& key);
  bool attach(SSL* ssl, std::string&& key) = delete;  // the SSL keeps the key's address: no temporaries
  // Drops the session of `key` (its handshake failed: do not offer it again).
  void forget(const std::string& key);
  std::size_t size() const { return sessions_.size(); }

  // The context's new-session callback (installed by make_origin_context): keeps a copy of a
  // resumable session when the SSL is attached to a store. Returns 0: OpenSSL's reference stays
  // OpenSSL's.
  static int on_new_session(SSL* ssl, SSL_SESSION* session);

 private:
  struct entry {
    SSL_SESSION* session;
    std::list<std::string>::iterator age;  // place in order_
  };
  void keep(const std::string& key, SSL_SESSION* session);

  std::size_t capacity_;
  std::unordered_map<std::string, entry> sessions_;
  std::list<std::string> order_;  // keys, oldest first
};

}  // namespace hallpass::certs
