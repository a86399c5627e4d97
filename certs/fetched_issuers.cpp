#include "certs/fetched_issuers.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <utility>

namespace hallpass::certs {
namespace {

constexpr std::size_t max_per_answer = 8;

using pkcs7_ptr = std::unique_ptr<PKCS7, openssl_deleter<PKCS7_free>>;

void keep_cas(STACK_OF(X509) * from, std::vector<x509_ptr>& out) {
  for (int i = 0; from != nullptr && i < sk_X509_num(from) && out.size() < max_per_answer; ++i) {
    X509* c = sk_X509_value(from, i);
    if (c == nullptr || X509_up_ref(c) != 1) continue;
    out.emplace_back(c);
  }
}

// The certificates of a PKCS#7 SignedData ("certs-only" has no signers, only certificates).
void certificates_of(PKCS7* p7, std::vector<x509_ptr>& out) {
  if (p7 != nullptr && PKCS7_type_is_signed(p7) && p7->d.sign != nullptr) keep_cas(p7->d.sign->cert, out);
}

bool same(const X509* a, const X509* b) { return X509_cmp(a, b) == 0; }

bool in_stack(STACK_OF(X509) * s, const X509* c) {
  for (int i = 0; i < sk_X509_num(s); ++i) {
    if (same(sk_X509_value(s, i), c)) return true;
  }
  return false;
}

// Whether `issuer` issued `subject`: its subject name is subject's issuer name, and, where both
// say, the key identifiers agree (OpenSSL's own test, without the signature).
bool issued(X509* issuer, X509* subject) { return X509_check_issued(issuer, subject) == X509_V_OK; }

int verify_chain(X509_STORE_CTX* ctx, void* arg) {
  const auto* issuers = static_cast<const fetched_issuers*>(arg);
  STACK_OF(X509)* sent = X509_STORE_CTX_get0_untrusted(ctx);
  STACK_OF(X509)* more = issuers->with_issuers_of(X509_STORE_CTX_get0_cert(ctx), sent);
  if (more == nullptr) return X509_verify_cert(ctx);
  // Offered as the origin's own certificates are, untrusted: the chain must still end at a CA
  // of the trust store. The built chain holds its own references, so the stack can go after.
  X509_STORE_CTX_set0_untrusted(ctx, more);
  const int ok = X509_verify_cert(ctx);
  X509_STORE_CTX_set0_untrusted(ctx, sent);
  sk_X509_pop_free(more, X509_free);
  return ok;
}

}  // namespace

result<std::vector<x509_ptr>> fetched_issuers::parse(std::string_view body) {
  std::vector<x509_ptr> all;
  if (body.empty()) return result<std::vector<x509_ptr>>::failure("the answer was empty");
  if (body.size() > static_cast<std::size_t>(INT32_MAX)) return result<std::vector<x509_ptr>>::failure("too large");
  const int length = static_cast<int>(body.size());
  if (body.find("-----BEGIN") != std::string_view::npos) {
    bio_ptr bio(BIO_new_mem_buf(body.data(), length));
    while (bio && all.size() < max_per_answer) {
      X509* c = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
      if (c == nullptr) break;
      all.emplace_back(c);
    }
    if (all.empty()) {
      bio_ptr again(BIO_new_mem_buf(body.data(), length));
      pkcs7_ptr p7(again ? PEM_read_bio_PKCS7(again.get(), nullptr, nullptr, nullptr) : nullptr);
      certificates_of(p7.get(), all);
    }
  } else {
    const auto* p = reinterpret_cast<const unsigned char*>(body.data());
    x509_ptr one(d2i_X509(nullptr, &p, length));
    if (one && p == reinterpret_cast<const unsigned char*>(body.data()) + body.size()) {
      all.push_back(std::move(one));
    } else {
      p = reinterpret_cast<const unsigned char*>(body.data());
      pkcs7_ptr p7(d2i_PKCS7(nullptr, &p, length));
      certificates_of(p7.get(), all);
    }
  }
  ERR_clear_error();
  if (all.empty()) {
    return result<std::vector<x509_ptr>>::failure(
        "the answer is not a certificate (DER or PEM) or a PKCS#7 bundle of certificates");
  }
  std::vector<x509_ptr> cas;
  for (auto& c : all) {
    // basicConstraints CA:TRUE only: nothing else may issue a certificate (RFC 5280 4.2.1.9).
    if (X509_check_ca(c.get()) == 1) cas.push_back(std::move(c));
  }
  if (cas.empty()) return result<std::vector<x509_ptr>>::failure("the certificate there is not a CA certificate");
  return cas;
}

std::shared_ptr<const fetched_issuers::snapshot> fetched_issuers::current() const {
  std::lock_guard lock(mutex_);
  return current_;
}

std::size_t fetched_issuers::add(std::vector<x509_ptr> certs) {
  std::lock_guard lock(mutex_);
  std::vector<X509*> kept;  // the new set, oldest first (not yet up-referenced)
  for (const auto& k : current_->certs) kept.push_back(k.get());
  std::size_t added = 0;
  for (auto& c : certs) {
    if (capacity_ == 0) break;
    if (!c || std::any_of(kept.begin(), kept.end(), [&](X509* k) { return same(k, c.get()); })) continue;
    if (kept.size() >= capacity_) kept.erase(kept.begin());
    kept.push_back(c.get());
    ++added;
  }
  if (added == 0) return 0;
  auto next = std::make_shared<snapshot>();
  for (X509* c : kept) {
    if (X509_up_ref(c) != 1) continue;
    next->certs.emplace_back(c);
    int ok = 0;
    const unsigned long h = X509_NAME_hash_ex(X509_get_subject_name(c), nullptr, nullptr, &ok);
    if (ok == 1) next->by_subject.emplace(h, c);
  }
  ERR_clear_error();
  current_ = std::move(next);  // `certs` and the old snapshot free their own references
  return added;
}

STACK_OF(X509) * fetched_issuers::with_issuers_of(X509* leaf, STACK_OF(X509) * chain) const {
  const auto snap = current();
  if (snap->by_subject.empty() || leaf == nullptr) return nullptr;
  // Which kept certificates issued the leaf, a certificate the origin sent, or one found so
  // far: a missing intermediate and, rarely, the one above it. Each certificate asks only for
  // the kept ones whose subject name hashes as its issuer name does.
  std::vector<X509*> targets{leaf};
  for (int i = 0; chain != nullptr && i < sk_X509_num(chain); ++i) targets.push_back(sk_X509_value(chain, i));
  std::vector<X509*> found;
  for (std::size_t t = 0; t < targets.size() && found.size() < max_added; ++t) {
    int ok = 0;
    const unsigned long h = X509_NAME_hash_ex(X509_get_issuer_name(targets[t]), nullptr, nullptr, &ok);
    if (ok != 1) continue;
    for (auto [it, end] = snap->by_subject.equal_range(h); it != end && found.size() < max_added; ++it) {
      X509* candidate = it->second;
      if (std::find(found.begin(), found.end(), candidate) != found.end() || same(candidate, leaf) ||
          (chain != nullptr && in_stack(chain, candidate)) || !issued(candidate, targets[t])) {
        continue;
      }
      found.push_back(candidate);
      targets.push_back(candidate);
    }
  }
  ERR_clear_error();
  if (found.empty()) return nullptr;
  STACK_OF(X509)* out = sk_X509_new_null();
  if (out == nullptr) return nullptr;
  auto push = [&](X509* c) {
    if (X509_up_ref(c) != 1) return;
    if (sk_X509_push(out, c) == 0) X509_free(c);
  };
  for (int i = 0; chain != nullptr && i < sk_X509_num(chain); ++i) push(sk_X509_value(chain, i));
  for (X509* c : found) push(c);  // up-referenced: safe after the snapshot goes
  return out;
}

std::size_t fetched_issuers::size() const { return current()->certs.size(); }

void verify_with_fetched_issuers(SSL_CTX* ctx, fetched_issuers* issuers) {
  SSL_CTX_set_cert_verify_callback(ctx, &verify_chain, issuers);
}

}  // namespace hallpass::certs
