#include "proxy/access_request_form.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>
#include <stdexcept>

#include "proxy/access_record.hpp"
#include "proxy/block_page.hpp"
#include "proxy/request_checks.hpp"
#include "rules/utf8.hpp"

namespace hallpass {
namespace {
std::string to_hex(const unsigned char* bytes, std::size_t n) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * n);
  for (std::size_t i = 0; i < n; ++i) {
    out += hex[bytes[i] >> 4];
    out += hex[bytes[i] & 15];
  }
  return out;
}
}  // namespace

form_keys::form_keys() {
  if (RAND_bytes(key_, sizeof key_) != 1) throw std::runtime_error("cannot make a random key for the request form");
}

std::string form_keys::random_nonce() {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) throw std::runtime_error("cannot make a random nonce for the request form");
  return to_hex(bytes, sizeof bytes);
}

std::string form_keys::token(token_purpose purpose, std::string_view client, std::string_view url,
                             std::int64_t issued, std::string_view nonce) const {
  const std::string_view what = purpose == token_purpose::request  ? "request"
                                : purpose == token_purpose::signin ? "signin"
                                                                   : "signout";
  const std::string msg = std::string(what) + '\n' + std::string(client) + '\n' + std::string(url) + '\n' +
                          std::to_string(issued) + '\n' + std::string(nonce);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key_, sizeof key_, reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), mac, &len);
  return to_hex(mac, len);
}

bool form_keys::verify(token_purpose purpose, std::string_view client, std::string_view url, std::int64_t issued,
                       std::string_view nonce, std::string_view t, std::int64_t now) const {
  if (issued > now + 60 || now - issued > form_token_lifetime) return false;
  if (nonce.size() != 32) return false;
  const std::string want = token(purpose, client, url, issued, nonce);
  return t.size() == want.size() && CRYPTO_memcmp(want.data(), t.data(), want.size()) == 0;
}

form_keys::redeem_result form_keys::redeem(std::string_view token, std::int64_t issued, std::int64_t now) {
  std::lock_guard lock(used_mutex_);
  if (now >= next_sweep_ || used_.size() >= max_used) {
    std::erase_if(used_, [now](const auto& kv) { return kv.second < now; });
    next_sweep_ = now + 60;
  }
  if (used_.contains(std::string(token))) return redeem_result::already_used;
  if (used_.size() >= max_used) return redeem_result::full;
  // Kept a little past the token's own end, so a clock step cannot revive it.
  used_.emplace(std::string(token), issued + form_token_lifetime + 120);
  return redeem_result::fresh;
}

void form_keys::release(std::string_view token) {
  std::lock_guard lock(used_mutex_);
  used_.erase(std::string(token));
}

std::string url_for_storage(std::string_view url, bool keep_query) {
  if (keep_query) return std::string(url);
  return rules::path_without_parameters(url.substr(0, url.find_first_of("?#")));
}

std::string url_without_credentials(std::string_view url) {
  url = url.substr(0, url.find('#'));
  // A scheme only where one can stand: letters, digits, '+', '-', '.' before "://", and that
  // before any '/', '?' (a "://" in a query is not one).
  const auto scheme_end = url.find("://");
  const bool scheme = scheme_end != std::string_view::npos && scheme_end > 0 &&
                      scheme_end < url.find_first_of("/?") &&
                      std::all_of(url.begin(), url.begin() + static_cast<std::ptrdiff_t>(scheme_end), [](char c) {
                        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                               c == '+' || c == '-' || c == '.';
                      });
  const std::size_t authority = scheme ? scheme_end + 3 : 0;
  const auto authority_end = std::min(url.find_first_of("/?", authority), url.size());
  const auto at = url.substr(authority, authority_end - authority).rfind('@');
  if (at == std::string_view::npos) return std::string(url);
  return std::string(url.substr(0, authority)) + std::string(url.substr(authority + at + 1));
}

std::string describe_window(std::chrono::seconds window) {
  const auto n = window.count();
  auto plural = [](long long v, const char* unit) {
    return std::to_string(v) + " " + unit + (v == 1 ? "" : "s");
  };
  if (n == 86400) return "a day";
  if (n % 86400 == 0) return plural(n / 86400, "day");
  if (n == 3600) return "an hour";
  if (n % 3600 == 0) return plural(n / 3600, "hour");
  if (n % 60 == 0) return n == 60 ? "a minute" : plural(n / 60, "minute");
  return plural(n, "second");
}

