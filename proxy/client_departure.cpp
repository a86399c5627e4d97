#include "proxy/client_departure.hpp"

#include <sys/socket.h>

#include <boost/asio/co_spawn.hpp>
#include <cerrno>

#include "proxy/upstream.hpp"

namespace hallpass {

struct client_departure_watch::state {
  tcp::socket* client = nullptr;     // null once the watch has ended: touch nothing
  upstream_connection* up = nullptr;
  bool left = false;
  bool waiting = false;  // the coroutine's wait on the client's socket is pending
};

client_peek peek_client(tcp::socket& s) {
  char byte = 0;
  const auto n = ::recv(s.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n > 0) return client_peek::bytes;
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return client_peek::nothing_yet;
  return client_peek::gone;  // end of stream, or an error (a reset)
}

namespace {

// A named coroutine, not a lambda (proxy/README.md, "Coroutines and GCC 12").
net::awaitable<void> watch_for_departure(std::shared_ptr<client_departure_watch::state> s) {
  // A few wake-ups with nothing to read (a signal, a spurious readiness) are waited through.
  for (int wakes = 0; wakes < 8; ++wakes) {
    if (s->client == nullptr) co_return;  // ended before this coroutine first ran
    s->waiting = true;
    auto [ec] = co_await s->client->async_wait(tcp::socket::wait_read, nothrow);
    s->waiting = false;
    if (s->client == nullptr || ec) co_return;  // ended by the destructor
    const client_peek seen = peek_client(*s->client);
    if (seen == client_peek::bytes) co_return;  // the client's next bytes: not a departure, and nothing to see past them
    if (seen == client_peek::nothing_yet) continue;
    // Gone: the origin's answer has nobody to go to.
    s->left = true;
    error_code ignored;
    s->up->stream.socket().cancel(ignored);
    co_return;
  }
}

}  // namespace

client_departure_watch::client_departure_watch(tcp::socket& client, upstream_connection& up)
    : s_(std::make_shared<state>()) {
  s_->client = &client;
  s_->up = &up;
  net::co_spawn(client.get_executor(), watch_for_departure(s_), net::detached);
}

client_departure_watch::~client_departure_watch() {
  if (s_->client == nullptr) return;
  // Only while its wait is pending: cancel() ends every operation on the socket, and the
  // session may have others by then (none pending here is the rule: client_departure.hpp).
  if (s_->waiting) {
    error_code ignored;
    s_->client->cancel(ignored);  // the watch's wait ends (operation_aborted) and touches nothing
  }
  s_->client = nullptr;
  s_->up = nullptr;
}

bool client_departure_watch::client_left() const { return s_->left; }

}  // namespace hallpass
