// Owning handles for the OpenSSL objects certs/ uses: std::unique_ptr with the matching
// free function, so no path leaks on an early return. Plus openssl_error(), which drains
// this thread's OpenSSL error queue into one line for a message.
//
// Handles are not shared between threads unless the object is read-only by then (a loaded
// CA certificate and key, a finished SSL_CTX are).
#pragma once

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <string>

namespace hallpass::certs {

template <auto free_fn>
struct openssl_deleter {
  template <class T>
  void operator()(T* p) const {
    free_fn(p);
  }
};

using x509_ptr = std::unique_ptr<X509, openssl_deleter<X509_free>>;
using pkey_ptr = std::unique_ptr<EVP_PKEY, openssl_deleter<EVP_PKEY_free>>;
using pkey_ctx_ptr = std::unique_ptr<EVP_PKEY_CTX, openssl_deleter<EVP_PKEY_CTX_free>>;
using bio_ptr = std::unique_ptr<BIO, openssl_deleter<BIO_free_all>>;
using bignum_ptr = std::unique_ptr<BIGNUM, openssl_deleter<BN_free>>;
using asn1_integer_ptr = std::unique_ptr<ASN1_INTEGER, openssl_deleter<ASN1_INTEGER_free>>;
using asn1_octet_string_ptr =
    std::unique_ptr<ASN1_OCTET_STRING, openssl_deleter<ASN1_OCTET_STRING_free>>;
using asn1_bit_string_ptr = std::unique_ptr<ASN1_BIT_STRING, openssl_deleter<ASN1_BIT_STRING_free>>;
using basic_constraints_ptr =
    std::unique_ptr<BASIC_CONSTRAINTS, openssl_deleter<BASIC_CONSTRAINTS_free>>;
using authority_keyid_ptr = std::unique_ptr<AUTHORITY_KEYID, openssl_deleter<AUTHORITY_KEYID_free>>;
using general_names_ptr = std::unique_ptr<GENERAL_NAMES, openssl_deleter<GENERAL_NAMES_free>>;
using eku_ptr = std::unique_ptr<EXTENDED_KEY_USAGE, openssl_deleter<EXTENDED_KEY_USAGE_free>>;
using ssl_ctx_ptr = std::unique_ptr<SSL_CTX, openssl_deleter<SSL_CTX_free>>;
using ssl_ptr = std::unique_ptr<SSL, openssl_deleter<SSL_free>>;

// The reasons queued on this thread's OpenSSL error queue, joined with "; " (the queue is
// emptied). "no detail from OpenSSL" when it is empty.
std::string openssl_error();

}  // namespace hallpass::certs
