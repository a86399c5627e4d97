#include "proxy/negotiate_login.hpp"

namespace hallpass {

login_service::result negotiate_sign_in(login_service& service, negotiate_acceptor& acceptor, const login_settings& s,
                                        const std::string& client, negotiate_context& ctx, std::string_view header) {
  using kind = login_service::result_kind;
  using st = negotiate_acceptor::outcome::status;
  login_service::result r;
  auto o = acceptor.accept(s.negotiate, ctx, header);
  switch (o.result) {
    case st::continue_needed:
      // Not a failure yet: the client answers the reply token on the same connection.
      r.kind = kind::bad_credentials;
      r.continue_needed = true;
      r.reply_token = std::move(o.reply_token);
      r.detail = "Negotiate continues";
      return r;
    case st::rejected:
      r.kind = kind::bad_credentials;
      r.detail = "Negotiate token refused: " + o.detail;
      // No user name is known from a refused token: only the client address is counted.
      service.note_failure(s, client, "", login_service::clock::now());
      return r;
    case st::keytab_has_no_key:
      // The proxy's keytab is at fault: not counted against the client, whose Basic sign-ins
      // the failure limit would otherwise refuse too; the 407 still offers Basic.
      r.kind = kind::bad_credentials;
      r.keytab_at_fault = true;
      r.detail = "Negotiate ticket not accepted: the proxy's keytab has no key for it (the keytab needs "
                 "updating, e.g. after the service account's password changed): " + o.detail;
      return r;
    case st::unavailable:
      r.kind = kind::unavailable;
      r.detail = std::move(o.detail);
      return r;
    case st::complete: break;
  }
  std::string failure;
  // r.expires: cache_ttl after the directory gave the groups (perhaps from identity_of's cache).
  r.who = service.identity_of(s.ldap, o.user, login_service::clock::now(), &failure, &r.expires);
  if (!r.who) {
    r.kind = kind::unavailable;
    r.detail = "the groups of " + o.user + " could not be read: " + failure;
    return r;
  }
  r.kind = kind::ok;
  r.detail = o.principal;
  return r;
}

}  // namespace hallpass
