// leaf_minter: makes the certificate the proxy shows a client for one inspected HTTPS host,
// signed by the school CA, and the one server SSL_CTX that every inspected handshake starts
// from (the leaf is set on each SSL, not on the context: use_leaf()).
//
// All leaves share one ECDSA P-256 key generated when the minter is created: key generation
// (about 200 ms for RSA) never happens per site, and a new site costs only the building and
// signing of one certificate, not a new SSL_CTX (see certs/README.md for the measured figures).
//
// Thread-safety: immutable after create(); every member is const and may run on many threads
// at once. mint() takes tens of microseconds of CPU (mostly the ECDSA signature): call it from a minting thread
// (leaf_cache does), never from an event loop. use_leaf() is cheap (reference counts).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "certs/authority.hpp"
#include "certs/openssl_handles.hpp"
#include "certs/result.hpp"

namespace hallpass::certs {

// How long a leaf is valid for at most, and how far back it starts (clients with a clock a
// little behind still accept it).
inline constexpr auto leaf_lifetime = std::chrono::days(30);
inline constexpr auto leaf_backdate = std::chrono::hours(1);

class leaf_minter {
 public:
  // REQUIRES: ca is usable (load_ca(...).usable(), or just made by create_ca()).
  static result<std::shared_ptr<const leaf_minter>> create(std::shared_ptr<const authority> ca);

  // A leaf for `host`: a DNS name ("www.example.org", any case, a trailing dot ignored) or an
  // IPv4/IPv6 address ("192.0.2.1", "2001:db8::1" or "[2001:db8::1]"). Subject CN the host
  // (at most 64 characters), subjectAltName the host as DNS or IP, extendedKeyUsage
  // serverAuth, keyUsage critical digitalSignature, basicConstraints critical CA:FALSE,
  // authority and subject key identifiers, a random 128-bit serial, valid from now-1h to
  // min(now+30 days, the CA's notAfter). Fails for a host that is neither.
  result<x509_ptr> mint(std::string_view host, clock::time_point now = clock::now()) const;

  // The server context shared by all inspected hosts, made by create(): TLS 1.2 or later,
  // ALPN selects http/1.1 (a client offering only h2 gets no ALPN answer and falls back to
  // HTTP/1.1), renegotiation off, no server-side session cache (resumption by stateless
  // tickets), and no certificate: an SSL made from it presents nothing until use_leaf().
  // Never changed after create(): any thread makes SSL objects from it.
  const std::shared_ptr<SSL_CTX>& server_context() const { return server_ctx_; }

  // Makes `ssl` (from server_context(), before its handshake) present `leaf` (one of this
  // minter's leaves) with the shared key. Returns false when OpenSSL refuses (the reason is
  // on this thread's error queue).
  bool use_leaf(SSL* ssl, X509* leaf) const;

  const authority& ca() const { return *ca_; }
  EVP_PKEY* leaf_key() const { return leaf_key_.get(); }

  // The host as it is keyed and certified: lower case, no trailing dot, IPv6 without brackets;
  // empty when it is neither a DNS name nor an IP address.
  static std::string normalize_host(std::string_view host);

 private:
  leaf_minter() = default;
  std::shared_ptr<const authority> ca_;
  pkey_ptr leaf_key_;
  pkey_ptr leaf_public_key_;  // the same key, legacy-backed: what mint() puts in a leaf (fast)
  asn1_octet_string_ptr ca_key_id_;    // the CA's subject key identifier, for the leaves' AKI
  asn1_octet_string_ptr leaf_key_id_;  // the shared leaf key's identifier, for the leaves' SKI
  std::shared_ptr<SSL_CTX> server_ctx_;
};

}  // namespace hallpass::certs
