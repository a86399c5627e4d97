// One event-loop thread: its io_context, its acceptors (SO_REUSEPORT, so the kernel spreads
// clients across workers), its upstream side (DNS cache and connection pool), free lists of
// relay buffers and splice pipes, and the set of live client connections (to close idle ones on drain).
//
// Everything here is used only from the worker's own thread, except begin_drain() and
// stop(), which post to it.
#pragma once

#include <array>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "proxy/duplex_stream.hpp"
#include "proxy/metrics.hpp"
#include "proxy/net.hpp"
#include "proxy/original_destination.hpp"
#include "proxy/read_deadline.hpp"
#include "proxy/splice_pump.hpp"
#include "proxy/upstream.hpp"
#include "rules/host.hpp"

namespace hallpass::rules {
class exception_index;
}

namespace hallpass {

class shared_state;
struct login_identity;
struct negotiate_context;
struct origin_prefetch;

// One client TCP connection. Owned by its session coroutine (shared with the worker's
// registry only as a raw pointer, removed before destruction).
struct client_connection {
  explicit client_connection(tcp::socket s) : stream(std::move(s)) {}
  beast::tcp_stream stream;  // the TCP connection: deadlines, splice, shutdown
  duplex_stream io{stream};  // what requests are read from and answers written to
  std::unique_ptr<tls_stream> tls;  // set when the connection became an inspected tunnel
  // Inside an inspected tunnel: the CONNECT's host and port, which every request inside must
  // name (request_target.hpp); unset on a plain proxy connection.
  struct tunnel_origin {
    std::string host;
    std::uint16_t port = 443;
    bool tls = true;  // false: a tunnel that carries plain HTTP (tunnel.hpp tunnel_end::http)
    // Who the CONNECT signed in as (null: nobody): every request inside carries this identity,
    // whatever the connection signed in as before the CONNECT or after it, until `until`, when
    // the sign-in lapses (logins.ldap.cache_ttl after it was checked, as on a kept-alive
    // connection): the tunnel then ends (login_gate.cpp), and the client's new CONNECT is
    // checked again, so that a changed group or a removed account applies within cache_ttl.
    std::shared_ptr<const login_identity> who;
    std::chrono::steady_clock::time_point until{};
    // Decrypted only to show the HTTPS block page (tunnel_plan::block_page): each request
    // inside is decided as the CONNECT was (decide_as_its_connect), never forwarded while that
    // blocks; one it no longer blocks (an exception approved meanwhile) closes the connection,
    // so that the browser's next CONNECT is planned afresh.
    bool block_page_only = false;
    bool decided_path_later = false;  // the CONNECT was decided with path_seen_later (inspected host)
    // The configuration generation and the exception index this decrypted tunnel was last
    // found to be inspected under: a request after a reload, or after a change of the store (a
    // local block that made its host inspected removed), asks again
    // (tunnel_no_longer_inspected), and the connection is closed when its host would no longer
    // be decrypted (on the never-inspect list, no CA, nothing left that needs its paths). The
    // index is held weakly and compared by owner: a new index is never mistaken for the old.
    std::uint64_t inspected_generation = 0;
    std::weak_ptr<const rules::exception_index> inspected_exceptions;
    bool inspected_under(std::uint64_t generation, const std::shared_ptr<const rules::exception_index>& index) const {
      return generation == inspected_generation && !inspected_exceptions.owner_before(index) &&
             !index.owner_before(inspected_exceptions);
    }
    void mark_inspected_under(std::uint64_t generation, const std::shared_ptr<const rules::exception_index>& index) {
      inspected_generation = generation;
      inspected_exceptions = index;
    }
  };
  std::optional<tunnel_origin> inside;
  // Nonzero once a request on this connection signed in to an origin with NTLM or Negotiate
  // (RFC 4559), which authenticate the origin's TCP connection, not the request: its origin
  // connections are then this client connection's alone (pool_client), never another device's
  // or another client's at the same address (a terminal server, NAT: outside-in audit with
  // real clients, 2026-12-07, H1).
  std::uint64_t origin_sign_in = 0;
  // An inspected tunnel's origin connection, made while the client's handshake runs and taken
  // by its first request (origin_prefetch.hpp); null otherwise.
  std::shared_ptr<origin_prefetch> prefetch;
  // Held while the connection lives, named to the leaf cache with a mint it asks for: a mint
  // whose connections are all gone is dropped unminted (certs/leaf_cache.hpp). Made when first
  // needed (mint_interest()), so a connection that inspects nothing pays nothing for it.
  std::shared_ptr<const void> interest;
  std::weak_ptr<const void> mint_interest() {
    if (!interest) interest = std::make_shared<const char>('\0');
    return interest;
  }
  // On a transparent listener (transparent.hpp): where the client was going before nftables
  // redirected it; every upstream connection goes there. Unset on an explicit-proxy connection.
  struct transparent_origin {
    socket_address dst;  // the original destination
    std::string text;    // "203.0.113.5:443", "[2001:db8::5]:443": the access log's original_dst
    bool tls = false;    // the listener's protocol: tls (443) or http (80)
    std::string error;   // why there is no usable original destination (then dst is unset)
    // Whether the name last decided on this connection (the Host of its latest request, or the
    // SNI) was found to resolve to dst. Until it is, connections go to the name's own addresses,
    // not to dst, so that the bytes go where the decision was made (transparent.cpp).
    bool name_leads_there = false;
  };
  std::optional<transparent_origin> transparent;
  beast::flat_buffer buffer;
  rules::ip_address ip;
  std::string ip_text;
  bool idle = true;  // waiting for the next request: may be closed at once on drain
  // The deadline of the waits for the next request and its head (read_deadline.hpp): it
  // cancels the read and leaves the socket open for a 408 and a TLS close_notify.
  net::steady_timer read_timer{stream.get_executor()};
  std::shared_ptr<read_deadline_state> read_state;
  // An answer's body was cut short by the origin after its head went out: an inspected
  // connection then ends without a close_notify, so the client sees a truncation (RFC 8446 6.1)
  // even where nothing else could tell it (an HTTP/1.0 client reading until the close).
  bool answer_cut_short = false;
  // ... and the client reads that answer until the close (no length, no chunks: an unframed
  // body, or any body to an HTTP/1.0 client): a plain connection then ends with a reset, as an
  // orderly close would say the answer is complete (run_http_session).
  bool cut_short_unframed = false;
  // A request was answered without its body being read (a refusal, a block page, an early
  // answer): the connection ends with a lingering close (http_session.cpp's linger_close).
  bool request_body_unread = false;
  // A request was answered on the stream requests are now read from (the client connection,
  // or the inspected tunnel inside it, which is a new stream to the client): a client resends
  // a request on such a stream that closes before any answer (forward.cpp), and does not on
  // the first request of a stream.
  bool stream_reused = false;
  // While an answer's body is relayed (forward.cpp): the decision to ask again, and the origin's
  // side to close when it says no; the worker's sweep asks it once a second and sets body_cut.
  const std::function<bool()>* body_check = nullptr;
  duplex_stream* body_from = nullptr;
  bool body_cut = false;
  std::array<char, 16> first_bytes;  // a new connection's first read, before it has a buffer
  // Who signed in on this connection (login_gate.hpp). `credentials` is the Proxy-Authorization
  // value they signed in with: the same value on a later request of this connection is the same
  // sign-in, recognised by comparing bytes (no decoding, hashing, allocation or directory call
  // per request) until `until` (logins.ldap.cache_ttl). The value is wiped when the sign-in is
  // forgotten and when the connection ends. Defined in login_gate.cpp.
  struct signed_in {
    std::shared_ptr<const login_identity> who;
    std::string credentials;
    std::chrono::steady_clock::time_point until{};
    // Negotiate authenticates the connection: once it signed in, later requests on it without
    // a Proxy-Authorization carry the same identity (until `until`). `negotiation`: an
    // exchange of several legs in progress (GSS_S_CONTINUE_NEEDED).
    bool connection_bound = false;
    std::shared_ptr<negotiate_context> negotiation;
    signed_in() = default;
    signed_in(const signed_in&) = delete;
    signed_in& operator=(const signed_in&) = delete;
    ~signed_in() { forget(); }
    void forget();
  };
  signed_in login;
};

class worker {
 public:
  static constexpr std::size_t relay_buffer_size = 64 * 1024;

