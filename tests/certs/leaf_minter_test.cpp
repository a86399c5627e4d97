#include <doctest/doctest.h>
#include <openssl/err.h>
#include <openssl/x509_vfy.h>

#include <set>

#include "certs/leaf_minter.hpp"
#include "certs/x509_fields.hpp"
#include "certs_fixture.hpp"

using namespace hallpass::certs;
using hallpass::certs::testing::make_ca;
using hallpass::certs::testing::temp_dir;

namespace {

// What `openssl verify -x509_strict -purpose sslserver` checks, in process.
std::string verify_strict(X509* leaf, const authority& ca, clock::time_point at = clock::now()) {
  std::unique_ptr<X509_STORE, openssl_deleter<X509_STORE_free>> store(X509_STORE_new());
  std::unique_ptr<X509_STORE_CTX, openssl_deleter<X509_STORE_CTX_free>> ctx(X509_STORE_CTX_new());
  X509_STORE_add_cert(store.get(), ca.certificate.get());
  X509_STORE_CTX_init(ctx.get(), store.get(), leaf, nullptr);
  X509_VERIFY_PARAM* p = X509_STORE_CTX_get0_param(ctx.get());
  X509_VERIFY_PARAM_set_flags(p, X509_V_FLAG_X509_STRICT | X509_V_FLAG_USE_CHECK_TIME);
  X509_VERIFY_PARAM_set_time(p, clock::to_time_t(at));
  X509_VERIFY_PARAM_set_purpose(p, X509_PURPOSE_SSL_SERVER);
  if (X509_verify_cert(ctx.get()) == 1) return "";
  return X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()));
}

std::vector<std::pair<int, std::string>> san_entries(X509* x) {
  std::vector<std::pair<int, std::string>> out;
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; names && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* g = sk_GENERAL_NAME_value(names, i);
    int type = 0;
    auto* v = static_cast<ASN1_STRING*>(GENERAL_NAME_get0_value(g, &type));
    out.emplace_back(type, std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(v)),
                                       static_cast<std::size_t>(ASN1_STRING_length(v))));
  }
  GENERAL_NAMES_free(names);
  return out;
}

std::string common_name(X509* x) {
  char buf[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, buf, sizeof buf);
  return buf;
}

bool critical(X509* x, int nid) {
  const int i = X509_get_ext_by_NID(x, nid, -1);
  return i >= 0 && X509_EXTENSION_get_critical(X509_get_ext(x, i)) == 1;
}

struct minted {
  temp_dir dir;
  // Made a day ago, so that a leaf's backdated start is its own (a leaf never starts before its CA).
  std::shared_ptr<const authority> ca = make_ca(dir.path, clock::now() - std::chrono::days(1));
  std::shared_ptr<const leaf_minter> minter = [this] {
    auto m = leaf_minter::create(ca);
    REQUIRE_MESSAGE(m.ok(), m.error());
    return *m;
  }();
};

}  // namespace

TEST_CASE("a leaf for a DNS name has the fields browsers require and verifies strictly") {
  minted m;
  const auto now = clock::now();
  auto leaf = m.minter->mint("WWW.Example.ORG.", now);
  REQUIRE_MESSAGE(leaf.ok(), leaf.error());
  X509* x = leaf->get();
  CHECK(verify_strict(x, *m.ca) == "");
  CHECK(common_name(x) == "www.example.org");
  CHECK(san_entries(x) == std::vector<std::pair<int, std::string>>{{GEN_DNS, "www.example.org"}});
  CHECK(X509_check_host(x, "www.example.org", 0, 0, nullptr) == 1);
  CHECK(X509_check_host(x, "example.org", 0, 0, nullptr) == 0);
  CHECK((X509_get_extension_flags(x) & EXFLAG_CA) == 0);
  CHECK(critical(x, NID_basic_constraints));
  CHECK(X509_get_key_usage(x) == KU_DIGITAL_SIGNATURE);
  CHECK(critical(x, NID_key_usage));
  CHECK(X509_get_extended_key_usage(x) == XKU_SSL_SERVER);
  REQUIRE(X509_get0_authority_key_id(x) != nullptr);
  CHECK(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(x),
                              X509_get0_subject_key_id(m.ca->certificate.get())) == 0);
  CHECK(X509_NAME_cmp(X509_get_issuer_name(x), X509_get_subject_name(m.ca->certificate.get())) ==
        0);
  const auto seconds = [](auto d) {
    return std::chrono::duration_cast<std::chrono::seconds>(d).count();
  };
  CHECK(std::abs(seconds(to_time_point(X509_get0_notBefore(x)) - (now - std::chrono::hours(1)))) <=
        1);
  CHECK(std::abs(seconds(to_time_point(X509_get0_notAfter(x)) - (now + std::chrono::days(30)))) <=
        1);
  // The leaf is for a server, not a CA: it must not verify as an issuer.
  CHECK(X509_check_ca(x) == 0);
}

