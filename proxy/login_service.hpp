// login_service: checks proxy sign-ins against the directory off the event loops, remembers
// recent successes, and slows password guessing. One per daemon, owned by the server, shared
// by every worker (shared_state::logins).
//
// - Directory calls (ldap_directory.hpp's check_login, which blocks) run on the service's own
//   threads (logins.ldap.max_in_flight, fixed at start), never on an event loop. At most
//   logins.ldap.max_queued checks wait for a thread; beyond that a check fails at once (busy).
// - Cache of successful logins: per user name, a salted SHA-256 of the password (the salt is
//   random per process, so the hashes are useless outside it) with the groups, kept for
//   logins.ldap.cache_ttl. A hit answers without a directory call; the password itself is never kept.
// - Identical checks in flight are asked once: a check for a user name and password (the same
//   salted hash, the same directory settings) that is already queued or running waits for
//   that one's answer instead of queueing its own, so fifty tabs opening at once, or a class
//   signing in with one shared account, make one directory call. The waiters' answer is the
//   same, reported as `cached` when it was a success (they did not ask the directory); a wrong
//   password counts as one failure, for the client that asked first.
// - Failed logins are counted per client address and per user name; past the limits of
//   logins.failures, further attempts are refused without a directory call until the oldest
//   failure in the window is older than the window. A name's limit blocks only that name, and
//   a password that matches the cache still passes, so a guesser cannot lock a user out whose
//   sign-in is recent; no limit ever applies to everyone.
// - A name is counted as the directory spells it (directory_answer::user), ASCII case and outer
//   blanks folded (directory_name_key), so "SAM", " sam" and a fullwidth "ｓａｍ" that the
//   directory finds as sam share sam's count.
// - The limits are judged once more on a directory thread just before the password is tried,
//   with the checks then in flight counted as failures until they end, so a hundred parallel
//   guesses get no more tries than the limit; a check over it only by those waits for them (at
//   most the directory's timeout) rather than being refused, so people signing in at once from
//   one address are not told they got a password wrong.
// - A name's limit does not hold on an address the user signed in from within the last
//   known_device_for (7 days): pupils typing a teacher's name with wrong passwords lock that
//   name out on their own devices, not on the teacher's laptop (the per-address limit holds).
//
// Thread-safety: every member function may be called from any thread. Callbacks of check()
// run on a directory thread (or on the caller's thread when refused at once); they must be
// quick and must not throw; an event loop posts them back to itself (login_gate.cpp).
// The destructor stops the threads after the checks in progress (each bounded by its timeout);
// checks still queued complete as unavailable.
#pragma once

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "proxy/ldap_directory.hpp"
#include "proxy/login_config.hpp"

namespace hallpass {

// Who signed in: shared by the connection that authenticated and its exchanges.
struct login_identity {
  std::string user;
  std::vector<std::string> groups;
  // False when the directory found no such user (identity_of): a Kerberos principal with no
  // entry, or a user deleted since signing in. A sign-in page binding then ends (login_gate).
  bool in_directory = true;
};

// The key a client's failed sign-ins are counted under: its address, except that every IPv6
// address of one /64 is one client ("2001:db8:1:2::/64"). A device chooses its own addresses in
// its network's /64 (SLAAC, privacy addresses): counted per address, it had fresh guesses on
// each, and could fill the failure tracker (audit3, 2026-12-05, F1 and F5). IPv4 and IPv4-mapped
// addresses are themselves.
std::string failure_client_key(const std::string& client);

class login_service {
 public:
  using clock = std::chrono::steady_clock;
  // Named in hallpass_logins_total{result} by metrics::login_results, in this order.
  enum class result_kind : std::uint8_t { ok, cached, bad_credentials, rate_limited, unavailable, busy };
  struct result {
    result_kind kind = result_kind::unavailable;
    std::shared_ptr<const login_identity> who;  // ok, cached
    std::string detail;                          // for the log; never the password
    // A failure: the name as the directory spells it when the directory found that user; empty
    // when it did not (no such user; a bind_dn_template, which cannot tell; refused before the
    // directory was asked). Only such a name is logged (login_gate.hpp, name_for_log).
    std::string known_name;
    std::chrono::seconds retry_after{0};         // rate_limited: when it may be tried again
    // ok, cached: when the sign-in stops being trusted, cache_ttl after the directory checked
    // it (for a cached one, when its cache entry lapses): what trusts it (a kept-alive
    // connection, a tunnel) trusts it until then.
    clock::time_point expires{};
    // Negotiate (negotiate_login.hpp): another leg is needed; reply_token (base64) goes in the 407.
    bool continue_needed = false;
    std::string reply_token;
    // Negotiate: the ticket was refused because the proxy's keytab has no key for it, the
    // school's problem, not the client's (negotiate_login.cpp).
    bool keytab_at_fault = false;
  };
  using callback = std::function<void(result)>;

  // REQUIRES: threads >= 1.
  explicit login_service(unsigned threads);
  ~login_service();
  login_service(const login_service&) = delete;
  login_service& operator=(const login_service&) = delete;

