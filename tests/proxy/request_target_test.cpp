// parse_request_target: the absolute-form and authority-form request-targets the session
// accepts, what it keeps of them, and what it refuses (with the error the 400 page shows).
#include <doctest/doctest.h>

#include <string>

#include "proxy/request_target.hpp"

using namespace hallpass;
using namespace std::string_literals;

namespace {

parsed_target ok(std::string_view target, bool connect = false) {
  std::string error;
  auto t = parse_request_target(target, connect, error);
  INFO("target: " << std::string(target) << " error: " << error);
  REQUIRE(t.has_value());
  return *t;
}

std::string refused_target(std::string_view target, bool connect = false) {
  std::string error;
  auto t = parse_request_target(target, connect, error);
  INFO("target: " << std::string(target));
  REQUIRE_FALSE(t.has_value());
  CHECK_FALSE(error.empty());
  return error;
}

}  // namespace

TEST_CASE("absolute-form: scheme, host, port, path and query") {
  auto t = ok("http://example.org/a/b?x=1&y=2");
  CHECK(t.scheme == "http");
  CHECK(t.host == "example.org");
  CHECK(t.port == 80);
  CHECK(t.path == "/a/b");
  CHECK(t.query == "x=1&y=2");

  t = ok("HTTP://Example.ORG:8080/");
  CHECK(t.scheme == "http");
  CHECK(t.host == "Example.ORG");  // the engine folds the case
  CHECK(t.port == 8080);
  CHECK(t.path == "/");

  t = ok("http://example.org");
  CHECK(t.path == "/");
  CHECK(t.query.empty());

  t = ok("http://example.org?q=1");
  CHECK(t.path == "/");
  CHECK(t.query == "q=1");

  t = ok("http://example.org/p?");
  CHECK(t.path == "/p");
  CHECK(t.query.empty());

  t = ok("http://example.org/a?b?c");
  CHECK(t.path == "/a");
  CHECK(t.query == "b?c");

  t = ok("http://example.org:/x");  // an empty port is the default
  CHECK(t.port == 80);
  CHECK(t.path == "/x");

  // Two ':' outside brackets: no host and port can be told apart (an IPv6 address without its
  // brackets, or a mistake): refused (until 2026-12-07 the last one started the port).
  CHECK(refused_target("http://example.org:80:81/").find("written in brackets") != std::string::npos);
}

TEST_CASE("absolute-form: fragments are dropped") {
  auto t = ok("http://example.org/p#frag");
  CHECK(t.path == "/p");
  CHECK(t.query.empty());
  t = ok("http://example.org/p?q=1#frag?x");
  CHECK(t.path == "/p");
  CHECK(t.query == "q=1");
  t = ok("http://example.org#/other?q");
  CHECK(t.host == "example.org");
  CHECK(t.path == "/");
  CHECK(t.query.empty());
}

TEST_CASE("absolute-form: userinfo is dropped from the host") {
  auto t = ok("http://user:secret@example.org:81/x");
  CHECK(t.host == "example.org");
  CHECK(t.port == 81);
  CHECK(t.path == "/x");
  // The last '@' ends the userinfo, as browsers read it.
  CHECK(ok("http://a@b.example@www.facebook.com/").host == "www.facebook.com");
}

TEST_CASE("absolute-form: IPv6 literals keep their brackets") {
  auto t = ok("http://[2001:db8::1]:8080/x?y");
  CHECK(t.host == "[2001:db8::1]");
  CHECK(t.port == 8080);
  CHECK(t.path == "/x");
  CHECK(t.query == "y");
  CHECK(ok("http://[::1]/").port == 80);
  CHECK(refused_target("http://[::1/").find("closing ']'") != std::string::npos);
  CHECK(refused_target("http://[::1]x/").find("after the IPv6 address") != std::string::npos);
  // Brackets hold an IPv6 literal, never a name.
  CHECK(refused_target("http://[allowed.test]/").find("no IPv6 address") != std::string::npos);
  CHECK(refused_target("http://[127.0.0.1]:80/").find("no IPv6 address") != std::string::npos);
}

