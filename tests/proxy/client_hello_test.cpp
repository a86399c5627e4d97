#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "proxy/client_hello.hpp"
#include "proxy/tunnel.hpp"

using namespace hallpass;
using namespace std::string_literals;

namespace {

// ---- Real ClientHellos: what `openssl s_client` sends to a socket we listen on. ----

// Runs `openssl s_client <args>` against a listener on 127.0.0.1 and returns the bytes it sent
// until the ClientHello is complete (or 10 s pass, or the client closes).
std::string capture_openssl_hello(const std::string& args) {
  int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(listener >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(listener, 1) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  const int port = ntohs(addr.sin_port);

  std::string command = "openssl s_client -connect 127.0.0.1:" + std::to_string(port) + " " + args +
                        " </dev/null >/dev/null 2>&1";
  FILE* child = ::popen(command.c_str(), "r");
  REQUIRE(child != nullptr);

  std::string bytes;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  auto remaining_ms = [&] {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    return static_cast<int>(std::max<long long>(0, left.count()));
  };
  pollfd pl{listener, POLLIN, 0};
  if (::poll(&pl, 1, remaining_ms()) == 1) {
    int conn = ::accept(listener, nullptr, nullptr);
    if (conn >= 0) {
      while (parse_client_hello(bytes).status == hello_status::need_more) {
        pollfd pc{conn, POLLIN, 0};
        if (::poll(&pc, 1, remaining_ms()) != 1) break;
        char buf[4096];
        auto n = ::read(conn, buf, sizeof buf);
        if (n <= 0) break;
        bytes.append(buf, static_cast<std::size_t>(n));
      }
      ::close(conn);
    }
  }
  ::close(listener);
  ::pclose(child);
  return bytes;
}

// ---- Hand-built ClientHellos, for the shapes a real client never sends. ----

std::string be16(std::size_t n) {
  return {static_cast<char>(n >> 8), static_cast<char>(n & 0xff)};
}
std::string be24(std::size_t n) {
  return {static_cast<char>(n >> 16), static_cast<char>(n >> 8 & 0xff),
          static_cast<char>(n & 0xff)};
}

std::string extension(std::uint16_t type, const std::string& data) {
  return be16(type) + be16(data.size()) + data;
}
std::string sni_extension(const std::vector<std::string>& names) {
  std::string list;
  for (auto& n : names) list += "\x00"s + be16(n.size()) + n;
  return extension(0, be16(list.size()) + list);
}
std::string alpn_extension(const std::vector<std::string>& protocols) {
  std::string list;
  for (auto& p : protocols) list += static_cast<char>(p.size()) + p;
  return extension(16, be16(list.size()) + list);
}

struct hello_parts {
  std::string version = "\x03\x03";
  std::string random = std::string(32, 'R');
  std::string session_id = std::string(32, 'S');
  std::string suites = "\x13\x01\x13\x02\xc0\x2f"s;
  std::string compression = "\x00"s;
  std::optional<std::string> extensions;  // the extension list, without its length
};

std::string hello_body(const hello_parts& p) {
  std::string b = p.version + p.random;
  b += static_cast<char>(p.session_id.size()) + p.session_id;
  b += be16(p.suites.size()) + p.suites;
  b += static_cast<char>(p.compression.size()) + p.compression;
  if (p.extensions) b += be16(p.extensions->size()) + *p.extensions;
  return b;
}
std::string handshake_message(const std::string& body) {
  return "\x01"s + be24(body.size()) + body;
}

std::string record(const std::string& payload, char type = 22, std::string version = "\x03\x01") {
  return std::string(1, type) + version + be16(payload.size()) + payload;
}
// The handshake bytes cut into records of at most `size` bytes.
std::string records(const std::string& handshake, std::size_t size) {
  std::string out;
  for (std::size_t i = 0; i < handshake.size(); i += size) out += record(handshake.substr(i, size));
  return out;
}

std::string make_hello(const std::string& extensions) {
  hello_parts p;
  p.extensions = extensions;
  return record(handshake_message(hello_body(p)));
}

// The handshake message inside a single-record capture.
std::string handshake_of(const std::string& single_record) {
  REQUIRE(single_record.size() > 5);
  std::size_t len = static_cast<unsigned char>(single_record[3]) << 8 |
                    static_cast<unsigned char>(single_record[4]);
  REQUIRE(single_record.size() >= 5 + len);
  return single_record.substr(5, len);
}

hello_status status_of(std::string_view bytes) {
  return parse_client_hello(bytes).status;
}

std::string malformed_reason(std::string_view bytes) {
  auto r = parse_client_hello(bytes);
  CHECK(r.status == hello_status::malformed);
  return r.error;
}

// Every proper prefix is need_more; the whole is ok.
void check_prefixes(const std::string& bytes) {
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    CAPTURE(n);
    REQUIRE(status_of(std::string_view(bytes).substr(0, n)) == hello_status::need_more);
  }
  REQUIRE(status_of(bytes) == hello_status::ok);
}

}  // namespace

