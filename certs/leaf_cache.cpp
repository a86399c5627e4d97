#include "certs/leaf_cache.hpp"

#include <algorithm>
#include <openssl/asn1.h>
#include <openssl/x509.h>

#include <ctime>
#include <utility>

namespace hallpass::certs {
namespace {

std::shared_future<leaf_cache::lookup> ready(const leaf_cache::lookup& r) {
  std::promise<leaf_cache::lookup> p;
  p.set_value(r);
  return p.get_future().share();
}

}  // namespace

// When a leaf is due to be minted again: renew_before before its end, or never when it ends
// with the CA (a new one could not last longer) or its end cannot be read. Worked out once,
// when the mint completes; every find() then compares two time points.
std::optional<clock::time_point> leaf_cache::renewal_time(const X509& leaf) const {
  const ASN1_TIME* leaf_end = X509_get0_notAfter(&leaf);
  const ASN1_TIME* ca_end = X509_get0_notAfter(minter_->ca().certificate.get());
  std::tm end{};
  if (ASN1_TIME_compare(leaf_end, ca_end) >= 0 || ASN1_TIME_to_tm(leaf_end, &end) != 1) return std::nullopt;
  return clock::from_time_t(::timegm(&end)) - options_.renew_before;
}

bool leaf_cache::due_for_renewal(const flight& f) const {
  return f.done && f.renew_at && options_.now() >= *f.renew_at;
}

leaf_cache::lookup leaf_cache::mint(const std::string& host) const {
  auto leaf = minter_->mint(host, options_.now());
  if (!leaf) return lookup::failure(leaf.error());
  return certificate(leaf->release(), X509_free);
}

leaf_cache::leaf_cache(std::shared_ptr<const leaf_minter> minter, options o)
    : minter_(std::move(minter)), options_(o) {
  threads_.reserve(options_.threads);
  for (unsigned i = 0; i < options_.threads; ++i)
    threads_.emplace_back([this] { run_minting_thread(); });
}

leaf_cache::~leaf_cache() {
  std::deque<job> left;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    left.swap(queue_);
    left.insert(left.end(), std::make_move_iterator(ahead_.begin()), std::make_move_iterator(ahead_.end()));
    ahead_.clear();
  }
  work_.notify_all();
  for (auto& t : threads_) t.join();
  const lookup stopped = lookup::failure(
      "the certificate cache was shut down before this host's certificate was made");
  for (auto& j : left) {
    std::vector<callback> waiters;
    {
      std::lock_guard lock(mutex_);
      if (j.mint->taken) continue;  // in both queues: completed once
      j.mint->taken = j.mint->done = true;
      waiters.swap(j.mint->waiters);
    }
    complete(*j.mint, waiters, stopped);
  }
}

void leaf_cache::async_get(std::string_view host, callback done, std::weak_ptr<const void> interest) {
  start(host, std::move(done), nullptr, std::move(interest));
}

std::shared_future<leaf_cache::lookup> leaf_cache::get(std::string_view host) {
  return start(host, nullptr, nullptr, {});
}

void leaf_cache::add_interest(flight& f, std::weak_ptr<const void> interest) {
  // An empty weak_ptr (never set) is "always wanted"; one whose owner is gone already adds nothing.
  const std::weak_ptr<const void> never_set;
  if (!interest.owner_before(never_set) && !never_set.owner_before(interest)) {
    f.always_wanted = true;
    return;
  }
  if (f.always_wanted || interest.expired()) return;
  std::erase_if(f.interests, [](const auto& w) { return w.expired(); });  // stays small
  f.interests.push_back(std::move(interest));
}

bool leaf_cache::abandoned(const flight& f) {
  if (f.always_wanted) return false;
  return std::none_of(f.interests.begin(), f.interests.end(), [](const auto& w) { return !w.expired(); });
}

leaf_cache::certificate leaf_cache::find(std::string_view host) {
  const std::string key = leaf_minter::normalize_host(host);
  std::lock_guard lock(mutex_);
  const auto it = entries_.find(key);
  if (it == entries_.end() || !it->second.mint->done || due_for_renewal(*it->second.mint)) return nullptr;
  const lookup& r = it->second.mint->future.get();
  if (!r) return nullptr;
  lru_.splice(lru_.begin(), lru_, it->second.lru);
  if (!std::exchange(it->second.mint->ahead, false)) ++counters_.hits;
  return *r;
}

bool leaf_cache::prepare(std::string_view host, std::weak_ptr<const void> interest) {
  bool started = false;
  start(host, nullptr, &started, std::move(interest));
  return started;
}

