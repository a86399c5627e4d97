#include "certs/origin_context.hpp"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <ctime>
#include <memory>

#include "certs/fetched_issuers.hpp"
#include "certs/origin_sessions.hpp"

namespace hallpass::certs {
namespace {

std::string openssl_error(std::string_view what) {
  std::string s(what);
  if (const unsigned long e = ERR_get_error(); e != 0) {
    std::array<char, 256> buf{};
    ERR_error_string_n(e, buf.data(), buf.size());
    s += ": ";
    s += buf.data();
  }
  ERR_clear_error();
  return s;
}

// What the first failed check of an origin's chain was, kept on the SSL (ex_data) by
// on_verify for verify_failure's words: which certificate, its names and dates.
struct verify_note {
  int depth = -1;
  std::string subject;      // the failing certificate's subject CN (or whole name), printable
  std::string issuer;       // its issuer's CN
  std::string not_before, not_after;  // YYYY-MM-DD
  bool has_san = false;
  std::string names;        // up to four DNS/IP names of its subjectAltName, comma separated
  // When its issuer was not found: where its Authority Information Access says the issuer's
  // certificate is (the first http:// "CA Issuers" address), for fetched_issuers.hpp.
  std::string issuer_url;
  std::string revoked_on;  // YYYY-MM-DD: a stapled OCSP response says the leaf was revoked then
  bool ca_as_leaf = false;  // refused as a CA certificate used as the site's own (on_verify)
};

void free_note(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) { delete static_cast<verify_note*>(ptr); }

int note_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, &free_note);
  return index;
}

// Printable ASCII of at most 100 bytes: certificate text reaches a page and the log.
std::string printable(std::string_view text) {
  std::string out;
  for (const char c : text.substr(0, 100)) out.push_back(c >= 0x20 && c < 0x7F ? c : '?');
  return out;
}

std::string common_name(const X509_NAME* name) {
  if (name == nullptr) return {};
  const int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (i >= 0) {
    unsigned char* utf8 = nullptr;
    const int n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)));
    if (n >= 0) {
      std::string cn(reinterpret_cast<const char*>(utf8), static_cast<std::size_t>(n));
      OPENSSL_free(utf8);
      return printable(cn);
    }
  }
  std::array<char, 256> buf{};
  X509_NAME_oneline(name, buf.data(), static_cast<int>(buf.size()));
  return printable(buf.data());
}

