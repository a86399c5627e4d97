#include <doctest/doctest.h>
#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "certs/leaf_minter.hpp"
#include "certs/x509_fields.hpp"
#include "certs_fixture.hpp"

using namespace hallpass::certs;
using hallpass::certs::testing::make_ca;
using hallpass::certs::testing::temp_dir;

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_file(const std::string& path, const std::string& text, mode_t mode = 0644) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
  ::chmod(path.c_str(), mode);
}

bool has_error(const ca_load& l, std::string_view words) {
  for (const auto& e : l.errors) {
    if (e.find(words) != std::string::npos) return true;
  }
  return false;
}

std::string key_pem(EVP_PKEY* key) {
  bio_ptr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

std::string cert_pem(X509* x) {
  bio_ptr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), x);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

// A self-signed P-256 CA:TRUE certificate (with `key_usage`, or no keyUsage at all when empty)
// and its key, written as DIR/ca.crt and DIR/ca.key: a school's own CA made elsewhere.
void write_other_ca(const std::string& dir, const char* key_usage) {
  EVP_PKEY* raw = EVP_EC_gen("P-256");
  REQUIRE(raw != nullptr);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(raw, EVP_PKEY_free);
  std::unique_ptr<X509, decltype(&X509_free)> x(X509_new(), X509_free);
  X509_set_version(x.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x.get()), 7);
  X509_gmtime_adj(X509_getm_notBefore(x.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), 86400L * 365);
  X509_NAME* name = X509_get_subject_name(x.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("Other CA"), -1, -1, 0);
  X509_set_issuer_name(x.get(), name);
  X509_set_pubkey(x.get(), key.get());
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, x.get(), x.get(), nullptr, nullptr, 0);
  const auto add = [&](int nid, const char* value) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    REQUIRE(ext != nullptr);
    X509_add_ext(x.get(), ext, -1);
    X509_EXTENSION_free(ext);
  };
  add(NID_basic_constraints, "critical,CA:TRUE");
  if (*key_usage) add(NID_key_usage, key_usage);
  REQUIRE(X509_sign(x.get(), key.get(), EVP_sha256()) > 0);
  write_file(dir + "/ca.crt", cert_pem(x.get()));
  write_file(dir + "/ca.key", key_pem(key.get()), 0600);
}

}  // namespace

TEST_CASE("a CA made elsewhere should say in its keyUsage that it signs certificates") {
  temp_dir d;
  SUBCASE("no keyUsage: strict verifiers refuse every leaf it signs, so a warning (browsers accept them)") {
    write_other_ca(d.path, "");
    const auto l = load_ca(d.path);
    CHECK(l.usable());
    CHECK(l.errors.empty());
    bool warned = false;
    for (const auto& w : l.warnings) warned = warned || w.find("has no keyUsage extension") != std::string::npos;
    CHECK(warned);
  }
  SUBCASE("keyUsage without keyCertSign") {
    write_other_ca(d.path, "critical,digitalSignature");
    CHECK(has_error(load_ca(d.path), "does not allow signing certificates"));
  }
  SUBCASE("keyUsage with keyCertSign") {
    write_other_ca(d.path, "critical,keyCertSign,cRLSign");
    const auto l = load_ca(d.path);
    CHECK_MESSAGE(l.usable(), (l.errors.empty() ? "" : l.errors.front()));
  }
}

TEST_CASE("ca init then load: the same CA, with the fields devices need") {
  temp_dir d;
  const auto made = make_ca(d.path);
  const auto loaded = load_ca(d.path);
  REQUIRE_MESSAGE(loaded.usable(), (loaded.errors.empty() ? "" : loaded.errors.front()));
  CHECK(loaded.warnings.empty());
  const authority& ca = *loaded.ca;
  CHECK(ca.fingerprint_sha256 == made->fingerprint_sha256);
  CHECK(ca.fingerprint_sha256.size() == 32 * 3 - 1);
  CHECK(ca.subject == "CN=Test School web filter CA,O=Test School");
  CHECK(ca.key_type == "ECDSA P-256");
  const auto years =
      std::chrono::duration_cast<std::chrono::days>(ca.not_after - ca.not_before).count();
  CHECK(years >= 3650);
  CHECK(years <= 3653);

  X509* x = ca.certificate.get();
  CHECK(X509_get_version(x) == X509_VERSION_3);
  const uint32_t flags = X509_get_extension_flags(x);
  CHECK((flags & EXFLAG_CA) != 0);
  CHECK((flags & EXFLAG_BCONS_CRITICAL) != 0);
  CHECK(X509_get_pathlen(x) == 0);
  CHECK(X509_get_key_usage(x) == (KU_KEY_CERT_SIGN | KU_CRL_SIGN));
  const int ku = X509_get_ext_by_NID(x, NID_key_usage, -1);
  REQUIRE(ku >= 0);
  CHECK(X509_EXTENSION_get_critical(X509_get_ext(x, ku)) == 1);
  REQUIRE(X509_get0_subject_key_id(x) != nullptr);
  REQUIRE(X509_get0_authority_key_id(x) != nullptr);
  CHECK(ASN1_OCTET_STRING_cmp(X509_get0_subject_key_id(x), X509_get0_authority_key_id(x)) == 0);
  // A random 128-bit serial: 16 or 17 DER content bytes.
  CHECK(ASN1_STRING_length(X509_get0_serialNumber(x)) >= 15);
  CHECK(X509_check_private_key(x, ca.key.get()) == 1);
  CHECK(X509_check_issued(x, x) == X509_V_OK);

  CHECK(describe(ca).find(ca.fingerprint_sha256) != std::string::npos);
  const auto how = install_instructions(ca);
  for (const char* word :
       {"Windows", "ChromeOS", "iPad", "macOS", "Firefox", "ImportEnterpriseRoots",
        "security.enterprise_roots", "Trusted Root Certification Authorities"}) {
    CHECK_MESSAGE(how.find(word) != std::string::npos, word);
  }
}

