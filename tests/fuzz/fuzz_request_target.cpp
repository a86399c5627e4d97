// libFuzzer target: parse_request_target() alone (proxy/request_target.hpp).
// Input: the first byte's low bit chooses CONNECT (authority-form); the rest is the target.
// The same target is also read as a request inside an inspected tunnel to www.example.org:443
// (parse_tunnel_request_target), with the Host field the part after a first '\n' if any.
//
// Asserted beyond "no crash, no sanitizer report":
//  - success only when every input byte is visible ASCII, and every output is visible ASCII;
//    failure always says why;
//  - success gives a non-empty host, a port 1-65535, scheme "https" for CONNECT (empty path
//    and query) and "http" otherwise (a path starting with '/', no '#' anywhere, no '?' in
//    the path, no '@' in the host);
//  - inside a tunnel, success always names exactly the tunnel's host and port, with a path
//    starting with '/' (no request for another site gets through);
//  - on a transparent listener (parse_transparent_request_target, original destination
//    203.0.113.10:80, the same Host field), success gives scheme "http", port 80, a host
//    without '@', '/', '?', '#' (and ':' only inside brackets), and reads the same again from
//    its own origin-form and Host;
//  - the outputs written back as a target ("http://host:port/path?query", "host:port") parse
//    to the same outputs: what the session forwards and decides on is a fixed point.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "proxy/request_target.hpp"
#include "tests/fuzz/fuzz_require.hpp"

using namespace hallpass;

namespace {

bool visible_ascii(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) < 0x21 || static_cast<unsigned char>(c) > 0x7E) return false;
  }
  return true;
}

bool same(const parsed_target& a, const parsed_target& b) {
  return a.scheme == b.scheme && a.host == b.host && a.port == b.port && a.path == b.path &&
         a.query == b.query;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const bool connect = data[0] & 1;
  const std::string_view target(reinterpret_cast<const char*>(data + 1), size - 1);
  {
    std::string_view inner_target = target;
    std::optional<std::string_view> host_field;  // none without a '\n': HTTP/1.0's missing Host
    if (const auto nl = target.find('\n'); nl != std::string_view::npos) {
      inner_target = target.substr(0, nl);
      host_field = target.substr(nl + 1);
    }
    std::string inner_error;
    const auto in = parse_tunnel_request_target(inner_target, host_field, "www.example.org", 443, inner_error);
    if (!in) {
      FUZZ_REQUIRE(!inner_error.empty());
    } else {
      FUZZ_REQUIRE(visible_ascii(inner_target));
      FUZZ_REQUIRE(in->scheme == "https" && in->host == "www.example.org" && in->port == 443);
      FUZZ_REQUIRE(!in->path.empty() && in->path.front() == '/');
      FUZZ_REQUIRE(in->path.find_first_of("?#") == std::string::npos && in->query.find('#') == std::string::npos);
      FUZZ_REQUIRE(!in->no_path || (in->path == "/" && in->query.empty()));  // OPTIONS then goes on as "*"
    }
    std::string tp_error;
    const auto tp = parse_transparent_request_target(inner_target, host_field, "203.0.113.10", 80, tp_error);
    if (!tp) {
      FUZZ_REQUIRE(!tp_error.empty());
    } else {
      FUZZ_REQUIRE(visible_ascii(inner_target) && visible_ascii(tp->host));
      FUZZ_REQUIRE(tp->scheme == "http" && tp->port == 80 && !tp->host.empty());
      FUZZ_REQUIRE(tp->host.find_first_of("@/?#") == std::string::npos);
      FUZZ_REQUIRE(tp->host.front() == '[' || tp->host.find(':') == std::string::npos);
      FUZZ_REQUIRE(!tp->path.empty() && tp->path.front() == '/');
      FUZZ_REQUIRE(!tp->no_path || (tp->path == "/" && tp->query.empty()));
      const std::string origin_form = tp->path + (tp->query.empty() ? "" : "?" + tp->query);
      std::string tp_error2;
      const auto tp2 = parse_transparent_request_target(origin_form, std::string_view(tp->host), "203.0.113.10", 80,
                                                        tp_error2);
      FUZZ_REQUIRE(tp2.has_value() && same(*tp, *tp2));
    }
  }
  std::string error;
  const auto t = parse_request_target(target, connect, error);
  if (!t) {
    FUZZ_REQUIRE(!error.empty());
    return 0;
  }
  FUZZ_REQUIRE(visible_ascii(target));
  FUZZ_REQUIRE(!t->host.empty() && t->port != 0);
  FUZZ_REQUIRE(visible_ascii(t->host) && visible_ascii(t->path + t->query));
  std::string again;
  if (connect) {
    FUZZ_REQUIRE(t->scheme == "https" && t->path.empty() && t->query.empty());
    again = t->host + ":" + std::to_string(t->port);
  } else {
    FUZZ_REQUIRE(t->scheme == "http");
    FUZZ_REQUIRE(!t->path.empty() && t->path.front() == '/');
    FUZZ_REQUIRE(t->path.find_first_of("?#") == std::string::npos &&
                 t->query.find('#') == std::string::npos);
    FUZZ_REQUIRE(t->host.find_first_of("@/?#") == std::string::npos);
    FUZZ_REQUIRE(!t->no_path || (t->path == "/" && t->query.empty()));
    again = "http://" + t->host + ":" + std::to_string(t->port) + t->path +
            (t->query.empty() ? "" : "?" + t->query);
  }
  std::string error2;
  const auto t2 = parse_request_target(again, connect, error2);
  FUZZ_REQUIRE(t2.has_value() && same(*t, *t2));
  return 0;
}