TEST_CASE("absolute-form: bad ports and empty hosts are refused") {
  for (const char* t :
       {"http://example.org:0/", "http://example.org:65536/", "http://example.org:-1/",
        "http://example.org:8o/", "http://example.org:+80/", "http://example.org:99999999999/",
        "http://[::1]:0/"}) {
    CHECK(refused_target(t).find("port") != std::string::npos);
  }
  for (const char* t : {"http:///path", "http://:80/", "http://user@/", "http://?q", "http://#f"}) {
    CHECK(refused_target(t).find("no host") != std::string::npos);
  }
}

TEST_CASE("absolute-form: an IPv6 address without its brackets is refused, not cut at a colon") {
  // outside-in audit of IPv6, 2026-12-07: "http://2001:db8:2::10/" was blocked as "2001:db8:2:",
  // and "http://2001:db8:2::10:80/" forwarded to [2001:db8:2::10]:80.
  for (const char* t : {"http://2001:db8:2::10/", "http://2001:db8:2::10:80/", "http://::1/"}) {
    INFO(t);
    CHECK(refused_target(t).find("written in brackets") != std::string::npos);
  }
}

TEST_CASE("only absolute http:// URLs are forwarded, and origin-form is told apart") {
  CHECK(refused_target("/") == "origin-form");
  CHECK(refused_target("/index.html?x") == "origin-form");
  for (const char* t :
       {"https://example.org/", "ftp://example.org/", "example.org/", "example.org:80", "**",
        "http://", "http:/example.org/", "", "ws://example.org/"}) {
    const auto e = refused_target(t);
    CHECK(e != "origin-form");
    CHECK(e.find("http://") != std::string::npos);
  }
}

TEST_CASE("asterisk-form is told apart, and a URL without a path is marked for OPTIONS") {
  CHECK(refused_target("*") == "asterisk-form");
  for (const char* t : {"http://example.org", "http://example.org#top", "HTTP://example.org:8080", "http://u@example.org"}) {
    const auto p = ok(t);
    CHECK(p.no_path);
    CHECK(p.path == "/");
    CHECK(p.query.empty());
  }
  for (const char* t : {"http://example.org/", "http://example.org?x", "http://example.org/a", "http://example.org:81/"}) {
    CHECK_FALSE(ok(t).no_path);
  }
}

TEST_CASE("authority-form for CONNECT") {
  auto t = ok("example.org:443", true);
  CHECK(t.scheme == "https");
  CHECK(t.host == "example.org");
  CHECK(t.port == 443);
  CHECK(t.path.empty());
  CHECK(t.query.empty());

  t = ok("[2001:db8::1]:8443", true);
  CHECK(t.host == "[2001:db8::1]");
  CHECK(t.port == 8443);

  // Kept as written; the engine refuses such hosts as invalid.
  CHECK(ok("a:b:443", true).host == "a:b");
  CHECK(ok("http://example.org:443", true).host == "http://example.org");
}

TEST_CASE("CONNECT: anything but host:port is refused") {
  CHECK(refused_target("example.org", true) == "CONNECT needs host:port");
  CHECK(refused_target("[::1]", true) == "CONNECT needs host:port");
  CHECK(refused_target("[::1]443", true) == "CONNECT needs host:port");
  CHECK(refused_target("[::1", true) == "CONNECT needs host:port");
  CHECK(refused_target("[::1]:", true).find("is not host:port") != std::string::npos);
  CHECK(refused_target("[allowed.test]:443", true).find("is not host:port") != std::string::npos);
  CHECK(refused_target("[127.0.0.1]:443", true).find("is not host:port") != std::string::npos);
  // Neither message quotes the target: a password or a query in it must not reach the log.
  CHECK(refused_target("u:SECRET@example.org:443", true) == "the CONNECT target names a user (name@host), which is never sent on");
  CHECK(refused_target("example.org:443/p?q=SECRET", true) == "the CONNECT target is not host:port (a port from 1 to 65535)");
  for (const char* t :
       {":443", "example.org:", "example.org:0", "example.org:65536", "example.org:99999999999",
        "example.org:44a", "example.org:+443", "example.org:-443", "[]:"}) {
    CHECK(refused_target(t, true).find("is not host:port") != std::string::npos);
  }
}

