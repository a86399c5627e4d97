// negotiate_acceptor: accepts `Proxy-Authorization: Negotiate <token>` (SPNEGO / Kerberos,
// RFC 4559) with MIT Kerberos's GSS-API against the proxy's keytab (logins.negotiate). The
// only file that includes GSS-API; no Asio.
//
// The keytab is named per credential, not per process: the acceptor credential is acquired
// with gss_acquire_cred_from(cred_store {"keytab": PATH}) once for each (keytab, principal)
// and reused by every accept until a reload names another (neither KRB5_KTNAME nor
// gsskrb5_register_acceptor_identity, which are process-wide and would race with a reload).
// MIT reads the keytab's keys at each accept, so a keytab rewritten in place (new keys) takes
// effect without a reload.
//
// accept() BLOCKS (keytab reads, the replay cache) and must not run on an event loop: the
// login gate runs it on login_service's directory threads (negotiate_login.hpp).
// Thread-safety: one acceptor serves every thread (the credential is shared under a mutex;
// MIT's credentials lock themselves). A negotiate_context is one connection's exchange in
// progress: used by one accept() at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "proxy/login_config.hpp"

namespace hallpass {

// One connection's GSS acceptor context, kept between the legs of a multi-leg exchange
// (GSS_S_CONTINUE_NEEDED). Opaque; freed (gss_delete_sec_context) with the last reference.
struct negotiate_context;
std::shared_ptr<negotiate_context> make_negotiate_context();

class negotiate_acceptor {
 public:
  // Legs of one exchange before it is refused (Kerberos takes one; SPNEGO mechanism
  // negotiation two or three).
  static constexpr unsigned max_legs = 4;

  struct outcome {
    enum class status : std::uint8_t {
      complete,         // `user` signed in
      continue_needed,  // send `reply_token` in a 407; the client answers on the same connection
      rejected,         // a bad, expired, replayed or unreadable token, or too many legs
      unavailable,      // the keytab cannot be used (the proxy's fault, not the client's)
      // The keytab holds no key for the ticket (no entry for its service principal, another
      // key version after the service account's password changed, the file gone or
      // unreadable): the proxy's keytab needs mending, not the user's password. Not counted
      // against the client (its Basic sign-ins would be refused too), and a 407 still offers
      // Basic.
      keytab_has_no_key,
    };
    status result = status::rejected;
    std::string user;         // complete: the client principal, its realm stripped when it is the keytab's
    std::string principal;    // complete: the client principal as GSS-API displays it (user@REALM)
    std::string reply_token;  // base64; continue_needed (and complete, when the mechanism has one)
    std::string detail;       // for the log: GSS-API's words, never the token
  };

  negotiate_acceptor();
  ~negotiate_acceptor();
  negotiate_acceptor(const negotiate_acceptor&) = delete;
  negotiate_acceptor& operator=(const negotiate_acceptor&) = delete;

  // `header`: the Proxy-Authorization value ("Negotiate <base64>"). REQUIRES: s.configured().
  outcome accept(const negotiate_settings& s, negotiate_context& ctx, std::string_view header);

 private:
  struct credential;
  std::shared_ptr<credential> credential_for(const negotiate_settings& s, std::string* error);

  std::mutex mutex_;
  negotiate_settings cred_settings_;
  std::shared_ptr<credential> cred_;
};

// Whether a Proxy-Authorization value uses the Negotiate scheme (case-insensitive).
bool is_negotiate(std::string_view header);

// "dave@TEST.REALM" with the acceptor's realm TEST.REALM -> "dave"; another realm is kept
// ("dave@OTHER.REALM"), so two realms' users of the same name stay apart. Pure.
std::string negotiate_user_name(std::string_view principal, std::string_view acceptor_realm);

}  // namespace hallpass
