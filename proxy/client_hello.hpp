// Reads the TLS ClientHello a client sends after CONNECT, without terminating TLS: the server
// name (SNI) and the ALPN protocols it asks for. The session decides the tunnel again on the
// SNI it saw, and treats a missing SNI, a stream that is not TLS, or an SNI that differs from
// the CONNECT host as a circumvention attempt.
//
// parse_client_hello() takes everything received from the client so far and may be called
// again as more arrives. It reassembles a ClientHello split over several handshake records,
// checks every length against the buffer and the enclosing structure (RFC 8446 4.1.2,
// RFC 6066 3, RFC 7301 3.1), and never reads past `bytes`. Bytes after the ClientHello
// (0-RTT data) are ignored; the caller relays everything it read, untouched.
//
// Pure: no I/O, no Asio, no OpenSSL. Thread-safe. Fuzzed by tests/fuzz/fuzz_client_hello.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hallpass {

// The most the caller needs to buffer: with this many bytes the answer is never need_more
// (the records carrying the ClientHello, headers included, must fit in it).
constexpr std::size_t max_client_hello_bytes = 64 * 1024;

struct client_hello {
  std::optional<std::string> sni;    // host_name, lower-case ASCII, otherwise as sent
  // The host_name is an IP address in some spelling ("203.0.113.10", "::1", "3405803786"),
  // which RFC 6066 3 forbids: it names no host, so it counts as no SNI (connect.require_sni).
  bool sni_is_address = false;
  std::vector<std::string> alpn;     // protocol names in the client's order ("h2", "http/1.1")
  std::uint16_t legacy_version = 0;  // 0x0303 from every TLS 1.2 and 1.3 client
  // The encrypted_client_hello extension (0xfe0d) is present. Not evidence of ECH on its own:
  // Chrome and Firefox send a GREASE one when they have no ECH configuration.
  bool ech_extension = false;
};

enum class hello_status : std::uint8_t {
  need_more,  // a valid prefix: read more (up to max_client_hello_bytes in all)
  not_tls,    // the first bytes are not a TLS handshake record (HTTP, SSLv2 hello, ...)
  malformed,  // starts as TLS but breaks the grammar or the limits; `error` says where
  ok,         // `hello` is filled in
};

struct hello_result {
  hello_status status = hello_status::need_more;
  client_hello hello;  // only when status == ok
  std::string error;   // for not_tls and malformed: a short reason for the log
};

hello_result parse_client_hello(std::string_view bytes);

std::string_view to_string(hello_status s);

}  // namespace hallpass
