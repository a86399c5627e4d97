#include "proxy/signin_handler.hpp"

#include <openssl/crypto.h>

#include <algorithm>

#include "proxy/access_request_form.hpp"
#include "proxy/block_page.hpp"
#include "proxy/inspection.hpp"
#include "proxy/local_response.hpp"
#include "proxy/login_gate.hpp"
#include "proxy/login_service.hpp"
#include "proxy/posted_form.hpp"
#include "proxy/request_target.hpp"
#include "proxy/shared_state.hpp"
#include "proxy/signin_page.hpp"
#include "proxy/tunnel.hpp"
#include "proxy/worker.hpp"

namespace hallpass {
namespace {

constexpr std::size_t max_post = 16 * 1024;
constexpr std::string_view html = "text/html; charset=utf-8";
using kind = login_service::result_kind;

std::int64_t seconds_of(const exchange& ex) {
  return std::chrono::duration_cast<std::chrono::seconds>(ex.start.time_since_epoch()).count();
}

// The URL the request asked for, as the page's token covers it and the redirect goes back to.
std::string requested_url(const exchange& ex) {
  return url_of(ex.scheme, ex.host, ex.port, ex.query.empty() ? ex.path : ex.path + "?" + ex.query);
}

// A URL fit for Location: http(s), no control characters or spaces (it came from a parsed
// request, but the header must never be made to carry anything else).
bool redirectable(std::string_view url) {
  if (!url.starts_with("http://") && !url.starts_with("https://")) return false;
  return std::none_of(url.begin(), url.end(), [](char ch) { return static_cast<unsigned char>(ch) <= 0x20 || ch == 0x7f; });
}

// Every page here: never framed (a page of the site could frame the form and read what is typed:
// X-Frame-Options for older browsers, frame-ancestors for newer), never reachable from the
// window that opened it (Cross-Origin-Opener-Policy: a site's script that opens the page
// gets no handle to it), no Referer to where the form goes.
net::awaitable<void> send_page(client_connection& c, exchange& ex, http::status st, std::string&& body,
                               unsigned version) {
  auto res = local_head(st, version, html);
  res.set("X-Content-Type-Options", "nosniff");
  res.set("X-Frame-Options", "DENY");
  res.set("Content-Security-Policy", "frame-ancestors 'none'");
  res.set("Cross-Origin-Opener-Policy", "same-origin");
  res.set("Referrer-Policy", "no-referrer");
  res.body() = std::move(body);
  co_await send_local(c, ex, res, false);
}

net::awaitable<void> send_signin_page(worker& w, client_connection& c, exchange& ex, http::status st,
                                      std::string_view url, std::string_view user, std::string_view problem,
                                      unsigned version) {
  signin_page_info info;
  info.school_name = ex.cfg->policy->school_name;
  info.url = url;
  info.client = c.ip_text;
  info.user = user;
  info.problem = problem;
  info.same_site = c.inside || c.transparent;
  const std::string signout = signout_link(c.transparent.has_value(), ex.host);
  info.signout = signout;
  info.now = seconds_of(ex);
  std::string body = render_signin_page(w.state().form_keys, info);
  co_await send_page(c, ex, st, std::move(body), version);
}

net::awaitable<void> send_notice(client_connection& c, exchange& ex, http::status st, std::string_view title,
                                 std::string_view text, std::string_view trusted_html, unsigned version) {
  std::string body = render_notice_page(title, text, ex.cfg->policy->school_name, trusted_html);
  co_await send_page(c, ex, st, std::move(body), version);
}

// "Signed in as NAME" and the sign-out link, for the notice after a sign-in with nowhere to go back to.
std::string signed_in_html(const client_connection& c, std::string_view host) {
  std::string out = "<p><a href=\"";
  append_html_escaped(out, signout_link(c.transparent.has_value(), host));
  out += "\">Sign out</a> when you finish, on a shared device.</p>\n";
  return out;
}

// The post's body, whole (at most max_post bytes), or nullopt when it is too long or the
// client went away.
net::awaitable<std::optional<std::string>> read_post(client_connection& c, request_parser& rp) {
  std::optional<std::string> body(std::in_place);
  const auto read = co_await read_posted_form(c, rp, max_post, *body);
  if (read != posted_read::whole) body.reset();
  co_return body;
}

// The sign-out address: a GET (a link, or another page's image) shows the sign-out page; its
// post, with a valid token for this device, signs the device out.
net::awaitable<void> answer_signout(worker& w, client_connection& c, exchange& ex, request_parser& rp,
                                    unsigned version) {
  const bool same_site = c.inside || c.transparent;
  const std::string_view user = ex.login ? std::string_view(ex.login->user) : std::string_view();
  std::string problem;
  if (rp.get().method() == http::verb::post) {
    const auto read = co_await read_post(c, rp);
    std::map<std::string, std::string> fields;
    if (read) {
      ex.bytes_in += read->size();
      fields = parse_form(*read);
    }
    std::int64_t issued = 0;
    try {
      issued = std::stoll(fields["issued"]);
    } catch (const std::exception&) {
    }
    const bool token_ok = read && w.state().form_keys.verify(token_purpose::signout, c.ip_text, "", issued,
                                                             fields["nonce"], fields["token"], seconds_of(ex));
    if (token_ok) {
      w.state().signins.unbind(c.ip_text);
      ex.reason_override = "sign-in page: signed out";
      ex.note = ex.login ? "signed out" : "signed out (was not signed in)";
      co_await send_notice(c, ex, http::status::ok, "You have signed out",
                           "This device is no longer signed in to the school internet. To use it again, open any "
                           "web page and sign in.",
                           {}, version);
      co_return;
    }
    ex.note = "sign-out page: bad or old token";
    problem = "That sign-out page had expired. Press Sign out again.";
  }
  ex.reason_override = "sign-out page";
  std::string body = render_signout_page(w.state().form_keys, ex.cfg->policy->school_name, c.ip_text, user, same_site,
                                         seconds_of(ex), problem);
  co_await send_page(c, ex, problem.empty() ? http::status::ok : http::status::forbidden, std::move(body), version);
}

// The post of the page's form: token, then the directory, then the binding and the way back.
net::awaitable<void> answer_post(worker& w, client_connection& c, exchange& ex, request_parser& rp,
                                 unsigned version) {
  const auto& s = ex.cfg->daemon.logins;
  auto read = co_await read_post(c, rp);
  if (!read) {
    ex.note = "sign-in page: the post is too long or incomplete";
    co_await send_notice(c, ex, http::status::payload_too_large, "The sign-in could not be read",
                         "Please open the page you wanted again and sign in there.", {}, version);
    co_return;
  }
  ex.bytes_in += read->size();
  auto fields = parse_form(*read);
  OPENSSL_cleanse(read->data(), read->size());
  std::string password = std::move(fields["password"]);
  const std::string url = fields["url"];
  const std::string user = fields["user"];
  std::int64_t issued = 0;
  try {
    issued = std::stoll(fields["issued"]);
  } catch (const std::exception&) {
  }
  const bool same_site = c.inside || c.transparent;
  const bool token_ok = w.state().form_keys.verify(token_purpose::signin, c.ip_text, url, issued, fields["nonce"],
                                                   fields["token"], seconds_of(ex));
  // On the site itself, the way back must be on that same site.
  const bool same_origin = url.empty() || !same_site || url_on_host(url, ex.host);
  if (!token_ok || !same_origin || (!url.empty() && !redirectable(url))) {
    OPENSSL_cleanse(password.data(), password.size());
    ex.note = "sign-in page: bad or old token";
    ex.reason_override = "sign-in page: refused (bad or old token)";
    co_await send_notice(c, ex, http::status::forbidden, "The sign-in page has expired",
                         "Please open the page you wanted again, and sign in on the page that appears.", {},
                         version);
    co_return;
  }
  if (user.empty() || password.empty() || user.size() > 200 || password.size() > 1000) {
    OPENSSL_cleanse(password.data(), password.size());
    const std::string typed = user.substr(0, 200);  // a named local: no temporary inside co_await (GCC 12)
    co_await send_signin_page(w, c, ex, http::status::bad_request, url, typed, "Type your user name and your password.",
                              version);
    co_return;
  }
  std::chrono::seconds retry_after{0};
  std::string name = user;
  auto answer = co_await check_password(w, c, s, std::move(name), std::move(password), &retry_after, "sign-in page: ");
  if (answer.kind == kind::ok || answer.kind == kind::cached) {
    w.state().signins.bind(c.ip_text, answer.who, s.page, login_service::clock::now(), answer.expires,
                           hardware_address_of(w, c, ex));
    ex.login = answer.who;
    ex.note = "signed in through the sign-in page";
    ex.reason_override = "sign-in page: signed in";
    if (url.empty()) {
      // The name as the directory spells it (login_service: "SAM" signs in as sam).
      const std::string text = "This device is signed in to the school internet as " + answer.who->user + ".";
      const std::string more = signed_in_html(c, ex.host);
      co_await send_notice(c, ex, http::status::ok, "You are signed in", text, more, version);
      co_return;
    }
    auto res = local_head(http::status::see_other, version, html);
    res.set(http::field::location, url);
    res.body() = "<!doctype html>\n<title>Signed in</title>\n<p><a href=\"" + html_escape(url) +
                 "\">Go back to the page you asked for</a>.</p>\n";
    co_await send_local(c, ex, res, false);
    co_return;
  }
  http::status st = http::status::service_unavailable;
  std::string_view problem = "The school directory could not check the sign-in just now. Try again in a minute.";
  ex.reason_override = "sign-in page: directory unavailable";
  if (answer.kind == kind::bad_credentials) {
    st = http::status::forbidden;
    problem = "The user name or password was not right. Try again.";
    ex.reason_override = "sign-in page: login failed";
    ex.note = "login failed for " + name_for_log(user, answer) + ": " + answer.detail;
  } else if (answer.kind == kind::rate_limited) {
    st = http::status::too_many_requests;
    problem = "Too many wrong passwords. Wait a few minutes, then try again.";
    ex.reason_override = "sign-in page: refused after too many failures";
    ex.note = "login rate-limited for " + name_for_log(user, answer);
  } else {
    ex.note = "login for " + name_for_log(user, answer) + " not checked: " + answer.detail;
  }
  co_await send_signin_page(w, c, ex, st, url, user, problem, version);
}

// A CONNECT from a device that is not signed in: the page inside the handshake with the
// school CA, for a browser; otherwise refused.
net::awaitable<bool> answer_connect(worker& w, client_connection& c, exchange& ex, std::string_view user_agent,
                                    unsigned version) {
  // Decided as usual only for the log line's role; nothing goes to the site.
  const rules::verdict& v = decide_exchange(w, c, ex, std::nullopt);
  if (!v.host.text.empty()) ex.host = v.host.text;
  ex.action = outcome::block;
  ex.reason_override = "not signed in (login: page)";
  const auto& ports = ex.cfg->daemon.connect.ports;
  const bool port_ok = std::find(ports.begin(), ports.end(), ex.port) != ports.end();
  const bool may_show = may_show_own_https_page(ex, v);
  if (!may_show && ex.cfg->inspecting() && v.by != rules::decided_by::unchecked) {
    ex.note = "on the never-inspect list: not decrypted to show the sign-in page";
  }
  // Refused for want of a sign-in, not by a rule: the log line names the role and no rule, as
  // a plain request's sign-in page does (it named the rule that allows the role: explain
  // audit, 2026-12-07).
  ex.asker_role = v.chosen_role;
  ex.verdict.reset();
  if (may_show && looks_like_browser(user_agent) && port_ok) {
    const auto end = co_await run_tunnel(w, c, ex, tunnel_mode::own_page);
    bool inspected = false;
    if (end == tunnel_end::inspect) inspected = co_await start_inspection(w, c, ex);
    if (inspected) ex.note = "inspected to show the sign-in page";
    finish_exchange(w, c, ex);
    co_return inspected;
  }
  std::string text = "Sign in to " + ex.cfg->policy->school_name +
                     "'s internet first: open any http:// web page on this device to get the sign-in page.\n";
  co_await write_local(c, ex, http::status::forbidden, std::move(text), "text/plain; charset=utf-8", false, version);
  finish_exchange(w, c, ex);
  co_return false;
}

}  // namespace

net::awaitable<bool> serve_signin(worker& w, client_connection& c, exchange& ex, request_parser& rp,
                                  std::string_view user_agent, unsigned version) {
  const auto& req = rp.get();
  if (req.method() == http::verb::connect) {
    const bool go_on = co_await answer_connect(w, c, ex, user_agent, version);
    co_return go_on;
  }
  const bool same_site = c.inside || c.transparent;
  const auto address = signin_address_of(same_site, ex.host, ex.path);
  // The sign-in and sign-out pages' own queries are never logged, whatever keep_query says
  // (nothing here reads them): a name and password typed into a GET (a crafted link, a
  // mistaken bookmark) would be (audit of privacy, 2026-12-06, L3). A site's query, shown the
  // page instead, is the site's.
  if (address != signin_address::none) ex.query.clear();
  if (same_site) {
    // On a site's own origin (a transparent listener, an inspected tunnel) that site's scripts
    // could fetch these pages: read the user name of the "signed in" page or the sign-out
    // page's token, or post a sign-in (outside-in audit, 2026-12-05). Only the browser's own
    // navigations get them: every current browser says so in Sec-Fetch-Mode; a request without
    // the header (an older browser) is served as before.
    const std::string_view mode = req["Sec-Fetch-Mode"];
    if (!mode.empty() && !rules::ascii_iequals(mode, "navigate")) {
      ex.action = outcome::block;
      ex.reason_override = "not signed in (login: page)";
      ex.note = "the sign-in page, asked for by a script (Sec-Fetch-Mode: " + std::string(mode.substr(0, 32)) +
                "): refused";
      std::string text = "Sign in from the page the browser shows.\n";  // a named local: GCC 12 rule 2
      co_await write_local(c, ex, http::status::forbidden, std::move(text), "text/plain; charset=utf-8", false, version);
      finish_exchange(w, c, ex);
      co_return false;
    }
  }
  ex.action = outcome::allow;  // the page is the answer; nothing was asked of a site
  if (address == signin_address::signout) {
    co_await answer_signout(w, c, ex, rp, version);
  } else if (address == signin_address::signin && req.method() == http::verb::post) {
    co_await answer_post(w, c, ex, rp, version);
  } else if (address == signin_address::signin && ex.login) {
    ex.reason_override = "sign-in page";
    const std::string text = "This device is signed in to the school internet as " + ex.login->user + ".";
    const std::string more = signed_in_html(c, ex.host);
    co_await send_notice(c, ex, http::status::ok, "You are signed in", text, more, version);
  } else {
    // Not signed in: the page instead of the site (or on its own address, with nowhere to go back to).
    ex.action = outcome::block;
    ex.reason_override = "not signed in (login: page)";
    const std::string url = address == signin_address::signin ? std::string() : requested_url(ex);
    const auto st = address == signin_address::signin ? http::status::ok : http::status::network_authentication_required;
    co_await send_signin_page(w, c, ex, st, url, {}, {}, version);
  }
  finish_exchange(w, c, ex);
  co_return false;
}

bool find_page_binding(worker& w, const client_connection& c, exchange& ex) {
  const auto now = login_service::clock::now();
  login_service::clock::time_point groups_until{};
  ex.login = w.state().signins.find(c.ip_text, ex.cfg->daemon.logins.page, now, hardware_address_of(w, c, ex),
                                    &groups_until);
  return ex.login && now >= groups_until;
}

bool signin_missing(worker& w, const client_connection& c, exchange& ex, bool* groups_stale) {
  if (login_mode_of(w, c, ex.cfg->daemon.logins) != login_mode::page) return false;
  const bool stale = find_page_binding(w, c, ex);
  if (groups_stale != nullptr) *groups_stale = stale;
  return !ex.login;
}

}  // namespace hallpass
