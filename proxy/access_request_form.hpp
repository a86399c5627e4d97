// The blocked content access request form (000 7.5 and appendix; 002), served by the proxy
// itself from the block page. The form posts to a reserved name that only the proxy answers
// (http://hallpass.invalid/request: the .invalid TLD never resolves, so no real site can
// be shadowed). Each form carries a token: an HMAC, with a key made at start-up, of the
// client address, the URL and the time it was issued; a submission whose token does not
// verify, or is over an hour old, is refused. A cross-site page cannot read the block page,
// so it cannot forge a token (CSRF). Submissions are rate-limited per client address.
//
// Pure functions except form_keys (random key) and submission_limiter (a mutex); any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace hallpass {

inline constexpr std::string_view form_host = "hallpass.invalid";
inline constexpr std::string_view form_path = "/request";

class form_keys {
 public:
  form_keys();  // a fresh random key
  std::string token(std::string_view client, std::string_view url, std::int64_t issued) const;
  bool verify(std::string_view client, std::string_view url, std::int64_t issued, std::string_view token,
              std::int64_t now) const;

 private:
  unsigned char key_[32];
};

// The form's HTML, to insert in the block page.
std::string render_request_form(const form_keys& keys, std::string_view client, std::string_view url,
                                std::string_view role, std::int64_t now);

// application/x-www-form-urlencoded -> fields (repeated names: the last wins). Bounded by the
// caller's body limit.
std::map<std::string, std::string> parse_form(std::string_view body);

// At most `limit` submissions per client address in any `window`.
class submission_limiter {
 public:
  submission_limiter(std::size_t limit, std::chrono::seconds window) : limit_(limit), window_(window) {}
  bool allow(const std::string& client, std::chrono::steady_clock::time_point now);

 private:
  std::mutex mutex_;
  std::size_t limit_;
  std::chrono::seconds window_;
  std::unordered_map<std::string, std::pair<std::chrono::steady_clock::time_point, std::size_t>> windows_;
};

}  // namespace hallpass