std::shared_future<leaf_cache::lookup> leaf_cache::start(std::string_view host, callback done, bool* started,
                                                         std::weak_ptr<const void> interest) {
  std::string key = leaf_minter::normalize_host(host);
  std::unique_lock lock(mutex_);
  std::optional<lookup> refused;
  if (const auto old = entries_.find(key); old != entries_.end() && due_for_renewal(*old->second.mint)) {
    // Close to its end: dropped and minted again below (handshakes holding it keep it).
    lru_.erase(old->second.lru);
    entries_.erase(old);
    ++counters_.renewals;
  }
  if (key.empty()) {
    refused =
        lookup::failure("'" + std::string(host) + "' is neither a DNS name nor an IP address");
  } else if (const auto it = entries_.find(key); it != entries_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second.lru);
    auto f = it->second.mint;
    // A request's first ask for a leaf prepare() started was counted as that mint's miss.
    const bool counted = started != nullptr || std::exchange(f->ahead, false);
    if (!f->done) {
      if (!counted) ++counters_.joined;
      add_interest(*f, std::move(interest));
      if (done) f->waiters.push_back(std::move(done));
      if (started == nullptr && !f->asked && !f->taken) {
        // Asked for now: it moves up to the mints someone waits for (and is taken once).
        f->asked = true;
        queue_.push_back(job{key, f});
        lock.unlock();
        work_.notify_one();
      }
      return f->future;
    }
    if (!counted) ++counters_.hits;
    lock.unlock();
    if (done) done(f->future.get());
    return f->future;
  } else if (stopping_) {
    refused = lookup::failure("the certificate cache is shutting down");
  } else if (started != nullptr && ahead_.size() >= options_.max_queued / 2) {
    // prepare() is a head start only: it takes at most half the queue, so a flood of
    // speculative mints leaves room for the handshakes that ask (review, 2026-12-06).
    refused = lookup::failure("too many speculative certificates are waiting");
  } else if (queue_.size() + ahead_.size() >= options_.max_queued) {
    refused = lookup::failure("too many new sites are waiting for a certificate (" +
                              std::to_string(options_.max_queued) + "); try again");
  }
  if (refused) {
    if (started == nullptr) ++counters_.rejected;  // counted once, when the handshake asks
    lock.unlock();
    if (done) done(*refused);
    return ready(*refused);
  }
  ++counters_.misses;
  auto f = std::make_shared<flight>();
  if (started != nullptr) *started = f->ahead = true;
  add_interest(*f, std::move(interest));
  if (done) f->waiters.push_back(std::move(done));
  lru_.push_front(key);
  entries_.emplace(key, entry{f, lru_.begin()});
  f->asked = started == nullptr;
  (f->asked ? queue_ : ahead_).push_back(job{std::move(key), f});
  evict_locked();
  lock.unlock();
  work_.notify_one();
  return f->future;
}

void leaf_cache::evict_locked() {
  while (entries_.size() > options_.capacity && !lru_.empty()) {
    // An evicted entry that is still minting completes for its waiters all the same.
    entries_.erase(lru_.back());
    lru_.pop_back();
    ++counters_.evictions;
  }
}

void leaf_cache::complete(flight& f, std::vector<callback>& waiters, const lookup& r) {
  f.promise.set_value(r);
  for (auto& w : waiters) w(r);
}

void leaf_cache::run_minting_thread() {
  for (;;) {
    job j;
    {
      std::unique_lock lock(mutex_);
      work_.wait(lock, [this] { return stopping_ || !queue_.empty() || !ahead_.empty(); });
      if (stopping_) return;  // the destructor fails what is left
      auto& from = queue_.empty() ? ahead_ : queue_;
      j = std::move(from.front());
      from.pop_front();
      if (j.mint->taken) continue;  // asked for after prepare(): taken from the other queue
      j.mint->taken = true;
      if (abandoned(*j.mint)) {
        // Nobody who asked is still there: not minted, and not left in the cache unminted.
        ++counters_.abandoned;
        if (const auto it = entries_.find(j.host); it != entries_.end() && it->second.mint == j.mint) {
          lru_.erase(it->second.lru);
          entries_.erase(it);
        }
        j.mint->done = true;
        std::vector<callback> waiters;
        waiters.swap(j.mint->waiters);
        lock.unlock();
        const lookup gone = lookup::failure("nobody was waiting for it any more");
        complete(*j.mint, waiters, gone);
        continue;
      }
      j.mint->interests.clear();  // minted now whoever asks
      j.mint->always_wanted = true;
    }
    lookup r = mint(j.host);
    const auto renew_at = r ? renewal_time(**r) : std::nullopt;
    std::vector<callback> waiters;
    {
      std::lock_guard lock(mutex_);
      j.mint->renew_at = renew_at;
      j.mint->done = true;
      waiters.swap(j.mint->waiters);
      if (r) {
        ++counters_.mints;
      } else {
        ++counters_.mint_failures;
        // Not cached: the next request for the host tries again.
        if (const auto it = entries_.find(j.host);
            it != entries_.end() && it->second.mint == j.mint) {
          lru_.erase(it->second.lru);
          entries_.erase(it);
        }
      }
    }
    complete(*j.mint, waiters, r);
  }
}

leaf_cache::counters leaf_cache::stats() const {
  std::lock_guard lock(mutex_);
  counters c = counters_;
  c.size = entries_.size();
  return c;
}

}  // namespace hallpass::certs