TEST_CASE("a leaf for an IP address has an IP SAN") {
  minted m;
  auto v4 = m.minter->mint("192.0.2.7");
  REQUIRE_MESSAGE(v4.ok(), v4.error());
  CHECK(verify_strict(v4->get(), *m.ca) == "");
  CHECK(X509_check_ip_asc(v4->get(), "192.0.2.7", 0) == 1);
  CHECK(san_entries(v4->get()) ==
        std::vector<std::pair<int, std::string>>{{GEN_IPADD, std::string("\xc0\x00\x02\x07", 4)}});

  auto v6 = m.minter->mint("[2001:DB8::1]");
  REQUIRE_MESSAGE(v6.ok(), v6.error());
  CHECK(verify_strict(v6->get(), *m.ca) == "");
  CHECK(X509_check_ip_asc(v6->get(), "2001:db8::1", 0) == 1);
  CHECK(common_name(v6->get()) == "2001:db8::1");
}

TEST_CASE("host names are normalized, and what is not a host is refused") {
  CHECK(leaf_minter::normalize_host("WWW.Example.ORG.") == "www.example.org");
  CHECK(leaf_minter::normalize_host("[::0001]") == "::1");
  CHECK(leaf_minter::normalize_host("010.0.0.1") == "");  // octal to some clients: never guessed
  CHECK(leaf_minter::normalize_host("1.2.3") == "");
  for (const char* bad :
       {"", ".", "a..b", "exa mple.org", "*.example.org", "bad/slash", "caf\xc3\xa9.fr", "::g"}) {
    CHECK_MESSAGE(leaf_minter::normalize_host(bad) == "", bad);
  }
  minted m;
  auto r = m.minter->mint("a..b");
  CHECK_FALSE(r.ok());
  CHECK(r.error().find("neither a DNS name nor an IP address") != std::string::npos);
}

TEST_CASE("a long name: CN cut to 64 characters, the SAN whole") {
  minted m;
  const std::string host = std::string(60, 'a') + "." + std::string(60, 'b') + ".example";
  auto leaf = m.minter->mint(host);
  REQUIRE_MESSAGE(leaf.ok(), leaf.error());
  CHECK(common_name(leaf->get()) == host.substr(0, 64));
  CHECK(X509_check_host(leaf->get(), host.c_str(), host.size(), 0, nullptr) == 1);
  CHECK(verify_strict(leaf->get(), *m.ca) == "");
}

TEST_CASE("a leaf never outlives its CA") {
  temp_dir d;
  const auto now = clock::now();
  // A CA made long ago that ends in 10 days.
  auto ca = make_ca(d.path, now - ca_lifetime + std::chrono::days(10));
  auto minter = leaf_minter::create(ca);
  REQUIRE(minter.ok());
  auto leaf = (*minter)->mint("www.example.org", now);
  REQUIRE(leaf.ok());
  CHECK(to_time_point(X509_get0_notAfter(leaf->get())) == ca->not_after);
  CHECK(verify_strict(leaf->get(), *ca) == "");
}

TEST_CASE("a leaf never starts before its CA") {
  // Backdated an hour for slow clocks, but a CA made ten minutes ago bounds it.
  temp_dir d;
  const auto now = clock::now();
  auto ca = make_ca(d.path, now - std::chrono::minutes(10));
  auto minter = leaf_minter::create(ca);
  REQUIRE(minter.ok());
  auto leaf = (*minter)->mint("www.example.org", now);
  REQUIRE(leaf.ok());
  CHECK(to_time_point(X509_get0_notBefore(leaf->get())) == ca->not_before);
  CHECK(verify_strict(leaf->get(), *ca) == "");
}

TEST_CASE("every leaf has its own random serial and the one shared key") {
  minted m;
  std::set<std::string> serials;
  for (int i = 0; i < 50; ++i) {
    auto leaf = m.minter->mint("host" + std::to_string(i % 5) + ".example");
    REQUIRE(leaf.ok());
    bignum_ptr bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(leaf->get()), nullptr));
    char* hex = BN_bn2hex(bn.get());
    serials.insert(hex);
    OPENSSL_free(hex);
    CHECK(EVP_PKEY_eq(X509_get0_pubkey(leaf->get()), m.minter->leaf_key()) == 1);
  }
  CHECK(serials.size() == 50);
}

