#include "proxy/login_gate.hpp"

#include <openssl/crypto.h>

#include <boost/beast/core/detail/base64.hpp>
#include <atomic>
#include <iostream>
#include <limits>

#include "proxy/local_response.hpp"
#include "proxy/login_service.hpp"
#include "proxy/negotiate_login.hpp"
#include "proxy/shared_state.hpp"
#include "proxy/signin_handler.hpp"
#include "proxy/signin_page.hpp"
#include "proxy/thread_answer.hpp"
#include "proxy/worker.hpp"
#include "rules/utf8.hpp"

namespace hallpass {
namespace {

// Whether the keytab's problem may be written to stderr now: at most once a minute for the
// whole proxy (every worker), the first at once.
bool keytab_line_due(std::chrono::steady_clock::time_point now) {
  static std::atomic<std::int64_t> last{std::numeric_limits<std::int64_t>::min()};
  const std::int64_t t = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  std::int64_t seen = last.load(std::memory_order_relaxed);
  while (seen == std::numeric_limits<std::int64_t>::min() || t - seen >= 60) {
    if (last.compare_exchange_weak(seen, t, std::memory_order_relaxed)) return true;
  }
  return false;
}

using result = login_service::result;
using kind = login_service::result_kind;

// "Basic dXNlcjpwYXNz" -> user, password. False for any other scheme or a malformed value.
bool parse_basic(std::string_view header, std::string& user, std::string& password) {
  while (!header.empty() && header.front() == ' ') header.remove_prefix(1);
  if (header.size() < 6 || !beast::iequals(header.substr(0, 6), "basic ")) return false;
  header.remove_prefix(6);
  while (!header.empty() && header.front() == ' ') header.remove_prefix(1);
  while (!header.empty() && header.back() == ' ') header.remove_suffix(1);
  if (header.empty() || header.size() > 4096) return false;
  // Padded, as RFC 7617 and every browser write it. Beast's decoder drops an unpadded last
  // group, so "c2FtOnNhbS1wdw" read as a mangled password that counted against the real user's
  // failure limit (outside-in audit of logins, 2026-12-05, L5).
  if (header.size() % 4 != 0) return false;
  std::string decoded(beast::detail::base64::decoded_size(header.size()), '\0');
  const auto [written, read] = beast::detail::base64::decode(decoded.data(), header.data(), header.size());
  // Beast's decoder stops at the padding: what is left may only be '='.
  if (read > header.size() || header.substr(read).find_first_not_of('=') != std::string_view::npos) return false;
  decoded.resize(written);
  const auto colon = decoded.find(':');
  if (colon == std::string::npos) return false;
  user = decoded.substr(0, colon);
  password = decoded.substr(colon + 1);
  OPENSSL_cleanse(decoded.data(), decoded.size());
  return !user.empty() && user.find_first_of(std::string_view("\0\r\n", 3)) == std::string::npos;
}

// What a sign-in check answers when the directory has not in time (thread_answer.hpp).
struct directory_late {
  result operator()() const {
    result r;
    r.kind = kind::unavailable;
    r.detail = "the directory did not answer in time";
    return r;
  }
};

// A sign-in check on the login service's threads: `Start` queues the check and calls the
// callback it is given with the answer, on a directory thread (or at once when the queue is
// full). The directory's own per-step timeouts free its thread; this deadline frees the client
// (queue wait included) even when several steps each take nearly their whole timeout.
template <class Start>
net::awaitable<result> ask_service(worker& w, const login_settings& s, Start&& start) {
  auto r = co_await answer_from_thread<result>(w, s.ldap.timeout + std::chrono::seconds(1),
                                               std::forward<Start>(start), directory_late{});
  co_return r;
}

// A password check (login_service::check: the cache, the failure counts, the bind).
struct password_check {
  login_service* service;
  const login_settings* settings;
  std::string client, user, password;
  void operator()(login_service::callback done) {
    service->check(*settings, std::move(client), std::move(user), std::move(password), std::move(done));
  }
};

// Runs `task` on a directory thread (login_service::submit); when max_queued tasks wait
// already, answers `done` with busy instead.
void submit_or_busy(login_service& service, std::size_t max_queued, std::function<void()> task,
                    const login_service::callback& done) {
  if (service.submit(max_queued, std::move(task))) return;
  result r;
  r.kind = kind::busy;
  r.detail = "too many sign-ins waiting for the directory";
  done(std::move(r));
}

// A Negotiate acceptance (negotiate_login.hpp), in the same bounded queue as a password check.
// The task keeps the connection's context and a copy of the settings alive while it runs.
struct negotiate_check {
  login_service* service;
  negotiate_acceptor* acceptor;
  std::shared_ptr<const login_settings> settings;
  std::shared_ptr<negotiate_context> ctx;
  std::string client, header;
  void operator()(login_service::callback done) {
    auto task = [done, service = service, acceptor = acceptor, settings = settings, ctx = std::move(ctx),
                 client = std::move(client), header = std::move(header)]() mutable {
      auto r = negotiate_sign_in(*service, *acceptor, *settings, client, *ctx, header);
      OPENSSL_cleanse(header.data(), header.size());
      done(std::move(r));
    };
    submit_or_busy(*service, settings->ldap.max_queued, std::move(task), done);
  }
};

// The groups of a user bound through the sign-in page, read again once they are cache_ttl old
// (login_service::identity_of, on a directory thread, in the same bounded queue).
struct groups_check {
  login_service* service;
  std::shared_ptr<const login_settings> settings;
  std::string user;
  void operator()(login_service::callback done) {
    auto task = [done, service = service, settings = settings, user = std::move(user)]() mutable {
      result r;
      std::string failure;
      r.who = service->identity_of(settings->ldap, user, login_service::clock::now(), &failure, &r.expires);
      if (r.who) {
        r.kind = kind::ok;
      } else {
        r.kind = kind::unavailable;
        r.detail = "the groups of " + user + " could not be read again: " + failure;
      }
      done(std::move(r));
    };
    submit_or_busy(*service, settings->ldap.max_queued, std::move(task), done);
  }
};

net::awaitable<result> ask_groups(worker& w, std::shared_ptr<const login_settings>&& settings, std::string&& user) {
  const login_settings& s = *settings;
  groups_check check{w.state().logins, std::move(settings), std::move(user)};
  auto r = co_await ask_service(w, s, std::move(check));
  co_return r;
}

// The strings are taken by rvalue reference: callers move named locals in, so no by-value
// string is made inside their co_await (proxy/README.md, GCC 12 rule 2).
// `settings`: the exchange's pinned configuration's logins (an aliasing pointer, not a copy).
net::awaitable<result> ask_negotiate(worker& w, std::shared_ptr<const login_settings>&& settings,
                                     std::shared_ptr<negotiate_context>&& ctx, std::string&& client,
                                     std::string&& header) {
  const login_settings& s = *settings;
  negotiate_check check{w.state().logins, w.state().negotiate, std::move(settings), std::move(ctx),
                        std::move(client), std::move(header)};
  auto r = co_await ask_service(w, s, std::move(check));
  co_return r;
}

net::awaitable<result> ask_directory(worker& w, login_service& service, const login_settings& s,
                                     std::string&& client, std::string&& user, std::string&& password) {
  password_check check{&service, &s, std::move(client), std::move(user), std::move(password)};
  auto r = co_await ask_service(w, s, std::move(check));
  co_return r;
}

// `reply_token`: a Negotiate exchange continues (RFC 4559 5): only `Negotiate <token>` is offered.
net::awaitable<bool> write_answer(client_connection& c, exchange& ex, http::status status, std::string&& body,
                                  const login_settings& s, std::chrono::seconds retry_after, bool keep_alive,
                                  unsigned version, const std::string& reply_token) {
  auto res = local_head(status, version, "text/plain; charset=utf-8");
  if (status == http::status::proxy_authentication_required) {
    // Negotiate first (browsers take the first scheme they can do: single sign-on on a
    // domain-joined device), then Basic for everyone else.
    if (!reply_token.empty()) {
      res.insert(http::field::proxy_authenticate, "Negotiate " + reply_token);
    } else {
      if (s.negotiate.configured()) res.insert(http::field::proxy_authenticate, "Negotiate");
      res.insert(http::field::proxy_authenticate, "Basic realm=\"" + s.realm + "\", charset=\"UTF-8\"");
    }
  }
  if (retry_after.count() > 0) res.set(http::field::retry_after, std::to_string(retry_after.count()));
  res.body() = std::move(body);
  co_return co_await send_local(c, ex, res, keep_alive);
}

// The connection signed in with `authorization` (checked by the cache or the directory).
void remember(client_connection& c, std::shared_ptr<const login_identity> who, std::string_view authorization,
              login_service::clock::time_point until) {
  c.login.forget();
  c.login.who = std::move(who);
  c.login.credentials.assign(authorization);
  c.login.until = until;
}

static_assert(metrics::login_results.size() == static_cast<std::size_t>(kind::busy) + 1,
              "one hallpass_logins_total series per result kind, in its order");

void count(worker& w, kind k) { w.state().metrics.logins[static_cast<std::size_t>(k)]->Increment(); }

}  // namespace

net::awaitable<result> check_password(worker& w, const client_connection& c, const login_settings& s,
                                      std::string&& user, std::string&& password, std::chrono::seconds* retry_after,
                                      std::string_view via) {
  result r;
  login_service* service = w.state().logins;
  const auto now = login_service::clock::now();
  if (service == nullptr) {
    OPENSSL_cleanse(password.data(), password.size());
    r.detail = "no directory is configured";
    co_return r;
  }
  if (auto who = service->cached(s.ldap, user, password, now, &r.expires)) {
    OPENSSL_cleanse(password.data(), password.size());
    count(w, kind::cached);
    r.kind = kind::cached;
    r.who = std::move(who);
    co_return r;
  }
  if (service->refused(s, c.ip_text, user, now, retry_after)) {
    OPENSSL_cleanse(password.data(), password.size());
    count(w, kind::rate_limited);
    r.kind = kind::rate_limited;
    r.detail = "too many failures";
    co_return r;
  }
  std::string client = c.ip_text, name = user;
  r = co_await ask_directory(w, *service, s, std::move(client), std::move(name), std::move(password));
  count(w, r.kind);
  if (r.kind == kind::rate_limited) *retry_after = r.retry_after;
  // The name as typed is anyone's text: escaped, so that it cannot forge a line of its own or
  // move a technician's terminal (rules/utf8.hpp terminal_safe).
  if (r.kind == kind::bad_credentials || r.kind == kind::rate_limited) {
    w.state().diagnostics.say("hallpass: " + std::string(via) + "login failed for " + name_for_log(user, r) + " from " +
                              c.ip_text + ": " + rules::terminal_safe(r.detail));
  } else if (r.kind != kind::ok && r.kind != kind::cached) {
    // `cached` is a success too: the same sign-in sent together, which waited for one
    // directory check (login_service::finish), was reported as "not checked" with no reason
    // (outside-in audit of logins, 2026-12-05, L1).
    w.state().diagnostics.say("hallpass: " + std::string(via) + "login for " + name_for_log(user, r) + " from " +
                              c.ip_text + " not checked: " + rules::terminal_safe(r.detail));
  }
  co_return r;
}

std::string name_for_log(std::string_view typed, const login_service::result& r) {
  if (!r.known_name.empty()) return "user " + rules::terminal_safe(r.known_name);
  return "a user name the directory did not confirm (" + std::to_string(typed.size()) + " bytes, not logged)";
}

login_mode login_mode_of(worker& w, const client_connection& c, const login_settings& s) {
  return w.state().logins == nullptr || !s.ldap.configured() ? login_mode::none : s.mode_for(c.ip);
}

void client_connection::signed_in::forget() {
  who.reset();
  connection_bound = false;
  negotiation.reset();
  OPENSSL_cleanse(credentials.data(), credentials.size());
  credentials.clear();
}

net::awaitable<bool> refresh_page_groups(worker& w, const client_connection& c, exchange& ex,
                                         const login_settings& s) {
  // The groups are cache_ttl old: read again, as for Basic and Negotiate, so that a removal
  // from a group (or a reload onto another directory) takes effect within cache_ttl rather
  // than at the binding's lifetime (outside-in audit of logins, 2026-12-05, M2). Another
  // request of the device (or the user's Negotiate sign-in) may have read them already: the
  // cache first, without a trip to a directory thread, so that a page's dozens of requests do
  // not each queue a lookup (review, 2026-12-05).
  login_service* service = w.state().logins;
  if (service == nullptr || !ex.login) co_return true;
  const auto now = login_service::clock::now();
  result answer;
  if (auto who = service->cached_identity(s.ldap, ex.login->user, now, &answer.expires)) {
    answer.kind = kind::ok;
    answer.who = std::move(who);
  } else {
    std::shared_ptr<const login_settings> settings(ex.cfg, &s);
    std::string user = ex.login->user;
    auto fetched = co_await ask_groups(w, std::move(settings), std::move(user));
    answer = std::move(fetched);
  }
  if (answer.kind == kind::ok && !answer.who->in_directory) {
    // Deleted from the directory (a leaver) since the sign-in: the binding ends, and the device
    // gets the sign-in page, rather than browsing on as the user with no groups until the
    // binding's lifetime (README, "Known gaps", until 2026-12-05).
    w.state().signins.unbind(c.ip_text);
    ex.add_note("sign-in page: " + ex.login->user + " is no longer in the directory: signed out");
    w.state().diagnostics.say("hallpass: sign-in page: " + rules::terminal_safe(ex.login->user) +
                              " is no longer in the directory: signed out (from " + c.ip_text + ")");
    ex.login = nullptr;
    co_return true;
  }
  if (answer.kind == kind::ok) {
    w.state().signins.refresh(c.ip_text, answer.who, answer.expires);
    ex.login = std::move(answer.who);
    co_return true;
  }
  // While the directory cannot say, nothing is decided on the old groups: as for Basic.
  count(w, answer.kind);
  ex.action = outcome::error;
  ex.reason_override = "login directory unavailable";
  ex.note = "sign-in page: " + answer.detail;
  w.state().diagnostics.say("hallpass: sign-in page: " + rules::terminal_safe(answer.detail) + " (from " + c.ip_text + ")");
  co_return false;
}

tunnel_identity tunnel_identity_now(worker& w, const client_connection& c, const login_identity* who, bool page_binding,
                                   login_service::clock::time_point until, login_mode mode, const login_settings& s) {
  const auto now = login_service::clock::now();
  if (who == nullptr) return mode == login_mode::required ? tunnel_identity::sign_in_required : tunnel_identity::holds;
  if (page_binding) return w.state().signins.holds(c.ip_text, who, s.page, now) ? tunnel_identity::holds : tunnel_identity::signed_out;
  return now >= until ? tunnel_identity::lapsed : tunnel_identity::holds;
}

std::string_view describe(tunnel_identity t) {
  switch (t) {
    case tunnel_identity::holds: return {};
    case tunnel_identity::lapsed: return "the tunnel's sign-in has lapsed";
    case tunnel_identity::signed_out: return "the device is no longer signed in as the tunnel's user";
    case tunnel_identity::sign_in_required: return "the network now requires a sign-in";
  }
  return {};
}

login_service::clock::time_point tunnel_identity_until(const client_connection& c) {
  const auto now = login_service::clock::now();
  return c.login.until > now ? c.login.until : now + min_tunnel_identity;
}

net::awaitable<login_step> sign_in(worker& w, client_connection& c, exchange& ex, std::string_view authorization,
                                   unsigned version, bool keep_alive, bool* again) {
  *again = false;
  const auto& s = ex.cfg->daemon.logins;
  login_service* service = w.state().logins;
  const login_mode mode = login_mode_of(w, c, s);
  if (mode == login_mode::page) {
    // The sign-in page: the device's address is who it is (signin_table.hpp), in an inspected
    // tunnel too (its CONNECT or handshake was made to show the page, not as a sign-in).
    const bool groups_stale = find_page_binding(w, c, ex);
    const bool same_site = c.inside || c.transparent;
    // Not for the sign-in and sign-out pages themselves: a device must be able to sign out
    // while the directory cannot answer (review, 2026-12-05).
    const bool own_page = signin_address_of(same_site, ex.host, ex.path) != signin_address::none;
    if (groups_stale && !own_page) {
      const bool fresh = co_await refresh_page_groups(w, c, ex, s);
      if (!fresh) {
        std::string body = "The school directory could not check the sign-in just now. Try again in a minute.\n";
        const std::string no_token;  // named: no temporary inside the co_await (GCC 12, proxy/README.md)
        co_await write_answer(c, ex, http::status::service_unavailable, std::move(body), s, std::chrono::seconds(0),
                              false, version, no_token);
        co_return login_step::answered;
      }
    }
    if (!ex.login || own_page) co_return login_step::page;
    co_return login_step::proceed;
  }
  if (c.inside) {
    // A request inside a tunnel: the identity its CONNECT signed in with, kept with the tunnel
    // (c.login is the connection's: a sign-in on an earlier request of it, not the CONNECT's
    // when the CONNECT sent none on an `optional` network)...
    ex.login = c.inside->who;
    // ... while that sign-in holds (cache_ttl, as on a kept-alive connection). Browsers send
    // their credentials on the CONNECT only, so the tunnel ends instead: closed unanswered,
    // which a client answers by sending the request again on a new tunnel, whose CONNECT is
    // checked afresh. Not the tunnel's first request, which its client would not resend (and
    // whose CONNECT was just checked).
    const auto identity = tunnel_identity_now(w, c, ex.login.get(), false, c.inside->until, mode, s);
    if (identity == tunnel_identity::lapsed && c.stream_reused) {
      ex.action = outcome::error;
      ex.reason_override = describe(identity);
      ex.note = "the tunnel was closed unanswered, for the client to open a new one and sign in again "
                "(logins.ldap.cache_ttl)";
      co_return login_step::lapsed;
    }
    // A tunnel opened by nobody (an `optional` or `none` network) whose network now requires a
    // sign-in (a reload since its CONNECT; the request's own pinned configuration says so): it
    // ends the same way, and the client's new CONNECT is asked for one, instead of the tunnel
    // going on under the address's role for as long as its client keeps it open.
    // A transparent tunnel had no CONNECT to check: its first request too (serve_transparent_tls
    // closes such a connection before its handshake; this is a reload in between).
    if (identity == tunnel_identity::sign_in_required && (c.stream_reused || c.transparent)) {
      ex.action = outcome::error;
      ex.reason_override = describe(identity);
      ex.note = "the tunnel, opened without a sign-in, was closed unanswered, for the client to open a new one "
                "and sign in (logins.networks changed by a reload)";
      co_return login_step::lapsed;
    }
    co_return login_step::proceed;
  }
  if (mode == login_mode::none) co_return login_step::proceed;

  const auto now = login_service::clock::now();
  if (c.login.who && now < c.login.until && authorization.size() == c.login.credentials.size() &&
      CRYPTO_memcmp(authorization.data(), c.login.credentials.data(), authorization.size()) == 0) {
    // The same credentials on the same connection: it signed in already. The keep-alive path:
    // a clock read and a comparison of a few dozen bytes.
    ex.login = c.login.who;
    co_return login_step::proceed;
  }
  if (c.login.who && c.login.connection_bound && now < c.login.until && authorization.empty()) {
    // Negotiate authenticated this connection (RFC 4559 4.2 leaves it to the server; like
    // IIS and squid, the connection keeps the identity): no header needed on later requests.
    ex.login = c.login.who;
    co_return login_step::proceed;
  }
  std::string user, password;
  const bool sent = !authorization.empty();
  const bool negotiate = sent && s.negotiate.configured() && w.state().negotiate != nullptr && is_negotiate(authorization);
  const bool readable = sent && !negotiate && parse_basic(authorization, user, password);
  http::status status = http::status::proxy_authentication_required;
  std::string body;
  std::string reply_token;  // a Negotiate exchange that continues
  std::shared_ptr<negotiate_context> negotiation;
  std::chrono::seconds retry_after{0};
  if (negotiate && service->refused(s, c.ip_text, "", now, &retry_after)) {
    count(w, kind::rate_limited);
    status = http::status::too_many_requests;
    body = "Too many failed sign-ins. Wait a few minutes, then try again.\n";
    ex.reason_override = "login refused after too many failures";
    ex.note = "Negotiate login rate-limited";
  } else if (negotiate) {
    // The exchange in progress on this connection, if any, else a new one.
    negotiation = c.login.negotiation ? c.login.negotiation : make_negotiate_context();
    auto ctx = negotiation;
    std::string client = c.ip_text, header(authorization);
    std::shared_ptr<const login_settings> settings(ex.cfg, &s);
    auto answer = co_await ask_negotiate(w, std::move(settings), std::move(ctx), std::move(client), std::move(header));
    if (answer.kind == kind::ok) {
      count(w, answer.kind);
      remember(c, answer.who, authorization, answer.expires);  // until its groups are cache_ttl old
      c.login.connection_bound = true;
      ex.login = std::move(answer.who);
      co_return login_step::proceed;
    }
    if (answer.continue_needed) {
      reply_token = std::move(answer.reply_token);
      body = "Signing in (Negotiate continues).\n";
      ex.reason_override = "login continues";
    } else if (answer.kind == kind::bad_credentials) {
      count(w, answer.kind);
      negotiation.reset();
      body = "The single sign-on ticket was not accepted. Sign in again.\n";
      ex.reason_override = "login failed";
      ex.note = "Negotiate login failed: " + answer.detail;
      // A keytab without the key fails every such ticket, on every request, and a client can
      // make up tickets for any service name: the line is written at most once a minute
      // (each request still has its note in the access log).
      if (!answer.keytab_at_fault || keytab_line_due(std::chrono::steady_clock::now())) {
        w.state().diagnostics.say("hallpass: Negotiate login failed from " + c.ip_text + ": " +
                                  rules::terminal_safe(answer.detail));
      }
    } else {
      count(w, answer.kind);
      negotiation.reset();
      status = http::status::service_unavailable;
      body = "The school directory could not check the sign-in just now. Try again in a minute.\n";
      ex.reason_override = "login directory unavailable";
      ex.note = "Negotiate login not checked: " + answer.detail;
      w.state().diagnostics.say("hallpass: Negotiate login from " + c.ip_text + " not checked: " +
                                rules::terminal_safe(answer.detail));
    }
  } else if (!sent) {
    if (mode == login_mode::optional) co_return login_step::proceed;
    body = "Sign in to use the school internet.\n";
    ex.reason_override = "login required";
  } else if (!readable) {
    body = s.negotiate.configured() ? "The sign-in could not be read: only Negotiate and Basic are accepted here.\n"
                                    : "The sign-in could not be read: only Basic is accepted here.\n";
    ex.reason_override = "login unreadable";
    count(w, kind::bad_credentials);
  } else {
    std::string name = user;
    auto answer = co_await check_password(w, c, s, std::move(name), std::move(password), &retry_after, "");
    if (answer.kind == kind::ok || answer.kind == kind::cached) {
      // Trusted on this connection (and a tunnel it opens) until the directory's check is
      // cache_ttl old: a cached success counts from when the directory said so, not from now.
      remember(c, answer.who, authorization, answer.expires);
      ex.login = std::move(answer.who);
      co_return login_step::proceed;
    }
    if (answer.kind == kind::rate_limited) {
      status = http::status::too_many_requests;
      body = "Too many wrong passwords. Wait a few minutes, then try again.\n";
      ex.reason_override = "login refused after too many failures";
      ex.note = "login rate-limited for " + name_for_log(user, answer);
    } else if (answer.kind == kind::bad_credentials) {
      body = "The user name or password was not right.\n";
      ex.reason_override = "login failed";
      ex.note = "login failed for " + name_for_log(user, answer) + ": " + answer.detail;
    } else {
      status = http::status::service_unavailable;
      body = "The school directory could not check the sign-in just now. Try again in a minute.\n";
      ex.reason_override = "login directory unavailable";
      ex.note = "login for " + name_for_log(user, answer) + " not checked: " + answer.detail;
    }
  }
  ex.action = outcome::error;
  // The connection goes on after a 407 (the client retries on it with credentials); a failed
  // connection forgets any earlier sign-in.
  c.login.forget();
  c.login.negotiation = std::move(negotiation);  // a Negotiate exchange that continues on this connection
  const bool keep = keep_alive && status == http::status::proxy_authentication_required;
  const bool ok = co_await write_answer(c, ex, status, std::move(body), s, retry_after, keep, version, reply_token);
  *again = ok && keep;
  co_return login_step::answered;
}

}  // namespace hallpass
