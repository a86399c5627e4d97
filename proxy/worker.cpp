#include "proxy/worker.hpp"

#include <iostream>

#include "proxy/http_session.hpp"
#include "proxy/run_loop.hpp"
#include "proxy/server.hpp"
#include "proxy/shared_state.hpp"
#include "proxy/socket_options.hpp"
#include "proxy/transparent.hpp"

namespace hallpass {
namespace {
constexpr std::size_t max_free_buffers = 64;
constexpr std::size_t max_free_pipes = 64;
}  // namespace

worker::worker(shared_state& state, unsigned index)
    : state_(state), index_(index), upstream_(ioc_.get_executor(), state),
      inbox_(std::make_shared<mailbox>(ioc_.get_executor())) {}

worker::~worker() { close_inbox(); }

void worker::close_inbox() {
  std::lock_guard lock(inbox_->mutex);
  inbox_->open = false;
}

void worker::adopt_acceptor(tcp::acceptor::native_handle_type fd, const tcp::endpoint& local, bool transparent,
                            bool tls) {
  acceptors_.push_back({std::make_unique<tcp::acceptor>(ioc_, local.protocol(), fd), transparent, tls});
}

const std::shared_ptr<const configuration>& worker::config() {
  if (!config_ || config_->generation != state_.configs.generation()) {
    config_ = state_.configs.current();
    std::vector<std::string> names;
    for (const auto& r : config_->policy->roles) names.push_back(r.name);
    role_counters_ = state_.metrics.resolve_roles(names);
  }
  return config_;
}

std::unique_ptr<char[]> worker::take_buffer() {
  if (!free_buffers_.empty()) {
    auto b = std::move(free_buffers_.back());
    free_buffers_.pop_back();
    return b;
  }
  return std::make_unique<char[]>(relay_buffer_size);
}

void worker::give_buffer(std::unique_ptr<char[]> b) {
  if (b && free_buffers_.size() < max_free_buffers) free_buffers_.push_back(std::move(b));
}

std::unique_ptr<splice_pipe> worker::take_pipe() {
  if (!free_pipes_.empty()) {
    auto p = std::move(free_pipes_.back());
    free_pipes_.pop_back();
    return p;
  }
  return splice_pipe::open();
}

void worker::give_pipe(std::unique_ptr<splice_pipe> p) {
  if (p && p->pending() == 0 && free_pipes_.size() < max_free_pipes) free_pipes_.push_back(std::move(p));
}

void worker::start() {
  // Not detached: a loop that ends by an exception stops the daemon rather than leave it
  // serving without accepting (or with a pool that is never swept).
  accept_loop_name_ = "worker " + std::to_string(index_) + " accept loop";
  sweep_loop_name_ = "worker " + std::to_string(index_) + " sweep loop";
  for (auto& a : acceptors_)
    net::co_spawn(ioc_, accept_loop(a), stop_daemon_on_failure{accept_loop_name_.c_str()});
  net::co_spawn(ioc_, sweep_loop(), stop_daemon_on_failure{sweep_loop_name_.c_str()});
  thread_ = std::thread([this] {
    mark_event_loop_thread();
    run_until_stopped(ioc_, "worker " + std::to_string(index_));
  });
}

void worker::join() {
  if (thread_.joinable()) thread_.join();
  close_inbox();
}

net::awaitable<void> worker::accept_loop(listener& l) {
  tcp::acceptor& acceptor = *l.acceptor;
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(nothrow);
    if (ec) {
      if (ec == net::error::operation_aborted || draining_) co_return;
      if (is_descriptor_shortage(ec)) report_descriptor_shortage(state_, "a client connection");
      // EMFILE and friends: back off briefly instead of spinning.
      net::steady_timer t(ioc_, std::chrono::milliseconds(50));
      co_await t.async_wait(nothrow);
      continue;
    }
    const auto cfg = config();
    error_code rec;
    const auto remote = socket.remote_endpoint(rec);
    if (rec) continue;
    // IPv4 clients on a dual-stack socket arrive as ::ffff:a.b.c.d; roles list them as IPv4.
    auto address = remote.address();
    if (address.is_v6() && address.to_v6().is_v4_mapped()) {
      address = net::ip::make_address_v4(net::ip::v4_mapped, address.to_v6());
    }
    std::string ip_text = address.to_string();
    const auto& limits = cfg->daemon.limits;
    if (const auto admitted = state_.admit(ip_text, limits.connections, limits.connections_per_client);
        admitted != shared_state::admission::admitted) {
      report_refused_connection(state_, ip_text, admitted, limits.connections, limits.connections_per_client);
      continue;  // closing the socket is the answer: no bytes, no work
    }
    set_proxy_socket_options(socket);
    auto c = std::make_shared<client_connection>(std::move(socket));
    c->ip_text = std::move(ip_text);
    if (auto ip = rules::ip_address::parse(c->ip_text)) c->ip = *ip;
    if (l.transparent) c->transparent = transparent_origin_of(c->stream.socket(), l.tls);
    net::co_spawn(ioc_, run_http_session(*this, std::move(c)), net::detached);
  }
}