TEST_CASE("a real ClientHello from openssl s_client: SNI and ALPN") {
  auto bytes = capture_openssl_hello("-servername WWW.Example.ORG -alpn h2,http/1.1");
  INFO("needs the openssl command (deploy/install-deps.sh installs it)");
  REQUIRE(bytes.size() > 100);
  auto r = parse_client_hello(bytes);
  INFO(r.error);
  REQUIRE(r.status == hello_status::ok);
  REQUIRE(r.hello.sni);
  CHECK(*r.hello.sni == "www.example.org");  // lower-cased
  CHECK(r.hello.alpn == std::vector<std::string>{"h2", "http/1.1"});
  CHECK(r.hello.legacy_version == 0x0303);
  CHECK_FALSE(r.hello.ech_extension);

  SUBCASE("every truncation asks for more and never crashes") {
    check_prefixes(bytes);
  }

  SUBCASE("the same hello split over records of every size") {
    auto hs = handshake_of(bytes);
    for (std::size_t size : {1u, 2u, 3u, 4u, 5u, 7u, 64u, 100u, 511u}) {
      CAPTURE(size);
      auto split = records(hs, size);
      auto s = parse_client_hello(split);
      REQUIRE(s.status == hello_status::ok);
      CHECK(s.hello.sni == r.hello.sni);
      CHECK(s.hello.alpn == r.hello.alpn);
    }
    check_prefixes(records(hs, 37));
  }

  SUBCASE("the same hello split into two records at every point") {
    auto hs = handshake_of(bytes);
    for (std::size_t cut = 1; cut < hs.size(); ++cut) {
      CAPTURE(cut);
      auto two = record(hs.substr(0, cut)) + record(hs.substr(cut));
      auto s = parse_client_hello(two);
      REQUIRE(s.status == hello_status::ok);
      CHECK(s.hello.sni == r.hello.sni);
    }
  }

  SUBCASE("bytes after the hello (early data) are ignored") {
    auto more = bytes + record("\x17\x03\x03", 23, "\x03\x03");
    CHECK(status_of(more) == hello_status::ok);
  }

  SUBCASE("a record of another type inside a split hello is malformed") {
    auto hs = handshake_of(bytes);
    auto mixed = record(hs.substr(0, 10)) + record("x", 23) + record(hs.substr(10));
    CHECK(malformed_reason(mixed) == "another record type inside the ClientHello");
  }
}

TEST_CASE("a real ClientHello without SNI or ALPN, and a TLS 1.2-only one") {
  auto none = parse_client_hello(capture_openssl_hello("-noservername"));
  REQUIRE(none.status == hello_status::ok);
  CHECK_FALSE(none.hello.sni.has_value());
  CHECK(none.hello.alpn.empty());

  auto tls12 = parse_client_hello(capture_openssl_hello("-tls1_2 -servername old.example"));
  REQUIRE(tls12.status == hello_status::ok);
  CHECK(tls12.hello.sni == "old.example");
  CHECK(tls12.hello.legacy_version == 0x0303);
}