TEST_CASE("bytes outside visible ASCII are refused, never forwarded") {
  const auto e = refused_target("http://example.org/caf\xc3\xa9");
  CHECK(e ==
        "the request target has byte 0xC3 at offset 22: only visible ASCII is allowed "
        "(percent-encode anything else)");
  CHECK(refused_target("http://ex ample.org/").find("0x20 at offset 9") != std::string::npos);
  CHECK(refused_target("http://example.org/\tx").find("0x09") != std::string::npos);
  CHECK(refused_target("http://example.org/\x7f").find("0x7F") != std::string::npos);
  CHECK(refused_target("http://example.org/\r\nGET http://www.facebook.com/").find("0x0D") !=
        std::string::npos);
  CHECK(refused_target("http://example.org/"s + '\0').find("0x00") != std::string::npos);
  CHECK(refused_target("/caf\xc3\xa9").find("0xC3") != std::string::npos);  // not "origin-form"
  CHECK(refused_target("www.exampl\xe9.org:443", true).find("0xE9") != std::string::npos);
  CHECK(refused_target("example.org:443\x85", true).find("0x85") != std::string::npos);
}

TEST_CASE("every byte value in a path: accepted exactly when visible ASCII") {
  for (int b = 0; b < 256; ++b) {
    const std::string target = "http://example.org/a"s + static_cast<char>(b) + "z";
    std::string error;
    const auto t = parse_request_target(target, false, error);
    INFO("byte " << b);
    CHECK(t.has_value() == (b >= 0x21 && b <= 0x7E));
  }
}

// Inside an inspected tunnel (CONNECT host:port, decrypted).
namespace {
std::optional<parsed_target> inner(std::string_view target, std::optional<std::string_view> host_field,
                                   std::string_view tunnel_host = "www.example.org", std::uint16_t port = 443) {
  std::string error;
  return parse_tunnel_request_target(target, host_field, tunnel_host, port, error);
}
std::string inner_error(std::string_view target, std::optional<std::string_view> host_field,
                        std::string_view tunnel_host = "www.example.org", std::uint16_t port = 443) {
  std::string error;
  CHECK_FALSE(parse_tunnel_request_target(target, host_field, tunnel_host, port, error));
  return error;
}
}  // namespace

TEST_CASE("tunnel: origin-form with a Host naming the tunnel's host") {
  auto t = inner("/wiki/Cats?action=edit#top", "www.example.org");
  REQUIRE(t);
  CHECK(t->scheme == "https");
  CHECK(t->host == "www.example.org");
  CHECK(t->port == 443);
  CHECK(t->path == "/wiki/Cats");
  CHECK(t->query == "action=edit");
  CHECK(inner("/", "WWW.Example.ORG."));                // case and a trailing dot
  CHECK(inner("/", "www.example.org:443"));             // the default port written out
  CHECK(inner("/", "www.example.org:8443", "www.example.org", 8443));
  CHECK(inner("/", std::nullopt));                      // HTTP/1.0 without Host: the tunnel's
  CHECK(inner_error("/", "") == "the request's Host field is empty");  // there, but naming no site
  CHECK(inner_error("/x", " ") == "the request's Host field is empty");
  CHECK(inner("/", "[::1]", "::1"));                    // an IPv6 tunnel, bracketed Host
  CHECK(inner("/", "[::1]:443", "::1"));
  // The tunnel's host is kept normalised ("::1"); the target's is written as a Host field
  // and a URL write it, in brackets (the origin got "Host: ::1:8443" before).
  CHECK(inner("/", std::nullopt, "::1")->host == "[::1]");
  CHECK(inner("/", "[::1]:443", "::1")->host == "[::1]");
  // Another spelling of the tunnel's IPv6 address is the same host (a 421 until 2026-12-07).
  CHECK(inner("/", "[2001:DB8:2:0::10]", "2001:db8:2::10"));
  CHECK(inner("/", "[2001:db8:2:0:0:0:0:10]:443", "2001:db8:2::10"));
  CHECK_FALSE(inner("/", "[2001:db8:2::11]", "2001:db8:2::10"));
}

