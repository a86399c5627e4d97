#include "proxy/body_relay.hpp"

#include <array>
#include <cstring>
#include <optional>

#include "proxy/chunked_codec.hpp"
#include "proxy/splice_pump.hpp"
#include "proxy/worker.hpp"

namespace hallpass {
namespace {

// Bodies with at least this much left after the first write are spliced in the kernel.
constexpr std::uint64_t splice_threshold = 128 * 1024;
constexpr std::size_t decoded_read_size = 16 * 1024;

// Adds decoded body bytes to what goes out next. (A plain function: no lambdas with captures
// inside coroutines, see proxy/README.md on GCC 12.)
void emit(relay_result& r, std::string& pending, bool encode_chunked, std::string_view data) {
  r.moved += data.size();
  if (encode_chunked) {
    append_chunk(pending, data);
  } else {
    pending.append(data);
  }
}

// The deadline of one read from the side a relay reads: the stream's own (`idle`) for an origin
// or an unpaced body; for a client's paced body (body_pacing) the pace's or `idle`, whichever
// ends first, through read_deadline, which cancels the read instead of closing the socket so
// that the 408 can still be written, and the wait counted against the pace. Not a coroutine:
// the read itself stays in the relay's own frame (every response body goes through here).
class relay_read_deadline {
 public:
  relay_read_deadline(duplex_stream& in, std::chrono::milliseconds idle, const body_pacing* paced)
      : in_(in), idle_(idle), paced_(paced) {}

  // Before the read. False when the client has already fallen behind: then no read is made,
  // and the relay reports `timeout` (pace.too_slow is set).
  bool arm(std::uint64_t moved) {
    if (paced_ == nullptr) {
      in_.expires_after(idle_);
      return true;
    }
    wait_ = paced_->pace.next_wait(moved, idle_);
    if (wait_ <= std::chrono::milliseconds::zero()) {
      paced_->pace.too_slow = true;
      return false;
    }
    in_.expires_never();
    deadline_.emplace(paced_->timer, paced_->state, in_.socket(), wait_);
    began_ = std::chrono::steady_clock::now();
    return true;
  }

  // After the read: its error as the relay reports it (`timeout` when a deadline ended it).
  error_code done(error_code ec) {
    if (!deadline_) return ec;
    deadline_->disarm();
    const bool expired = deadline_->expired();
    deadline_.reset();
    paced_->pace.waited += std::chrono::steady_clock::now() - began_;
    if (!ec || !expired) return ec;
    if (wait_ < idle_) paced_->pace.too_slow = true;
    return beast::error::timeout;
  }

