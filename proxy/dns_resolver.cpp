#include "proxy/dns_resolver.hpp"

#include <arpa/inet.h>
#include <ares.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <mutex>
#include <stdexcept>

#include "proxy/request_target.hpp"

namespace hallpass {
namespace {
constexpr std::size_t max_negative_entries = 10000;
// c-ares' own retransmissions: 1 s, then 2 s, then 4 s per server before it gives up. A
// caller's deadline (upstream.dns_timeout) is usually shorter; the query goes on for the cache.
constexpr int query_timeout_ms = 1000;
constexpr int query_tries = 3;

bool is_localhost(const std::string& name) {
  constexpr std::string_view suffix = ".localhost";
  return name == "localhost" ||
         (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0);
}

// resolv.conf's servers, in ares_set_servers_ports_csv's syntax, so they can be put back.
std::string servers_csv(ares_channel channel) {
  ares_addr_port_node* list = nullptr;
  if (ares_get_servers_ports(channel, &list) != ARES_SUCCESS) return {};
  std::string out;
  for (auto* n = list; n != nullptr; n = n->next) {
    char text[INET6_ADDRSTRLEN] = {};
    if (!inet_ntop(n->family, &n->addr, text, sizeof text)) continue;
    if (!out.empty()) out += ',';
    const int port = n->udp_port != 0 ? n->udp_port : 53;
    out += host_for_url(text);
    out += ":" + std::to_string(port);
  }
  ares_free_data(list);
  return out;
}
}  // namespace

// Callers waiting for one name. Each waiter sleeps on its own timer (its deadline); the
// answer cancels them all. Shared with the waiters' frames, so it outlives the map entry.
struct dns_resolver::pending_query {
  bool done = false;
  answer result;
  std::vector<net::steady_timer*> waiters;
  // The A and the AAAA query, each answered on its own (dns_resolver::family_grace).
  struct family {
    bool answered = false;
    int status = ARES_SUCCESS;
    std::vector<net::ip::address> addresses;
  };
  family v4, v6;
  std::unique_ptr<net::steady_timer> grace;  // started when one family has answered with addresses
};

// A socket c-ares opened, watched by Asio. The descriptor is released (never closed) when
// c-ares says it is done with it: c-ares closes its own sockets.
struct dns_resolver::socket_watch {
  socket_watch(net::any_io_executor ex, int fd) : descriptor(ex, fd), fd(fd) {}
  net::posix::stream_descriptor descriptor;
  int fd;
  bool want_read = false, want_write = false;
  bool reading = false, writing = false;
  bool closed = false;
};

// What c-ares hands back to on_answer for one query.
struct dns_resolver::query_context {
  dns_resolver* self;
  std::string name;
  std::shared_ptr<pending_query> query;
  int family;  // AF_INET (the A query) or AF_INET6 (AAAA)
};

dns_resolver::dns_resolver(net::any_io_executor ex) : ex_(ex), timer_(ex) {
  static std::once_flag library;
  std::call_once(library, [] { ares_library_init(ARES_LIB_INIT_ALL); });
  ares_options o{};
  o.sock_state_cb = &dns_resolver::on_socket_state;
  o.sock_state_cb_data = this;
  static char dns_only[] = "b";  // no /etc/hosts: a file read per lookup, on the event loop
  o.lookups = dns_only;
  o.timeout = query_timeout_ms;
  o.tries = query_tries;
  const int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_LOOKUPS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
  if (const int rc = ares_init_options(&channel_, &o, mask); rc != ARES_SUCCESS) {
    throw std::runtime_error(std::string("cannot set up the DNS resolver (c-ares): ") + ares_strerror(rc));
  }
  default_servers_ = servers_csv(channel_);
}

dns_resolver::~dns_resolver() {
  destroying_ = true;
  // Their grace timers' handlers must not reach this resolver.
  for (auto& [name, q] : pending_) {
    q->done = true;
    if (q->grace) q->grace->cancel();
  }
  for (auto& [fd, w] : sockets_) {
    w->closed = true;
    w->descriptor.release();
  }
  sockets_.clear();
  // Calls on_answer with ARES_EDESTRUCTION for every query still open (it frees their
  // contexts and touches nothing else) and closes c-ares' sockets.
  ares_destroy(channel_);
}

void dns_resolver::use_servers(const std::vector<std::string>& servers) {
  if (servers == servers_) return;
  std::string csv;
  for (const auto& s : servers) csv += (csv.empty() ? "" : ",") + s;
  if (servers.empty()) csv = default_servers_;
  // Validated when the configuration was loaded; a failure here leaves the old servers.
  int rc = ares_set_servers_ports_csv(channel_, csv.c_str());
  if (rc == ARES_ENOTIMP) {
    // c-ares 1.18 changes no servers while a query is open, and under steady traffic one
    // nearly always is. So the open queries are cancelled (on_answer keeps each aside instead
    // of answering its callers), the servers changed, and each asked again of the new servers:
    // its callers go on waiting within their own deadlines, and the reload applies now. A query
    // whose lookup was answered without it (family_grace) is open in c-ares though no lookup is
    // in pending_: it is cancelled and not asked again. (Only while pending_ was not empty, it
    // kept the old servers in force for as long as such queries kept coming: DNS audit,
    // 2026-12-07, D1.)
    restarting_ = true;
    ares_cancel(channel_);
    restarting_ = false;
    rc = ares_set_servers_ports_csv(channel_, csv.c_str());
    auto again = std::move(restart_);
    restart_.clear();
    for (auto& r : again) start_family(r.name, r.query, r.family);  // on the old servers if the change failed
  }
  if (rc == ARES_SUCCESS) {
    servers_ = servers;
    // Timeouts were the old servers' silence: the new ones get asked.
    std::erase_if(negative_, [](const auto& e) { return e.second.result == status::timeout; });
  }
}

void dns_resolver::on_socket_state(void* data, int fd, int readable, int writable) {
  auto* self = static_cast<dns_resolver*>(data);
  if (self->destroying_) return;
  auto it = self->sockets_.find(fd);
  if (!readable && !writable) {
    // c-ares closes the socket right after this: take it out of Asio first.
    if (it == self->sockets_.end()) return;
    it->second->closed = true;
    it->second->descriptor.release();
    self->sockets_.erase(it);
    return;
  }
  if (it == self->sockets_.end()) {
    it = self->sockets_.emplace(fd, std::make_shared<socket_watch>(self->ex_, fd)).first;
  }
  it->second->want_read = readable != 0;
  it->second->want_write = writable != 0;
  self->arm(it->second);
}

// Waits for readiness with plain completion handlers (not coroutines): a handler may find its
// socket released meanwhile, and then does nothing. It holds the watch, not the resolver's
// map entry, so c-ares may drop the socket inside ares_process_fd.
void dns_resolver::arm(const std::shared_ptr<socket_watch>& w) {
  if (w->want_read && !w->reading) {
    w->reading = true;
    w->descriptor.async_wait(net::posix::descriptor_base::wait_read, [this, w](error_code ec) {
      w->reading = false;
      if (w->closed || ec) return;
      ares_process_fd(channel_, w->fd, ARES_SOCKET_BAD);
      if (!w->closed) arm(w);
      schedule_timeout();
    });
  }
  if (w->want_write && !w->writing) {
    w->writing = true;
    w->descriptor.async_wait(net::posix::descriptor_base::wait_write, [this, w](error_code ec) {
      w->writing = false;
      if (w->closed || ec) return;
      ares_process_fd(channel_, ARES_SOCKET_BAD, w->fd);
      if (!w->closed) arm(w);
      schedule_timeout();
    });
  }
}

// c-ares' next retransmission or give-up, if any query is open.
void dns_resolver::schedule_timeout() {
  timeval tv{};
  const timeval* next = ares_timeout(channel_, nullptr, &tv);
  if (next == nullptr) {
    timer_.cancel();
    return;
  }
  timer_.expires_after(std::chrono::seconds(next->tv_sec) + std::chrono::microseconds(next->tv_usec));
  timer_.async_wait([this](error_code ec) {
    if (ec) return;  // rescheduled or destroyed
    ares_process_fd(channel_, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    schedule_timeout();
  });
}

void dns_resolver::start_query(const std::string& name, const std::shared_ptr<pending_query>& q) {
  start_family(name, q, AF_INET);
  // The A query may have been answered at once (a name c-ares refuses): the AAAA query then
  // finds the lookup already answered only if both were, so it is always sent.
  if (!q->done) start_family(name, q, AF_INET6);
}

void dns_resolver::start_family(const std::string& name, const std::shared_ptr<pending_query>& q, int family) {
  ares_addrinfo_hints hints{};
  hints.ai_family = family;
  hints.ai_socktype = SOCK_STREAM;
  auto* ctx = new query_context{this, name, q, family};
  // May call on_answer before it returns (a name c-ares refuses at once).
  ares_getaddrinfo(channel_, name.c_str(), nullptr, &hints, &dns_resolver::on_answer, ctx);
  schedule_timeout();
}

void dns_resolver::on_answer(void* arg, int status, int /*timeouts*/, ares_addrinfo* result) {
  std::unique_ptr<query_context> ctx(static_cast<query_context*>(arg));
  if (status == ARES_EDESTRUCTION || ctx->self->destroying_) {
    if (result) ares_freeaddrinfo(result);
    return;
  }
  if (status == ARES_ECANCELLED && ctx->self->restarting_) {
    // Cancelled for a change of servers (use_servers): asked again, not answered.
    if (result) ares_freeaddrinfo(result);
    if (!ctx->query->done) ctx->self->restart_.push_back({std::move(ctx->name), std::move(ctx->query), ctx->family});
    return;
  }
  std::vector<net::ip::address> addresses;
  if (status == ARES_SUCCESS && result) {
    for (auto* n = result->nodes; n != nullptr; n = n->ai_next) {
      if (n->ai_family == AF_INET) {
        const auto* sin = reinterpret_cast<const sockaddr_in*>(n->ai_addr);
        addresses.push_back(net::ip::address_v4(ntohl(sin->sin_addr.s_addr)));
      } else if (n->ai_family == AF_INET6) {
        const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(n->ai_addr);
        net::ip::address_v6::bytes_type bytes;
        std::copy_n(sin6->sin6_addr.s6_addr, 16, bytes.begin());
        addresses.push_back(net::ip::address_v6(bytes));
      }
    }
  }
  if (result) ares_freeaddrinfo(result);
  ctx->self->family_answered(ctx->name, ctx->query, ctx->family, status, std::move(addresses));
}

namespace {

bool is_no_such_name(int status) {
  return status == ARES_SUCCESS || status == ARES_ENOTFOUND || status == ARES_ENODATA || status == ARES_ENONAME;
}

// Whether the gateway has a route to `a`: a UDP socket connected to it (no packet is sent), as
// c-ares' RFC 6724 sort finds out whether a destination is usable.
bool routable(const net::ip::address_v6& a) {
  const int fd = ::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in6 sin6{};
  sin6.sin6_family = AF_INET6;
  sin6.sin6_port = htons(53);
  const auto bytes = a.to_bytes();
  std::copy(bytes.begin(), bytes.end(), sin6.sin6_addr.s6_addr);
  const bool ok = ::connect(fd, reinterpret_cast<const sockaddr*>(&sin6), sizeof sin6) == 0;
  ::close(fd);
  return ok;
}

}  // namespace

// One family's answer. The lookup is answered when both have been, or family_grace after one
// gave addresses or NXDOMAIN. A family that answers with addresses after that is not lost: its
// addresses go to on_late_addresses (upstream adds them to the name's cached answer), and a
// "not found" remembered for the name is forgotten, so that the next lookup asks again (DNS
// audit, 2026-12-07, D2, D3: the late family was dropped and the one-family answer, or the
// NXDOMAIN, held for the cache's life).
void dns_resolver::family_answered(const std::string& name, const std::shared_ptr<pending_query>& q, int family,
                                   int status, std::vector<net::ip::address> addresses) {
  if (q->done) {
    if (addresses.empty() || !q->grace) return;  // answered in full, or nothing to add
    if (auto it = negative_.find(name); it != negative_.end() && it->second.result == status::not_found) {
      negative_.erase(it);
    }
    if (on_late_addresses_ && q->result.result == status::ok) on_late_addresses_(name, addresses);
    return;
  }
  auto& mine = family == AF_INET ? q->v4 : q->v6;
  auto& other = family == AF_INET ? q->v6 : q->v4;
  mine.answered = true;
  mine.status = status;
  mine.addresses = std::move(addresses);
  const bool complete = other.answered;
  if (!complete) {
    // An NXDOMAIN for one family is the other's too: no need to wait for it in full.
    if ((!mine.addresses.empty() || status == ARES_ENOTFOUND) && !q->grace) {
      q->grace = std::make_unique<net::steady_timer>(ex_, family_grace);
      q->grace->async_wait([this, name, weak = std::weak_ptr<pending_query>(q)](error_code ec) {
        const auto held = weak.lock();
        // Cancelled (answered meanwhile, or the resolver going away): touches nothing.
        if (ec || !held || held->done) return;
        // The family still waited for is taken as unanswered, or as not there when the other
        // family found no such name.
        const auto& answered = held->v4.answered ? held->v4 : held->v6;
        family_answered(name, held, held->v4.answered ? AF_INET6 : AF_INET,
                        answered.status == ARES_ENOTFOUND ? ARES_ENOTFOUND : ARES_ETIMEOUT, {});
      });
    }
    return;
  }
  answer a;
  auto& first = !q->v6.addresses.empty() && routable(q->v6.addresses.front().to_v6()) ? q->v6 : q->v4;
  auto& second = &first == &q->v6 ? q->v4 : q->v6;
  a.addresses = std::move(first.addresses);
  a.addresses.insert(a.addresses.end(), second.addresses.begin(), second.addresses.end());
  if (!a.addresses.empty()) {
    a.result = status::ok;
  } else if (q->v4.status == ARES_ETIMEOUT || q->v6.status == ARES_ETIMEOUT) {
    a.result = status::timeout;
    a.detail = ares_strerror(ARES_ETIMEOUT);
  } else if (is_no_such_name(q->v4.status) && is_no_such_name(q->v6.status)) {
    a.result = status::not_found;
    const int s = q->v4.status != ARES_SUCCESS ? q->v4.status : q->v6.status;
    a.detail = s == ARES_SUCCESS ? "no addresses" : ares_strerror(s);
  } else {
    a.result = status::failed;
    a.detail = ares_strerror(is_no_such_name(q->v4.status) ? q->v6.status : q->v4.status);
  }
  finish_query(name, q, std::move(a));
}

void dns_resolver::finish_query(const std::string& name, const std::shared_ptr<pending_query>& q, answer a) {
  if (a.result == status::not_found || a.result == status::timeout) {
    const auto now = std::chrono::steady_clock::now();
    if (negative_.size() >= max_negative_entries && now >= next_negative_sweep_) {
      std::erase_if(negative_, [now](const auto& e) { return e.second.until <= now; });
      next_negative_sweep_ = now + std::chrono::seconds(1);
    }
    if (negative_.size() < max_negative_entries) negative_[name] = remembered{now + negative_ttl, a.result};
  }
  if (auto it = pending_.find(name); it != pending_.end() && it->second == q) pending_.erase(it);
  q->result = std::move(a);
  q->done = true;
  if (q->grace) q->grace->cancel();
  for (auto* t : q->waiters) t->cancel();
}

namespace {
// Takes a waiter's timer out of its query's list however the waiting coroutine ends
// (including its frame being destroyed with the io_context). Touches only the query.
struct waiter_registration {
  std::shared_ptr<void> keep;
  std::vector<net::steady_timer*>* list;
  net::steady_timer* timer;
  ~waiter_registration() { std::erase(*list, timer); }
};
}  // namespace

net::awaitable<dns_resolver::answer> dns_resolver::lookup(const std::string& name, std::chrono::milliseconds deadline) {
  if (is_localhost(name)) {
    answer a;
    a.result = status::ok;
    a.addresses = {net::ip::address_v4::loopback(), net::ip::address_v6::loopback()};
    co_return a;
  }
  const auto now = std::chrono::steady_clock::now();
  if (auto it = negative_.find(name); it != negative_.end()) {
    if (it->second.until > now) {
      answer a;
      a.result = it->second.result;
      a.detail = a.result == status::timeout ? "the name servers did not answer (remembered)" : "not found (remembered)";
      co_return a;
    }
    negative_.erase(it);
  }
  std::shared_ptr<pending_query> q;
  if (auto it = pending_.find(name); it != pending_.end()) {
    q = it->second;
  } else {
    q = std::make_shared<pending_query>();
    pending_.emplace(name, q);
    start_query(name, q);
  }
  if (q->done) co_return q->result;
  net::steady_timer timer(ex_, deadline);
  q->waiters.push_back(&timer);
  {
    waiter_registration registration{q, &q->waiters, &timer};
    co_await timer.async_wait(nothrow);
  }
  // Checked whatever the wait said: the answer may have come just as the deadline passed.
  if (q->done) co_return q->result;
  answer a;
  a.result = status::timeout;
  a.detail = "no answer within " + std::to_string(deadline.count()) + " ms";
  co_return a;
}

}  // namespace hallpass
