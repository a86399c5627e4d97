// Message-framing and header-grammar checks that Boost.Beast 1.81's parser does not make
// itself, so that a request cannot be read one way by hallpass and another way by the origin
// (request smuggling, RFC 9112 section 6 and 11.2).
//
// Beast accepts, among others: Transfer-Encoding whose last coding is not chunked,
// Transfer-Encoding together with Content-Length, chunked on HTTP/1.0, Content-Length repeated
// or written as a list ("5, 5"). framing_check sees every header field of one message in order
// (from the parsed fields, before anything is forwarded) and says whether the framing is
// unambiguous. The session answers 400 and closes the connection on a request that fails, and
// 502 on a response that fails.
//
// Pure: no I/O, no Asio or Beast. A framing_check is a value used by one session at a time;
// the free functions are thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rules/host.hpp"

namespace hallpass {

enum class message_kind : std::uint8_t { request, response };

class framing_check {
 public:
  explicit framing_check(message_kind kind = message_kind::request) : kind_(kind) {}

  // Call for every header field, in the order received, with the value as the parser gives it
  // (leading and trailing spaces and tabs are ignored here).
  void add(std::string_view name, std::string_view value);

  // nullopt: the framing is unambiguous. Otherwise a short reason, fit for a 400 (request) or
  // 502 (response) body and the log. `http_version` is 10 or 11, as Beast writes it.
  //
  // Rejected, in both kinds unless noted:
  //  - a field name that is not an RFC 9110 token; a value byte outside field-vchar,
  //    obs-text, SP and HTAB (NUL, CR, LF, other controls, DEL);
  //  - Transfer-Encoding (all fields together, as one comma list) whose last coding is not
  //    "chunked", that applies chunked twice, or that is empty or not a list of tokens;
  //  - Transfer-Encoding together with Content-Length;
  //  - Transfer-Encoding in an HTTP/1.0 message;
  //  - Content-Length that is not plain decimal digits fitting in 64 bits ("+5", "5, 5", "");
  //  - requests: Content-Length given more than once, even with equal values. Refusing the
  //    repeat is simpler and safer than proving every copy equal; no real client sends one;
  //  - responses: Content-Length repeated with different values (equal repeats are accepted,
  //    as browsers accept them from servers);
  //  - requests: more than one Host field.
  // A missing Host is not checked here (this class also checks responses): the session does.
  std::optional<std::string> finish(unsigned http_version) const;

  // Meaningful after finish() returned nullopt.
  bool chunked() const { return te_count_ > 0; }
  std::optional<std::uint64_t> content_length() const { return content_length_; }
  bool has_host() const { return host_count_ > 0; }

 private:
  void fail(std::string reason);
  void add_transfer_encoding(std::string_view value);
  void add_content_length(std::string_view value);
  void add_connection(std::string_view value);

  message_kind kind_;
  std::optional<std::string> error_;  // the first problem found by add()
  unsigned te_count_ = 0;
  unsigned cl_count_ = 0;
  std::optional<std::uint64_t> content_length_;
  unsigned host_count_ = 0;
};

// RFC 9110 token (tchar+): field names, transfer-coding names, chunk-extension names.
bool is_http_token(std::string_view s);

// Case-insensitive comparison of ASCII text (field names, tokens): rules/host.hpp's.
using rules::ascii_iequals;

// `s` without the spaces and tabs (OWS, RFC 9110 5.6.3) at either end.
std::string_view trim_ows(std::string_view s);

// Calls `visit` with each element of a comma-separated field value (Connection, Upgrade, Expect,
// a method override), trimmed of the blanks round it; empty elements are left out. An element
// is whole, whatever it holds: "close x" is not "close", and "foo/1" does not end the list (as
// Beast's token_list did). Stops early when `visit` returns true; returns whether it did.
template <class Visit>
bool for_each_list_item(std::string_view list, Visit&& visit) {
  while (true) {
    const auto comma = list.find(',');
    const auto item = trim_ows(list.substr(0, comma));
    if (!item.empty() && visit(item)) return true;
    if (comma == std::string_view::npos) return false;
    list.remove_prefix(comma + 1);
  }
}
// Whether the list has `token`, without case.
bool list_has(std::string_view list, std::string_view token);

// The value of one hexadecimal digit, or -1.
int hex_digit_value(char c);

// True when every byte is field-vchar, obs-text, SP or HTAB (RFC 9110 5.5).
bool is_field_value(std::string_view s);

// Checks one chunk-size line of a chunked body, without its CRLF: 1 to 16 hex digits (no sign,
// no "0x", nothing before them), then optional chunk extensions
// (*( BWS ";" BWS token [ BWS "=" BWS ( token / quoted-string ) ] )). nullopt when valid.
std::optional<std::string> check_chunk_size_line(std::string_view line);

// How a request head that has arrived so far ends: whole (CRLF CRLF), with a line ended by a
// bare LF, or not yet. Beast's parser waits for CRLF CRLF, so a bare-LF head "never ends" and
// met limits.head_timeout's 408; RFC 9112 2.2 lets a recipient refuse it at once with a 400
// instead (it does not take a bare LF as a line end: one reader taking it and another not is a
// smuggling shape). Only the head counts: what follows its CRLF CRLF is not looked at.
// A read at a time: `from` is how much of `buffered` an earlier call already looked at (it
// found neither end there), so each byte is looked at once however the head arrives.
// (Scanning the whole buffer at each read cost a head sent a byte at a time seconds of a
// worker at a header_bytes of 1 MiB: review, 2026-12-06.)
enum class head_scan : std::uint8_t { incomplete, whole, bare_lf };
head_scan scan_head(std::string_view buffered, std::size_t from);

// How many bytes at the start of `buffered` are empty lines (CRLF, or a bare LF), which RFC 9112
// 2.2 says a server should ignore before a request line: older clients send a CRLF after a
// POST's body. A CR not yet followed by its LF is not counted (the LF may be in the next read).
std::size_t leading_empty_lines(std::string_view buffered);

// Whether what is buffered, after leading_empty_lines, holds no request line yet: nothing, or a
// CR alone (an empty line whose LF has not come: a read can end between the two). session_loop
// reads on then; the request-head fuzz target asks the same.
inline bool no_request_line_yet(std::string_view buffered) { return buffered.empty() || buffered == "\r"; }

// The longest method hallpass forwards: the longest registered (IANA) is 17 bytes; an
// unregistered one of up to this many is forwarded like any other (RFC 9112 3: a server may
// answer 501 to a longer method than any it implements).
inline constexpr std::size_t max_forwarded_method_length = 32;

// A Max-Forwards value (RFC 9110 7.6.2: 1*DIGIT, here with surrounding OWS): the number, at
// most 2^32 - 1 (a larger one is that); nullopt when it is not a number, and the field is then
// passed on as it came, as for any other method.
std::optional<std::uint32_t> max_forwards_value(std::string_view value);

// A method-override field (X-HTTP-Method-Override, X-HTTP-Method, X-Method-Override; the name
// without case): servers built on many web frameworks act on the method it names instead of
// the request line's, so the request is decided as that method too (rules::request_facts).
bool is_method_override_field(std::string_view name);

// Adds a method-override field's value to `methods`: each comma-separated item, trimmed of
// spaces and tabs, upper case, unless it is the request's own `method` or already there.
void add_method_override(std::vector<std::string>& methods, std::string_view method, std::string_view value);

}  // namespace hallpass
