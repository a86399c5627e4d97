// The client TLS context for origins behind inspected tunnels: the proxy re-encrypts each
// decrypted request towards the real site, and must never let the school CA vouch for a site
// that failed verification.
//
// - Trust: the system store (OpenSSL's default paths: /etc/ssl/certs on Debian) plus, when
//   given, `extra_ca_file` (upstream.ca_file: a school's internal CA, or a test's CA).
// - Verification on (SSL_VERIFY_PEER); the caller sets the host name to check (prepare_origin_ssl).
// - TLS 1.2 or later, TLS 1.2 with ECDHE suites only; OpenSSL security level 2 at least,
//   whatever the system's openssl.cnf lowers it to; a leaf whose keyUsage leaves out
//   digitalSignature is refused (browsers refuse it). ALPN offers http/1.1 only.
// - Intermediates an origin left out are looked for among those fetched from the "CA Issuers"
//   addresses of earlier origins (fetched_issuers.hpp), when the caller passes the store.
// - The origin's stapled OCSP response is asked for; one verified against the chain and the
//   trust store that says the site's certificate is revoked fails the handshake (as Firefox
//   does). Nothing stapled, or a staple that does not verify, is accepted; no online check.
// - Client sessions are handed to the connection's origin_sessions store (origin_sessions.hpp)
//   for resumption; an SSL not attached to a store keeps none.
//
// The context is complete when returned and never changed afterwards: any thread may make SSL
// objects from it.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>

#include "certs/fetched_issuers.hpp"
#include "certs/result.hpp"

namespace hallpass::certs {

// With `issuers`, chain building also offers the intermediates fetched from origins' "CA
// Issuers" addresses (fetched_issuers.hpp), untrusted, as browsers do; the context keeps
// `issuers` alive.
result<std::shared_ptr<SSL_CTX>> make_origin_context(const std::string& extra_ca_file,
                                                     std::shared_ptr<fetched_issuers> issuers = nullptr);

// Sets SNI (for a DNS name; none for an IP address, as RFC 6066 says) and the name or address
// the origin's certificate must carry. Returns false when OpenSSL refuses the name.
bool prepare_origin_ssl(SSL* ssl, const std::string& host);

// Why verification failed, for the page and the log: OpenSSL's reason ("certificate has
// expired", "unable to get local issuer certificate", "hostname mismatch", ...) first, then
// what the first failed check saw: which certificate and its dates, the names it is for, what
// to check (upstream.ca_file); empty when it did not fail. Certificate text is cut to printable
// ASCII.
std::string verify_failure(SSL* ssl);

// When verification failed because no issuer of a certificate was found (the origin sent no
// intermediate, or a CA nothing here trusts issued it): the http:// "CA Issuers" address that
// certificate names for its issuer, from which a browser would fetch it; "" otherwise.
std::string missing_issuer_url(SSL* ssl);

// Whether the origin asked for a client certificate in its handshake (none is ever sent: the
// device's certificate stays with the device, and the school CA's are not the device's). A site
// that requires one fails under inspection, in the handshake (TLS 1.2) or at the first read
// (TLS 1.3's alert "certificate required"), or answers with an error page of its own: the
// proxy says so on its page and in the log, and the fix is inspection.never for that site.
bool asked_for_client_certificate(const SSL* ssl);

}  // namespace hallpass::certs
