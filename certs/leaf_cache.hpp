// leaf_cache: the minted leaf certificates of inspected hosts, so that a repeat handshake to
// a host mints nothing. Every handshake starts from the minter's one shared server context and
// presents the host's leaf on its own SSL (leaf_minter::use_leaf).
//
// - Bounded LRU keyed by the normalized host (leaf_minter::normalize_host); `capacity`
//   entries at most (tls.leaf_cache in the config), the least recently used goes first.
//   Each entry costs the memory measured in certs/README.md.
// - A miss is minted on the cache's own small pool of minting threads (`threads`, fixed at
//   construction), never on the caller's thread: an event loop that asks returns at once and
//   is called back. At most `max_queued` distinct hosts wait for a thread; beyond that a
//   request fails at once (the proxy then refuses the connection rather than stall).
// - Single flight: concurrent first requests for one host join the one mint in flight and
//   all get its result. A failed mint is not cached (the next request tries again).
// - Abandoned mints: a request may name its `interest` (a token its connection holds). A mint
//   whose every asker named one, all of them gone by the time a thread takes it, is dropped
//   unminted (counters::abandoned; its waiters get a failure). Without that, a device that
//   opened 20,000 tunnels to new names and closed each at once had 19,639 leaves minted for
//   nobody, and others' first visits waited 1-2 s behind them (resource audit, 2026-12-06).
// - Asked before ahead: a mint a handshake (or get()) waits for goes before mints prepare()
//   started that nobody has asked for yet, so a flood of speculative mints does not hold up
//   other devices' handshakes.
// - The cache belongs to one CA (one leaf_minter). A reload that loads the same CA (same
//   ca_fingerprint()) keeps the cache; a changed CA means a new minter and a new cache, and
//   leaves already handed out stay valid for the connections that hold them.
//
// Thread-safety: every member function may be called from any thread. Callbacks run on a
// minting thread (after a mint) or on the calling thread (a hit, or an immediate failure);
// they must be quick, must not throw, and must not call back into this cache while it is
// being destroyed. An event loop posts them back to itself. The destructor joins the pool;
// hosts still waiting complete with an error.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "certs/leaf_minter.hpp"
#include "certs/result.hpp"

namespace hallpass::certs {

class leaf_cache {
 public:
  using certificate = std::shared_ptr<X509>;  // a minted leaf; never changed once minted
  using lookup = result<certificate>;
  using callback = std::function<void(const lookup&)>;

  struct options {
    std::size_t capacity = 10000;    // tls.leaf_cache
    unsigned threads = 2;            // minting threads
    std::size_t max_queued = 10000;  // distinct hosts waiting for a minting thread
    // A cached leaf with less validity than this left is minted again when next asked for
    // (leaves last leaf_lifetime, 30 days; a busy host never leaves the LRU).
    std::chrono::seconds renew_before = std::chrono::days(7);
    std::function<clock::time_point()> now = [] { return clock::now(); };  // tests move it
  };

  struct counters {
    std::uint64_t hits = 0;    // a ready leaf was returned (not the first ask after prepare())
    std::uint64_t misses = 0;  // a mint was started (by a request or by prepare())
    std::uint64_t joined = 0;  // a request waited for a mint already in flight (likewise)
    std::uint64_t mints = 0;   // mints that succeeded
    std::uint64_t mint_failures = 0;
    std::uint64_t evictions = 0;
    std::uint64_t renewals = 0;  // leaves close to their end dropped to be minted again
    std::uint64_t rejected = 0;  // bad host name, or the queue was full
    std::uint64_t abandoned = 0;  // mints dropped unminted: everyone who asked had gone
    std::size_t size = 0;        // entries now (ready or in flight)
  };

  // REQUIRES: minter, o.capacity >= 1, o.threads >= 1.
  leaf_cache(std::shared_ptr<const leaf_minter> minter, options o);
  ~leaf_cache();
  leaf_cache(const leaf_cache&) = delete;
  leaf_cache& operator=(const leaf_cache&) = delete;

  // The leaf for `host`. A hit calls `done` at once on this thread; a miss starts (or
  // joins) the host's mint and returns; `done` then runs on a minting thread.
  // `interest`: see "Abandoned mints" above; empty: the asker always wants the leaf.
  void async_get(std::string_view host, callback done, std::weak_ptr<const void> interest = {});
  // The same as a future, for tools and tests (an event loop uses async_get and never waits).
  std::shared_future<lookup> get(std::string_view host);
  // A ready leaf, or null; never starts a mint.
  certificate find(std::string_view host);
  // Starts the host's mint when its leaf is neither ready nor in flight, and returns at once
  // whether it did (no callback, no wait, hits not counted). An inspected CONNECT calls it
  // before writing its 200, so that the mint runs while the client reads the 200 and sends its
  // ClientHello; the handshake then finds the leaf ready or joins the flight.
  bool prepare(std::string_view host, std::weak_ptr<const void> interest = {});

  counters stats() const;
  std::size_t capacity() const { return options_.capacity; }
  const std::string& ca_fingerprint() const { return minter_->ca().fingerprint_sha256; }
  const leaf_minter& minter() const { return *minter_; }
  // The server context every inspected handshake starts from (leaf_minter::server_context).
  const std::shared_ptr<SSL_CTX>& server_context() const { return minter_->server_context(); }

 private:
  struct flight {  // one host's mint, shared by the map entry, the queue and the waiters
    std::promise<lookup> promise;
    std::shared_future<lookup> future = promise.get_future().share();
    std::vector<callback> waiters;
    bool done = false;
    bool ahead = false;  // started by prepare(): the handshake that then asks is not a hit or a join
    bool always_wanted = false;  // an asker named no interest
    bool asked = false;          // in queue_ (someone waits for it), not only in ahead_
    bool taken = false;          // a minting thread has taken it (or the destructor has)
    std::vector<std::weak_ptr<const void>> interests;  // the askers' tokens (until the mint starts)
    std::optional<clock::time_point> renew_at;  // set with done; unset: never (renewal_time)
  };
  struct entry {
    std::shared_ptr<flight> mint;
    std::list<std::string>::iterator lru;  // position in lru_
  };
  struct job {
    std::string host;
    std::shared_ptr<flight> mint;
  };

  // `started`: prepare()'s call: set when a mint was started; a hit or a join is not counted.
  std::shared_future<lookup> start(std::string_view host, callback done, bool* started,
                                   std::weak_ptr<const void> interest);
  static void add_interest(flight& f, std::weak_ptr<const void> interest);  // under mutex_
  static bool abandoned(const flight& f);                                   // under mutex_
  lookup mint(const std::string& host) const;
  std::optional<clock::time_point> renewal_time(const X509& leaf) const;
  bool due_for_renewal(const flight& f) const;  // under mutex_
  void evict_locked();
  void run_minting_thread();
  static void complete(flight& f, std::vector<callback>& waiters, const lookup& r);

  const std::shared_ptr<const leaf_minter> minter_;
  const options options_;

  mutable std::mutex mutex_;
  std::condition_variable work_;
  std::unordered_map<std::string, entry> entries_;
  std::list<std::string> lru_;  // front: most recently used
  std::deque<job> queue_;  // mints someone waits for, taken first
  std::deque<job> ahead_;  // mints only prepare() asked for; one asked for later is in both
  counters counters_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace hallpass::certs