TEST_CASE("tunnel: a request naming another site is refused (domain fronting)") {
  CHECK(inner_error("/", "www.facebook.com").find("www.facebook.com") != std::string::npos);
  CHECK_FALSE(inner("/", "www.example.org:444"));       // another port
  CHECK_FALSE(inner("/", "example.org"));               // the parent domain is another host
  CHECK_FALSE(inner("/", "www.example.org.evil"));
  CHECK_FALSE(inner("/", "www.example.org:0"));
  CHECK_FALSE(inner("/", "www.example.org:99999"));
  CHECK_FALSE(inner("https://www.facebook.com/", "www.example.org"));
}

TEST_CASE("tunnel: absolute https:// URLs naming the tunnel's host are accepted") {
  auto t = inner("https://www.example.org/a?b", "ignored.example");
  REQUIRE(t);
  CHECK(t->path == "/a");
  CHECK(t->query == "b");
  CHECK(inner("HTTPS://user@www.example.org:443/", ""));
  CHECK(inner("https://www.example.org", "")->path == "/");
}

TEST_CASE("tunnel: other forms and raw bytes are refused") {
  CHECK_FALSE(inner("http://www.example.org/", "www.example.org"));  // plain http inside TLS
  CHECK_FALSE(inner("www.example.org:443", "www.example.org"));
  CHECK_FALSE(inner("/a b", "www.example.org"));
  CHECK_FALSE(inner("/\x80", "www.example.org"));
}

TEST_CASE("tunnel: '*' is the tunnel's site as a whole (OPTIONS), as is an https:// URL without a path") {
  std::string error;
  for (const char* target : {"*", "https://www.example.org", "https://www.example.org#x"}) {
    auto t = parse_tunnel_request_target(target, "www.example.org", "www.example.org", 443, error);
    INFO(target << ": " << error);
    REQUIRE(t.has_value());
    CHECK(t->no_path);
    CHECK(t->path == "/");
    CHECK(t->host == "www.example.org");
  }
  auto t = parse_tunnel_request_target("/", "www.example.org", "www.example.org", 443, error);
  REQUIRE(t.has_value());
  CHECK_FALSE(t->no_path);
  // "*" still names the Host's site, which must be the tunnel's.
  CHECK_FALSE(parse_tunnel_request_target("*", "other.example", "www.example.org", 443, error).has_value());
}

namespace {

std::optional<parsed_target> transparent(std::string_view target, std::optional<std::string_view> host_field,
                                         std::string& error,
                                         std::uint16_t port = 80) {
  return parse_transparent_request_target(target, host_field, "203.0.113.10", port, error);
}

}  // namespace

TEST_CASE("transparent: origin-form with a Host, the port is the original destination's") {
  std::string error;
  auto t = transparent("/a/b?q=1#frag", "Example.TEST", error);
  REQUIRE(t.has_value());
  CHECK(t->scheme == "http");
  CHECK(t->host == "Example.TEST");  // normalised by the engine, as for the other forms
  CHECK(t->port == 80);
  CHECK(t->path == "/a/b");
  CHECK(t->query == "q=1");
  t = transparent("/", "example.test:8080", error, 8080);
  REQUIRE(t.has_value());
  CHECK(t->port == 8080);
  t = transparent("/", "example.test", error, 8080);  // no port written: the destination's
  REQUIRE(t.has_value());
  CHECK(t->port == 8080);
  t = transparent("/", "[2001:db8::1]:80", error);
  REQUIRE(t.has_value());
  CHECK(t->host == "[2001:db8::1]");
}

TEST_CASE("URLs and Host values write an IPv6 host in brackets, and only a port that is not the default") {
  CHECK(host_for_url("::1") == "[::1]");
  CHECK(host_for_url("[::1]") == "[::1]");
  CHECK(host_for_url("2001:db8::1") == "[2001:db8::1]");
  CHECK(host_for_url("www.example.org") == "www.example.org");
  CHECK(host_for_url("192.0.2.1") == "192.0.2.1");
  CHECK(url_of("https", "::1", 443, "/") == "https://[::1]/");
  CHECK(url_of("http", "::1", 8099, "/x?y") == "http://[::1]:8099/x?y");
  CHECK(url_of("http", "[::1]", 80, "/") == "http://[::1]/");
  CHECK(url_of("https", "www.example.org", 8443, "/a") == "https://www.example.org:8443/a");
  CHECK(url_of("http", "www.example.org", 80, "/") == "http://www.example.org/");
  CHECK(url_of("http", "www.example.org", 443, "/") == "http://www.example.org:443/");
}