 private:
  duplex_stream& in_;
  std::chrono::milliseconds idle_;
  const body_pacing* paced_;
  std::optional<read_deadline> deadline_;
  std::chrono::steady_clock::time_point began_{};
  std::chrono::milliseconds wait_{};
};

}  // namespace

net::awaitable<relay_result> relay_fixed(worker& w, duplex_stream& in, beast::flat_buffer& in_buffer,
                                         duplex_stream& out, const std::string& head, std::uint64_t length,
                                         std::chrono::milliseconds idle, const bool* stop, const body_pacing* paced) {
  relay_result r;
  const std::size_t first = static_cast<std::size_t>(std::min<std::uint64_t>(in_buffer.size(), length));
  if (out.is_tls() && head.size() + first <= worker::relay_buffer_size) {
    // TLS writes one buffer per record (and per send): the head and the first bytes are copied
    // into one buffer first, so a small response is one record and one system call, not two.
    auto joined = w.take_buffer();
    std::memcpy(joined.get(), head.data(), head.size());
    net::buffer_copy(net::buffer(joined.get() + head.size(), first), in_buffer.data());
    out.expires_after(idle);
    auto [wec, wn] = co_await net::async_write(out, net::buffer(joined.get(), head.size() + first), nothrow);
    w.give_buffer(std::move(joined));
    r.written += wn;
    if (wec) {
      r.write_error = wec;
      co_return r;
    }
  } else {
    const std::array<net::const_buffer, 2> parts{net::buffer(head), net::buffer(in_buffer.data().data(), first)};
    out.expires_after(idle);
    auto [wec, wn] = co_await net::async_write(out, parts, nothrow);
    r.written += wn;
    if (wec) {
      r.write_error = wec;
      co_return r;
    }
  }
  in_buffer.consume(first);
  r.moved += first;
  std::uint64_t remaining = length - first;
  if (remaining == 0) co_return r;
  // splice(2) moves bytes between plain sockets only: TLS bytes must go through OpenSSL.
  if (remaining >= splice_threshold && !in.is_tls() && !out.is_tls()) {
    if (auto pipe = w.take_pipe()) {
      body_pace* pace = nullptr;  // a named local: no conditional inside co_await (GCC 12 rule 3)
      if (paced != nullptr) pace = &paced->pace;
      const auto s = co_await splice_bytes_or_idle(in.socket(), out.socket(), *pipe, remaining, idle, stop, pace,
                                                   r.moved);
      w.give_pipe(std::move(pipe));
      r.moved += s.moved;
      r.read_error = s.read_error;
      r.write_error = s.write_error;
      if (!r.read_error && !r.write_error && s.moved < remaining) r.read_error = net::error::eof;
      r.written += s.moved;
      co_return r;
    }
  }
  auto buf = w.take_buffer();
  relay_read_deadline deadline(in, idle, paced);
  while (remaining > 0) {
    if (stop_requested(stop, r.write_error)) break;
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(remaining, worker::relay_buffer_size));
    if (!deadline.arm(r.moved)) {
      r.read_error = beast::error::timeout;
      break;
    }
    auto [ec, n] = co_await in.async_read_some(net::buffer(buf.get(), want), nothrow);
    if (const auto rec = deadline.done(ec)) {
      r.read_error = rec;
      break;
    }
    r.moved += n;
    remaining -= n;
    if (stop_requested(stop, r.write_error)) break;
    out.expires_after(idle);
    auto [wec, wn] = co_await net::async_write(out, net::buffer(buf.get(), n), nothrow);
    r.written += wn;
    if (wec) {
      r.write_error = wec;
      break;
    }
  }
  w.give_buffer(std::move(buf));
  co_return r;
}

net::awaitable<relay_result> relay_decoded(duplex_stream& in, beast::flat_buffer& in_buffer,
                                           duplex_stream& out, std::string& head, const decoded_relay& how) {
  relay_result r;
  chunked_decoder decoder;
  relay_read_deadline deadline(in, how.idle, how.paced);
  std::string pending = std::move(head);  // what goes out in the next write
  bool ended = false;
  for (;;) {
    // Decode everything already read.
    while (!ended && in_buffer.size() > 0) {
      const auto view = buffered(in_buffer);
      if (how.source == body_source::until_close) {
        emit(r, pending, how.encode_chunked, view);
        in_buffer.consume(view.size());
        break;
      }
      const auto step = decoder.next(view);
      emit(r, pending, how.encode_chunked, step.data);
      in_buffer.consume(step.consumed);
      if (decoder.error()) {
        r.framing_error = *decoder.error();
        co_return r;
      }
      if (decoder.done()) ended = true;
      if (step.consumed == 0) break;
    }
    if (how.limit > 0 && r.moved > how.limit) {
      r.over_limit = true;
      co_return r;
    }
    if (ended && how.encode_chunked) append_last_chunk(pending);
    if (stop_requested(how.stop, r.write_error)) co_return r;
    if (!pending.empty()) {
      out.expires_after(how.idle);
      auto [wec, wn] = co_await net::async_write(out, net::buffer(pending), nothrow);
      r.written += wn;
      if (wec) {
        r.write_error = wec;
        co_return r;
      }
      pending.clear();
    }
    if (ended) co_return r;
    if (stop_requested(how.stop, r.write_error)) co_return r;
    if (!deadline.arm(r.moved)) {
      r.read_error = beast::error::timeout;
      co_return r;
    }
    const auto into = in_buffer.prepare(decoded_read_size);
    auto [ec, n] = co_await in.async_read_some(into, nothrow);
    const auto rec = deadline.done(ec);
    in_buffer.commit(n);
    if (rec) {
      // Only a clean close ends such a body: a TCP FIN, or over TLS a close_notify (Asio's
      // eof). A TLS connection closed without one (stream_truncated) was cut short (RFC 8446
      // 6.1) and is a read error, so the receiver is not told the body is complete.
      if (rec == net::error::eof && how.source == body_source::until_close) {
        ended = true;
        continue;
      }
      r.read_error = rec;
      co_return r;
    }
  }
}

}  // namespace hallpass
