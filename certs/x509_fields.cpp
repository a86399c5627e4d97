#include "certs/x509_fields.hpp"

#include <openssl/rand.h>

#include <ctime>

namespace hallpass::certs {

asn1_integer_ptr random_serial(int bytes) {
  unsigned char buf[20];
  if (bytes < 1 || bytes > 19 || RAND_bytes(buf, bytes) != 1) return nullptr;
  buf[bytes - 1] |= 1;  // never zero
  bignum_ptr bn(BN_bin2bn(buf, bytes, nullptr));
  if (!bn) return nullptr;
  return asn1_integer_ptr(BN_to_ASN1_INTEGER(bn.get(), nullptr));
}

std::chrono::system_clock::time_point to_time_point(const ASN1_TIME* t) {
  std::tm tm{};
  if (!t || ASN1_TIME_to_tm(t, &tm) != 1) return {};
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

bool set_time(ASN1_TIME* t, std::chrono::system_clock::time_point at) {
  const std::time_t seconds = std::chrono::system_clock::to_time_t(at);
  // ASN1_TIME_adj picks UTCTime before 2050 and GeneralizedTime after, as RFC 5280 4.1.2.5 asks.
  return ASN1_TIME_adj(t, seconds, 0, 0) != nullptr;
}

std::string sha256_fingerprint(const X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(cert, EVP_sha256(), md, &len) != 1) return "";
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    if (i) out += ':';
    out += hex[md[i] >> 4];
    out += hex[md[i] & 15];
  }
  return out;
}

std::string one_line_name(const X509_NAME* name) {
  bio_ptr bio(BIO_new(BIO_s_mem()));
  if (!bio || X509_NAME_print_ex(bio.get(), name, 0,
                                 XN_FLAG_RFC2253 & ~XN_FLAG_DN_REV & ~ASN1_STRFLGS_ESC_MSB) < 0)
    return "";
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

std::string key_type(const EVP_PKEY* key) {
  switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_EC: {
      char group[64] = {};
      std::size_t len = 0;
      if (EVP_PKEY_get_group_name(key, group, sizeof group, &len) != 1) return "ECDSA";
      const std::string g(group, len);
      if (g == "prime256v1" || g == "P-256") return "ECDSA P-256";
      if (g == "secp384r1" || g == "P-384") return "ECDSA P-384";
      if (g == "secp521r1" || g == "P-521") return "ECDSA P-521";
      return "ECDSA " + g;
    }
    case EVP_PKEY_RSA:
      return "RSA " + std::to_string(EVP_PKEY_get_bits(key));
    case EVP_PKEY_ED25519:
      return "Ed25519";
    default:
      return "unknown key type";
  }
}

std::string utc_text(std::chrono::system_clock::time_point t) {
  const std::time_t s = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&s, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", &tm);
  return buf;
}

std::string truncate_utf8(std::string_view s, std::size_t max_chars) {
  std::size_t chars = 0, i = 0;
  for (; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if ((c & 0xC0) != 0x80) {  // the first byte of a character
      if (chars == max_chars) break;
      ++chars;
    }
  }
  return std::string(s.substr(0, i));
}

}  // namespace hallpass::certs
