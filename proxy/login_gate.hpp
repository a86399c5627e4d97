// The sign-in step of a request on an explicit listener (issue 12, "Logins"): reads
// Proxy-Authorization (Basic), checks it (the connection's earlier sign-in, the login cache,
// else the directory through login_service, awaited with a deadline, never blocking the loop),
// and either lets the request go on with ex.login set, or answers it: 407 with
// Proxy-Authenticate when a login is required and missing or wrong, 429 when the client or
// name has failed too often, 503 when the directory cannot answer in time.
// A tunnel's identity lasts as long as its CONNECT's sign-in (logins.ldap.cache_ttl): a later
// request inside it ends the tunnel (login_step::lapsed), as does one inside a tunnel opened
// without a sign-in once a reload makes its network `required`.
//
// Per network (logins.networks): required, optional (credentials used when sent; none: the
// address's role) or none (never asked; a Proxy-Authorization is ignored). A CONNECT signs in
// on the CONNECT; requests inside an inspected tunnel carry the CONNECT's identity.
// Credentials are never logged. Runs on the worker's thread.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "proxy/exchange.hpp"
#include "proxy/login_service.hpp"
#include "proxy/net.hpp"

namespace hallpass {

class worker;
struct client_connection;

enum class login_step : std::uint8_t {
  proceed,  // decide the request (ex.login set when someone signed in)
  answered, // a 407, 429 or 503 was written; ex filled; the caller finishes the exchange
  page,     // login: page, and the device is not signed in or the request is for the page's
            // own addresses: the caller answers with signin_handler.hpp (nothing written yet;
            // ex.login set when the device is signed in)
  lapsed,   // a request inside a tunnel whose CONNECT's sign-in has lapsed: nothing written; the
            // caller finishes the exchange and closes the connection unanswered, and the client
            // opens a new tunnel, signing in again (a client resends a request on a kept-alive
            // connection that closes unanswered; the tunnel's first request is never refused so)
};

// The check of a user name and password, for Basic (sign_in) and the sign-in page's post
// (signin_handler.cpp) alike: the login cache, the failure limits (per client and per name;
// *retry_after set when refused), then login_service off the loop with its deadline. Counts
// hallpass_logins_total and logs a failure on standard error with the user name only, after
// `via` ("sign-in page: ", or "" for Basic). `password` is wiped.
net::awaitable<login_service::result> check_password(worker& w, const client_connection& c, const login_settings& s,
                                                      std::string&& user, std::string&& password,
                                                      std::chrono::seconds* retry_after, std::string_view via);

// The login mode `c` is under: logins.networks' for its address, or none where no directory
// is configured (nothing could check a sign-in).
login_mode login_mode_of(worker& w, const client_connection& c, const login_settings& s);

// How a failed sign-in's user name is written to the logs (stderr, the access line's note):
// the directory's spelling when it found that user; otherwise only its length, since a name
// the directory does not know is often a password typed into the wrong field (outside-in
// audit, 2026-12-05: "login failed for user <password>" was kept in both logs).
std::string name_for_log(std::string_view typed, const login_service::result& r);

// How long a tunnel opened now on `c` carries its CONNECT's sign-in (tunnel_origin::until):
// until that sign-in lapses (c.login.until: cache_ttl after the directory checked it); with
// `cache_ttl: 0` (no sign-in reused, so it has lapsed already) a minute, so that every tunnel
// does not end after its first request.
login_service::clock::time_point tunnel_identity_until(const client_connection& c);
inline constexpr std::chrono::minutes min_tunnel_identity{1};

// `keep_alive`: whether the connection may carry another request after a 407 (the client
// usually retries at once with credentials on the same connection). On `answered`, *again says
// whether it may.
// A device bound through the sign-in page whose groups are cache_ttl old (signin_table's
// groups_until): reads them again (the identity cache, else the directory on a directory
// thread) and refreshes the binding and ex.login. A user the directory no longer knows (deleted
// since) ends the binding: ex.login is then null, and the device gets the sign-in page. False,
// with ex's reason and note set, when the directory cannot answer: the caller refuses the
// request (503) or closes the connection.
net::awaitable<bool> refresh_page_groups(worker& w, const client_connection& c, exchange& ex,
                                         const login_settings& s);

net::awaitable<login_step> sign_in(worker& w, client_connection& c, exchange& ex, std::string_view authorization,
                                   unsigned version, bool keep_alive, bool* again);

// Whether the identity a tunnel was opened under still holds, for the requests inside a tunnel
// (sign_in) and for a relayed tunnel, which carries none (exchange.cpp, decision_still_holds):
// `who` signed in with Basic or Negotiate lapses at `until` (tunnel_identity_until); one the
// sign-in page bound (`page_binding`) ends when the device is no longer bound to it
// (signin_table::holds); a tunnel opened by nobody ends when its network, `mode` now, requires
// a sign-in. The client then opens a new tunnel, whose CONNECT is asked afresh.
enum class tunnel_identity : std::uint8_t { holds, lapsed, signed_out, sign_in_required };
tunnel_identity tunnel_identity_now(worker& w, const client_connection& c, const login_identity* who, bool page_binding,
                                   login_service::clock::time_point until, login_mode mode, const login_settings& s);
// The access log's reason for a tunnel closed so (not for `holds`).
std::string_view describe(tunnel_identity t);

}  // namespace hallpass
