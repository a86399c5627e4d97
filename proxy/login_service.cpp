#include "proxy/login_service.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <arpa/inet.h>
#include <openssl/rand.h>

#include <algorithm>
#include <functional>
#include <stdexcept>

namespace hallpass {

namespace {

constexpr std::size_t max_cached_users = 100000;
constexpr std::size_t max_tracked_failures = 100000;  // addresses + names with recent failures

// Drops failure times older than the window; the deque is empty when none is left.
void expire(std::deque<login_service::clock::time_point>& times, login_service::clock::time_point now,
            std::chrono::milliseconds within) {
  while (!times.empty() && times.front() + within <= now) times.pop_front();
}

// The live entry for `user` in one of the caches (the password cache, identity_of's), made
// under the same `settings_key`; null when there is none. REQUIRES: the service's mutex held.
template <class Map>
const typename Map::mapped_type* live_entry(const Map& cache, const std::string& user, std::size_t settings_key,
                                            login_service::clock::time_point now) {
  const auto it = cache.find(user);
  if (it == cache.end() || it->second.expires <= now || it->second.settings_key != settings_key) return nullptr;
  return &it->second;
}

// The entry to fill for `user` in one of the caches: once max_cached_users are kept, expired
// entries are dropped first; null when it is full of live ones (this user is simply not
// cached). REQUIRES: the service's mutex held.
template <class Map>
typename Map::mapped_type* cache_slot(Map& cache, const std::string& user, login_service::clock::time_point now) {
  if (cache.size() >= max_cached_users && !cache.contains(user)) {
    std::erase_if(cache, [now](const auto& kv) { return kv.second.expires <= now; });
    if (cache.size() >= max_cached_users) return nullptr;
  }
  return &cache[user];
}

}  // namespace

std::string failure_client_key(const std::string& client) {
  unsigned char a[16];
  if (::inet_pton(AF_INET6, client.c_str(), a) != 1) return client;
  static constexpr unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::equal(std::begin(mapped), std::end(mapped), a)) return client;  // an IPv4 address
  std::fill(a + 8, a + 16, 0);
  char text[INET6_ADDRSTRLEN];
  if (::inet_ntop(AF_INET6, a, text, sizeof text) == nullptr) return client;
  return std::string(text) + "/64";
}

login_service::login_service(unsigned threads) {
  if (RAND_bytes(salt_, sizeof salt_) != 1) throw std::runtime_error("cannot make a random salt for the login cache");
  threads_.reserve(threads);
  for (unsigned i = 0; i < std::max(1u, threads); ++i) threads_.emplace_back([this] { run(); });
}

login_service::~login_service() {
  std::deque<job> left;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    left.swap(queue_);
  }
  work_.notify_all();
  settled_.notify_all();
  for (auto& t : threads_) t.join();
  for (auto& j : left) {
    if (j.task) continue;
    result r;
    r.detail = "the proxy is stopping";
    finish(j, std::move(r));
  }
}

std::array<unsigned char, 32> login_service::digest(std::string_view user, std::string_view password) const {
  std::array<unsigned char, 32> out{};
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  unsigned len = 0;
  const unsigned char zero = 0;
  const bool ok = ctx != nullptr && EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) == 1 &&
                  EVP_DigestUpdate(ctx, salt_, sizeof salt_) == 1 &&
                  EVP_DigestUpdate(ctx, user.data(), user.size()) == 1 && EVP_DigestUpdate(ctx, &zero, 1) == 1 &&
                  EVP_DigestUpdate(ctx, password.data(), password.size()) == 1 &&
                  EVP_DigestFinal_ex(ctx, out.data(), &len) == 1;
  EVP_MD_CTX_free(ctx);
  if (!ok) RAND_bytes(out.data(), static_cast<int>(out.size()));  // matches nothing
  return out;
}

std::size_t login_service::settings_key(const ldap_settings& s) {
  // A changed directory, tree or group lookup makes earlier successes count for nothing.
  const std::hash<std::string> h;
  return h(s.url + '\n' + s.base_dn + '\n' + s.bind_dn_template + '\n' + s.user_attribute + '\n' + s.user_filter +
           '\n' + s.group_attribute + '\n' + s.group_base_dn + '\n' + s.group_filter + '\n' + s.group_member_attribute);
}