std::string day_of(const ASN1_TIME* t) {
  struct tm tm {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return "?";
  std::array<char, 16> buf{};
  std::strftime(buf.data(), buf.size(), "%Y-%m-%d", &tm);
  return buf.data();
}

// The first http:// "CA Issuers" address in c's Authority Information Access, if it is
// visible ASCII and at most 1,000 bytes; "" otherwise (ldap: and other schemes are not
// fetched, as browsers do not fetch them).
std::string ca_issuers_url(X509* c) {
  auto* aia = static_cast<AUTHORITY_INFO_ACCESS*>(X509_get_ext_d2i(c, NID_info_access, nullptr, nullptr));
  if (aia == nullptr) return {};
  std::string url;
  for (int i = 0; i < sk_ACCESS_DESCRIPTION_num(aia) && url.empty(); ++i) {
    const ACCESS_DESCRIPTION* ad = sk_ACCESS_DESCRIPTION_value(aia, i);
    if (OBJ_obj2nid(ad->method) != NID_ad_ca_issuers || ad->location->type != GEN_URI) continue;
    const ASN1_IA5STRING* uri = ad->location->d.uniformResourceIdentifier;
    const std::string_view text(reinterpret_cast<const char*>(ASN1_STRING_get0_data(uri)),
                                static_cast<std::size_t>(ASN1_STRING_length(uri)));
    const bool visible = std::all_of(text.begin(), text.end(), [](char ch) { return ch > 0x20 && ch < 0x7F; });
    if (!visible || text.size() > 1000 || text.size() < 8) continue;
    std::string scheme(text.substr(0, 7));
    std::transform(scheme.begin(), scheme.end(), scheme.begin(), [](unsigned char ch) { return std::tolower(ch); });
    if (scheme == "http://") url = text;
  }
  AUTHORITY_INFO_ACCESS_free(aia);
  return url;
}

// Whether a dNSName of the site's subjectAltName has a byte outside ASCII (0x80 and above): an
// IA5String holds ASCII only, and Chromium refuses such a certificate (its parser rejects a
// dNSName outside ASCII), where OpenSSL matches the other names and lets it pass (outside-in
// audit of HTTPS, 2026-12-07: known gap until the ninth session). A name with a space or a
// control character is ASCII: Chromium accepts the certificate (such a name matches no host),
// and so does hallpass (review of the ninth session: "DNS:My Printer" on a school appliance).
bool has_malformed_dns_name(X509* cert) {
  auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (sans == nullptr) return false;
  bool malformed = false;
  for (int i = 0; i < sk_GENERAL_NAME_num(sans) && !malformed; ++i) {
    const GENERAL_NAME* g = sk_GENERAL_NAME_value(sans, i);
    if (g->type != GEN_DNS) continue;
    const unsigned char* bytes = ASN1_STRING_get0_data(g->d.dNSName);
    const int length = ASN1_STRING_length(g->d.dNSName);
    for (int k = 0; k < length; ++k) {
      if (bytes[k] >= 0x80) {
        malformed = true;
        break;
      }
    }
  }
  GENERAL_NAMES_free(sans);
  return malformed;
}

// The first failure of a chain, noted; and three checks OpenSSL does not make of the site's own
// certificate: a keyUsage that leaves out digitalSignature cannot sign the handshake (every
// suite offered is ECDHE or TLS 1.3), and browsers refuse it (Chromium:
// ERR_SSL_KEY_USAGE_INCOMPATIBLE); and a CA certificate (basicConstraints CA:TRUE) issued by
// another CA is no site's certificate (Firefox: MOZILLA_PKIX_ERROR_CA_CERT_USED_AS_END_ENTITY;
// `openssl verify -x509_strict` refuses it; outside-in audit, 2026-12-05). A self-signed one,
// trusted as itself through upstream.ca_file (a school's own server made with
// `openssl req -x509`, which marks it CA:TRUE), is the school's explicit choice and passes. And a
// DNS name outside visible ASCII (has_malformed_dns_name).
int on_verify(int ok, X509_STORE_CTX* ctx) {
  X509* cert = X509_STORE_CTX_get_current_cert(ctx);
  const int depth = X509_STORE_CTX_get_error_depth(ctx);
  if (ok == 1 && depth == 0 && cert != nullptr) {
    const std::uint32_t usage = X509_get_key_usage(cert);
    if (has_malformed_dns_name(cert)) {
      X509_STORE_CTX_set_error(ctx, X509_V_ERR_UNSUPPORTED_NAME_SYNTAX);
      ok = 0;
    } else if (usage != UINT32_MAX && (usage & KU_DIGITAL_SIGNATURE) == 0) {
      X509_STORE_CTX_set_error(ctx, X509_V_ERR_KEYUSAGE_NO_DIGITAL_SIGNATURE);
      ok = 0;
    } else if ((X509_get_extension_flags(cert) & EXFLAG_CA) != 0 && (X509_get_extension_flags(cert) & EXFLAG_SS) == 0) {
      X509_STORE_CTX_set_error(ctx, X509_V_ERR_INVALID_PURPOSE);
      ok = 0;
    }
  }
  if (ok == 1) return 1;
  auto* ssl = static_cast<SSL*>(X509_STORE_CTX_get_ex_data(ctx, SSL_get_ex_data_X509_STORE_CTX_idx()));
  if (ssl == nullptr || SSL_get_ex_data(ssl, note_index()) != nullptr) return 0;
  auto note = std::make_unique<verify_note>();
  note->depth = depth;
  note->ca_as_leaf = depth == 0 && cert != nullptr && (X509_get_extension_flags(cert) & EXFLAG_CA) != 0 &&
                     (X509_get_extension_flags(cert) & EXFLAG_SS) == 0 &&
                     X509_STORE_CTX_get_error(ctx) == X509_V_ERR_INVALID_PURPOSE;
  if (cert != nullptr) {
    const int error = X509_STORE_CTX_get_error(ctx);
    if (error == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY || error == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT) {
      note->issuer_url = ca_issuers_url(cert);
    }
    note->subject = common_name(X509_get_subject_name(cert));
    note->issuer = common_name(X509_get_issuer_name(cert));
    note->not_before = day_of(X509_get0_notBefore(cert));
    note->not_after = day_of(X509_get0_notAfter(cert));
    if (auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr))) {
      note->has_san = true;
      int shown = 0;
      for (int i = 0; i < sk_GENERAL_NAME_num(sans) && shown < 4; ++i) {
        const GENERAL_NAME* g = sk_GENERAL_NAME_value(sans, i);
        std::string name;
        if (g->type == GEN_DNS) {
          name = printable(std::string_view(reinterpret_cast<const char*>(ASN1_STRING_get0_data(g->d.dNSName)),
                                            static_cast<std::size_t>(ASN1_STRING_length(g->d.dNSName))));
        } else if (g->type == GEN_IPADD) {
          const int length = ASN1_STRING_length(g->d.iPAddress);
          std::array<char, INET6_ADDRSTRLEN> text{};
          if ((length == 4 || length == 16) &&
              inet_ntop(length == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(g->d.iPAddress), text.data(),
                        static_cast<socklen_t>(text.size())) != nullptr) {
            name = text.data();
          }
        }
        if (name.empty()) continue;
        note->names += (shown++ ? ", " : "") + name;
      }
      GENERAL_NAMES_free(sans);
    }
  }
  if (SSL_set_ex_data(ssl, note_index(), note.get()) == 1) note.release();
  return 0;
}