TEST_CASE("streams that are not TLS are recognised from their first bytes") {
  CHECK(status_of("") == hello_status::need_more);
  CHECK(status_of("G") == hello_status::not_tls);
  CHECK(status_of("GET / HTTP/1.1\r\nHost: example.org\r\n\r\n") == hello_status::not_tls);
  CHECK(status_of("CONNECT x:443 HTTP/1.1\r\n") == hello_status::not_tls);
  CHECK(status_of("SSH-2.0-OpenSSH_9.2\r\n") == hello_status::not_tls);
  CHECK(status_of("\x00"s) == hello_status::not_tls);
  // SSLv2-compatible ClientHello: two-byte length with the top bit set, then msg type 1.
  CHECK(status_of("\x80\x2e\x01\x03\x01\x00\x15"s) == hello_status::not_tls);
  // Handshake type byte but not TLS record version 3.x.
  CHECK(status_of("\x16") == hello_status::need_more);
  CHECK(status_of("\x16\x02") == hello_status::not_tls);
  CHECK(status_of("\x16\x03") == hello_status::need_more);
  CHECK(status_of("\x16\x03\x01") == hello_status::need_more);
  CHECK(status_of("\x16\x03\x01\x00") == hello_status::need_more);
  // Other TLS record types first (alert, application data) are not a hello.
  CHECK(status_of("\x15\x03\x03\x00\x02\x02\x28"s) == hello_status::not_tls);
  CHECK(status_of("\x17\x03\x03\x00\x01x"s) == hello_status::not_tls);
}

TEST_CASE("record header limits") {
  CHECK(malformed_reason("\x16\x03\x00"s) == "unsupported record version");  // SSL 3.0
  CHECK(malformed_reason("\x16\x03\x05"s) == "unsupported record version");
  CHECK(malformed_reason("\x16\x03\x01\x00\x00"s) == "empty handshake record");
  CHECK(malformed_reason("\x16\x03\x01\x40\x01"s) == "record too long");  // 16385
  CHECK(status_of("\x16\x03\x01\x40\x00"s) == hello_status::need_more);   // 16384 is allowed
  CHECK(status_of("\x16\x03\x04\x00\x05\x01"s) == hello_status::need_more);
  // Handshake message other than ClientHello (ServerHello = 2), known from its first byte.
  CHECK(malformed_reason("\x16\x03\x01\x00\x30\x02"s) ==
        "first handshake message is not a ClientHello");
  // A second record with a bad version.
  auto hs = handshake_message(hello_body(hello_parts{}));
  auto bad = record(hs.substr(0, 5)) + record(hs.substr(5), 22, "\x02\x00");
  CHECK(malformed_reason(bad) == "bad record version");
}

TEST_CASE("a ClientHello over 64 KiB is malformed, and the buffer bound always gets an answer") {
  // Declared too large: known from the four-byte handshake header.
  CHECK(malformed_reason("\x16\x03\x01\x00\x04\x01\x01\x00\x00"s) ==
        "ClientHello larger than 64 KiB");
  CHECK(malformed_reason("\x16\x03\x01\x00\x04\x01\xff\xff\xff"s) ==
        "ClientHello larger than 64 KiB");
  // Declared just inside, but carried in so many small records that they exceed the bound.
  std::string body_len = be24(60000);
  std::string stream = record("\x01"s + body_len);
  while (stream.size() < max_client_hello_bytes + 100) stream += record("x");
  CHECK(malformed_reason(stream) == "ClientHello larger than 64 KiB");
  CHECK(status_of(std::string_view(stream).substr(0, max_client_hello_bytes)) ==
        hello_status::malformed);
  // A legitimately large hello (padding over one record's 16 KiB) is fine.
  auto big = handshake_message(hello_body(
      {.extensions = sni_extension({"big.example"}) + extension(21, std::string(20000, '\0'))}));
  auto r = parse_client_hello(records(big, 16384));
  REQUIRE(r.status == hello_status::ok);
  CHECK(r.hello.sni == "big.example");
}