  // A recent success with this password, or null. Never calls the directory. *expires (when
  // given): when that success stops being trusted (it was checked cache_ttl before).
  std::shared_ptr<const login_identity> cached(const ldap_settings& s, std::string_view user,
                                               std::string_view password, clock::time_point now,
                                               clock::time_point* expires = nullptr);
  // Whether a new attempt from `client` for `user` is refused now; *retry_after: when it may be tried.
  bool refused(const login_settings& s, const std::string& client, std::string_view user, clock::time_point now,
               std::chrono::seconds* retry_after);
  // Queues a directory check (the settings are copied). `done` runs once. Successes are
  // cached, failures counted (bad_credentials only: a directory outage is nobody's guess).
  void check(const login_settings& s, std::string client, std::string user, std::string password, callback done);

  // Runs `task` on a directory thread (other sign-in methods: Negotiate, negotiate_login.hpp),
  // in the same bounded queue as check(). False, without running it, when max_queued tasks
  // wait already or the service is stopping. A task still queued at destruction is dropped.
  bool submit(std::size_t max_queued, std::function<void()> task);
  // The identity of a user who proved who they are another way (Negotiate): their groups from
  // the directory without a password (ldap_directory.hpp groups_of), kept per user name for
  // logins.ldap.cache_ttl, so a keep-alive sign-in storm asks the directory once per user.
  // A user the directory does not know signs in with no groups (the address's role). Null
  // when the directory cannot answer; *failure says why. *expires (when given): when the
  // groups returned stop being trusted (cache_ttl after the directory gave them). BLOCKS: call
  // on a directory thread.
  std::shared_ptr<const login_identity> identity_of(const ldap_settings& s, const std::string& user,
                                                    clock::time_point now, std::string* failure,
                                                    clock::time_point* expires = nullptr);
  // identity_of's cache alone: the user's identity when it is there and live, else null.
  // Never calls the directory (a short lock): may be called on an event loop.
  std::shared_ptr<const login_identity> cached_identity(const ldap_settings& s, const std::string& user,
                                                        clock::time_point now, clock::time_point* expires = nullptr);
  // Counts a failed sign-in for `client` and, unless empty, `user` (as a wrong password is).
  void note_failure(const login_settings& s, const std::string& client, const std::string& user, clock::time_point now);

  static constexpr std::chrono::hours known_device_for{24 * 7};


 private:
  // The salted SHA-256 of a user name and password (what the cache keeps).
  std::array<unsigned char, 32> digest(std::string_view user, std::string_view password) const;
  struct job {
    std::shared_ptr<const login_settings> settings;
    std::string client, user, password;
    callback done;
    std::function<void()> task;  // set: a submit()ted task, run instead of a password check
    std::string key;             // check_key() of a password check: where its waiters are
  };
  struct cache_entry {
    std::array<unsigned char, 32> hash{};
    std::size_t settings_key = 0;
    std::shared_ptr<const login_identity> who;
    clock::time_point expires;
  };

  void run();
  // REQUIRES: mutex_ held. Whether `key` has `limit` failures within the window (with the
  // checks in flight counted as failures, unless `in_flight` is null); *retry_after then says
  // when the oldest expires.
  bool over_limit(std::unordered_map<std::string, std::deque<clock::time_point>>& failures,
                  const std::unordered_map<std::string, std::size_t>* in_flight, const std::string& key,
                  std::size_t limit, std::chrono::milliseconds within, clock::time_point now,
                  std::chrono::seconds* retry_after);
  // REQUIRES: mutex_ held. Counts one failure for `client` and, unless empty, `user_key`.
  void add_failure(const login_settings& s, const std::string& client, const std::string& user_key,
                   clock::time_point now);
  // Answers a finished password check: its own callback, then every identical check that
  // waited for it (waiting_), whose successes are reported as cached.
  void finish(job& j, result r);
  static std::size_t settings_key(const ldap_settings& s);
  // User name, salted hash of the password and settings: what makes two checks identical.
  std::string check_key(const ldap_settings& s, std::string_view user, std::string_view password) const;
  void remember(const ldap_settings& s, const std::string& user, const std::string& password,
                std::shared_ptr<const login_identity> who, clock::time_point now);

  unsigned char salt_[32];
  std::mutex mutex_;
  std::condition_variable work_;
  std::condition_variable settled_;  // a check in flight ended (run's limit check waits on it)
  std::deque<job> queue_;
  bool stopping_ = false;
  std::unordered_map<std::string, cache_entry> cache_;  // by user name
  std::unordered_map<std::string, cache_entry> identities_;  // identity_of's, by user name (no hash)
  // Checks queued or running, by check_key -> the callbacks of identical checks waiting for it.
  // Bounded: at most max_queued + max_in_flight keys; a waiter joins only an existing key (at
  // most logins.ldap.max_queued waiters per key, beyond that a check is busy, as a full queue is).
  std::unordered_map<std::string, std::vector<callback>> waiting_;
  // Failure times within the window, oldest first, per client address and per user name.
  std::unordered_map<std::string, std::deque<clock::time_point>> client_failures_, user_failures_;
  // Password checks past the last limit check and not yet answered, per client and user key.
  std::unordered_map<std::string, std::size_t> client_in_flight_, user_in_flight_;
  // user_key + '\n' + client -> the last success of that user from that address.
  std::unordered_map<std::string, clock::time_point> known_devices_;
  // REQUIRES: mutex_ held. Whether `user_key` signed in from `client` within known_device_for.
  bool known_device(const std::string& user_key, const std::string& client, clock::time_point now) const;
  void remember_device(const std::string& user_key, const std::string& client, clock::time_point now);
  clock::time_point next_sweep_{};
  std::vector<std::thread> threads_;
};

}  // namespace hallpass