TEST_CASE("ca init refuses to overwrite an existing CA and changes nothing") {
  temp_dir d;
  make_ca(d.path);
  const std::string crt = read_file(d / "ca.crt"), key = read_file(d / "ca.key");
  const auto again = create_ca(d.path, "Other School");
  REQUIRE_FALSE(again.ok());
  CHECK(again.error().find("refusing to overwrite") != std::string::npos);
  CHECK(read_file(d / "ca.crt") == crt);
  CHECK(read_file(d / "ca.key") == key);

  SUBCASE("a key alone is enough to refuse") {
    std::remove((d / "ca.crt").c_str());
    CHECK_FALSE(create_ca(d.path, "Other School").ok());
    CHECK(read_file(d / "ca.key") == key);
  }
}

TEST_CASE("ca init makes the key file 0600 whatever the umask, and creates the directory") {
  temp_dir d;
  const mode_t old = ::umask(0);
  auto ca = create_ca(d / "parent/new", "Test School");
  ::umask(old);
  REQUIRE_MESSAGE(ca.ok(), ca.error());
  struct stat st {};
  REQUIRE(::stat((d / "parent/new/ca.key").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);
  REQUIRE(::stat((d / "parent/new").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0700);
  CHECK(load_ca(d / "parent/new").usable());
}

TEST_CASE("a Welsh school name keeps its letters") {
  temp_dir d;
  auto ca = create_ca(d.path, "Ysgol Gymraeg Aberdâr");
  REQUIRE_MESSAGE(ca.ok(), ca.error());
  CHECK((*ca)->subject == "CN=Ysgol Gymraeg Aberdâr web filter CA,O=Ysgol Gymraeg Aberdâr");
}

TEST_CASE("a long school name still gives a CN of at most 64 characters") {
  temp_dir d;
  const std::string name(80, 'x');
  auto ca = create_ca(d.path, name);
  REQUIRE_MESSAGE(ca.ok(), ca.error());
  char cn[128] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name((*ca)->certificate.get()), NID_commonName, cn, sizeof cn);
  CHECK(std::string(cn) == std::string(50, 'x') + " web filter CA");
}

TEST_CASE("the validator refuses what the proxy must not use") {
  temp_dir d;
  SUBCASE("no CA at all") {
    const auto l = load_ca(d / "missing");
    CHECK_FALSE(l.usable());
    CHECK(l.ca == nullptr);
    CHECK(has_error(l, "hallpass ca init"));
  }
  SUBCASE("a key readable by others") {
    make_ca(d.path);
    ::chmod((d / "ca.key").c_str(), 0644);
    const auto l = load_ca(d.path);
    CHECK_FALSE(l.usable());
    CHECK(has_error(l, "chmod 600"));
    ::chmod((d / "ca.key").c_str(), 0640);
    CHECK(has_error(load_ca(d.path), "mode 0640"));
    ::chmod((d / "ca.key").c_str(), 0400);
    CHECK(load_ca(d.path).usable());
  }
  SUBCASE("a key that is not the certificate's") {
    temp_dir other;
    make_ca(d.path);
    make_ca(other.path);
    write_file(d / "ca.key", read_file(other / "ca.key"), 0600);
    const auto l = load_ca(d.path);
    CHECK_FALSE(l.usable());
    CHECK(has_error(l, "do not match"));
  }
  SUBCASE("a certificate that is not a CA") {
    temp_dir other;
    auto ca = make_ca(other.path);
    auto minter = leaf_minter::create(ca);
    REQUIRE(minter.ok());
    auto leaf = (*minter)->mint("www.example.org");
    REQUIRE(leaf.ok());
    write_file(d / "ca.crt", cert_pem(leaf->get()));
    write_file(d / "ca.key", key_pem((*minter)->leaf_key()), 0600);
    const auto l = load_ca(d.path);
    CHECK_FALSE(l.usable());
    CHECK(has_error(l, "is not a CA certificate"));
    CHECK_FALSE(has_error(l, "do not match"));
  }
  SUBCASE("files that are not PEM") {
    write_file(d / "ca.crt", "hello\n");
    write_file(d / "ca.key", "hello\n", 0600);
    const auto l = load_ca(d.path);
    CHECK_FALSE(l.usable());
    CHECK(has_error(l, "is not a PEM certificate"));
    CHECK(has_error(l, "is not an unencrypted PEM private key"));
  }
  SUBCASE("expired, not yet valid, and expiring soon") {
    auto ca = make_ca(d.path);
    CHECK(has_error(load_ca(d.path, ca->not_after + std::chrono::hours(1)), "expired"));
    CHECK(has_error(load_ca(d.path, ca->not_before - std::chrono::hours(1)), "not valid yet"));
    const auto soon = load_ca(d.path, ca->not_after - std::chrono::days(30));
    CHECK(soon.usable());
    REQUIRE(soon.warnings.size() == 1);
    CHECK(soon.warnings[0].find("expires") != std::string::npos);
    CHECK(load_ca(d.path, ca->not_after - std::chrono::days(91)).warnings.empty());
  }
}
