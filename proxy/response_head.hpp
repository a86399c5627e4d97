// Reads an origin's response head (status line and header fields, RFC 9112 sections 4 and 5)
// strictly, so that the proxy knows exactly where the head ends and how the body is framed
// before it forwards anything. The proxy then writes its own head for the client (its own
// version and framing fields); nothing of the origin's framing is passed on as received.
//
// Accepted, as common clients accept them: empty lines before the status line (up to four), a
// status line with no reason phrase ("HTTP/1.1 301"), lines ended by a bare LF (RFC 9112 2.2;
// since 2026-12-07, ninth session: they were a 502). Refused: anything but HTTP/1.0 and 1.1,
// a status outside 100-599, a bare CR, obs-fold, white space
// before a field's colon, a field name that is not a token, a value with control bytes, more
// than max_fields fields, a head over max_bytes.
//
// Pure: no I/O, no Asio or Beast; any thread. The views in a parsed head point into the input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hallpass {

struct head_field {
  std::string_view name;   // as received (a token)
  std::string_view value;  // without leading and trailing spaces and tabs
};

struct response_head {
  unsigned version = 11;  // 10 or 11
  unsigned status = 0;
  std::string_view reason;
  std::vector<head_field> fields;
  std::size_t size = 0;  // input bytes taken by the head, leading empty lines and final CRLF included
};

enum class head_parse { complete, need_more, error, too_large };

// Parses the head at the start of `in`. need_more: no complete head yet (and nothing wrong so
// far); error: `error` says why; too_large: the head is over `max_bytes` or has more than
// `max_fields` fields (`error` says which), which is the proxy's limit, not a malformed answer.
head_parse parse_response_head(std::string_view in, std::size_t max_bytes, std::size_t max_fields,
                               response_head& out, std::string& error);

// When a head still incomplete is worth parsing again, as more of it arrives.
// parse_response_head starts from the head's first byte each time, so parsing after every read
// made a head that arrives a byte at a time cost quadratic time (known gap, "a response head
// parsed again from its start"; bench/slow_head.py). It is parsed on the first read, after
// every read while the head is small (8 KiB: an error there is found at once), when a line that
// can end it has come (LF LF, or LF CRLF, looked for in the new bytes only), when its bytes
// have doubled since the last parse (an error in a long head is found by the time twice its
// bytes have come), and when it is over `max_bytes` (too large): linear work in all.
class head_reparse_gate {
 public:
  // Whether `in`, the head so far, should be parsed now; if so, the caller parses it.
  bool worth_parsing(std::string_view in, std::size_t max_bytes);

 private:
  bool parsed_any_ = false;
  std::size_t last_parsed_ = 0;  // the head's bytes at the last parse
  std::size_t searched_ = 0;     // the bytes looked through for an ending line
};

// How the proxy frames the body it sends to the client.
enum class client_framing : std::uint8_t {
  none,         // no body and no length (1xx, 204, 101)
  length_info,  // no body, but Content-Length tells the size of the resource (HEAD, 304)
  length,       // Content-Length: content_length
  chunked,      // Transfer-Encoding: chunked (our own chunks)
  close,        // no framing field: the body ends when the proxy closes the connection
};

struct client_head_options {
  unsigned version = 11;  // the proxy's own version towards this client: 10 or 11
  client_framing framing = client_framing::none;
  std::uint64_t content_length = 0;  // with length and length_info
  bool keep_alive = true;            // whether the proxy keeps the client connection open
  bool upgrade = false;              // a WebSocket 101: keep Upgrade, send "Connection: Upgrade"
  std::string_view via = "1.1 hallpass";
};

// The head the proxy sends to the client for an origin's response: its own status line and
// version, the origin's end-to-end fields in order, then its own framing and connection
// fields. Dropped from the origin's head: hop-by-hop fields (Connection and every field it
// names, Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade unless `upgrade`,
// Proxy-Authenticate) and the origin's framing (Content-Length, Transfer-Encoding).
std::string write_client_response_head(const response_head& h, const client_head_options& o);

// RFC 9110 15: no content for 1xx, 204 and 304, whatever the fields say.
inline bool status_has_no_content(unsigned status) {
  return status < 200 || status == 204 || status == 304;
}

}  // namespace hallpass
