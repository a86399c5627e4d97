// The directory-thread half of a Negotiate sign-in (README.md "Logins"): the token accepted
// by negotiate_acceptor, then the user's groups by login_service::identity_of (the directory,
// without a password; cached). login_gate.cpp submits it to the login service's threads and
// awaits it with a deadline, so the event loop never blocks on the keytab or the directory.
//
// BLOCKS; call only on a directory thread (login_service::submit). `ctx` is the connection's
// exchange in progress: no other call may use it meanwhile. Never logs or returns the token.
#pragma once

#include <string>
#include <string_view>

#include "proxy/login_service.hpp"
#include "proxy/negotiate_acceptor.hpp"

namespace hallpass {

// ok (who set), bad_credentials (the token was refused: counted against `client` as a wrong
// password is; r.continue_needed with r.reply_token when the mechanism wants another leg),
// or unavailable (the keytab or the directory failed). r.reply_token is base64.
login_service::result negotiate_sign_in(login_service& service, negotiate_acceptor& acceptor, const login_settings& s,
                                        const std::string& client, negotiate_context& ctx, std::string_view header);

}  // namespace hallpass
