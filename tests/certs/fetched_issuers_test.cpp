// fetched_issuers: what a "CA Issuers" address may serve (DER, PEM, PKCS#7), what is kept, and
// which kept certificates are offered for a chain. The end-to-end path (a real origin without
// its intermediate, the fetch, the verification) is tests/integration/issuer_fetch_test.py.
#include <doctest/doctest.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>

#include <string>

#include "certs/fetched_issuers.hpp"
#include "certs/leaf_minter.hpp"
#include "certs_fixture.hpp"

using namespace hallpass::certs;
using hallpass::certs::testing::make_ca;
using hallpass::certs::testing::temp_dir;

namespace {

std::string der_of(X509* x) {
  unsigned char* out = nullptr;
  const int n = i2d_X509(x, &out);
  REQUIRE(n > 0);
  std::string s(reinterpret_cast<const char*>(out), static_cast<std::size_t>(n));
  OPENSSL_free(out);
  return s;
}

std::string pem_of(X509* x) {
  bio_ptr bio(BIO_new(BIO_s_mem()));
  REQUIRE(PEM_write_bio_X509(bio.get(), x) == 1);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

// A PKCS#7 "certs-only" bundle of `certs`, DER or PEM.
std::string pkcs7_of(const std::vector<X509*>& certs, bool pem) {
  std::unique_ptr<PKCS7, openssl_deleter<PKCS7_free>> p7(PKCS7_new());
  REQUIRE(PKCS7_set_type(p7.get(), NID_pkcs7_signed) == 1);
  REQUIRE(PKCS7_content_new(p7.get(), NID_pkcs7_data) == 1);
  for (X509* c : certs) REQUIRE(PKCS7_add_certificate(p7.get(), c) == 1);
  bio_ptr bio(BIO_new(BIO_s_mem()));
  REQUIRE((pem ? PEM_write_bio_PKCS7(bio.get(), p7.get()) : i2d_PKCS7_bio(bio.get(), p7.get())) == 1);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

bool same(X509* a, X509* b) { return X509_cmp(a, b) == 0; }

}  // namespace

TEST_CASE("fetched issuers: a DER certificate, PEM certificates and PKCS#7 bundles are read") {
  temp_dir d1, d2;
  auto ca = make_ca(d1.path);
  auto other = make_ca(d2.path);
  X509* a = ca->certificate.get();
  X509* b = other->certificate.get();

  auto der = fetched_issuers::parse(der_of(a));
  REQUIRE_MESSAGE(der.ok(), der.error());
  REQUIRE(der->size() == 1);
  CHECK(same((*der)[0].get(), a));

  auto pem = fetched_issuers::parse(pem_of(a) + pem_of(b));
  REQUIRE_MESSAGE(pem.ok(), pem.error());
  REQUIRE(pem->size() == 2);
  CHECK(same((*pem)[1].get(), b));

  for (const bool as_pem : {false, true}) {
    auto p7 = fetched_issuers::parse(pkcs7_of({a, b}, as_pem));
    REQUIRE_MESSAGE(p7.ok(), p7.error());
    CHECK(p7->size() == 2);
  }
}

TEST_CASE("fetched issuers: garbage, a cut certificate, trailing bytes and a leaf are refused") {
  temp_dir d;
  auto ca = make_ca(d.path);
  const std::string der = der_of(ca->certificate.get());
  CHECK_FALSE(fetched_issuers::parse("").ok());
  CHECK_FALSE(fetched_issuers::parse("<html>captive portal</html>").ok());
  CHECK_FALSE(fetched_issuers::parse(der.substr(0, der.size() - 10)).ok());
  CHECK_FALSE(fetched_issuers::parse(der + "extra").ok());
  CHECK_FALSE(fetched_issuers::parse("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n").ok());

  auto minter = leaf_minter::create(ca);
  REQUIRE(minter.ok());
  auto leaf = (*minter)->mint("www.example.test");
  REQUIRE(leaf.ok());
  auto refused = fetched_issuers::parse(der_of(leaf->get()));
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().find("not a CA certificate") != std::string::npos);
}

TEST_CASE("fetched issuers: at most 8 certificates are read from one answer") {
  temp_dir d;
  auto ca = make_ca(d.path);
  std::string many;
  for (int i = 0; i < 12; ++i) many += pem_of(ca->certificate.get());
  auto got = fetched_issuers::parse(many);
  REQUIRE(got.ok());
  CHECK(got->size() == 8);
}

TEST_CASE("fetched issuers: kept once each, the oldest going first, and offered only as an issuer") {
  temp_dir d1, d2, d3;
  auto ca = make_ca(d1.path);
  auto second = make_ca(d2.path);
  auto third = make_ca(d3.path);
  auto copy = [](X509* x) {
    X509_up_ref(x);
    return x509_ptr(x);
  };
  fetched_issuers store(2);
  std::vector<x509_ptr> twice;
  twice.push_back(copy(ca->certificate.get()));
  twice.push_back(copy(ca->certificate.get()));
  CHECK(store.add(std::move(twice)) == 1);
  CHECK(store.size() == 1);

  auto minter = leaf_minter::create(ca);
  REQUIRE(minter.ok());
  auto leaf = (*minter)->mint("www.example.test");
  REQUIRE(leaf.ok());
  // The leaf's issuer is kept: offered, after the certificates the origin sent.
  STACK_OF(X509)* sent = sk_X509_new_null();
  STACK_OF(X509)* offered = store.with_issuers_of(leaf->get(), sent);
  REQUIRE(offered != nullptr);
  REQUIRE(sk_X509_num(offered) == 1);
  CHECK(same(sk_X509_value(offered, 0), ca->certificate.get()));
  sk_X509_pop_free(offered, X509_free);

  // Only certificates that issued something in the chain are offered.
  fetched_issuers unrelated;
  std::vector<x509_ptr> one;
  one.push_back(copy(second->certificate.get()));
  unrelated.add(std::move(one));
  CHECK(unrelated.with_issuers_of(leaf->get(), sent) == nullptr);
  sk_X509_free(sent);

  // Beyond the capacity, the oldest goes.
  std::vector<x509_ptr> more;
  more.push_back(copy(second->certificate.get()));
  more.push_back(copy(third->certificate.get()));
  CHECK(store.add(std::move(more)) == 2);
  CHECK(store.size() == 2);
  STACK_OF(X509)* none = sk_X509_new_null();
  CHECK(store.with_issuers_of(leaf->get(), none) == nullptr);
  sk_X509_free(none);
}

namespace {

// A CA certificate (basicConstraints CA:TRUE) named `name`, whose issuer name is `issuer`,
// signed with `key` (one key for all: the search reads names, the signatures are the
// verification's).
x509_ptr named_ca(const std::string& name, const std::string& issuer, EVP_PKEY* key) {
  x509_ptr x(X509_new());
  REQUIRE(x);
  X509_set_version(x.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x.get()), 1);
  X509_gmtime_adj(X509_getm_notBefore(x.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), 3600);
  auto set_name = [](X509_NAME* n, const std::string& cn) {
    REQUIRE(X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()), -1,
                                       -1, 0) == 1);
  };
  set_name(X509_get_subject_name(x.get()), name);
  set_name(X509_get_issuer_name(x.get()), issuer);
  REQUIRE(X509_set_pubkey(x.get(), key) == 1);
  X509_EXTENSION* bc = X509V3_EXT_conf_nid(nullptr, nullptr, NID_basic_constraints, "critical,CA:TRUE");
  REQUIRE(bc != nullptr);
  X509_add_ext(x.get(), bc, -1);
  X509_EXTENSION_free(bc);
  REQUIRE(X509_sign(x.get(), key, EVP_sha256()) > 0);
  return x;
}

}  // namespace