std::shared_ptr<const login_identity> login_service::cached(const ldap_settings& s, std::string_view user,
                                                            std::string_view password, clock::time_point now,
                                                            clock::time_point* expires) {
  // Both computed before the lock, which every worker and directory thread shares.
  const auto hash = digest(user, password);
  const auto key = settings_key(s);
  std::lock_guard lock(mutex_);
  const auto* e = live_entry(cache_, std::string(user), key, now);
  if (e == nullptr || CRYPTO_memcmp(e->hash.data(), hash.data(), hash.size()) != 0) return nullptr;
  if (expires != nullptr) *expires = e->expires;
  return e->who;
}

void login_service::remember(const ldap_settings& s, const std::string& user, const std::string& password,
                             std::shared_ptr<const login_identity> who, clock::time_point now) {
  if (s.cache_ttl.count() <= 0) return;
  const auto hash = digest(user, password);
  const auto key = settings_key(s);
  std::lock_guard lock(mutex_);
  auto* e = cache_slot(cache_, user, now);
  if (e == nullptr) return;
  e->hash = hash;
  e->settings_key = key;
  e->who = std::move(who);
  e->expires = now + s.cache_ttl;
}

bool login_service::over_limit(std::unordered_map<std::string, std::deque<clock::time_point>>& failures,
                               const std::unordered_map<std::string, std::size_t>* in_flight, const std::string& key,
                               std::size_t limit, std::chrono::milliseconds within, clock::time_point now,
                               std::chrono::seconds* retry_after) {
  const auto f = failures.find(key);
  if (f != failures.end()) expire(f->second, now, within);
  const std::size_t failed = f == failures.end() ? 0 : f->second.size();
  std::size_t running = 0;
  if (in_flight != nullptr) {
    if (const auto i = in_flight->find(key); i != in_flight->end()) running = i->second;
  }
  if (failed + running < limit) return false;
  // Over by checks still running: they end within the directory's timeout; ask again soon.
  const auto wait = failed >= limit ? f->second[failed - limit] + within - now : std::chrono::duration_cast<clock::duration>(std::chrono::seconds(1));
  *retry_after = std::max(*retry_after, std::chrono::ceil<std::chrono::seconds>(wait));
  return true;
}

bool login_service::known_device(const std::string& user_key, const std::string& client, clock::time_point now) const {
  const auto it = known_devices_.find(user_key + '\n' + client);
  return it != known_devices_.end() && now - it->second < known_device_for;
}

void login_service::remember_device(const std::string& user_key, const std::string& client, clock::time_point now) {
  if (user_key.empty()) return;
  std::string key = user_key + '\n' + client;
  if (known_devices_.size() >= max_cached_users && !known_devices_.contains(key)) {
    std::erase_if(known_devices_, [now](const auto& kv) { return now - kv.second >= known_device_for; });
    if (known_devices_.size() >= max_cached_users) return;  // full of recent ones: this one is not kept
  }
  known_devices_[std::move(key)] = now;
}

bool login_service::refused(const login_settings& s, const std::string& client, std::string_view user,
                            clock::time_point now, std::chrono::seconds* retry_after) {
  const std::string key = directory_name_key(user);
  std::lock_guard lock(mutex_);
  *retry_after = std::chrono::seconds(0);
  // Failures only: the checks in flight are counted on the directory thread (run), where the
  // limits are judged again on the directory's own name for the user.
  const bool by_client =
      over_limit(client_failures_, nullptr, failure_client_key(client), s.failures_per_client, s.failures_within, now,
                 retry_after);
  const bool by_user = !key.empty() && !known_device(key, client, now) &&
                       over_limit(user_failures_, nullptr, key, s.failures_per_user, s.failures_within, now, retry_after);
  return by_client || by_user;
}

void login_service::note_failure(const login_settings& s, const std::string& client, const std::string& user,
                                 clock::time_point now) {
  std::lock_guard lock(mutex_);
  add_failure(s, client, directory_name_key(user), now);
}

