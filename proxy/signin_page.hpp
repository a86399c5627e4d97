// The sign-in page (issue 12, `login: page`): the HTML a device that is not signed in gets in
// answer to any web request on a network with `login: page`, its addresses, and the token that
// ties a submission to the page that was shown.
//
// - Addresses: through the explicit proxy, http://hallpass.invalid/signin and /signout (the
//   reserved name the request form uses, access_request_form.hpp); on the site itself, for a
//   device that reaches hallpass only through the site's address (inside an inspected tunnel,
//   on a transparent listener), /.well-known/hallpass/signin and /signout (same origin: the
//   browser posts through the same connection, with no warning about a form leaving HTTPS).
// - Token (CSRF): form_keys' HMAC (token_purpose::signin) of the client address, the URL to go back to, the
//   time issued and a random nonce. A page on another site cannot read it, so it cannot sign a
//   device in as someone else; the URL is inside the MAC, so the redirect after a success goes
//   only to the URL the page was shown for (never an open redirect).
// - The page: self-contained (inline CSS, no scripts, no third-party resources), every value
//   HTML-escaped, the school's name, user name and password fields.
//
// Pure functions of their arguments except random_nonce (inside signin_form_fields); thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "proxy/access_request_form.hpp"

namespace hallpass {

struct daemon_config;

inline constexpr std::string_view signin_path = "/signin";    // on form_host
inline constexpr std::string_view signout_path = "/signout";  // on form_host
inline constexpr std::string_view site_signin_path = "/.well-known/hallpass/signin";
inline constexpr std::string_view site_signout_path = "/.well-known/hallpass/signout";

enum class signin_address : std::uint8_t { none, signin, signout };

// Which of the page's addresses a request names. `same_site`: the device reaches hallpass
// through the site's own address (inside an inspected tunnel, a transparent listener), where
// only the /.well-known/ paths count; otherwise only form_host's.
signin_address signin_address_of(bool same_site, std::string_view host, std::string_view path);

// Whether `url` (scheme://authority/...) names `host` as its whole host (any port), ASCII case
// aside: the way back from a page posted on a site itself must stay on that site.
bool url_on_host(std::string_view url, std::string_view host);

// What the page shows.
struct signin_page_info {
  std::string_view school_name;
  std::string_view url;       // where the device goes back to after signing in; "" : nowhere
  std::string_view client;    // the device's address (the token is bound to it)
  std::string_view user;      // the name typed last time (after a wrong password); ""
  std::string_view problem;   // why the last attempt failed, in plain words; ""
  bool same_site = false;     // post to site_signin_path, else to http://hallpass.invalid/signin
  std::string_view signout;   // signout_link()'s address for this device
  std::int64_t now = 0;       // seconds since the epoch: the token's issue time
};

std::string render_signin_page(const form_keys& keys, const signin_page_info& info);

// The sign-out page: who is signed in and a button that posts a token (token_purpose::signout,
// bound to the device) to the sign-out address. Signing out takes that post: a link or an
// image on another page (a GET) only shows this page, so no page can sign a device out behind
// its user's back. `problem`: why the last post was refused ("" for none).
std::string render_signout_page(const form_keys& keys, std::string_view school_name, std::string_view client,
                                std::string_view user, bool same_site, std::int64_t now, std::string_view problem);

// Where a device's sign-out link points: always plain HTTP, which hallpass sees whatever
// becomes of HTTPS (a relayed tunnel to the site would carry the site's own path to the site).
// Through the explicit proxy http://hallpass.invalid/signout; on a transparent listener
// http://HOST/.well-known/hallpass/signout on the site being shown (its port 80 is redirected).
std::string signout_link(bool transparent, std::string_view host);

// `hallpass check`'s line about the sign-in page: which networks use it and what HTTPS does
// there (served inside the handshake with a school CA; refused without one). "" when no
// network uses it.
std::string signin_check_summary(const daemon_config& d);

}  // namespace hallpass