TEST_CASE("hand-built hellos: extensions") {
  SUBCASE("SNI and ALPN among other extensions") {
    auto r = parse_client_hello(make_hello(extension(10, "\x00\x02\x00\x17"s) +
                                           sni_extension({"Mixed.Case.Example"}) +
                                           alpn_extension({"http/1.1"}) + extension(0xfe0d, "x")));
    REQUIRE(r.status == hello_status::ok);
    CHECK(r.hello.sni == "mixed.case.example");
    CHECK(r.hello.alpn == std::vector<std::string>{"http/1.1"});
    CHECK(r.hello.ech_extension);
  }
  SUBCASE("no extensions at all (TLS 1.2 allows it)") {
    hello_parts p;
    auto r = parse_client_hello(record(handshake_message(hello_body(p))));
    REQUIRE(r.status == hello_status::ok);
    CHECK_FALSE(r.hello.sni);
  }
  SUBCASE("an empty extension list") {
    auto r = parse_client_hello(make_hello(""));
    REQUIRE(r.status == hello_status::ok);
  }
  SUBCASE("a non-host_name entry is skipped") {
    std::string list = "\x07"s + be16(3) + "abc" + "\x00"s + be16(9) + "a.example";
    auto r = parse_client_hello(make_hello(extension(0, be16(list.size()) + list)));
    REQUIRE(r.status == hello_status::ok);
    CHECK(r.hello.sni == "a.example");
  }
  SUBCASE("SNI errors") {
    CHECK(malformed_reason(make_hello(sni_extension({"a.example", "b.example"}))) ==
          "more than one host_name");
    CHECK(malformed_reason(make_hello(sni_extension({""}))) == "empty host_name");
    CHECK(malformed_reason(make_hello(sni_extension({"a b"}))) ==
          "host_name is not printable ASCII");
    CHECK(malformed_reason(make_hello(sni_extension({"a\x00.example"s}))) ==
          "host_name is not printable ASCII");
    CHECK(malformed_reason(make_hello(sni_extension({"caf\xc3\xa9.example"}))) ==
          "host_name is not printable ASCII");
    CHECK(malformed_reason(make_hello(extension(0, ""))) == "bad server_name length");
    CHECK(malformed_reason(make_hello(extension(0, be16(0)))) == "empty server_name list");
    CHECK(malformed_reason(make_hello(extension(0, be16(5) + "\x00\x00\x09"s + "ab"))) ==
          "bad server_name entry");
    // List length shorter than the extension: trailing bytes.
    CHECK(malformed_reason(make_hello(extension(0, be16(0) + "x"))) == "bad server_name length");
    CHECK(malformed_reason(make_hello(sni_extension({"a.example"}) +
                                      sni_extension({"a.example"}))) == "duplicate extension");
  }
  SUBCASE("ALPN errors") {
    CHECK(malformed_reason(make_hello(alpn_extension({"h2", ""}))) == "empty ALPN protocol name");
    CHECK(malformed_reason(make_hello(extension(16, be16(0)))) == "empty ALPN list");
    CHECK(malformed_reason(make_hello(extension(16, be16(3) + "\x05h2"))) == "bad ALPN entry");
    CHECK(malformed_reason(make_hello(extension(16, "\x00"s))) == "bad ALPN length");
  }
  SUBCASE("extension framing errors") {
    CHECK(malformed_reason(make_hello("\x00"s)) == "bad extension length");
    CHECK(malformed_reason(make_hello(be16(10) + be16(100) + "short")) == "bad extension length");
    hello_parts p;
    p.extensions = "";
    auto body = hello_body(p) + "trailing";
    CHECK(malformed_reason(record(handshake_message(body))) == "bytes after the extensions");
    auto body2 = hello_body(hello_parts{}) + "\x00"s;  // one byte where a u16 length belongs
    CHECK(malformed_reason(record(handshake_message(body2))) == "bad extensions length");
  }
}