// mint() sets the key from a legacy EC_KEY-backed copy (leaf_minter.cpp, legacy_public_key):
// the leaf must carry the very SubjectPublicKeyInfo that the provider key encodes to (named
// curve, uncompressed point), byte for byte, as leaves did before, not merely an equal key.
TEST_CASE("a leaf's public key is encoded exactly as the shared key's own encoder writes it") {
  minted m;
  auto leaf = m.minter->mint("spki.example");
  REQUIRE(leaf.ok());
  auto der = [](auto write) {
    unsigned char* out = nullptr;
    const int n = write(&out);
    std::string bytes;
    if (n > 0) bytes.assign(reinterpret_cast<const char*>(out), static_cast<std::size_t>(n));
    OPENSSL_free(out);
    return bytes;
  };
  X509_PUBKEY* spki = X509_get_X509_PUBKEY(leaf->get());
  const std::string in_leaf = der([&](unsigned char** out) { return i2d_X509_PUBKEY(spki, out); });
  EVP_PKEY* key = m.minter->leaf_key();
  const std::string own = der([&](unsigned char** out) { return i2d_PUBKEY(key, out); });
  REQUIRE(!own.empty());
  CHECK(in_leaf == own);
  CHECK(X509_check_private_key(leaf->get(), m.minter->leaf_key()) == 1);
}

TEST_CASE("one shared server context: a host's leaf on its SSL verifies and picks http/1.1") {
  minted m;
  SSL_CTX* server_ctx = m.minter->server_context().get();
  REQUIRE(server_ctx != nullptr);
  CHECK(SSL_CTX_get_min_proto_version(server_ctx) == TLS1_2_VERSION);
  auto school = m.minter->mint("school-test.test");
  auto other = m.minter->mint("other-site.test");
  REQUIRE(school.ok());
  REQUIRE(other.ok());

  ssl_ctx_ptr client_ctx(SSL_CTX_new(TLS_client_method()));
  X509_STORE_add_cert(SSL_CTX_get_cert_store(client_ctx.get()), m.ca->certificate.get());
  SSL_CTX_set_verify(client_ctx.get(), SSL_VERIFY_PEER, nullptr);
  SSL_CTX_set_max_proto_version(client_ctx.get(), TLS1_2_VERSION);  // and TLS 1.2 works too

  auto handshake = [&](const char* name, const std::vector<unsigned char>& alpn,
                       std::string& selected, X509* leaf) {
    ssl_ptr server(SSL_new(server_ctx)), client(SSL_new(client_ctx.get()));
    REQUIRE(m.minter->use_leaf(server.get(), leaf));
    BIO *a = nullptr, *b = nullptr;
    BIO_new_bio_pair(&a, 0, &b, 0);
    SSL_set_bio(server.get(), a, a);
    SSL_set_bio(client.get(), b, b);
    SSL_set_accept_state(server.get());
    SSL_set_tlsext_host_name(client.get(), name);
    SSL_set1_host(client.get(), name);
    SSL_set_alpn_protos(client.get(), alpn.data(), static_cast<unsigned>(alpn.size()));
    bool client_done = false, server_done = false;
    for (int i = 0; i < 50 && !(client_done && server_done); ++i) {
      if (!client_done) {
        const int r = SSL_connect(client.get());
        if (r == 1)
          client_done = true;
        else if (SSL_get_error(client.get(), r) != SSL_ERROR_WANT_READ)
          break;
      }
      if (!server_done) {
        const int r = SSL_accept(server.get());
        if (r == 1)
          server_done = true;
        else if (SSL_get_error(server.get(), r) != SSL_ERROR_WANT_READ)
          break;
      }
    }
    const unsigned char* p = nullptr;
    unsigned len = 0;
    SSL_get0_alpn_selected(client.get(), &p, &len);
    selected.assign(reinterpret_cast<const char*>(p), len);
    ERR_clear_error();
    return client_done && server_done && SSL_get_verify_result(client.get()) == X509_V_OK;
  };
  std::string selected;
  CHECK(handshake("school-test.test", {2, 'h', '2', 8, 'h', 't', 't', 'p', '/', '1', '.', '1'},
                  selected, school->get()));
  CHECK(selected == "http/1.1");
  CHECK(handshake("school-test.test", {2, 'h', '2'}, selected, school->get()));
  CHECK(selected == "");  // no ALPN answer; the client speaks HTTP/1.1
  // The wrong name does not verify.
  CHECK_FALSE(handshake("other.test", {}, selected, school->get()));
  // Two hosts on the one context: each SSL presents its own leaf, and only that one verifies.
  CHECK(handshake("other-site.test", {}, selected, other->get()));
  CHECK_FALSE(handshake("school-test.test", {}, selected, other->get()));
  CHECK(handshake("school-test.test", {}, selected, school->get()));
}
