#include "proxy/request_form_handler.hpp"

#include "proxy/access_request_form.hpp"
#include "proxy/admin_server.hpp"
#include "proxy/dhcp_leases.hpp"
#include "proxy/block_page.hpp"
#include "proxy/local_response.hpp"
#include "proxy/posted_form.hpp"
#include "proxy/login_service.hpp"
#include "proxy/request_checks.hpp"
#include "proxy/request_target.hpp"
#include "proxy/shared_state.hpp"
#include "proxy/thread_answer.hpp"
#include "proxy/worker.hpp"
#include "rules/host.hpp"
#include "rules/utf8.hpp"

namespace hallpass {
namespace {


// An exchange of its own for the page `target` (a block page's URL) as `ex`'s asker would ask
// for it with `method`: the same configuration, time and sign-in, so that decide_exchange
// decides it as the proxy decided the request itself. For the details page and the request
// form's alert; never logged or counted as a second block.
void prepare_asked_page(exchange& page, const exchange& ex, const parsed_target& target, std::string method) {
  page.cfg = ex.cfg;
  page.start = ex.start;
  page.login = ex.login;
  page.method = std::move(method);
  page.scheme = target.scheme;
  page.host = std::string(without_brackets(target.host));
  page.port = target.port;
  page.path = target.path;
  page.query = target.query;
}

// A page in answer to the form. An ordinary coroutine function, not a lambda: GCC 12
// corrupts the heap with coroutine lambdas defined inside another coroutine (seen here).
// Each text says what to do next itself: no "try again in a minute" and no "Error 409" line
// under it, which contradicted it and meant nothing to a child (audit of the pages,
// 2026-12-06). The status is in the access log.
net::awaitable<void> form_page(client_connection& c, exchange& ex, std::string_view school, unsigned version,
                               http::status st, std::string_view title, std::string_view text) {
  std::string body = render_notice_page(title, read_by_adult(ex) ? adult_wording(text) : std::string(text), school);
  co_await write_local(c, ex, st, std::move(body), "text/html; charset=utf-8", false, version);
}

// Files a request on the store thread. A named functor rather than a lambda: GCC 12 miscopies
// non-trivial lambda captures made inside a coroutine (a string ended up bit-copied and freed
// from inside a coroutine frame; found by ASan).
// Files on the store thread (SQLite never runs on an event loop) and answers through
// thread_answer.hpp, which frees the pupil at form_filing_deadline whatever the store thread
// is doing (a reload of the whole policy, a disk that has stopped answering). At most
// max_forms_in_flight wait at once (shared_state::forms_in_flight), so a stalled store cannot
// gather every device's posts.
constexpr auto form_filing_deadline = std::chrono::seconds(10);
constexpr int max_forms_in_flight = 64;

// A form's place among the max_forms_in_flight, taken before anything else is spent on it (the
// device's allowance) and given back however it ends: refused before filing, filed, thrown out
// of, or destroyed unrun with the admin thread's queue (review, 2026-12-06: a throw lost the
// place for good, and a busy answer had used one of the device's five).
class in_flight_place {
 public:
  // Null when max_forms_in_flight wait already.
  static std::shared_ptr<in_flight_place> take(std::atomic<int>& count) {
    if (count.fetch_add(1, std::memory_order_relaxed) >= max_forms_in_flight) {
      count.fetch_sub(1, std::memory_order_relaxed);
      return nullptr;
    }
    return std::shared_ptr<in_flight_place>(new in_flight_place(count));
  }
  in_flight_place(const in_flight_place&) = delete;
  in_flight_place& operator=(const in_flight_place&) = delete;
  ~in_flight_place() { count_.fetch_sub(1, std::memory_order_relaxed); }