net::awaitable<void> worker::sweep_loop() {
  net::steady_timer t(ioc_);
  while (!draining_) {
    t.expires_after(std::chrono::seconds(1));
    auto [ec] = co_await t.async_wait(nothrow);
    if (ec) co_return;
    upstream_.sweep(config()->daemon.upstream.pool_idle);
    // Answers still streaming whose decision no longer holds (client_connection::body_check):
    // their origin's side is closed, which ends the relay. The check asks the policy only after
    // a change or every 5 s (decision_still_holds).
    for (auto* c : connections_) {
      if (c->body_check == nullptr || c->body_cut || (*c->body_check)()) continue;
      c->body_cut = true;
      // Shut down, not closed: a splice holds both descriptors' numbers, and a closed one could
      // be another connection's by its next call. Shut down, the origin's side reads its end at
      // once; cancelled, a wait on either side (a slow reader's, a quiet origin's) ends now.
      error_code ignored;
      c->body_from->socket().shutdown(tcp::socket::shutdown_both, ignored);
      c->body_from->socket().cancel(ignored);
      c->stream.socket().cancel(ignored);
    }
  }
}

void worker::begin_drain() {
  net::post(ioc_, [this] {
    draining_ = true;
    for (auto& a : acceptors_) {
      error_code ignored;
      a.acceptor->close(ignored);
    }
    for (auto* c : connections_) {
      if (c->idle) c->stream.socket().close();
    }
    upstream_.close_all();
  });
}

void worker::stop() {
  net::post(ioc_, [this] {
    stopped_ = true;
    for (auto* c : connections_) {
      error_code ignored;
      c->stream.socket().close(ignored);
    }
    upstream_.close_all();
    net::co_spawn(ioc_, stop_when_closed(), net::detached);
  });
}

// The drain's deadline: the connections were closed a moment ago, and their sessions end as
// their next read or write fails, each writing its access-log line (the bytes it carried, the
// time). Stopping the loop at once destroyed them first: a download or a tunnel cut at the
// deadline left no line at all (reload audit, 2026-12-06: 3 lines missing a stop, a tunnel of
// 71,000 requests among them). At most stop_grace; what is left then goes unlogged.
net::awaitable<void> worker::stop_when_closed() {
  constexpr auto stop_grace = std::chrono::seconds(1);
  const auto until = std::chrono::steady_clock::now() + stop_grace;
  net::steady_timer t(ioc_);
  while (!connections_.empty() && std::chrono::steady_clock::now() < until) {
    t.expires_after(std::chrono::milliseconds(10));
    co_await t.async_wait(nothrow);
  }
  ioc_.stop();
}

}  // namespace hallpass
