// The blocked content access request form (000 7.5 and appendix; 002), served by the proxy
// itself from the block page. The form posts to a reserved name that only the proxy answers
// (http://hallpass.invalid/request: the .invalid TLD never resolves, so no real site can
// be shadowed). Each form carries a token: an HMAC, with a key made at start-up, of the
// client address, the URL, the time it was issued and a random nonce; a submission whose token does not
// verify, or is over an hour old, is refused. A cross-site page cannot read the block page,
// so it cannot forge a token (CSRF). A token files at most one request: form_keys remembers
// the tokens used until they expire (bounded), so a replayed submission is refused.
// Submissions are rate-limited per client address.
//
// Pure functions except form_keys (random key; the used tokens behind a mutex) and
// submission_limiter (a mutex); any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace hallpass {

inline constexpr std::string_view form_host = "hallpass.invalid";
inline constexpr std::string_view form_path = "/request";
// The same form on a block page inside an inspected HTTPS tunnel posts to this path of the
// blocked site itself (same origin, so the browser sends it through the same tunnel, with no
// warning about a form leaving HTTPS); the proxy answers it on every inspected host and never
// forwards it. (RFC 8615 reserves /.well-known/ for such site-wide names.)
inline constexpr std::string_view tunnel_form_path = "/.well-known/hallpass/request";

// The person's block page at the proxy's own address, for a blocked plain-HTTP page on the
// explicit proxy: that page is served as the site, and the site's own scripts can read it
// (a fetch() of a blocked address on the same site), so it leaves out who signed in, the
// device and the form, and links here instead. hallpass.invalid is another origin, which the
// site's scripts cannot read; the proxy decides the URL again for whoever asks and shows the
// page with the details and the form, or says that the page is not blocked for them now.
inline constexpr std::string_view details_path = "/blocked";
// "http://hallpass.invalid/blocked?method=POST&override=PUT&url=http://h/p%3Fq%3D1": the
// method when not GET, the methods the request named in method-override fields (comma-
// separated; none for nearly every request), and the URL last, with what the form reading
// would take for a separator or an escape (& + % #, space, anything outside visible ASCII)
// percent-encoded and the rest as it is, so the link stays about as long as the URL.
std::string block_details_url(std::string_view method, const std::vector<std::string>& overrides,
                              std::string_view url);

inline constexpr std::int64_t form_token_lifetime = 3600;  // seconds

// What a token is for: the first field of its MAC, so that a token made for one form is never
// accepted by the other (a sign-in page's token posted to the request form with its URL made to
// match filed requests for pages no block page was shown for).
enum class token_purpose : std::uint8_t { request, signin, signout };

class form_keys {
 public:
  form_keys();  // a fresh random key
  // `nonce`: random per block page (random_nonce()), so two pages shown in the same second
  // carry different tokens and each may file its own request.
  std::string token(token_purpose purpose, std::string_view client, std::string_view url, std::int64_t issued,
                    std::string_view nonce) const;
  bool verify(token_purpose purpose, std::string_view client, std::string_view url, std::int64_t issued,
              std::string_view nonce, std::string_view token, std::int64_t now) const;
  static std::string random_nonce();  // 32 hex digits

  enum class redeem_result { fresh, already_used, full };
  // Marks a verified token used. `already_used` when it was redeemed before (a replay or a
  // second click); `full` when max_used tokens are remembered and none has expired (refuse:
  // forgetting one would let it be replayed). Call release() when the request could not be
  // filed, so the same form can be sent again.
  redeem_result redeem(std::string_view token, std::int64_t issued, std::int64_t now);
  void release(std::string_view token);

  static constexpr std::size_t max_used = 65536;  // about 8 MiB at most

 private:
  unsigned char key_[32];
  std::mutex used_mutex_;
  std::unordered_map<std::string, std::int64_t> used_;  // token -> when it expires
  std::int64_t next_sweep_ = 0;
};

// The URL as the store keeps it: without its query and fragment unless access_log.keep_query
// is on (a query often holds personal data: search words, names, ids), and then without the
// path parameters either (";jsessionid=...": path_without_parameters).
std::string url_for_storage(std::string_view url, bool keep_query);

// A URL an adult typed (hallpassctl request, report): without user information
// ("name:password@") and fragment, which no request carries to a site; the query stays (the
// headteacher may mean that page). audit19 D4.
std::string url_without_credentials(std::string_view url);

// "10 minutes", "a minute", "an hour", "a day", "2 days", "90 seconds": a duration in words.
std::string describe_window(std::chrono::seconds window);

// The form's HTML, to insert in the block page. `same_site`: the form posts to
// tunnel_form_path on the blocked site itself, for a device that reaches the proxy only through
// the site's own address (inside an inspected tunnel; on a transparent listener, where
// hallpass.invalid leads nowhere); otherwise to http://hallpass.invalid/request through the
// proxy. `user`: who signed in to the proxy (logins), filled in as the requester (the pupil
// may still add their class); empty: nobody. `adults`: the asker's role reads pages as an adult
// (`audience: adults`): the lead names the headteacher and the name asks for a role, not a class.
std::string render_request_form(const form_keys& keys, std::string_view client, std::string_view url,
                                std::int64_t now, bool same_site,
                                std::string_view user = {}, bool adults = false);

// application/x-www-form-urlencoded -> fields (repeated names: the last wins), each value valid
// UTF-8 (bytes that are not text become U+FFFD). Bounded by the caller's body limit.
std::map<std::string, std::string> parse_form(std::string_view body);

// A form answer as it is stored: control characters and the invisible ones a terminal or an
// editor acts on (rules::is_unsafe_on_a_terminal: ESC, NUL, BEL, bidi overrides, ...) dropped.
// A multi-line answer (a textarea) keeps its line ends as "\n" (a browser sends CRLF) and turns
// tabs into spaces; a one-line answer gets a space for each line end or tab. The admin
// protocol refuses such text from the office (docs/admin-protocol.md); a child's form is
// cleaned instead, since a page cannot be refused for a stray character.
std::string form_text(std::string_view value, bool multiline);

// At most `limit` submissions per client address in any `window`, for at most max_windows
// addresses at a time: while that many have a window open, an address with none is refused.
class submission_limiter {
 public:
  static constexpr std::size_t max_windows = 10000;
  submission_limiter(std::size_t limit, std::chrono::seconds window) : limit_(limit), window_(window) {}
  bool allow(const std::string& client, std::chrono::steady_clock::time_point now);
  std::size_t limit() const { return limit_; }
  std::chrono::seconds window() const { return window_; }

 private:
  std::mutex mutex_;
  std::size_t limit_;
  std::chrono::seconds window_;
  std::unordered_map<std::string, std::pair<std::chrono::steady_clock::time_point, std::size_t>> windows_;
  std::chrono::steady_clock::time_point next_sweep_{};
};

}  // namespace hallpass