 private:
  explicit in_flight_place(std::atomic<int>& c) : count_(c) {}
  std::atomic<int>& count_;
};

struct file_form_job {
  admin_server* admin;
  std::shared_ptr<const store::request_form> form;
  std::shared_ptr<in_flight_place> place;
  template <class Callback>
  void operator()(Callback done) const {
    net::post(admin->executor(), [admin = admin, form = form, place = place, done = std::move(done)]() mutable {
      store::result r;
      try {
        r = admin->file_form(*form);
      } catch (const std::exception& e) {
        r = store::result::fail("internal", std::string("the store failed: ") + e.what());
      }
      place.reset();
      done(std::move(r));
    });
  }
};

// What the wait answers when the store has not filed the form in time.
struct form_filing_late {
  store::result operator()() const { return store::result::fail("timeout", "the store did not answer in time"); }
};

}  // namespace

namespace {

// The first `n` characters of valid UTF-8 text (parse_form makes it valid).
std::string first_characters(const std::string& s, std::size_t n) {
  std::size_t i = 0;
  for (std::size_t count = 0; i < s.size() && count < n; ++count) {
    std::uint32_t cp = 0;
    i += std::max<std::size_t>(1, rules::utf8_sequence(s, i, cp));
  }
  return s.substr(0, i);
}

// Whether the text has something to read: not only spaces, tabs, no-break spaces or
// zero-width characters (a name of " \u200b\u00a0 " is no name).
bool has_visible_text(const std::string& s) {
  for (std::size_t i = 0; i < s.size();) {
    std::uint32_t cp = 0;
    const std::size_t n = std::max<std::size_t>(1, rules::utf8_sequence(s, i, cp));
    const bool blank = cp <= 0x20 || cp == 0x7F || cp == 0xA0 || (cp >= 0x200B && cp <= 0x200F) || cp == 0xFEFF ||
                       cp == 0x2028 || cp == 0x2029 || cp == 0x3000 || (cp >= 0x2000 && cp <= 0x200A);
    if (!blank) return true;
    i += n;
  }
  return false;
}

}  // namespace

// http://hallpass.invalid/request: the block page's access request form.
net::awaitable<void> answer_form(worker& w, client_connection& c, exchange& ex, request_parser& rp) {
  auto& state = w.state();
  const std::string_view school = ex.cfg->policy->school_name;
  ex.action = outcome::allow;
  ex.reason_override = "the block page's access request form";
  // Who asks: the role for the log line and for the request filed (no verdict is made here).
  note_asker_role(w, c, ex);
  const unsigned version = rp.get().version();
  const bool form_address = c.inside || c.transparent ? ex.path == tunnel_form_path : ex.path == form_path;
  if (rp.get().method() != http::verb::post || !form_address) {
    co_await form_page(c, ex, school, version, http::status::not_found, "Nothing here",
                  "This address belongs to the school\u2019s internet filter. Use the form on a block page to ask for access.");
    co_return;
  }
  // On a site's own origin (an inspected tunnel, a transparent listener) that site's scripts can
  // read a block page of the site and post its form: a request filed in the name of whoever is
  // signed in on the device (audit3, 2026-12-05, F3). A form sent from the page is a navigation,
  // which every current browser says in Sec-Fetch-Mode; without the header (an older browser)
  // the form is taken as before, as the sign-in page does.
  if (c.inside || c.transparent) {
    const std::string_view mode = rp.get()["Sec-Fetch-Mode"];
    if (!mode.empty() && !rules::ascii_iequals(mode, "navigate")) {
      ex.action = outcome::block;
      ex.note = "access request form, posted by a script (Sec-Fetch-Mode: " + std::string(mode.substr(0, 32)) +
                "): refused";
      co_await form_page(c, ex, school, version, http::status::forbidden, "Send the form from the block page",
                         "Please fill in the form on the block page the browser shows.");
      co_return;
    }
  }
  // The body: a small urlencoded form, read whole (bounded).
  // The hidden URL may be as long as a request head (limits.header_bytes, 32 KiB by default),
  // and the answers add at most 4,200 characters: a pupil cannot shorten a long URL.
  constexpr std::size_t max_form = 64 * 1024;
  std::string body;
  const auto read = co_await read_posted_form(c, rp, max_form, body);
  if (read == posted_read::gone) co_return;
  if (read == posted_read::too_large) {
    co_await form_page(c, ex, school, version, http::status::payload_too_large, "The form is too long", "Please shorten your answers and try again.");
    co_return;
  }
  ex.bytes_in += body.size();
  auto fields = parse_form(body);
  const std::string& url = fields["url"];
  std::int64_t issued = 0;
  try {
    issued = std::stoll(fields["issued"]);
  } catch (const std::exception&) {
  }
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(ex.start.time_since_epoch()).count();
  if (url.empty() ||
      !state.form_keys.verify(token_purpose::request, c.ip_text, url, issued, fields["nonce"], fields["token"], now)) {
    ex.note = "access request form: bad or old token";
    co_await form_page(c, ex, school, version, http::status::forbidden, "The form has expired",
                  "Please open the blocked page again and fill in the form there.");
    co_return;
  }
  // As the form's own limits say (maxlength), for a post that did not come from the form.
  // Cleaned of control characters (form_text), then cut.
  fields["requester"] = first_characters(form_text(fields["requester"], false), 200);
  fields["reasons"] = first_characters(form_text(fields["reasons"], true), 2000);
  fields["site_content"] = first_characters(form_text(fields["site_content"], true), 2000);
  if (!has_visible_text(fields["requester"]) || !has_visible_text(fields["reasons"])) {
    co_await form_page(c, ex, school, version, http::status::bad_request, "Some answers are missing",
                  "Please give your name and why you need the page.");
    co_return;
  }
  // The URL as it will be stored (without its query unless the log keeps queries) at most
  // max_stored_url bytes: nobody approves a page by reading 30 KB of address, and a class's
  // forms with such URLs made the headteacher's `list` too long to answer (audit, 2026-12-05).
  // The query (and fragment) is kept only where the school keeps it in the access log.
  const std::string stored_url = url_for_storage(url, ex.cfg->daemon.access_log.keep_query);
  constexpr std::size_t max_stored_url = 4096;
  if (stored_url.size() > max_stored_url) {
    ex.note = "access request form: the URL is longer than 4096 bytes";
    co_await form_page(c, ex, school, version, http::status::uri_too_long, "This address is too long",
                       "This address is too long to send with the form. Please ask your teacher, who can pass "
                       "the request on.");
    co_return;
  }
  // A token files one request: a replay (or a second click) is told so plainly.
  const std::string token = fields["token"];
  const auto redeemed = state.form_keys.redeem(token, issued, now);
  if (redeemed == form_keys::redeem_result::already_used) {
    ex.note = "access request form: token already used";
    co_await form_page(c, ex, school, version, http::status::conflict, "This form has already been sent",
                  "This form was sent once already, so it was not sent again. To ask again, open the blocked page "
                  "again and fill in the form there.");
    co_return;
  }
  if (redeemed == form_keys::redeem_result::full) {
    ex.note = "access request form: too many forms in the last hour";
    co_await form_page(c, ex, school, version, http::status::service_unavailable, "Requests cannot be sent now",
                  "Too many requests have been sent in the last hour. Please ask your teacher.");
    co_return;
  }
  // The store's room first: a pupil told "busy, try again in a minute" has used none of the
  // device's allowance (review, 2026-12-06: each retry cost one of the five). The hard bound is
  // the count taken below; this only keeps the common case off the limiter.
  auto place = in_flight_place::take(state.forms_in_flight);
  if (!place) {
    ex.note = "access request form: the store is busy (" + std::to_string(max_forms_in_flight) + " forms waiting)";
    state.form_keys.release(token);
    co_await form_page(c, ex, school, version, http::status::service_unavailable, "The request could not be saved",
                  "Please try again in a minute, or ask your teacher.");
    co_return;
  }
  if (!state.form_limiter.allow(c.ip_text, std::chrono::steady_clock::now())) {
    ex.note = "access request form: rate limited";
    state.form_keys.release(token);  // not used: the same form may be sent later
    // The window in words comes from the limiter itself, so the page cannot disagree with it.
    const std::string wait = "This device has sent " + std::to_string(state.form_limiter.limit()) +
                             " requests in the last " + describe_window(state.form_limiter.window()) +
                             ", the most it may send in that time. Please wait and try again later.";
    co_await form_page(c, ex, school, version, http::status::too_many_requests, "Too many requests", wait);
    co_return;
  }
  if (!state.admin) {
    state.form_keys.release(token);
    co_await form_page(c, ex, school, version, http::status::service_unavailable, "Requests cannot be sent now", "Please ask your teacher.");
    co_return;
  }
  // The requester's role, as the policy sees this device (and the signed-in user's groups).
  const std::string role = ex.asker_role ? ex.asker_role->name : std::string();
  auto form = std::make_shared<store::request_form>();
  form->url = stored_url;
  form->requester = fields["requester"];
  // Who signed in is a fact, not what the form says: the reviewer sees it beside the name typed,
  // unless the name typed is that user's name and nothing else. (Not "unless it appears
  // somewhere": "Mrs Head (re: erin's class)" would then hide that erin sent it.)
  if (ex.login && form->requester != ex.login->user) {
    form->requester += " (signed in as " + ex.login->user + ")";
  }
  form->reasons = fields["reasons"];
  form->site_content = fields["site_content"];
  // The adult questions (identified risks, control measures) are never taken from a pupil's
  // post: a crafted form must not make a request look assessed. The technician or the
  // headteacher completes them with `hallpassctl review`.
  form->roles = {role};
  form->source = "block page";
  form->client_address = c.ip_text;
  // A request for a page in a category the school watches (self-harm, extremism) is the DSL's
  // to hear of at once: what the pupil wrote may be a disclosure (safeguarding audit,
  // 2026-12-06, M6: it reached only the headteacher's list). Decided before filing, as such a
  // request is filed past the cap on the asker's waiting requests.
  exchange asked;
  bool asked_watched = false;
  if (ex.cfg->daemon.alerts.enabled() && !ex.cfg->daemon.alerts.categories.empty()) {
    std::string target_error;
    if (const auto target = parse_request_target(url, false, target_error)) {
      prepare_asked_page(asked, ex, *target, "GET");
      const std::string path_and_query = target->path + (target->query.empty() ? "" : "?" + target->query);
      if (decide_exchange(w, c, asked, path_and_query).act == rules::action::block) {
        asked.action = outcome::block;
        asked_watched = blocked_in_watched_category(asked);
      }
    }
  }
  form->past_pending_cap = asked_watched;
  // Who asked, for approve --who (the default narrows to the user, else to the device).
  if (ex.login) form->asker_user = ex.login->user;
  if (const device_identity* d = device_of(w, c, ex)) {
    if (!d->name.empty()) form->device_name = d->name;
    if (!d->hardware_address.empty()) form->device_mac = d->hardware_address;
  }
  // Filed on the store thread (SQLite never runs on an event loop); co_spawn brings the result
  // back to this worker. The job is a named local, moved in: GCC 12 destroys a non-trivial
  // temporary made inside a co_await expression a second time after the resume (ASan caught
  // the shared_ptr freed twice), so no such temporary may appear in one.
  // The job and the late answer are named locals moved in (proxy/README.md, GCC 12 rule 2).
  file_form_job job{state.admin, std::move(form), std::move(place)};
  form_filing_late late;
  auto filed = co_await answer_from_thread<store::result>(w, form_filing_deadline, std::move(job), std::move(late));
  if (!filed.ok && filed.code == "timeout") {
    // The store thread may still file it: the token stays used, so a second click cannot file
    // it twice, and the page says that it may have been sent.
    ex.note = "access request form: the store did not answer within " +
              std::to_string(form_filing_deadline.count()) + " s";
    co_await form_page(c, ex, school, version, http::status::service_unavailable, "The request may not have been saved",
                  "The school's filter is busy and could not confirm your request. It may still arrive; if your "
                  "teacher does not hear of it, open the blocked page again in a few minutes and ask again.");
    co_return;
  }
  if (!filed.ok && filed.code == "too_many_pending") {
    ex.note = "access request form: " + filed.error;
    state.form_keys.release(token);  // nothing was filed: the same form may be sent later
    const std::string wait = "You have " + std::to_string(store::max_pending_per_asker) +
                             " requests waiting for a teacher to look at them, the most you can have at once. "
                             "Please wait until they have been looked at, or ask your teacher.";
    co_await form_page(c, ex, school, version, http::status::too_many_requests, "You have asked for a lot of pages",
                       wait);
    co_return;
  }
  if (!filed.ok) {
    ex.note = "access request form: " + filed.error;
    state.form_keys.release(token);  // nothing was filed: the same form may be sent again
    co_await form_page(c, ex, school, version, http::status::service_unavailable, "The request could not be saved",
                  "Please try again in a minute, or ask your teacher.");
    co_return;
  }
  const auto& answer = filed.data.as_object();
  const auto id = answer.at("id").as_int64();
  const bool merged = answer.contains("merged") && answer.at("merged").as_bool();
  if (merged) {
    // One device asking again for the same page adds no second pending request.
    ex.note = "access request " + std::to_string(id) + " asked again (merged)";
    const std::string again = "You have already asked for this page (request number " + std::to_string(id) +
                              "), and a teacher will look at it. You do not need to ask again. If it is allowed, the "
                              "page will open by itself.";
    co_await form_page(c, ex, school, version, http::status::ok, "You have already asked for this page", again);
    co_return;
  }
  ex.note = "access request " + std::to_string(id) + " filed";
  if (asked_watched) {
    asked.note = "asked for with the block page's form: request " + std::to_string(id);
    raise_request_alert(w, c, asked, id);
  }
  const std::string text = "Your request has been sent (number " + std::to_string(id) +
                           "). A teacher will look at it. If it is allowed, the page will open by itself; you do not "
                           "need to do anything else.";
  co_await form_page(c, ex, school, version, http::status::ok, "Your request has been sent", text);
}

// http://hallpass.invalid/blocked?url=U[&method=M] (details_path): the person's block page for
// U, decided again now for whoever asks, with who signed in, the device and the form; linked
// from a plain-HTTP site's block page, which leaves them out because the site's scripts can read
// it. This page is another origin, which they cannot read; no frame may hold it (the form's
// button cannot be clicked through a page laid over it).
net::awaitable<void> answer_block_details(worker& w, client_connection& c, exchange& ex, request_parser& rp) {
  const std::string_view school = ex.cfg->policy->school_name;
  ex.action = outcome::allow;
  ex.reason_override = "the block page's details";
  note_asker_role(w, c, ex);
  const unsigned version = rp.get().version();
  const auto method = rp.get().method();
  auto fields = parse_form(ex.query);
  const std::string asked_method = fields.contains("method") ? fields["method"] : std::string("GET");
  const std::string& overrides = fields["override"];  // "" for nearly every page
  std::string error;
  std::optional<parsed_target> target;
  // The link's own limits: a method as long as a request line allows, overrides as a few
  // methods (add_method_override reads the comma list as the proxy reads the fields).
  if ((method == http::verb::get || method == http::verb::head) && rp.is_done() && asked_method.size() <= 256 &&
      is_http_token(asked_method) && overrides.size() <= 256) {
    target = parse_request_target(fields["url"], false, error);
  }
  if (!target || rules::ascii_iequals(without_brackets(target->host), form_host)) {
    co_await form_page(c, ex, school, version, http::status::not_found, "Nothing here",
                       "This address belongs to the school\u2019s internet filter. It shows a blocked page's details when you "
                       "follow the link on that page.");
    co_return;
  }
  // Decided as the proxy decides the request itself (http_session.cpp), on an exchange of its
  // own: this request is the proxy's page, logged and counted as that, not as a second block.
  const std::string path_and_query = target->path + (target->query.empty() ? "" : "?" + target->query);
  exchange shown;
  prepare_asked_page(shown, ex, *target, asked_method);
  if (!overrides.empty()) add_method_override(shown.method_overrides, shown.method, overrides);
  const auto& v = decide_exchange(w, c, shown, path_and_query);
  const std::string url = url_of(target->scheme, target->host, target->port, path_and_query);
  // Which page, as the store keeps URLs (its query only where the school keeps queries): the
  // technician sees what was asked about, and it is not counted as a block a second time.
  ex.note = "the block page's details for " + url_for_storage(url, ex.cfg->daemon.access_log.keep_query);
  std::string page;
  if (v.act == rules::action::block) {
    ex.note += " (" + std::string(v.rule_id) + ")";
    page = block_page_html(w, c, shown, url, true);
  } else {
    ex.note += ": not blocked now";
    page = render_notice_page("This page is not blocked for you now",
                              "The school\u2019s filter would let this device open the page now: it may have been "
                              "opened by an exception, or the rules may have changed. Go back and load the page again.",
                              school);
  }
  auto res = local_head(http::status::ok, version, "text/html; charset=utf-8");
  res.set("X-Content-Type-Options", "nosniff");
  res.set("X-Frame-Options", "DENY");
  res.set("Content-Security-Policy", "frame-ancestors 'none'");
  res.body() = std::move(page);
  co_await send_local(c, ex, res, false);
}

}  // namespace hallpass
