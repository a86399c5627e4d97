#include "certs/leaf_minter.hpp"

#include <arpa/inet.h>
#include <openssl/ec.h>
#include <openssl/err.h>

#include <algorithm>

#include "certs/x509_fields.hpp"

namespace hallpass::certs {
namespace {

// SHA-1 of the public key bits: the usual key identifier (RFC 5280 4.2.1.2, method 1).
asn1_octet_string_ptr key_identifier(EVP_PKEY* key) {
  x509_ptr tmp(X509_new());
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!tmp || X509_set_pubkey(tmp.get(), key) != 1 ||
      X509_pubkey_digest(tmp.get(), EVP_sha1(), md, &len) != 1) {
    return nullptr;
  }
  asn1_octet_string_ptr id(ASN1_OCTET_STRING_new());
  if (!id || ASN1_OCTET_STRING_set(id.get(), md, static_cast<int>(len)) != 1) return nullptr;
  return id;
}

// The leaf key as a legacy EC_KEY-backed EVP_PKEY, used only to set the leaves' public key.
// X509_set_pubkey with a provider key (what EVP_EC_gen makes) runs OpenSSL 3.0's encoder and
// decoder frameworks (encode to DER, decode back, taking the provider tables' locks that every
// handshake takes too): about 250 us of the 290 us a mint took. With a legacy key it is the
// key type's own encoder: about 7 us. The EC_KEY API is deprecated in OpenSSL 3.0, hence the
// local pragma; the key is the same key, and handshakes keep using the provider key.
pkey_ptr legacy_public_key(EVP_PKEY* key) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  EC_KEY* ec = EVP_PKEY_get1_EC_KEY(key);
  pkey_ptr legacy(EVP_PKEY_new());
  if (ec == nullptr || !legacy || EVP_PKEY_assign_EC_KEY(legacy.get(), ec) != 1) {
    EC_KEY_free(ec);
    return nullptr;
  }
#pragma GCC diagnostic pop
  return legacy;
}

// ALPN: http/1.1 when the client offers it; otherwise no ALPN answer, and the client falls
// back to HTTP/1.1 (HTTP/2 to clients can come later).
int select_http11(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                  unsigned int inlen, void*) {
  static const unsigned char ours[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  unsigned char* selected = nullptr;
  unsigned char selected_len = 0;
  if (SSL_select_next_proto(&selected, &selected_len, ours, sizeof ours, in, inlen) !=
      OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;
  }
  *out = selected;
  *outlen = selected_len;
  return SSL_TLSEXT_ERR_OK;
}

bool valid_dns_name(std::string_view h) {
  if (h.empty() || h.size() > 253) return false;
  std::size_t label = 0;
  for (char c : h) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
      continue;
    }
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok || ++label > 63) return false;
  }
  return label > 0;
}

}  // namespace

std::string leaf_minter::normalize_host(std::string_view host) {
  std::string h(host);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  const bool maybe_ip = h.find(':') != std::string::npos ||
                        (!h.empty() && std::all_of(h.begin(), h.end(), [](char c) {
                          return (c >= '0' && c <= '9') || c == '.';
                        }));
  if (maybe_ip) {
    asn1_octet_string_ptr ip(a2i_IPADDRESS(h.c_str()));
    if (!ip) return "";
    // Print it back in one form, so "::0001" and "::1" are one cache entry.
    char text[INET6_ADDRSTRLEN] = {};
    const int len = ASN1_STRING_length(ip.get());
    const int family = len == 4 ? AF_INET : len == 16 ? AF_INET6 : 0;
    if (family == 0 || !inet_ntop(family, ASN1_STRING_get0_data(ip.get()), text, sizeof text))
      return "";
    // "010.0.0.1" is octal to some clients and decimal to others: never guess which.
    if (family == AF_INET && h != text) return "";
    return text;
  }
  for (auto& c : h) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (!h.empty() && h.back() == '.') h.pop_back();
  return valid_dns_name(h) ? h : "";
}

result<std::shared_ptr<const leaf_minter>> leaf_minter::create(
    std::shared_ptr<const authority> ca) {
  using r = result<std::shared_ptr<const leaf_minter>>;
  if (!ca || !ca->certificate || !ca->key)
    return r::failure("no CA to mint leaf certificates with");
  std::shared_ptr<leaf_minter> m(new leaf_minter());
  m->ca_ = std::move(ca);
  m->leaf_key_.reset(EVP_EC_gen("P-256"));
  if (!m->leaf_key_) return r::failure("cannot generate the leaf key: " + openssl_error());
  if (const ASN1_OCTET_STRING* ski = X509_get0_subject_key_id(m->ca_->certificate.get())) {
    m->ca_key_id_.reset(ASN1_OCTET_STRING_dup(ski));
  } else {
    m->ca_key_id_ = key_identifier(m->ca_->key.get());  // a CA made elsewhere, without one
  }
  m->leaf_key_id_ = key_identifier(m->leaf_key_.get());
  if (!m->ca_key_id_ || !m->leaf_key_id_)
    return r::failure("cannot compute key identifiers: " + openssl_error());
  m->leaf_public_key_ = legacy_public_key(m->leaf_key_.get());
  if (!m->leaf_public_key_) return r::failure("cannot copy the leaf key: " + openssl_error());
  // One context for every inspected host. SSL_CTX_new costs about as much as minting a leaf
  // in OpenSSL 3.0 (it fetches every cipher and group from the provider), and takes locks
  // that other threads' handshakes contend for: made once here, never per site.
  ssl_ctx_ptr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx || SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION) != 1)
    return r::failure("cannot make the server TLS context: " + openssl_error());
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_RENEGOTIATION);
  // No server-side session cache (it would hold sessions of every site in one table that each
  // handshake locks): clients resume with stateless session tickets instead.
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  // Idle inspected connections hold no buffers.
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_alpn_select_cb(ctx.get(), select_http11, nullptr);
  m->server_ctx_ = std::shared_ptr<SSL_CTX>(ctx.release(), SSL_CTX_free);
  return std::shared_ptr<const leaf_minter>(std::move(m));
}

