#include "proxy/negotiate_acceptor.hpp"

#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cctype>

#include "proxy/base64.hpp"

namespace hallpass {

struct negotiate_context {
  gss_ctx_id_t handle = GSS_C_NO_CONTEXT;
  unsigned legs = 0;
  negotiate_context() = default;
  negotiate_context(const negotiate_context&) = delete;
  negotiate_context& operator=(const negotiate_context&) = delete;
  ~negotiate_context() {
    OM_uint32 minor = 0;
    if (handle != GSS_C_NO_CONTEXT) gss_delete_sec_context(&minor, &handle, GSS_C_NO_BUFFER);
  }
};

std::shared_ptr<negotiate_context> make_negotiate_context() { return std::make_shared<negotiate_context>(); }

struct negotiate_acceptor::credential {
  gss_cred_id_t handle = GSS_C_NO_CREDENTIAL;
  credential() = default;
  credential(const credential&) = delete;
  credential& operator=(const credential&) = delete;
  ~credential() {
    OM_uint32 minor = 0;
    if (handle != GSS_C_NO_CREDENTIAL) gss_release_cred(&minor, &handle);
  }
};

namespace {

constexpr std::size_t max_token_base64 = 64 * 1024;  // Active Directory tickets with a PAC reach ~16 KiB

// Whether GSS-API's words for a refused ticket say the keytab, not the ticket, is at fault: no
// entry for the ticket's service principal, another key version, the file gone ("Cannot find
// key for HTTP/proxy@REALM kvno 3 in keytab", "Request ticket server ... not found in keytab",
// "Key table file '...' not found"). By the words, as the minor code cannot tell: MIT's
// mechanism glue hands out its own numbers for the Kerberos mechanism's codes (100005 for a
// missing key version). Words that say neither are the client's, counted as before.
bool keytab_has_no_key_for(std::string_view words) {
  std::string lower(words);
  for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return lower.find("keytab") != std::string::npos || lower.find("key table") != std::string::npos;
}

// GSS-API's words for a status: the major code's, then the mechanism's (minor) ones.
std::string gss_words(OM_uint32 major, OM_uint32 minor) {
  std::string out;
  const auto append = [&out](OM_uint32 code, int type) {
    OM_uint32 ctx = 0, m = 0;
    for (int i = 0; i < 8; ++i) {
      gss_buffer_desc b = GSS_C_EMPTY_BUFFER;
      if (GSS_ERROR(gss_display_status(&m, code, type, GSS_C_NO_OID, &ctx, &b))) break;
      if (!out.empty()) out += ": ";
      out.append(static_cast<const char*>(b.value), b.length);
      gss_release_buffer(&m, &b);
      if (ctx == 0) break;
    }
  };
  append(major, GSS_C_GSS_CODE);
  if (minor != 0) append(minor, GSS_C_MECH_CODE);
  return out;
}

std::string display_name(gss_name_t name) {
  OM_uint32 minor = 0;
  gss_buffer_desc b = GSS_C_EMPTY_BUFFER;
  if (GSS_ERROR(gss_display_name(&minor, name, &b, nullptr))) return {};
  std::string out(static_cast<const char*>(b.value), b.length);
  gss_release_buffer(&minor, &b);
  return out;
}

// Strict base64 (RFC 4648 alphabet, padded): false for anything else.
bool decode_base64(std::string_view in, std::string& out) {
  if (in.empty() || in.size() % 4 != 0 || in.size() > max_token_base64) return false;
  for (char c : in) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '/' && c != '=') return false;
  }
  const auto pad = in.ends_with("==") ? 2u : in.ends_with("=") ? 1u : 0u;
  if (in.substr(0, in.size() - pad).find('=') != std::string_view::npos) return false;
  out.resize(in.size() / 4 * 3);
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  if (n < 0 || static_cast<std::size_t>(n) < pad) return false;
  out.resize(static_cast<std::size_t>(n) - pad);
  return true;
}

}  // namespace