std::string render_request_form(const form_keys& keys, std::string_view client, std::string_view url,
                                std::int64_t now, bool same_site,
                                std::string_view user, bool adults) {
  std::string out;
  // The form's look is in block_page.cpp's shared style (.rq), in the page's head.
  // The pupil says, in their own words, what they need and why. The adult questions of the
  // school's form (identified risks, control measures) are for the teacher or technician who
  // passes the request on, not for a seven-year-old.
  // Short, so that the button is in sight on a phone (it was below the fold: audit of the
  // pages, 2026-12-06). The process (the technician puts it on the school's form, the
  // headteacher decides, 000 7.5) is the adults'; the group and the device go with it.
  out += adults ? "<p>Tell the headteacher why you need this page (000 7.5).</p>\n"
                : "<p>Tell us why you need this page. A teacher will look at it.</p>\n";
  out += "<form class=\"rq\" method=\"post\" action=\"";
  if (same_site) {
    out += tunnel_form_path;  // posted back to the blocked site's address, which is the proxy
  } else {
    out += "http://";
    out += form_host;
    out += form_path;
  }
  out += "\">\n<input type=\"hidden\" name=\"url\" value=\"";
  append_html_escaped(out, url);
  out += "\">\n<input type=\"hidden\" name=\"issued\" value=\"" + std::to_string(now) + "\">\n";
  const std::string nonce = form_keys::random_nonce();
  out += "<input type=\"hidden\" name=\"nonce\" value=\"" + nonce + "\">\n";
  out += "<input type=\"hidden\" name=\"token\" value=\"" + keys.token(token_purpose::request, client, url, now, nonce) + "\">\n";
  out +=
      "<label for=\"rq-requester\">Your name <span class=\"hint\">";
  out += adults ? "(and your role)" : "(and your class)";
  out +=
      "</span></label>"
      // No autofill: on a shared device it offered the last pupil's name.
      "<input type=\"text\" id=\"rq-requester\" name=\"requester\" required maxlength=\"200\" autocomplete=\"off\"";
  if (!user.empty()) {
    out += " value=\"";
    append_html_escaped(out, user);
    out += "\"";
  }
  out +=
      ">\n"
      "<label for=\"rq-reasons\">What do you need this page for?</label>"
      "<textarea id=\"rq-reasons\" name=\"reasons\" required maxlength=\"2000\"></textarea>\n"
      "<label for=\"rq-content\">What is on the page? <span class=\"hint\">(if you know)</span></label>"
      "<textarea id=\"rq-content\" name=\"site_content\" maxlength=\"2000\"></textarea>\n"
      "<button type=\"submit\">Send my request</button>\n</form>";
  return out;
}

namespace {
std::string decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && hex_digit_value(s[i + 1]) >= 0 && hex_digit_value(s[i + 2]) >= 0) {
      out += static_cast<char>(hex_digit_value(s[i + 1]) * 16 + hex_digit_value(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}
}  // namespace

namespace {
// One value for a query that parse_form reads back: what it would take for a separator or an
// escape (& + % #, and = in a name only), and what a request target may not carry (space,
// controls, " < > \\ ^ ` { | }, bytes outside ASCII), percent-encoded; the rest as it is.
void append_form_encoded(std::string& out, std::string_view s) {
  constexpr char hex[] = "0123456789ABCDEF";
  constexpr std::string_view encoded = "&+%#\"<>\\^`{|}";
  for (const char ch : s) {
    const auto b = static_cast<unsigned char>(ch);
    if (b > 0x20 && b < 0x7f && encoded.find(ch) == std::string_view::npos) {
      out += ch;
    } else {
      out += '%';
      out += hex[b >> 4];
      out += hex[b & 15];
    }
  }
}
}  // namespace

std::string block_details_url(std::string_view method, const std::vector<std::string>& overrides,
                              std::string_view url) {
  std::string out = "http://";
  out += form_host;
  out += details_path;
  out += '?';
  if (!method.empty() && method != "GET") {
    out += "method=";
    append_form_encoded(out, method);
    out += '&';
  }
  if (!overrides.empty()) {
    out += "override=";
    for (std::size_t i = 0; i < overrides.size(); ++i) {
      if (i > 0) out += ',';
      append_form_encoded(out, overrides[i]);
    }
    out += '&';
  }
  out += "url=";
  append_form_encoded(out, url);
  return out;
}

std::map<std::string, std::string> parse_form(std::string_view body) {
  std::map<std::string, std::string> out;
  while (!body.empty()) {
    const auto amp = body.find('&');
    const std::string_view pair = body.substr(0, amp);
    body.remove_prefix(amp == std::string_view::npos ? body.size() : amp + 1);
    if (pair.empty()) continue;
    const auto eq = pair.find('=');
    // Stored and shown to the reviewer, and sent in the admin protocol's JSON, whose readers
    // refuse invalid UTF-8: bytes that are not text become U+FFFD.
    out[decode(pair.substr(0, eq))] =
        eq == std::string_view::npos ? std::string() : rules::valid_utf8(decode(pair.substr(eq + 1)));
  }
  return out;
}

std::string form_text(std::string_view value, bool multiline) {
  std::string out;
  out.reserve(value.size());
  for (std::size_t i = 0; i < value.size();) {
    std::uint32_t cp = 0;
    const std::size_t n = rules::utf8_sequence(value, i, cp);
    if (n == 0) {  // not UTF-8 (parse_form has made it so already): dropped
      ++i;
      continue;
    }
    if (cp == '\r' || cp == '\n') {
      if (cp == '\r' && i + 1 < value.size() && value[i + 1] == '\n') ++i;  // CRLF: one line end
      out += multiline ? '\n' : ' ';
    } else if (cp == '\t') {
      out += ' ';
    } else if (!rules::is_unsafe_on_a_terminal(cp)) {
      out.append(value.substr(i, n));
    }
    i += n;
  }
  return out;
}

bool submission_limiter::allow(const std::string& client, std::chrono::steady_clock::time_point now) {
  std::lock_guard lock(mutex_);
  // Bounded memory, without forgetting a device that is at its limit: windows that have ended
  // go first, and while max_windows live ones remain, a client with none is refused. (All of
  // them were cleared: 10,001 addresses posting once gave every device a fresh window, resource
  // audit, 2026-12-06.)
  if (windows_.size() >= max_windows && !windows_.contains(client)) {
    if (now >= next_sweep_) {  // a sweep of 10,000 windows at most once a second
      std::erase_if(windows_, [&](const auto& w) { return now - w.second.first >= window_; });
      next_sweep_ = now + std::chrono::seconds(1);
    }
    if (windows_.size() >= max_windows) return false;
  }
  auto& [start, count] = windows_[client];
  if (count == 0 || now - start >= window_) {
    start = now;
    count = 0;
  }
  if (count >= limit_) return false;
  ++count;
  return true;
}

}  // namespace hallpass