  worker(shared_state& state, unsigned index);
  ~worker();
  worker(const worker&) = delete;
  worker& operator=(const worker&) = delete;

  // Takes ownership of bound, listening acceptors (created on the main thread). `transparent`:
  // a transparent listener (nftables redirects to it), whose connections carry TLS when `tls`.
  void adopt_acceptor(tcp::acceptor::native_handle_type fd, const tcp::endpoint& local, bool transparent = false,
                      bool tls = false);
  void start();  // starts the thread
  void join();
  void begin_drain();  // stop accepting; close idle connections; let busy ones finish
  // Closes every connection now, lets their sessions end and write their log lines (at most
  // stop_grace), then stops the loop.
  void stop();
  // Whether stop() has closed the connections (the drain's end): a session that then fails a
  // write was cut by hallpass, not by its client, and its log line says so. Worker thread only.
  bool cut_at_stop() const { return stopped_; }

  net::io_context& context() { return ioc_; }
  shared_state& state() { return state_; }
  hallpass::upstream& upstream() { return upstream_; }
  unsigned index() const { return index_; }

  // The configuration a new request pins (refreshed when a reload publishes a new one).
  const std::shared_ptr<const configuration>& config();
  // Per-role request counters for config()'s generation.
  const std::vector<metrics::role_counters>& role_counters() { return role_counters_; }

