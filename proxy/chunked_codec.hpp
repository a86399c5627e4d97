// The chunked transfer coding (RFC 9112 section 7.1), read strictly and written by us.
//
// The proxy never forwards chunk framing as it received it: it decodes the sender's chunks
// into body bytes with chunked_decoder and writes its own framing with append_chunk and
// append_last_chunk. So whatever it forwards describes exactly the bytes it forwards, and a
// body that can be read two ways (a bare LF or CR as a line end, a signed or oversized size,
// junk after the size, a missing CRLF after the data) is refused instead of passed on.
// Trailer fields are read, checked and dropped (never moved into the head, never forwarded).
//
// Pure: no I/O, no Asio or Beast. A decoder is a value used by one relay at a time; the free
// functions are thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace hallpass {

class chunked_decoder {
 public:
  // What one call to next() did.
  struct step {
    std::size_t consumed = 0;  // input bytes used (framing and data); the caller drops them
    std::string_view data;     // body bytes found, a view into the input (may be empty)
  };

  // max_line bounds a chunk-size line (with its extensions) and each trailer line;
  // max_trailer bounds the whole trailer section.
  explicit chunked_decoder(std::size_t max_line = 4096, std::size_t max_trailer = 16 * 1024)
      : max_line_(max_line), max_trailer_(max_trailer) {}

  // Reads framing from the start of `in` and returns at most one run of body bytes. Call again
  // with the rest of the input while it is not empty and the decoder is neither done nor
  // failed. Partial lines are kept inside the decoder (bounded), so every byte consumed is
  // accounted for and the caller never has to keep input back.
  step next(std::string_view in);

  bool done() const { return state_ == state::done; }
  // Set once the input cannot be a valid chunked body; a short reason, for a 400/502 and the log.
  const std::optional<std::string>& error() const { return error_; }
  // Body bytes decoded so far.
  std::uint64_t body_bytes() const { return body_bytes_; }

 private:
  enum class state : std::uint8_t { size_line, data, data_cr, data_lf, trailer_line, done, failed };
  void fail(std::string reason);
  // A complete line (without CRLF) in line_: act on it.
  void end_size_line();
  void end_trailer_line();

  std::size_t max_line_, max_trailer_;
  state state_ = state::size_line;
  std::string line_;          // the line being read (size line or trailer line)
  bool line_cr_ = false;      // the line so far ended with CR; LF must follow
  std::uint64_t remaining_ = 0;  // data bytes left in the current chunk
  std::size_t trailer_bytes_ = 0;
  std::uint64_t body_bytes_ = 0;
  std::optional<std::string> error_;
};

// Appends one chunk ("<hex size>\r\n<data>\r\n") to `out`. Empty data appends nothing (an
// empty chunk would end the body).
void append_chunk(std::string& out, std::string_view data);
// Appends the last chunk with no trailer: "0\r\n\r\n".
void append_last_chunk(std::string& out);

}  // namespace hallpass
