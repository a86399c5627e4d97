// One access log line: the facts of one finished request or tunnel, and the function that
// formats them as a single-line JSON object. Pure formatting: no I/O, no clock reads, no Asio,
// so it is tested byte for byte. Field meanings and the privacy choices are in
// proxy/README.md, "Access log".
//
// An access_record only borrows: every string_view must outlive the call to
// format_access_record(). Safe to use from any thread (no shared state).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "rules/host.hpp"
#include "rules/time_zone.hpp"

namespace hallpass {

struct access_record {
  std::chrono::system_clock::time_point start;  // when the request head (or CONNECT) arrived
  std::string_view client;                      // client address, e.g. "10.10.4.20" or "::1"
  std::string_view user;                        // empty when unknown: written as null
  std::string_view device_name;       // the device's host name from the DHCP leases: `device`, omitted when empty
  std::string_view hardware_address;  // its hardware address ("3c:22:fb:12:9a:01"): `mac`, omitted when empty
  std::string_view role;
  std::string_view method;  // "GET", "CONNECT", ...
  std::string_view scheme;  // "http", "https" (CONNECT), "ws"
  std::string_view host;
  std::uint16_t port = 0;
  std::string_view path;      // path only, without the query
  std::string_view query;     // without the '?'; written only with keep_query
  int status = 0;             // status sent to the client; 0 if none was sent
  std::string_view action;    // "allow", "block" or "error"
  std::string_view rule;      // rule id from the verdict
  std::string_view category;  // empty when no category matched: written as null
  std::string_view reason;
  std::uint64_t bytes_from_client = 0;  // written as bytes_in
  std::uint64_t bytes_to_client = 0;    // written as bytes_out
  std::int64_t duration_ms = 0;
  bool circumvention = false;  // e.g. SNI differing from the CONNECT host
  std::int64_t ban = 0;        // the ban that decided (rules/ban.hpp); omitted when 0
  std::string_view tls;        // "inspected": decrypted with the school CA (the CONNECT and each
                               // request inside); "rejected_ca", "client_failed": the CONNECT's
                               // handshake with the client failed; omitted when empty
  std::string_view search;     // search terms (access_log.search_terms); omitted when empty
  std::string_view note;       // free text ("sni=...", "upstream timeout"); omitted when empty
  std::string_view original_dst;  // transparent mode: "203.0.113.5:443"; omitted when empty
};

// One JSON object on one line, ending in '\n'. `time` is school-local ISO 8601 with
// milliseconds and the offset, "2026-11-23T11:00:00.123+00:00". Whatever bytes the fields
// hold (control characters, quotes, invalid UTF-8), the line is valid JSON and has no raw
// newline: rules::json_escape writes only printable ASCII (text as \uXXXX escapes).
std::string format_access_record(const access_record& r, const rules::time_zone& zone,
                                 bool keep_query);

}  // namespace hallpass