bool is_negotiate(std::string_view header) {
  while (!header.empty() && header.front() == ' ') header.remove_prefix(1);
  if (header.size() < 10) return false;
  std::string scheme(header.substr(0, 10));
  for (auto& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return scheme == "negotiate ";
}

std::string negotiate_user_name(std::string_view principal, std::string_view acceptor_realm) {
  const auto at = principal.rfind('@');
  if (at == std::string_view::npos || acceptor_realm.empty()) return std::string(principal);
  if (principal.substr(at + 1) != acceptor_realm) return std::string(principal);
  return std::string(principal.substr(0, at));
}

negotiate_acceptor::negotiate_acceptor() = default;
negotiate_acceptor::~negotiate_acceptor() = default;

std::shared_ptr<negotiate_acceptor::credential> negotiate_acceptor::credential_for(const negotiate_settings& s,
                                                                                   std::string* error) {
  std::lock_guard lock(mutex_);
  if (cred_ && cred_settings_ == s) return cred_;
  OM_uint32 minor = 0;
  gss_name_t name = GSS_C_NO_NAME;
  if (!s.principal.empty()) {
    gss_buffer_desc b{s.principal.size(), const_cast<char*>(s.principal.data())};
    const OM_uint32 major = gss_import_name(&minor, &b, GSS_KRB5_NT_PRINCIPAL_NAME, &name);
    if (GSS_ERROR(major)) {
      *error = "logins.negotiate.principal " + s.principal + ": " + gss_words(major, minor);
      return nullptr;
    }
  }
  gss_key_value_element_desc keytab{"keytab", s.keytab.c_str()};
  gss_key_value_set_desc store{1, &keytab};
  auto cred = std::make_shared<credential>();
  const OM_uint32 major = gss_acquire_cred_from(&minor, name, GSS_C_INDEFINITE, GSS_C_NO_OID_SET, GSS_C_ACCEPT, &store,
                                                &cred->handle, nullptr, nullptr);
  if (name != GSS_C_NO_NAME) {
    OM_uint32 m = 0;
    gss_release_name(&m, &name);
  }
  if (GSS_ERROR(major)) {
    *error = "the keytab " + s.keytab + (s.principal.empty() ? "" : " for " + s.principal) +
             " cannot be used: " + gss_words(major, minor);
    return nullptr;
  }
  cred_settings_ = s;
  cred_ = cred;
  return cred;
}

negotiate_acceptor::outcome negotiate_acceptor::accept(const negotiate_settings& s, negotiate_context& ctx,
                                                       std::string_view header) {
  using st = outcome::status;
  outcome o;
  while (!header.empty() && header.front() == ' ') header.remove_prefix(1);
  if (!is_negotiate(header)) {
    o.detail = "not a Negotiate token";
    return o;
  }
  header.remove_prefix(10);
  while (!header.empty() && header.front() == ' ') header.remove_prefix(1);
  while (!header.empty() && header.back() == ' ') header.remove_suffix(1);
  if (++ctx.legs > max_legs) {
    o.detail = "more than " + std::to_string(max_legs) + " Negotiate legs on one connection";
    return o;
  }
  std::string token;
  if (!decode_base64(header, token)) {
    o.detail = "the Negotiate token is not base64 (or is too long)";
    return o;
  }
  std::string error;
  const auto cred = credential_for(s, &error);
  if (!cred) {
    o.result = st::unavailable;
    o.detail = std::move(error);
    return o;
  }
  OM_uint32 minor = 0;
  gss_buffer_desc in{token.size(), token.data()};
  gss_buffer_desc out = GSS_C_EMPTY_BUFFER;
  gss_name_t client = GSS_C_NO_NAME;
  const OM_uint32 major = gss_accept_sec_context(&minor, &ctx.handle, cred->handle, &in, GSS_C_NO_CHANNEL_BINDINGS,
                                                 &client, nullptr, &out, nullptr, nullptr, nullptr);
  OPENSSL_cleanse(token.data(), token.size());
  if (out.length > 0) o.reply_token = encode_base64(out.value, out.length);
  OM_uint32 m = 0;
  gss_release_buffer(&m, &out);
  if (GSS_ERROR(major)) {
    if (client != GSS_C_NO_NAME) gss_release_name(&m, &client);
    o.reply_token.clear();
    o.detail = gss_words(major, minor);
    o.result = keytab_has_no_key_for(o.detail) ? st::keytab_has_no_key : st::rejected;
    return o;
  }
  if (major & GSS_S_CONTINUE_NEEDED) {
    if (client != GSS_C_NO_NAME) gss_release_name(&m, &client);
    o.result = st::continue_needed;
    return o;
  }
  o.principal = display_name(client);
  gss_release_name(&m, &client);
  // The realm of the key that accepted: the acceptor's own name as the context has it.
  std::string realm;
  gss_name_t target = GSS_C_NO_NAME;
  if (!GSS_ERROR(gss_inquire_context(&m, ctx.handle, nullptr, &target, nullptr, nullptr, nullptr, nullptr, nullptr)) &&
      target != GSS_C_NO_NAME) {
    const std::string acceptor = display_name(target);
    gss_release_name(&m, &target);
    if (const auto at = acceptor.rfind('@'); at != std::string::npos) realm = acceptor.substr(at + 1);
  }
  o.user = negotiate_user_name(o.principal, realm);
  if (o.user.empty() || o.user.size() > 256 || o.user.find_first_of(std::string_view("\0\r\n", 3)) != std::string::npos) {
    o.result = st::rejected;
    o.detail = "the client principal is not a usable user name";
    return o;
  }
  o.result = st::complete;
  return o;
}

}  // namespace hallpass
