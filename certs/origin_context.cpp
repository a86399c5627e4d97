#include "certs/origin_context.hpp"

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <array>

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

bool is_ip_literal(const std::string& host) {
  // What OpenSSL itself would parse as an address (IPv4 dotted or IPv6).
  ASN1_OCTET_STRING* ip = a2i_IPADDRESS(host.c_str());
  if (ip == nullptr) return false;
  ASN1_OCTET_STRING_free(ip);
  return true;
}

}  // namespace

result<std::shared_ptr<SSL_CTX>> make_origin_context(const std::string& extra_ca_file) {
  std::shared_ptr<SSL_CTX> ctx(SSL_CTX_new(TLS_client_method()), SSL_CTX_free);
  if (!ctx) return result<std::shared_ptr<SSL_CTX>>::failure(openssl_error("cannot make a TLS client context"));
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
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
  // Sessions the origins issue go to the connection's origin_sessions store (per worker, keyed
  // by origin), never to OpenSSL's internal cache, which is keyed by nothing the proxy chooses.
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx.get(), &origin_sessions::on_new_session);
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

std::string verify_failure(SSL* ssl) {
  const long r = SSL_get_verify_result(ssl);
  if (r == X509_V_OK) return {};
  return X509_verify_cert_error_string(r);
}

}  // namespace hallpass::certs