  std::unique_ptr<char[]> take_buffer();
  void give_buffer(std::unique_ptr<char[]> b);
  // A pipe for splice(2), or nullptr when none can be opened (the caller copies instead).
  // Give back only an empty pipe; one with bytes stuck in it is simply destroyed.
  std::unique_ptr<splice_pipe> take_pipe();
  void give_pipe(std::unique_ptr<splice_pipe> p);

  // Where other threads (the leaf cache's minting threads) post completions back to this
  // worker. Closed when the worker's thread has been joined, so nothing is ever posted to an
  // io_context that is gone: post only under `mutex` and only while `open`.
  struct mailbox {
    explicit mailbox(net::any_io_executor e) : ex(std::move(e)) {}
    std::mutex mutex;
    bool open = true;
    net::any_io_executor ex;
  };
  const std::shared_ptr<mailbox>& inbox() const { return inbox_; }

  void register_connection(client_connection* c) { connections_.insert(c); }
  void unregister_connection(client_connection* c) { connections_.erase(c); }
  std::size_t live_connections() const { return connections_.size(); }

 private:
  struct listener {
    std::unique_ptr<tcp::acceptor> acceptor;
    bool transparent = false;
    bool tls = false;
  };
  net::awaitable<void> accept_loop(listener& l);
  net::awaitable<void> sweep_loop();
  net::awaitable<void> stop_when_closed();
  void close_inbox();

  shared_state& state_;
  unsigned index_;
  net::io_context ioc_{1};
  hallpass::upstream upstream_;
  std::vector<listener> acceptors_;
  std::shared_ptr<const configuration> config_;
  std::vector<metrics::role_counters> role_counters_;
  std::vector<std::unique_ptr<char[]>> free_buffers_;
  std::vector<std::unique_ptr<splice_pipe>> free_pipes_;
  std::unordered_set<client_connection*> connections_;
  std::thread thread_;
  bool draining_ = false;
  bool stopped_ = false;  // stop(): the drain's end closed every connection (cut_at_stop)
  std::string accept_loop_name_, sweep_loop_name_;  // for stop_daemon_on_failure
  std::shared_ptr<mailbox> inbox_;
};

}  // namespace hallpass