// A stapled OCSP response (RFC 6066 8, the origin's own, sent in its handshake) that says the
// site's certificate is revoked fails the handshake, as Firefox does: only a response verified
// against the chain just built and the trust store (signed by the issuer or a responder it
// authorised), about the leaf, and current (thisUpdate to nextUpdate, 5 minutes' leeway).
// Nothing stapled, a response that cannot be read or verified, "good" or "unknown": accepted,
// as before. No online check is made: a gateway that asked each CA about each site would tell
// the CAs every visit and wait on them (and browsers do not either).
// Called by OpenSSL after the chain was verified (SSL_VERIFY_PEER): after ServerHelloDone in
// TLS 1.2, after the server's Finished in TLS 1.3 (also on a resumption, which carries no
// staple). A session resumed from before a revocation goes on until it expires.
int on_ocsp_status(SSL* ssl, void* /*arg*/) {
  const unsigned char* der = nullptr;
  const long length = SSL_get_tlsext_status_ocsp_resp(ssl, &der);
  if (length <= 0 || der == nullptr) return 1;
  STACK_OF(X509)* chain = SSL_get0_verified_chain(ssl);
  if (chain == nullptr || sk_X509_num(chain) < 2) return 1;
  X509* leaf = sk_X509_value(chain, 0);
  X509* issuer = sk_X509_value(chain, 1);
  const std::unique_ptr<OCSP_RESPONSE, decltype(&OCSP_RESPONSE_free)> response(
      d2i_OCSP_RESPONSE(nullptr, &der, length), &OCSP_RESPONSE_free);
  if (!response || OCSP_response_status(response.get()) != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
    ERR_clear_error();
    return 1;
  }
  const std::unique_ptr<OCSP_BASICRESP, decltype(&OCSP_BASICRESP_free)> basic(
      OCSP_response_get1_basic(response.get()), &OCSP_BASICRESP_free);
  if (!basic) {
    ERR_clear_error();
    return 1;
  }
  // The answer about the leaf: each single response names its certificate by a hash of the
  // issuer's name and key, in the hash its responder chose (SHA-1 usually, SHA-256 some), and
  // the serial; the leaf's id is made in that same hash to compare.
  int status = -1, reason = -1;
  ASN1_GENERALIZEDTIME *revoked_at = nullptr, *this_update = nullptr, *next_update = nullptr;
  for (int i = 0; i < OCSP_resp_count(basic.get()) && status == -1; ++i) {
    OCSP_SINGLERESP* single = OCSP_resp_get0(basic.get(), i);
    ASN1_OBJECT* hash = nullptr;
    if (OCSP_id_get0_info(nullptr, &hash, nullptr, nullptr, const_cast<OCSP_CERTID*>(OCSP_SINGLERESP_get0_id(single))) != 1) {
      continue;
    }
    const EVP_MD* md = EVP_get_digestbyobj(hash);
    if (md == nullptr) continue;
    const std::unique_ptr<OCSP_CERTID, decltype(&OCSP_CERTID_free)> id(OCSP_cert_to_id(md, leaf, issuer),
                                                                       &OCSP_CERTID_free);
    if (!id || OCSP_id_cmp(id.get(), OCSP_SINGLERESP_get0_id(single)) != 0) continue;
    status = OCSP_single_get0_status(single, &reason, &revoked_at, &this_update, &next_update);
  }
  // Verified (a signature check) only when it would refuse the site: "good" and "unknown" are
  // accepted anyway, so most staples cost no verification.
  X509_STORE* store = SSL_CTX_get_cert_store(SSL_get_SSL_CTX(ssl));
  const bool revoked = status == V_OCSP_CERTSTATUS_REVOKED &&
                       OCSP_check_validity(this_update, next_update, 300, -1) == 1 &&
                       OCSP_basic_verify(basic.get(), chain, store, 0) == 1;
  ERR_clear_error();
  if (!revoked) return 1;
  // verify_failure names it; upstream.cpp then refuses the site as for any failed check.
  SSL_set_verify_result(ssl, X509_V_ERR_CERT_REVOKED);
  if (SSL_get_ex_data(ssl, note_index()) == nullptr) {
    auto note = std::make_unique<verify_note>();
    note->depth = 0;
    note->subject = common_name(X509_get_subject_name(leaf));
    note->issuer = common_name(X509_get_issuer_name(leaf));
    note->revoked_on = day_of(revoked_at);
    if (SSL_set_ex_data(ssl, note_index(), note.get()) == 1) note.release();
  }
  return 0;  // the handshake fails
}

