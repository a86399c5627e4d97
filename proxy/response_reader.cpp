#include "proxy/response_reader.hpp"

#include <boost/asio/co_spawn.hpp>

#include "proxy/upstream.hpp"

namespace hallpass {
namespace {

constexpr std::size_t read_size = 16 * 1024;

}  // namespace

net::awaitable<head_read> read_response_head(upstream_connection& up, response_head& head,
                                             const daemon_config::limit_settings& limits) {
  head_read r;
  r.result = head_parse::need_more;
  head_reparse_gate gate;
  for (;;) {
    const std::string_view view = buffered(up.buffer);
    if (gate.worth_parsing(view, limits.response_header_bytes)) {
      r.result = parse_response_head(view, limits.response_header_bytes, limits.response_header_count, head, r.error);
      if (r.result != head_parse::need_more) co_return r;
    }
    const auto into = up.buffer.prepare(read_size);
    auto [ec, n] = co_await up.io.async_read_some(into, nothrow);
    up.buffer.commit(n);
    r.bytes_read += n;
    if (ec) {
      // Whatever the gate would say: a malformed head the origin then closed on is malformed,
      // not a close without an answer.
      r.result = parse_response_head(buffered(up.buffer), limits.response_header_bytes, limits.response_header_count,
                                     head, r.error);
      if (r.result == head_parse::need_more) r.ec = ec;
      co_return r;
    }
  }
}

struct early_answer_watch::state {
  explicit state(net::any_io_executor ex) : done(ex) {}
  upstream_connection* up = nullptr;
  tcp::socket* client = nullptr;
  std::size_t header_bytes = 0;
  std::size_t header_count = 0;
  bool running = true;   // the watch's coroutine has not ended
  bool stopping = false; // stop() was called: the upload is over, nothing is cancelled for it
  bool refused = false;  // a final answer >= 300 came and the upload was stopped
  net::steady_timer done;  // cancelled when the coroutine ends, to wake stop()
};

namespace {

// Ends the upload: the relays see the flag before their next step (body_relay.hpp), and what is
// pending now is cancelled.
void refuse_upload(early_answer_watch::state& s) {
  if (s.stopping) return;  // the upload is over already
  s.refused = true;
  error_code ignored;
  s.client->cancel(ignored);              // the client's body is no longer read
  s.up->stream.socket().cancel(ignored);  // nor sent
}

// Reads the origin's answer into up.buffer while the upload runs, without consuming anything:
// interim responses (100, 102, 103) are stepped over and left for the response loop, which
// passes them on. Ends at the final head (cutting the upload when it refuses), a malformed
// head (cutting it too: the response loop answers 502 and says why), more interim responses
// than the response loop takes, or a read that fails (the upload's write will fail too, or
// stop() cancelled it).
net::awaitable<void> watch_for_answer(std::shared_ptr<early_answer_watch::state> s) {
  std::size_t offset = 0;  // where the next head starts: after the interim ones
  int interim = 0;
  head_reparse_gate gate;  // for the head that starts at offset
  for (;;) {
    response_head head;
    std::string error;
    const std::string_view view = buffered(s->up->buffer).substr(offset);
    auto parsed = head_parse::need_more;
    if (gate.worth_parsing(view, s->header_bytes)) {
      parsed = parse_response_head(view, s->header_bytes, s->header_count, head, error);
    }
    if (parsed == head_parse::complete && head.status < 200 && head.status != 101) {
      if (++interim > max_interim_responses) co_return;  // the response loop refuses those
      offset += head.size;
      gate = head_reparse_gate{};  // the next head is parsed from its start at once
      continue;
    }
    if (parsed == head_parse::complete) {
      if (head.status >= 300) refuse_upload(*s);
      co_return;
    }
    if (parsed == head_parse::error || parsed == head_parse::too_large) {
      refuse_upload(*s);
      co_return;
    }
    auto [ec, n] = co_await s->up->io.async_read_some(s->up->buffer.prepare(read_size), nothrow);
    if (s->up == nullptr) co_return;  // the watch was destroyed without stop(): touch nothing
    s->up->buffer.commit(n);
    if (ec || s->stopping) co_return;
  }
}

}  // namespace

early_answer_watch::early_answer_watch(upstream_connection& up, tcp::socket& client,
                                       const daemon_config::limit_settings& limits)
    : s_(std::make_shared<state>(up.stream.get_executor())) {
  s_->up = &up;
  s_->client = &client;
  s_->header_bytes = limits.response_header_bytes;
  s_->header_count = limits.response_header_count;
  // No read is pending on the stream here, so this clears the read deadline (a past one would
  // end the watch's read at once); the upload sets its write deadline before each write.
  up.stream.expires_never();
  s_->done.expires_at(net::steady_timer::time_point::max());
  net::co_spawn(up.stream.get_executor(), watch_for_answer(s_), [s = s_](const std::exception_ptr&) {
    s->running = false;
    s->done.cancel();
  });
}

early_answer_watch::~early_answer_watch() {
  // stop() is awaited on every path (forward.cpp). Should it not be, the read still pending is
  // cancelled and the coroutine, which keeps the state alive, touches no stream when it ends.
  if (!s_->running) return;
  s_->stopping = true;
  error_code ignored;
  s_->up->stream.socket().cancel(ignored);
  s_->up = nullptr;
}

const bool* early_answer_watch::refused_flag() const { return &s_->refused; }

net::awaitable<bool> early_answer_watch::stop() {
  s_->stopping = true;
  if (s_->running) {
    error_code ignored;
    s_->up->stream.socket().cancel(ignored);  // only the watch's read is pending now
    while (s_->running) co_await s_->done.async_wait(nothrow);
  }
  co_return s_->refused;
}

}  // namespace hallpass