result<x509_ptr> leaf_minter::mint(std::string_view host, clock::time_point now) const {
  using r = result<x509_ptr>;
  const std::string h = normalize_host(host);
  if (h.empty())
    return r::failure("'" + std::string(host) + "' is neither a DNS name nor an IP address");
  asn1_octet_string_ptr ip(h.find_first_not_of("0123456789.") == std::string::npos ||
                                   h.find(':') != std::string::npos
                               ? a2i_IPADDRESS(h.c_str())
                               : nullptr);
  const X509* ca_cert = ca_->certificate.get();
  x509_ptr x(X509_new());
  auto serial = random_serial(16);
  if (!x || !serial) return r::failure("cannot start a certificate: " + openssl_error());

  const std::string cn = h.substr(0, 64);  // ub-common-name; the SAN carries the whole name
  basic_constraints_ptr bc(BASIC_CONSTRAINTS_new());
  asn1_bit_string_ptr ku(ASN1_BIT_STRING_new());
  eku_ptr eku(sk_ASN1_OBJECT_new_null());
  general_names_ptr san(sk_GENERAL_NAME_new_null());
  authority_keyid_ptr aki(AUTHORITY_KEYID_new());
  if (!bc || !ku || !eku || !san || !aki) return r::failure("out of memory minting a certificate");
  bc->ca = 0;
  ASN1_BIT_STRING_set_bit(ku.get(), 0, 1);  // digitalSignature (ECDHE key exchange signs)
  sk_ASN1_OBJECT_push(eku.get(), OBJ_nid2obj(NID_server_auth));
  GENERAL_NAME* name = GENERAL_NAME_new();
  if (!name) return r::failure("out of memory minting a certificate");
  if (ip) {
    GENERAL_NAME_set0_value(name, GEN_IPADD, ip.release());
  } else {
    ASN1_IA5STRING* dns = ASN1_IA5STRING_new();
    if (!dns || ASN1_STRING_set(dns, h.data(), static_cast<int>(h.size())) != 1) {
      ASN1_IA5STRING_free(dns);
      GENERAL_NAME_free(name);
      return r::failure("out of memory minting a certificate");
    }
    GENERAL_NAME_set0_value(name, GEN_DNS, dns);
  }
  sk_GENERAL_NAME_push(san.get(), name);
  aki->keyid = ASN1_OCTET_STRING_dup(ca_key_id_.get());

  // Within the CA's own validity at both ends: backdated for clients whose clocks run a little
  // slow, but never to before the CA began (a CA made minutes ago; outside-in audit, 2026-12-05).
  const auto not_before = std::max(now - leaf_backdate, ca_->not_before);
  const auto not_after = std::min(now + leaf_lifetime, ca_->not_after);
  X509_NAME* subject = X509_get_subject_name(x.get());
  const bool built =
      X509_set_version(x.get(), X509_VERSION_3) == 1 &&
      X509_set_serialNumber(x.get(), serial.get()) == 1 &&
      X509_NAME_add_entry_by_NID(subject, NID_commonName, MBSTRING_ASC,
                                 reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                                 0) == 1 &&
      X509_set_issuer_name(x.get(), X509_get_subject_name(ca_cert)) == 1 &&
      set_time(X509_getm_notBefore(x.get()), not_before) &&
      set_time(X509_getm_notAfter(x.get()), not_after) &&
      X509_set_pubkey(x.get(), leaf_public_key_.get()) == 1 &&
      X509_add1_ext_i2d(x.get(), NID_basic_constraints, bc.get(), 1, X509V3_ADD_DEFAULT) == 1 &&
      X509_add1_ext_i2d(x.get(), NID_key_usage, ku.get(), 1, X509V3_ADD_DEFAULT) == 1 &&
      X509_add1_ext_i2d(x.get(), NID_ext_key_usage, eku.get(), 0, X509V3_ADD_DEFAULT) == 1 &&
      X509_add1_ext_i2d(x.get(), NID_subject_alt_name, san.get(), 0, X509V3_ADD_DEFAULT) == 1 &&
      X509_add1_ext_i2d(x.get(), NID_authority_key_identifier, aki.get(), 0, X509V3_ADD_DEFAULT) ==
          1 &&
      X509_add1_ext_i2d(x.get(), NID_subject_key_identifier, leaf_key_id_.get(), 0,
                        X509V3_ADD_DEFAULT) == 1 &&
      X509_sign(x.get(), ca_->key.get(), EVP_sha256()) > 0;
  if (!built) return r::failure("cannot mint a certificate for " + h + ": " + openssl_error());
  return x;
}

bool leaf_minter::use_leaf(SSL* ssl, X509* leaf) const {
  // Reference counts, no copies; SSL_use_PrivateKey also checks that the key is the leaf's
  // (a comparison of two P-256 points).
  return SSL_use_certificate(ssl, leaf) == 1 && SSL_use_PrivateKey(ssl, leaf_key_.get()) == 1;
}

}  // namespace hallpass::certs