// The flag asked_for_client_certificate reads: set when the origin sent a CertificateRequest.
// The callback sends no certificate (an inspecting proxy has none of the device's to give).
int asked_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

int on_client_certificate_request(SSL* ssl, X509** /*cert*/, EVP_PKEY** /*key*/) {
  static int asked = 1;  // any non-null pointer: the flag owns nothing
  SSL_set_ex_data(ssl, asked_index(), &asked);
  return 0;  // no certificate
}

bool is_ip_literal(const std::string& host) {
  // What OpenSSL itself would parse as an address (IPv4 dotted or IPv6).
  ASN1_OCTET_STRING* ip = a2i_IPADDRESS(host.c_str());
  if (ip == nullptr) return false;
  ASN1_OCTET_STRING_free(ip);
  return true;
}

// Keeps the context's fetched_issuers alive as long as the context (SSL objects hold it too).
void free_issuers(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  delete static_cast<std::shared_ptr<fetched_issuers>*>(ptr);
}

int issuers_index() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, &free_issuers);
  return index;
}

}  // namespace

result<std::shared_ptr<SSL_CTX>> make_origin_context(const std::string& extra_ca_file,
                                                     std::shared_ptr<fetched_issuers> issuers) {
  std::shared_ptr<SSL_CTX> ctx(SSL_CTX_new(TLS_client_method()), SSL_CTX_free);
  if (!ctx) return result<std::shared_ptr<SSL_CTX>>::failure(openssl_error("cannot make a TLS client context"));
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  // Not below OpenSSL's level 2 whatever the system's openssl.cnf says (a "legacy fix" there
  // lowers it for every program): no RSA or DH key under 2048 bits, no SHA-1 or MD5 signature.
  SSL_CTX_set_security_level(ctx.get(), std::max(2, SSL_CTX_get_security_level(ctx.get())));
  // TLS 1.2 with forward secrecy only (ECDHE), as browsers now offer it: the origin's key then
  // always signs the handshake, so on_verify can hold its keyUsage to digitalSignature.
  if (SSL_CTX_set_cipher_list(ctx.get(), "ECDHE:!aNULL:!eNULL") != 1) {
    return result<std::shared_ptr<SSL_CTX>>::failure(openssl_error("cannot set the TLS 1.2 cipher suites"));
  }
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, &on_verify);
  if (SSL_CTX_set_default_verify_paths(ctx.get()) != 1) {
    return result<std::shared_ptr<SSL_CTX>>::failure(openssl_error("cannot read the system's trusted certificates"));
  }
  if (!extra_ca_file.empty() && SSL_CTX_load_verify_locations(ctx.get(), extra_ca_file.c_str(), nullptr) != 1) {
    return result<std::shared_ptr<SSL_CTX>>::failure(
        openssl_error("upstream.ca_file: cannot read CA certificates from '" + extra_ca_file + "'"));
  }
  static constexpr unsigned char alpn[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  SSL_CTX_set_alpn_protos(ctx.get(), alpn, sizeof alpn);
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_client_cert_cb(ctx.get(), &on_client_certificate_request);
  // Ask for the origin's stapled OCSP response, and refuse a verified "revoked" (on_ocsp_status).
  SSL_CTX_set_tlsext_status_type(ctx.get(), TLSEXT_STATUSTYPE_ocsp);
  SSL_CTX_set_tlsext_status_cb(ctx.get(), &on_ocsp_status);
  // Sessions the origins issue go to the connection's origin_sessions store (per worker, keyed
  // by origin), never to OpenSSL's internal cache, which is keyed by nothing the proxy chooses.
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx.get(), &origin_sessions::on_new_session);
  if (issuers) {
    auto* kept = new std::shared_ptr<fetched_issuers>(issuers);
    if (SSL_CTX_set_ex_data(ctx.get(), issuers_index(), kept) != 1) {
      delete kept;
      return result<std::shared_ptr<SSL_CTX>>::failure(openssl_error("cannot keep the fetched issuers"));
    }
    verify_with_fetched_issuers(ctx.get(), issuers.get());
  }
  return ctx;
}