void login_service::add_failure(const login_settings& s, const std::string& client, const std::string& user,
                                clock::time_point now) {
  if (now >= next_sweep_ || client_failures_.size() + user_failures_.size() > max_tracked_failures) {
    next_sweep_ = now + std::chrono::minutes(1);
    for (auto* map : {&client_failures_, &user_failures_}) {
      for (auto it = map->begin(); it != map->end();) {
        expire(it->second, now, s.failures_within);
        it = it->second.empty() ? map->erase(it) : std::next(it);
      }
    }
  }
  if (client_failures_.size() + user_failures_.size() > max_tracked_failures) return;  // under attack from everywhere
  const auto add = [&](std::deque<clock::time_point>& times, std::size_t limit) {
    times.push_back(now);
    while (times.size() > limit) times.pop_front();  // only the last `limit` matter
  };
  add(client_failures_[failure_client_key(client)], s.failures_per_client);
  if (!user.empty()) add(user_failures_[user], s.failures_per_user);
}

bool login_service::submit(std::size_t max_queued, std::function<void()> task) {
  std::lock_guard lock(mutex_);
  if (stopping_ || queue_.size() >= max_queued) return false;
  job j;
  j.task = std::move(task);
  queue_.push_back(std::move(j));
  work_.notify_one();
  return true;
}

std::shared_ptr<const login_identity> login_service::identity_of(const ldap_settings& s, const std::string& user,
                                                                 clock::time_point now, std::string* failure,
                                                                 clock::time_point* expires) {
  const auto key = settings_key(s);
  if (auto who = cached_identity(s, user, now, expires)) return who;
  if (expires != nullptr) *expires = now + s.cache_ttl;
  auto answer = groups_of(s, user);
  if (answer.result == directory_answer::status::unavailable) {
    *failure = std::move(answer.detail);
    return nullptr;
  }
  auto who = std::make_shared<login_identity>();
  who->user = answer.user.empty() ? user : answer.user;  // as the directory spells it
  who->groups = std::move(answer.groups);  // none when the directory does not know the user
  who->in_directory = answer.result != directory_answer::status::bad_credentials;
  if (s.cache_ttl.count() > 0) {
    std::lock_guard lock(mutex_);
    if (auto* e = cache_slot(identities_, user, now)) {
      e->settings_key = key;
      e->who = who;
      e->expires = now + s.cache_ttl;
    }
  }
  return who;
}

std::shared_ptr<const login_identity> login_service::cached_identity(const ldap_settings& s, const std::string& user,
                                                                     clock::time_point now, clock::time_point* expires) {
  const auto key = settings_key(s);
  std::lock_guard lock(mutex_);
  const auto* e = live_entry(identities_, user, key, now);
  if (e == nullptr) return nullptr;
  if (expires != nullptr) *expires = e->expires;
  return e->who;
}

std::string login_service::check_key(const ldap_settings& s, std::string_view user, std::string_view password) const {
  const auto hash = digest(user, password);
  const auto settings = settings_key(s);
  std::string key(reinterpret_cast<const char*>(hash.data()), hash.size());
  key.append(reinterpret_cast<const char*>(&settings), sizeof settings);
  return key;
}

void login_service::check(const login_settings& s, std::string client, std::string user, std::string password,
                          callback done) {
  std::string key = check_key(s.ldap, user, password);  // hashed before the shared lock
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      if (const auto it = waiting_.find(key); it != waiting_.end()) {
        if (it->second.size() < s.ldap.max_queued) {
          it->second.push_back(std::move(done));  // the identical check in flight answers this one
          OPENSSL_cleanse(password.data(), password.size());
          return;
        }
      } else if (queue_.size() < s.ldap.max_queued) {
        waiting_.emplace(key, std::vector<callback>{});
        queue_.push_back(job{std::make_shared<const login_settings>(s), std::move(client), std::move(user),
                             std::move(password), std::move(done), {}, std::move(key)});
        work_.notify_one();
        return;
      }
    }
  }
  OPENSSL_cleanse(password.data(), password.size());
  result r;
  r.kind = result_kind::busy;
  r.detail = "too many sign-ins waiting for the directory";
  done(std::move(r));
}

