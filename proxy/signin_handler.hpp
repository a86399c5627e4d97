// The sign-in page's requests (issue 12, `login: page`; the page itself: signin_page.hpp). A
// device on such a network that is not signed in gets, for any web request, the page (511
// Network Authentication Required) instead of the site:
//
// - plain HTTP: the page at once (explicit proxy and transparent listener alike);
// - HTTPS with a school CA (tls.ca_dir): the handshake completes with a leaf for the site, as
//   for the HTTPS block page, and the page is served inside; a CONNECT from a client that is not
//   a browser is refused (403, one line), as a blocked HTTPS site is;
// - HTTPS without a school CA: refused (a CONNECT gets 403; a transparent TLS connection is
//   closed); `hallpass check` says so.
//
// Its post is checked against the directory as Basic is (login_gate.hpp's check_password: the
// cache, the failure limits per client and per name, login_service off the loop); a success
// binds the device's address to the user in shared_state::signins and sends the browser back
// to the URL it asked for (303; only that URL, which the page's token covers). The sign-out
// address unbinds it. Every answer closes the connection, so that a connection opened to show
// the page never goes on to carry other requests. The password is never logged or kept.
//
// Runs on the session's worker thread.
#pragma once

#include <string_view>

#include "proxy/exchange.hpp"
#include "proxy/net.hpp"
#include "proxy/request_parser.hpp"

namespace hallpass {

class worker;
struct client_connection;

// Answers a request that login_gate's sign_in sent here (login_step::page); ex holds the
// request's target and ex.login the device's binding, if any. Finishes the exchange. Returns
// whether the connection carries more requests: only a CONNECT that became an inspected tunnel
// to show the page inside it.
net::awaitable<bool> serve_signin(worker& w, client_connection& c, exchange& ex, request_parser& rp,
                                  std::string_view user_agent, unsigned version);

// The device's sign-in page binding (a `login: page` network's): sets ex.login to it (null when
// nothing is bound) and returns whether its groups are logins.ldap.cache_ttl old, so that the
// caller reads them again (login_gate.hpp, refresh_page_groups).
bool find_page_binding(worker& w, const client_connection& c, exchange& ex);

// For a transparent TLS connection before its decision: on a `login: page` network, sets
// ex.login to the device's binding and returns whether the device must sign in first (nothing
// bound). False elsewhere. `groups_stale` (when given) says what find_page_binding returned.
bool signin_missing(worker& w, const client_connection& c, exchange& ex, bool* groups_stale = nullptr);

}  // namespace hallpass