TEST_CASE("hand-built hellos: fixed fields") {
  auto with = [](auto change) {
    hello_parts p;
    p.extensions = sni_extension({"x.example"});
    change(p);
    return record(handshake_message(hello_body(p)));
  };
  CHECK(malformed_reason(with([](hello_parts& p) { p.version = "\x7f\x1c"; })) ==
        "bad ClientHello version");
  CHECK(malformed_reason(with([](hello_parts& p) { p.session_id = std::string(33, 's'); })) ==
        "session id longer than 32 bytes");
  CHECK(malformed_reason(with([](hello_parts& p) { p.suites = ""; })) ==
        "bad cipher suites length");
  CHECK(malformed_reason(with([](hello_parts& p) { p.suites = "\x13\x01\x13"; })) ==
        "bad cipher suites length");
  CHECK(malformed_reason(with([](hello_parts& p) { p.compression = ""; })) ==
        "no compression methods");
  CHECK(status_of(with([](hello_parts& p) { p.session_id = ""; })) == hello_status::ok);
  // A body cut short inside each fixed field.
  auto body = hello_body(hello_parts{});
  for (std::size_t n = 0; n < 2 + 32 + 1 + 32 + 2 + 6 + 1 + 1; ++n) {
    CAPTURE(n);
    auto r = parse_client_hello(record(handshake_message(body.substr(0, n))));
    CHECK(r.status == hello_status::malformed);
  }
}

TEST_CASE("garbage after a handshake header never crashes") {
  // Deterministic pseudo-random streams that start like a hello; results must be final or
  // need_more, and a full 64 KiB buffer must never be need_more.
  std::uint32_t seed = 12345;
  auto next = [&] {
    seed = seed * 1103515245u + 12345u;
    return static_cast<char>(seed >> 16);
  };
  for (int i = 0; i < 2000; ++i) {
    std::string s = "\x16\x03\x01"s;
    std::size_t n = static_cast<unsigned char>(next()) * 4;
    for (std::size_t k = 0; k < n; ++k) s += next();
    auto r = parse_client_hello(s);
    CHECK((r.status == hello_status::need_more || r.status == hello_status::malformed ||
           r.status == hello_status::ok));
  }
  std::string full = "\x16\x03\x01\x40\x00\x01\x00\xff\xf0"s;
  while (full.size() < max_client_hello_bytes) full += next();
  CHECK(status_of(full) != hello_status::need_more);
}

TEST_CASE("status names") {
  CHECK(to_string(hello_status::need_more) == "need_more");
  CHECK(to_string(hello_status::not_tls) == "not_tls");
  CHECK(to_string(hello_status::malformed) == "malformed");
  CHECK(to_string(hello_status::ok) == "ok");
}

TEST_CASE("a tunnel's first bytes: an HTTP request line is told from TLS and from other protocols") {
  auto start = [](std::string_view b) { return http_request_start(b); };
  CHECK(start("GET /chat HTTP/1.1\r\n") == http_start::yes);
  CHECK(start("OPTIONS * HTTP/1.1\r\n") == http_start::yes);
  CHECK(start("GET") == http_start::need_more);  // not yet: no space
  CHECK(start("GE") == http_start::need_more);
  CHECK(start("\r\n") == http_start::need_more);
  // What the plain proxy takes, a tunnel takes: any token as the method, empty lines before it.
  CHECK(start("get / HTTP/1.1\r\n") == http_start::yes);
  CHECK(start("ABCDEFGHIJKLMNOPQ /headers HTTP/1.1\r\n") == http_start::yes);
  CHECK(start("\r\nGET / HTTP/1.1\r\n") == http_start::yes);
  CHECK(start("SSH-2.0-OpenSSH_9.2\r\n") == http_start::no);
  CHECK(start(" GET /") == http_start::no);
  CHECK(start("\x16\x03\x01\x02\x00") == http_start::no);
  CHECK(start(std::string(40, 'A') + " /") == http_start::no);  // no method is that long
  CHECK(start(std::string(40, 'A')) == http_start::no);
}