void login_service::run() {
  for (;;) {
    job j;
    {
      std::unique_lock lock(mutex_);
      work_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      j = std::move(queue_.front());
      queue_.pop_front();
    }
    if (j.task) {
      j.task();
      continue;
    }
    const auto& s = *j.settings;
    const std::string client_key = failure_client_key(j.client);  // the failures' and in-flight key
    // The limits once more, on the directory's name for the user, just before the password is
    // tried; a check let through is counted in flight until its answer (no parallel burst of
    // guesses gets past the limit).
    std::string held_key;  // the user key counted in flight, when one is
    bool holding = false;
    std::chrono::seconds retry_after{0};
    const auto may_bind = [&](std::string_view name) {
      std::unique_lock lock(mutex_);
      held_key = directory_name_key(name);
      // Over the limits by failures: held. Over only because of checks still running (several
      // people signing in at once from one address: a terminal server, a NAT): wait for them
      // to end, each bounded by the directory's timeout, and judge again; a running check
      // never waits here, so they do end.
      const auto give_up = clock::now() + s.ldap.timeout + std::chrono::seconds(1);
      for (;;) {
        const auto t = clock::now();
        const bool user_limited = !held_key.empty() && !known_device(held_key, j.client, t);
        // Over the limits with the checks in flight counted as failures, or without them.
        const auto over = [&](bool count_running, std::chrono::seconds* wait) {
          const bool by_client = over_limit(client_failures_, count_running ? &client_in_flight_ : nullptr, client_key,
                                            s.failures_per_client, s.failures_within, t, wait);
          const bool by_user = user_limited && over_limit(user_failures_, count_running ? &user_in_flight_ : nullptr,
                                                          held_key, s.failures_per_user, s.failures_within, t, wait);
          return by_client || by_user;
        };
        if (over(false, &retry_after)) return false;
        std::chrono::seconds ignored{0};
        if (!over(true, &ignored)) break;
        if (stopping_ || t >= give_up) {
          retry_after = std::chrono::seconds(1);
          return false;
        }
        settled_.wait_until(lock, give_up);
      }
      ++client_in_flight_[client_key];
      if (!held_key.empty()) ++user_in_flight_[held_key];
      holding = true;
      return true;
    };
    auto answer = check_login(s.ldap, j.user, j.password, may_bind);
    const auto now = clock::now();
    const std::string& name = answer.user.empty() ? j.user : answer.user;  // as the directory spells it
    result r;
    r.detail = std::move(answer.detail);
    {
      std::lock_guard lock(mutex_);
      if (holding) {
        const auto drop = [](auto& map, const std::string& key) {
          if (const auto it = map.find(key); it != map.end() && --it->second == 0) map.erase(it);
        };
        drop(client_in_flight_, client_key);
        if (!held_key.empty()) drop(user_in_flight_, held_key);
        settled_.notify_all();  // checks waiting in may_bind judge again
      }
      if (answer.result == directory_answer::status::bad_credentials) add_failure(s, j.client, directory_name_key(name), now);
      if (answer.result == directory_answer::status::ok) remember_device(directory_name_key(name), j.client, now);
    }
    if (answer.result != directory_answer::status::ok) r.known_name = answer.user;
    switch (answer.result) {
      case directory_answer::status::ok: {
        auto who = std::make_shared<login_identity>();
        who->user = name;
        who->groups = std::move(answer.groups);
        r.kind = result_kind::ok;
        r.who = who;
        r.expires = now + s.ldap.cache_ttl;
        remember(s.ldap, j.user, j.password, std::move(who), now);
        break;
      }
      case directory_answer::status::bad_credentials:
        r.kind = result_kind::bad_credentials;
        break;
      case directory_answer::status::held:
        r.kind = result_kind::rate_limited;
        r.retry_after = retry_after;
        break;
      case directory_answer::status::unavailable:
        r.kind = result_kind::unavailable;
        break;
    }
    // The password goes no further than this thread.
    OPENSSL_cleanse(j.password.data(), j.password.size());
    finish(j, std::move(r));
  }
}

void login_service::finish(job& j, result r) {
  std::vector<callback> waiters;
  {
    std::lock_guard lock(mutex_);
    if (const auto it = waiting_.find(j.key); it != waiting_.end()) {
      waiters = std::move(it->second);
      waiting_.erase(it);
    }
  }
  if (!waiters.empty()) {
    result shared = r;
    if (shared.kind == result_kind::ok) shared.kind = result_kind::cached;
    for (auto& w : waiters) w(shared);
  }
  j.done(std::move(r));
}

}  // namespace hallpass
