// Fetching an intermediate certificate an inspected origin left out, from the "CA Issuers"
// address its certificate names (certs/fetched_issuers.hpp says why and how what is fetched is
// used: never trusted by itself).
//
// One GET over plain HTTP, as browsers fetch it: the address must be an http:// URL of visible
// ASCII (parse_request_target's rules, so nothing in a certificate can frame the request
// another way); the connection is made by upstream::acquire, so upstream.ports, the
// destination checks (no loopback, private networks or the proxy itself unless the
// configuration allows them) and upstream.connect_timeout apply as to any request; the answer
// must come within issuer_fetch_timeout, be a 200 and at most max_issuer_bytes. Redirects are
// not followed. No policy decision is made: the address comes from a certificate of a site
// the policy already let through, and nothing fetched reaches the client.
//
// Runs on the worker's event loop like any upstream exchange: nothing here blocks.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "certs/openssl_handles.hpp"
#include "proxy/configuration.hpp"
#include "proxy/net.hpp"

namespace hallpass {

class upstream;

inline constexpr std::size_t max_issuer_bytes = 64 * 1024;
inline constexpr std::chrono::seconds issuer_fetch_timeout{10};

struct issuer_fetch_result {
  std::vector<certs::x509_ptr> certs;  // CA certificates only; empty on failure
  std::string error;                   // why not, in words for the page and the log; "" on success
};

net::awaitable<issuer_fetch_result> fetch_issuer(upstream& up, const std::string& url, const configuration& cfg);

}  // namespace hallpass
