// Name lookups for one worker: c-ares driven by the worker's own event loop, so that a lookup
// can be abandoned. Each caller waits at most its own deadline; a name server that never
// answers delays only the requests for the names it was asked about. (Asio's resolver ran
// getaddrinfo on one background thread per worker, which cannot be abandoned: one silent
// query held up every later lookup on that worker.)
//
// - One c-ares channel per worker, made in the constructor (which reads /etc/resolv.conf:
//   at worker start, on the main thread, never per request). c-ares' sockets are watched
//   through Asio (posix::stream_descriptor::async_wait, released, never closed, when c-ares
//   lets go of them) and its retransmissions are driven by a steady_timer.
// - A and AAAA as two queries sent together (ares_getaddrinfo once per family), each answered
//   on its own: once one family has given addresses, the other gets at most family_grace more,
//   then the lookup answers with what it has (RFC 8305 3's "resolution delay", made longer);
//   what the other family gives later goes to the cache through on_late_addresses. One
//   query for both (ares_getaddrinfo with AF_UNSPEC) answered only when both had: a name server
//   that never answers AAAA queries (some home routers and old firewalls drop them) made every
//   site a 504 after upstream.dns_timeout, where browsers use the A record (known gap, eighth
//   session). The families are ordered as c-ares' RFC 6724 sort ordered them: IPv6 first when
//   the gateway has a route to the first IPv6 address, else IPv4 first.
// - DNS only: /etc/hosts is not read (that would be a file read on the event loop); the
//   daemon's `hosts:` map does that job. "localhost" and names under ".localhost" are loopback
//   (RFC 6761 6.3) without a query.
// - Concurrent lookups of one name share one query. A name that does not exist (NXDOMAIN,
//   or no A/AAAA records) is remembered for negative_ttl, so a flood of bad names costs one
//   query each per 10 s; so is a name whose query c-ares gave up on unanswered (its tries, about
//   7 s), so that the requests for it in the next 10 s get their 504 at once instead of each
//   waiting its own deadline. (Positive answers are cached by upstream, for upstream.dns_cache.)
//
// Belongs to one worker: use only from that worker's event-loop thread. Not movable (c-ares
// holds a pointer to it).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "proxy/net.hpp"

struct ares_channeldata;
struct ares_addrinfo;

namespace hallpass {

class dns_resolver {
 public:
  static constexpr std::chrono::seconds negative_ttl{10};
  // How long a lookup whose A (or AAAA) query has given addresses (or NXDOMAIN) waits for the
  // other family's. Longer than RFC 8305's 50 ms: an AAAA answer that needs the school resolver
  // to recurse while the A answer was cached comes some 100-300 ms later, and a lookup answered
  // with one family connects only to that family's addresses (if they do not answer, the
  // request fails where both families would have let it fall back). Short enough that a
  // silent family costs a page half a second, once per name per dns_cache. A family that
  // answers later still reaches the cache (on_late_addresses).
  static constexpr std::chrono::milliseconds family_grace{500};

  enum class status { ok, not_found, timeout, failed };
  struct answer {
    status result = status::failed;
    std::vector<net::ip::address> addresses;  // when ok: at least one
    std::string detail;                       // when not ok: c-ares' words, for the log
  };

  // Throws std::runtime_error when c-ares cannot be set up (no resolv.conf is not an error:
  // c-ares then uses 127.0.0.1).
  explicit dns_resolver(net::any_io_executor ex);
  ~dns_resolver();
  dns_resolver(const dns_resolver&) = delete;
  dns_resolver& operator=(const dns_resolver&) = delete;

  // The name servers to ask, as upstream.dns_servers lists them ("10.0.0.53:5353"); empty:
  // those c-ares read at start. Cheap when unchanged (one comparison), so callers pass the
  // configuration's list before each lookup. c-ares 1.18 refuses to change servers while a
  // query is open (ARES_ENOTIMP): the open queries are then cancelled, the servers changed,
  // and the queries asked again of the new servers (their callers keep waiting, within their
  // deadlines), so a reload takes effect at the next lookup, however busy the worker is.
  void use_servers(const std::vector<std::string>& servers);

  // Looks `name` up (a normalised host name, not an IP literal; REQUIRES: it outlives the
  // call, which the caller awaits at once). Returns within `deadline`:
  // timeout when it has passed, though the query goes on for the callers that share it and
  // for the cache.
  net::awaitable<answer> lookup(const std::string& name, std::chrono::milliseconds deadline);

  std::size_t queries_in_flight() const { return pending_.size(); }

  // Called (on this worker's thread) with the addresses of a family that answered after its
  // lookup had been answered without it (family_grace): the owner of the positive cache adds
  // them to the name's entry.
  void on_late_addresses(std::function<void(const std::string&, const std::vector<net::ip::address>&)> f) {
    on_late_addresses_ = std::move(f);
  }

 private:
  struct pending_query;
  struct socket_watch;
  struct query_context;

  static void on_socket_state(void* data, int fd, int readable, int writable);
  static void on_answer(void* arg, int status, int timeouts, ares_addrinfo* result);
  void arm(const std::shared_ptr<socket_watch>& w);
  void schedule_timeout();
  void start_query(const std::string& name, const std::shared_ptr<pending_query>& q);
  void start_family(const std::string& name, const std::shared_ptr<pending_query>& q, int family);
  void family_answered(const std::string& name, const std::shared_ptr<pending_query>& q, int family, int status,
                       std::vector<net::ip::address> addresses);
  void finish_query(const std::string& name, const std::shared_ptr<pending_query>& q, answer a);

  net::any_io_executor ex_;
  std::function<void(const std::string&, const std::vector<net::ip::address>&)> on_late_addresses_;
  ares_channeldata* channel_ = nullptr;
  net::steady_timer timer_;
  std::unordered_map<int, std::shared_ptr<socket_watch>> sockets_;
  std::unordered_map<std::string, std::shared_ptr<pending_query>> pending_;
  // Names that do not exist, and names whose name servers did not answer: name -> (until, the
  // answer given meanwhile).
  struct remembered {
    std::chrono::steady_clock::time_point until;
    status result = status::not_found;
  };
  std::unordered_map<std::string, remembered> negative_;
  // A full negative cache drops its expired entries, at most once a second, and while it stays
  // full remembers no new name (it was emptied whole: upstream.hpp's dns_cache_ says why).
  std::chrono::steady_clock::time_point next_negative_sweep_{};
  std::vector<std::string> servers_;  // as last applied; empty: c-ares' own from resolv.conf
  std::string default_servers_;       // resolv.conf's, to go back to when dns_servers is emptied
  bool destroying_ = false;
  // While use_servers cancels the open queries to change servers: they are kept here, to be
  // asked again of the new servers.
  bool restarting_ = false;
  struct restarted {
    std::string name;
    std::shared_ptr<pending_query> query;
    int family;
  };
  std::vector<restarted> restart_;
};

}  // namespace hallpass