bool prepare_origin_ssl(SSL* ssl, const std::string& host) {
  if (is_ip_literal(host)) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    return X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str()) == 1;
  }
  if (SSL_set_tlsext_host_name(ssl, host.c_str()) != 1) return false;
  // NEVER_CHECK_SUBJECT: a name only in the subject's CN (no subjectAltName) does not match, as
  // browsers have required since 2017 (RFC 6125 6.4.4 leaves it to the client; OpenSSL falls
  // back to the CN by default). The school's CA must not vouch for what a browser would refuse.
  SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS | X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
  return SSL_set1_host(ssl, host.c_str()) == 1;
}

bool asked_for_client_certificate(const SSL* ssl) {
  return ssl != nullptr && SSL_get_ex_data(ssl, asked_index()) != nullptr;
}

std::string missing_issuer_url(SSL* ssl) {
  const long r = SSL_get_verify_result(ssl);
  if (r != X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY && r != X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT) return {};
  const auto* note = static_cast<const verify_note*>(SSL_get_ex_data(ssl, note_index()));
  return note == nullptr ? std::string() : note->issuer_url;
}

std::string verify_failure(SSL* ssl) {
  const long r = SSL_get_verify_result(ssl);
  if (r == X509_V_OK) return {};
  std::string why = X509_verify_cert_error_string(r);
  const auto* note = static_cast<const verify_note*>(SSL_get_ex_data(ssl, note_index()));
  if (note == nullptr) return why;
  // Which certificate: the site's own, or one it sent with it (or the chain's top).
  const std::string which = note->depth == 0 ? "the site's own certificate ('" + note->subject + "')"
                                             : "the certificate '" + note->subject + "' that vouches for it";
  switch (r) {
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
      if (!note->has_san) {
        return why + ": the certificate names the site only in its common name ('" + note->subject +
               "') and has no subjectAltName, which browsers refuse";
      }
      return why + ": the certificate is for " + note->names + (note->names.find(',') == std::string::npos ? "" : ", ...");
    case X509_V_ERR_CERT_HAS_EXPIRED:
      return why + ": " + which + " expired on " + note->not_after;
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return why + ": " + which + " is valid only from " + note->not_before;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
      return why + ": nothing trusted here issued '" + note->issuer + "' (for " + note->subject +
             "): the site sent no intermediate certificate, or it uses a private CA that is in neither the "
             "system's store nor upstream.ca_file";
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
      return why + ": '" + note->subject + "' is in neither the system's store nor upstream.ca_file";
    case X509_V_ERR_CERT_REVOKED:
      return why + ": " + which + " was revoked by '" + note->issuer + "' on " + note->revoked_on +
             ", as the site's own stapled OCSP response says";
    case X509_V_ERR_UNSUPPORTED_NAME_SYNTAX:
      return why + ": the site's own certificate ('" + note->subject +
             "') lists a DNS name with letters outside ASCII (a name must be written in its xn-- form), "
             "which browsers refuse";
    case X509_V_ERR_KEYUSAGE_NO_DIGITAL_SIGNATURE:
      return why + ": its keyUsage does not allow signing the connection, which browsers refuse";
    case X509_V_ERR_INVALID_PURPOSE:
      if (note->ca_as_leaf) {
        return why + ": the site's own certificate ('" + note->subject +
               "') is a CA certificate (basicConstraints CA:TRUE), which no site may use as its own and "
               "browsers refuse";
      }
      return why + " (" + which + ")";
    default:
      return why + " (" + which + ")";
  }
}

}  // namespace hallpass::certs