TEST_CASE("fetched issuers: a full store finds a missing chain by its names, and adds at most 8") {
  // Event-loop review, 2026-12-06: every verification compared every kept certificate with
  // every certificate of the chain until a pass found nothing, under one lock for all workers.
  std::unique_ptr<EVP_PKEY, openssl_deleter<EVP_PKEY_free>> key(EVP_EC_gen("P-256"));
  REQUIRE(key);
  fetched_issuers store(256);
  std::vector<x509_ptr> batch;
  for (int i = 0; i < 240; ++i) {
    batch.push_back(named_ca("Unrelated " + std::to_string(i), "Unrelated root", key.get()));
    if (batch.size() == 8) store.add(std::exchange(batch, {}));
  }
  // Root <- I1 <- I2 <- I3 <- the leaf, and a line of 12 CAs above a second leaf.
  std::vector<x509_ptr> chain;
  chain.push_back(named_ca("Intermediate 1", "Root", key.get()));
  chain.push_back(named_ca("Intermediate 2", "Intermediate 1", key.get()));
  chain.push_back(named_ca("Intermediate 3", "Intermediate 2", key.get()));
  CHECK(store.add(std::move(chain)) == 3);
  for (int i = 0; i < 12; i += 4) {
    std::vector<x509_ptr> line;
    for (int k = i; k < i + 4; ++k) line.push_back(named_ca("Line " + std::to_string(k), "Line " + std::to_string(k + 1), key.get()));
    store.add(std::move(line));
  }
  CHECK(store.size() == 255);
  auto leaf = named_ca("www.example.test", "Intermediate 3", key.get());
  STACK_OF(X509)* sent = sk_X509_new_null();
  STACK_OF(X509)* offered = store.with_issuers_of(leaf.get(), sent);
  REQUIRE(offered != nullptr);
  std::vector<std::string> names;
  for (int i = 0; i < sk_X509_num(offered); ++i) {
    char buf[256];
    X509_NAME_get_text_by_NID(X509_get_subject_name(sk_X509_value(offered, i)), NID_commonName, buf, sizeof buf);
    names.emplace_back(buf);
  }
  CHECK(names == std::vector<std::string>{"Intermediate 3", "Intermediate 2", "Intermediate 1"});
  sk_X509_pop_free(offered, X509_free);

  auto far = named_ca("far.example.test", "Line 0", key.get());
  offered = store.with_issuers_of(far.get(), sent);
  REQUIRE(offered != nullptr);
  CHECK(static_cast<std::size_t>(sk_X509_num(offered)) == fetched_issuers::max_added);
  sk_X509_pop_free(offered, X509_free);
  sk_X509_free(sent);
}