TEST_CASE("transparent: without a Host the original destination's address is the host") {
  std::string error;
  CHECK_FALSE(transparent("/x", "", error));  // a Host there but empty names no site
  CHECK(error == "the request's Host field is empty");
  auto t = transparent("/x", std::nullopt, error);
  REQUIRE(t.has_value());
  CHECK(t->host == "203.0.113.10");
  CHECK(t->port == 80);
}

TEST_CASE("transparent: absolute-form names the host, held to the destination's port") {
  std::string error;
  auto t = transparent("HTTP://site.test/p?x", "ignored.test", error);
  REQUIRE(t.has_value());
  CHECK(t->host == "site.test");
  CHECK(t->path == "/p");
  CHECK(t->query == "x");
  CHECK_FALSE(transparent("http://site.test:81/p", "", error).has_value());
  CHECK(error == "the request names port 81, but the connection was to port 80");
}

TEST_CASE("transparent: a Host that is not plain host and port is refused") {
  std::string error;
  for (const char* host : {"a.test/x", "a.test?", "user@a.test", "a.test#f", "a b.test", "a.test:0", "a.test:99999",
                           "a.test:80:80", "[::1"}) {
    INFO("Host: " << host);
    CHECK_FALSE(transparent("/", host, error).has_value());
    CHECK(error.find("not host[:port]") != std::string::npos);
  }
  CHECK_FALSE(transparent("/", "a.test:443", error).has_value());
  CHECK(error == "the request names port 443, but the connection was to port 80");
}

TEST_CASE("transparent: other request-target forms are refused") {
  std::string error;
  CHECK_FALSE(transparent("a.test:443", "a.test", error).has_value());
  CHECK(error == "a transparent listener takes paths (origin-form) or http:// URLs");
  CHECK_FALSE(transparent("https://a.test/", "a.test", error).has_value());
  CHECK_FALSE(transparent("/a\x01", "a.test", error).has_value());
}

TEST_CASE("transparent: '*' is the Host's site as a whole (OPTIONS)") {
  std::string error;
  auto t = transparent("*", "a.test", error);
  REQUIRE(t.has_value());
  CHECK(t->no_path);
  CHECK(t->host == "a.test");
  CHECK(t->path == "/");
  auto u = transparent("http://a.test", "", error);
  REQUIRE(u.has_value());
  CHECK(u->no_path);
  CHECK_FALSE(transparent("/", "a.test", error)->no_path);
}

// A tunnel that carries plain HTTP (a browser's ws:// WebSocket through a CONNECT).
TEST_CASE("tunnel carrying plain HTTP: http scheme, port 80 by default, the tunnel's host only") {
  std::string error;
  auto t = parse_tunnel_request_target("/chat?room=1", "ws.example.org", "ws.example.org", 80, error, false);
  REQUIRE(t);
  CHECK(t->scheme == "http");
  CHECK(t->port == 80);
  CHECK(t->path == "/chat");
  CHECK(t->query == "room=1");
  CHECK(parse_tunnel_request_target("http://ws.example.org/chat", "", "ws.example.org", 80, error, false));
  CHECK(parse_tunnel_request_target("/", "ws.example.org:8080", "ws.example.org", 8080, error, false));
  CHECK_FALSE(parse_tunnel_request_target("/", "ws.example.org:443", "ws.example.org", 80, error, false));
  CHECK_FALSE(parse_tunnel_request_target("/", "other.example", "ws.example.org", 80, error, false));
  CHECK_FALSE(parse_tunnel_request_target("https://ws.example.org/", "", "ws.example.org", 80, error, false));
  CHECK(error.find("http:// URLs") != std::string::npos);
  // And an HTTPS tunnel still takes https:// only.
  CHECK_FALSE(parse_tunnel_request_target("http://ws.example.org/", "", "ws.example.org", 443, error));
}
