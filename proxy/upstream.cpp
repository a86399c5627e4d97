#include "proxy/upstream.hpp"

#include <sys/socket.h>

#include "proxy/shared_state.hpp"

namespace hallpass {
namespace {
constexpr auto nothrow = net::as_tuple(net::use_awaitable);
constexpr std::size_t max_dns_cache = 10000;
constexpr std::size_t max_idle_total = 1024;
constexpr std::size_t upstream_buffer_size = 16 * 1024;

// An IPv4-mapped IPv6 address (::ffff:10.0.0.1) as the IPv4 address it carries.
net::ip::address unmapped(const net::ip::address& a) {
  if (a.is_v6() && a.to_v6().is_v4_mapped()) return net::ip::make_address_v4(net::ip::v4_mapped, a.to_v6());
  return a;
}

// Link-local: 169.254.0.0/16 (where clouds and some appliances answer metadata requests,
// 169.254.169.254) and fe80::/10. Never a web destination for a school's users.
bool is_link_local(const net::ip::address& address) {
  const auto a = unmapped(address);
  if (a.is_v4()) return (a.to_v4().to_uint() >> 16) == 0xA9FE;
  return a.to_v6().is_link_local();
}

bool is_loopback_or_unspecified(const net::ip::address& address) {
  const auto a = unmapped(address);
  return a.is_loopback() || a.is_unspecified();
}
}  // namespace

std::string_view describe(upstream_error e) {
  switch (e) {
    case upstream_error::none: return "ok";
    case upstream_error::bad_name: return "the host name is not valid";
    case upstream_error::dns: return "the site's name could not be found";
    case upstream_error::refused_destination: return "the destination is not allowed (loopback, link-local or the proxy itself)";
    case upstream_error::connect_refused: return "the site refused the connection";
    case upstream_error::connect_timeout: return "the site did not answer in time";
    case upstream_error::connect_failed: return "the connection to the site failed";
  }
  return "error";
}

bool upstream::destination_allowed(const tcp::endpoint& e, const configuration& cfg) const {
  // Never the proxy itself, whatever the configuration says: that would loop.
  // (The metrics endpoint is in own_listeners too.)
  const auto dest = unmapped(e.address());
  for (const auto& [addr, port] : state_.own_listeners) {
    if (e.port() != port) continue;
    error_code ec;
    const auto listen = net::ip::make_address(addr, ec);
    if (ec || unmapped(listen) == dest || listen.is_unspecified() || is_loopback_or_unspecified(dest)) return false;
  }
  if (is_link_local(dest)) return false;
  if (!cfg.daemon.upstream.allow_loopback && is_loopback_or_unspecified(dest)) return false;
  return true;
}

net::awaitable<std::pair<std::vector<tcp::endpoint>, std::string>> upstream::resolve(const std::string& host,
                                                                                     std::uint16_t port,
                                                                                     const configuration& cfg) {
  std::vector<tcp::endpoint> out;
  error_code ec;
  // An IP literal (brackets already removed by the engine's normalisation).
  const auto literal = net::ip::make_address(host, ec);
  if (!ec) {
    out.emplace_back(literal, port);
    co_return std::make_pair(std::move(out), std::string());
  }
  if (auto it = cfg.daemon.hosts.find(host); it != cfg.daemon.hosts.end()) {
    for (const auto& ip : it->second) {
      out.emplace_back(net::ip::make_address(ip.to_string()), port);
    }
    co_return std::make_pair(std::move(out), std::string());
  }
  const auto now = std::chrono::steady_clock::now();
  if (auto it = dns_cache_.find(host); it != dns_cache_.end()) {
    if (it->second.expires > now) {
      for (auto e : it->second.endpoints) {
        e.port(port);
        out.push_back(e);
      }
      co_return std::make_pair(std::move(out), std::string());
    }
    dns_cache_.erase(it);
  }
  auto [rec, results] = co_await resolver_.async_resolve(host, std::to_string(port), nothrow);
  if (rec) co_return std::make_pair(std::move(out), rec.message());
  for (const auto& r : results) out.push_back(r.endpoint());
  if (!out.empty() && cfg.daemon.upstream.dns_cache.count() > 0) {
    if (dns_cache_.size() >= max_dns_cache) dns_cache_.clear();
    dns_cache_[host] = cached_name{out, now + cfg.daemon.upstream.dns_cache};
  }
  co_return std::make_pair(std::move(out), std::string());
}

net::awaitable<acquire_result> upstream::acquire(std::string host, std::uint16_t port, const configuration& cfg,
                                                 bool allow_pooled, bool check_pooled) {
  acquire_result r;
  std::string key = host + ":" + std::to_string(port);
  if (allow_pooled) {
    if (auto it = idle_.find(key); it != idle_.end()) {
      // Most recently used first: the connection the origin is least likely to have closed.
      auto& list = it->second;
      while (!list.empty()) {
        auto c = std::move(list.back());
        list.pop_back();
        --idle_count_;
        // A pooled connection the origin has closed reads as EOF (or has stray bytes): drop it.
        bool alive = true;
        if (check_pooled) {
          char probe;
          const ssize_t n = ::recv(c->stream.socket().native_handle(), &probe, 1, MSG_PEEK | MSG_DONTWAIT);
          alive = n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
        }
        if (alive) {
          c->reused = true;
          state_.metrics.upstream_pool_reused.Increment();
          r.conn = std::move(c);
          co_return r;
        }
      }
    }
  }
  auto [endpoints, dns_error] = co_await resolve(host, port, cfg);
  if (endpoints.empty()) {
    r.error = upstream_error::dns;
    r.detail = dns_error.empty() ? "no addresses" : dns_error;
    state_.metrics.upstream_failed(metrics::upstream_failure::dns).Increment();
    co_return r;
  }
  std::vector<tcp::endpoint> allowed;
  for (const auto& e : endpoints) {
    if (destination_allowed(e, cfg)) allowed.push_back(e);
  }
  if (allowed.empty()) {
    r.error = upstream_error::refused_destination;
    r.detail = endpoints.front().address().to_string();
    state_.metrics.rejected(metrics::rejection::loopback_refused).Increment();
    co_return r;
  }
  auto c = std::make_unique<upstream_connection>(ex_);
  c->key = std::move(key);
  c->stream.expires_after(cfg.daemon.upstream.connect_timeout);
  auto [ec, ep] = co_await c->stream.async_connect(allowed, nothrow);
  if (ec) {
    if (ec == beast::error::timeout) {
      r.error = upstream_error::connect_timeout;
      state_.metrics.upstream_failed(metrics::upstream_failure::timeout).Increment();
    } else if (ec == net::error::connection_refused) {
      r.error = upstream_error::connect_refused;
      state_.metrics.upstream_failed(metrics::upstream_failure::refused).Increment();
    } else {
      r.error = upstream_error::connect_failed;
      state_.metrics.upstream_failed(metrics::upstream_failure::connect).Increment();
    }
    r.detail = ec.message();
    co_return r;
  }
  c->stream.expires_never();
  error_code ignored;
  c->stream.socket().set_option(tcp::no_delay(true), ignored);
  // Beast reads into this buffer at most its free capacity at a time (512 bytes when it is
  // empty): without room, a 1 KiB response took three reads and a 1 MiB body 2,048.
  c->buffer.reserve(upstream_buffer_size);
  r.conn = std::move(c);
  co_return r;
}

void upstream::release(std::unique_ptr<upstream_connection> c, const configuration& cfg) {
  const unsigned per_origin = cfg.daemon.upstream.pool_per_origin;
  if (per_origin == 0 || idle_count_ >= max_idle_total || c->buffer.size() != 0) return;
  auto& list = idle_[c->key];
  if (list.size() >= per_origin) return;
  c->stream.expires_never();
  c->idle_since = std::chrono::steady_clock::now();
  c->reused = false;
  list.push_back(std::move(c));
  ++idle_count_;
}

void upstream::sweep(std::chrono::milliseconds pool_idle) {
  const auto cutoff = std::chrono::steady_clock::now() - pool_idle;
  for (auto it = idle_.begin(); it != idle_.end();) {
    auto& list = it->second;
    // Oldest first (release() appends): drop the stale prefix.
    std::size_t stale = 0;
    while (stale < list.size() && list[stale]->idle_since < cutoff) ++stale;
    list.erase(list.begin(), list.begin() + static_cast<std::ptrdiff_t>(stale));
    idle_count_ -= stale;
    it = list.empty() ? idle_.erase(it) : std::next(it);
  }
}

void upstream::close_all() {
  idle_.clear();
  idle_count_ = 0;
}

}  // namespace hallpass
