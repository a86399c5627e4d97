// Intermediate certificates fetched from the "CA Issuers" address (Authority Information
// Access, RFC 5280 4.2.2.1) of an origin that sent its certificate without the intermediate
// that issued it, as browsers fetch them. A site whose server leaves out its intermediate
// works in Chromium, Edge and Safari; without this it failed verification under inspection.
//
// What is learned here is never trusted by itself: the certificates are offered to chain
// building as the origin's own chain is (untrusted), so a chain through one still has to end
// at a CA in the system's store or upstream.ca_file, with every other check unchanged. Only
// CA certificates (basicConstraints CA:TRUE) are kept, at most `capacity`, the oldest learned
// going first.
//
// The fetch itself (plain HTTP, through the destination checks, with a deadline and a size
// limit) is the proxy's: proxy/issuer_fetch.hpp. The first failed verification notes the
// address of the certificate whose issuer is missing (missing_issuer_url, origin_context.hpp).
//
// Thread-safe: every worker's origin connections verify against one store.
#pragma once

#include <openssl/x509.h>

#include <cstddef>
#include <memory>
#include <mutex>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "certs/openssl_handles.hpp"
#include "certs/result.hpp"

namespace hallpass::certs {

class fetched_issuers {
 public:
  explicit fetched_issuers(std::size_t capacity = 256) : capacity_(capacity) {}

  // The certificates in what a CA Issuers address served: one DER certificate, PEM
  // certificates, or a PKCS#7 bundle ("certs-only", .p7c; DER or PEM), as RFC 5280 4.2.2.1
  // allows. Only CA certificates are returned; an answer with none, or that is none of those
  // forms, is an error saying so. At most 8 are read.
  static result<std::vector<x509_ptr>> parse(std::string_view body);

  // Keeps the certificates not already kept; returns how many were new.
  std::size_t add(std::vector<x509_ptr> certs);

  // A new stack (the caller frees it with sk_X509_pop_free(..., X509_free)) holding `chain`'s
  // certificates (up-referenced) and every kept certificate whose subject issued one of
  // them, or of those added, transitively; nullptr when no kept certificate is such an
  // issuer (then `chain` alone is what to verify with).
  STACK_OF(X509) * with_issuers_of(X509* leaf, STACK_OF(X509) * chain) const;

  std::size_t size() const;

  // At most this many kept certificates are added to one chain: a missing intermediate and
  // the few above it, never a path the kept set could make as long as itself.
  static constexpr std::size_t max_added = 8;

 private:
  // What with_issuers_of reads: replaced whole by add() (rare: a fetch), never changed, so a
  // verification holds no lock while it searches. Each certificate is found by the hash of
  // its subject name, which is the issuer name of what it issued: before 2026-12-06 every
  // verification compared every kept certificate against every certificate of the chain, over
  // and over until nothing more was found, under one lock every worker's verifications shared
  // (256 kept, arranged to be found one a pass, was some 2.8 M comparisons: event-loop
  // review, 2026-12-06).
  struct snapshot {
    std::vector<x509_ptr> certs;  // oldest first
    std::unordered_multimap<unsigned long, X509*> by_subject;
  };
  std::shared_ptr<const snapshot> current() const;

  mutable std::mutex mutex_;  // guards the pointer current_, and add()
  std::shared_ptr<const snapshot> current_ = std::make_shared<snapshot>();
  std::size_t capacity_;
};

// Sets ctx's chain verification to offer `issuers` besides what the origin sent. `issuers`
// must outlive ctx (make_origin_context keeps a shared_ptr to it with the context).
void verify_with_fetched_issuers(SSL_CTX* ctx, fetched_issuers* issuers);

}  // namespace hallpass::certs
