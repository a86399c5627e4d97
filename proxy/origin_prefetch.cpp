#include "proxy/origin_prefetch.hpp"

#include "proxy/configuration.hpp"
#include "proxy/exchange.hpp"
#include "proxy/shared_state.hpp"
#include "proxy/transparent.hpp"
#include "proxy/worker.hpp"
#include "rules/safesearch.hpp"

namespace hallpass {
namespace {


// A named coroutine, not a lambda (proxy/README.md, "Coroutines and GCC 12").
net::awaitable<void> run_prefetch(worker& w, std::shared_ptr<origin_prefetch> p,
                                  std::shared_ptr<const configuration> cfg) {
  // Whatever acquire() does, `ready` is cancelled: a request waiting in take_prefetched has no
  // deadline of its own, and an exception out of a detached coroutine is dropped unseen
  // (event-loop review, 2026-12-06). Without a result it makes its own connection.
  try {
    auto r = co_await w.upstream().acquire(p->to, *cfg, upstream_use::tunnel, true);
    p->result = std::move(r);
  } catch (const std::exception&) {
    p->result.reset();
  }
  // Expired, not only cancelled: a request that comes to wait after this (with no result to
  // take) is woken at once too; cancel() wakes only the waits already begun (review, 2026-12-06).
  p->ready.expires_at(std::chrono::steady_clock::time_point::min());
}

bool same_origin(const origin_address& a, const origin_address& b) {
  return a.host == b.host && a.port == b.port && a.tls == b.tls && a.connect_host == b.connect_host &&
         a.address == b.address && a.client == b.client;
}

}  // namespace

origin_address inspected_tunnel_origin(const client_connection& c, const exchange& ex) {
  origin_address to;
  to.host = ex.host;
  to.port = ex.port;
  to.tls = true;
  // What forward.cpp will ask for: SafeSearch's front end from the same policy and role (none
  // for a host that is not a search engine).
  if (ex.verdict) {
    if (const auto mapped = rules::safesearch_connect_host(*ex.cfg->policy, *ex.verdict, ex.host))
      to.connect_host = std::string(*mapped);
  }
  to.address = original_endpoint(c);
  to.client = pool_client(c, ex);  // as forward.cpp asks: the device's (and user's) own
  return to;
}

void prefetch_tunnel_origin(worker& w, client_connection& c, const exchange& ex, origin_address to) {
  auto p = std::make_shared<origin_prefetch>(w.context().get_executor());
  p->to = std::move(to);
  net::co_spawn(w.context(), run_prefetch(w, p, ex.cfg), net::detached);
  c.prefetch = std::move(p);
}

void prefetch_failed(worker& w, client_connection& c, origin_address to, upstream_error error, std::string detail) {
  auto p = std::make_shared<origin_prefetch>(w.context().get_executor());
  p->to = std::move(to);
  acquire_result r;
  r.error = error;
  r.reason = describe(error);
  r.detail = std::move(detail);
  w.state().metrics.upstream_failed(metrics::upstream_failure::dns).Increment();  // as acquire() counts it
  p->result = std::move(r);
  p->ready.expires_at(std::chrono::steady_clock::time_point::min());
  c.prefetch = std::move(p);
}

void return_unused_prefetch(worker& w, client_connection& c) {
  auto p = std::move(c.prefetch);
  if (!p || !p->result || !p->result->conn) return;  // none, still connecting, or failed: dropped
  w.upstream().give_back_unused(std::move(p->result->conn), *w.config());
}

net::awaitable<std::optional<acquire_result>> take_prefetched(std::shared_ptr<origin_prefetch>& p,
                                                              const origin_address& to) {
  // Another origin: left in place, to go back to the pool when the connection ends.
  if (!p || !same_origin(p->to, to)) co_return std::nullopt;
  auto held = std::move(p);
  p.reset();
  if (!held->result) {
    // acquire() has its own deadlines (DNS, connect, handshake): the wait ends with them.
    auto [ec] = co_await held->ready.async_wait(nothrow);
    (void)ec;  // cancelled: the result is in
  }
  if (!held->result) co_return std::nullopt;
  // A connection that waited for its request may have been closed by the origin meanwhile (a
  // pupil reading a page before the next click): like a pooled one, an idempotent request that
  // finds it dead before any answer is retried once on a new connection (forward.cpp).
  if (held->result->conn) held->result->conn->reused = true;
  co_return std::move(*held->result);
}

}  // namespace hallpass
