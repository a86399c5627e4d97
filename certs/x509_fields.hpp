// Small conversions between OpenSSL's X.509 types and ours, shared by the CA and leaf code.
// Pure functions over their arguments; safe from any thread.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "certs/openssl_handles.hpp"

namespace hallpass::certs {

// A positive random serial of `bytes` bytes from the OpenSSL CSPRNG; null on failure.
asn1_integer_ptr random_serial(int bytes = 16);

std::chrono::system_clock::time_point to_time_point(const ASN1_TIME* t);
// Sets `t` to `at`, in UTCTime or GeneralizedTime as RFC 5280 requires; false on failure.
bool set_time(ASN1_TIME* t, std::chrono::system_clock::time_point at);

std::string sha256_fingerprint(const X509* cert);  // "AB:CD:..."
std::string one_line_name(
    const X509_NAME* name);                 // RFC 2253 escaping, in certificate order: "CN=..,O=.."
std::string key_type(const EVP_PKEY* key);  // "ECDSA P-256", "RSA 2048"
std::string utc_text(std::chrono::system_clock::time_point t);  // "2026-12-02 11:08 UTC"

// The first `max_chars` UTF-8 characters of s (X.509 name fields count characters).
std::string truncate_utf8(std::string_view s, std::size_t max_chars);

}  // namespace hallpass::certs
