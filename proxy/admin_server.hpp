// The admin socket and the store thread. One thread runs its own io_context: it accepts
// connections on the Unix admin socket, reads the caller's OS identity with SO_PEERCRED,
// checks it against admin.roles, and carries out each JSON-lines command against the SQLite
// store (docs/admin-protocol.md). The same thread takes block-page form submissions posted
// by the proxy's workers, so SQLite is only ever touched here, never on an event loop.
//
// After every change it rebuilds the in-memory exception index and publishes it with one
// atomic store (shared_state::exceptions): an approval takes effect on the next request.
#pragma once

#include <atomic>
#include <chrono>
#include <set>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include <sys/types.h>

#include <boost/json/object.hpp>

#include "proxy/net.hpp"
#include "store/exception_store.hpp"

namespace hallpass {

class shared_state;

// An admin verb's 'for' (approve, ban): a whole number above zero and one unit (s, m, h, d).
// Returns nullopt with a message for zero, negative, oversized and unreadable values; the
// verb checks its own range. Pure; any thread.
std::optional<std::chrono::seconds> admin_duration(const std::string& text, std::string& error);

// What is wrong with `path` as the place of the admin socket: "" when nothing is there, or a
// socket no process answers on (left by a run that ended: start() replaces it); else why not:
// a file that is not a socket (never touched), or a socket a running daemon answers on. For
// start() and `hallpass check`; any thread (one non-blocking connect).
std::string admin_socket_path_problem(const std::string& path);

// What a technician (no dsl or headteacher role) may read of bans: a ban's reason, and its
// lifting's, only when `viewer` (an OS user) wrote it; in the audit log, the same for entries
// about a ban. The reason becomes "(withheld: for the DSL and the headteacher)". admin_bans.cpp.
// The answer to a request the daemon will not carry out as asked (code bad_request).
// Adds `note` to r's warnings (said beside the answer), after any already there.
inline void add_warning(store::result& r, const std::string& note) {
  r.warning = r.warning.empty() ? note : r.warning + "; " + note;
}

inline store::result bad_request(std::string message) {
  return store::result::fail("bad_request", std::move(message));
}

void withhold_ban_reasons(boost::json::object& ban, const std::string& viewer);
void withhold_ban_reasons_in_audit(boost::json::object& entry, const std::string& viewer);
// An audit entry about an incident record: its before and after withheld (admin_incidents.cpp),
// for a viewer who is neither the DSL nor the headteacher.
void withhold_incident_in_audit(boost::json::object& entry);

class admin_server {
 public:
  // reload: reloads the configuration; returns "" and the new generation, or the errors.
  // A reload's outcome: every error (empty when it took effect), every warning (skipped list
  // lines, an empty list file: hallpassctl shows them too), and the generation now serving.
  // A caller's OS user and groups (the name service's answer), looked up at accept and again
  // before each command (a group change applies to a connection held open).
  struct account {
    std::string user;
    std::set<std::string> groups;
  };
  static account account_of(uid_t uid);

  struct reload_outcome {
    std::string errors;
    std::string warnings;
    std::uint64_t generation = 0;
  };
  using reload_fn = std::function<reload_outcome()>;

  admin_server(shared_state& state, reload_fn reload);
  ~admin_server();

  // Opens the store (and the socket, when configured) and publishes the first index.
  // Returns "" or a clear error; the daemon does not start without its store.
  std::string start();
  void stop();

  net::any_io_executor executor() { return ioc_.get_executor(); }
  // Any thread: records a reload done outside the socket (SIGHUP) in the audit log.
  void audit_reload(std::string source, bool ok, std::uint64_t generation, std::string errors);
  // On the store thread: files a request from the block page.
  store::result file_form(const store::request_form& form);
  // Any thread (a worker, when the circumvention tracker reaches bans.threshold): files an
  // automatic ban of `subject` on the store thread, in force at once (000 7.2 "will result in
  // a ban"), then publishes the index, counts hallpass_bans_total{how="automatic"} and writes
  // an alert line for the DSL on the access log. At most 64 wait at once; more are dropped,
  // said on standard error (the attempts are still in the access log). Never blocks.
  // False when it could not be queued (max_queued_bans wait): said on stderr, nothing filed.
  bool file_automatic_ban(bool device, std::string subject, std::chrono::seconds length, std::string reason);

 private:
  net::awaitable<void> accept_loop();
  struct admin_connection {
    admin_connection(net::local::stream_protocol::socket s, uid_t u, std::string p, account a)
        : socket(std::move(s)), deadline(socket.get_executor()), uid(u), pool(std::move(p)), who(std::move(a)) {}
    net::local::stream_protocol::socket socket;
    net::steady_timer deadline;
    uid_t uid;
    std::string pool;  // whose places it holds (place_pool): a role's, or "" for users with none
    account who;       // its user and groups, looked up again before each command
  };
  net::awaitable<void> serve(std::shared_ptr<admin_connection> c);
  net::awaitable<void> watchdog(std::shared_ptr<admin_connection> c);
  // no_role: set when the caller has no admin role (its connection is then closed after the answer).
  std::string handle_line(const std::string& line, const account& caller_account, bool& no_role);
  // Reads the store and swaps in a new exception index; returns the error, if any (the old
  // index then stays).
  std::string publish_index();
  net::awaitable<void> prune_loop();
  // Deletes what the store holds past retention.records (store/retention.cpp): at start,
  // after each reload and every ten minutes. A failure is said on stderr; nothing is lost.
  void apply_retention();

  shared_state& state_;
  reload_fn reload_;
  std::unique_ptr<net::local::stream_protocol::acceptor> acceptor_;
  std::unique_ptr<store::exception_store> store_;
  // After a revoke: the other exceptions in force that still open the same thing for the same
  // people, as a warning ("" when none). Store thread.
  std::string still_opened_by(const boost::json::value& revoked, std::int64_t id);
  // The store's files deleted or replaced under it (exception_store::files_replaced), in words
  // for the caller, and said once in the journal; "" when they are its own. Store thread.
  std::string store_files_replaced();
  std::string replaced_said_;  // what the journal was last told (store thread only)
  std::string socket_path_;
  std::optional<std::pair<dev_t, ino_t>> made_socket_;  // the socket file start() made (stop() removes it only)
  // Admin connections open, by place_pool: each role's places are its own, so the accounts of
  // one role (four technicians) cannot keep another's (the headteacher) out (store thread only).
  std::map<std::string, std::size_t> connections_by_pool_;
  std::map<uid_t, std::size_t> connections_by_uid_;  // (store thread only)
  // Writes a refused command to the audit log, at most refusals_audited_per_minute per OS user
  // (whichever verb: the role check, a technician's ban --confirm, a locked category's
  // approve). Returns the error to answer: `why`, saying when it was not audited.
  std::string audit_refusal(const store::actor& who, const std::string& action, const std::string& object,
                            const std::string& why);
  // Refused commands audited per OS user in the current minute (store thread only).
  static constexpr std::size_t refusals_audited_per_minute = 20;
  // `list` answers with the newest this many requests, and says how many older ones it left out.
  static constexpr std::size_t list_limit = 200;
  // `audit` answers with the newest this many entries (its 'limit' argument, at most
  // max_audit_limit), and says how many older ones it left out (admin audit, 2026-12-05, F3).
  static constexpr std::size_t audit_limit = 200;
  static constexpr std::size_t max_audit_limit = 1000;
  std::map<std::string, std::pair<std::chrono::steady_clock::time_point, std::size_t>> refusals_by_user_;
  std::thread thread_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  bool index_stale_ = false;  // the last publish_index() failed (admin thread only)
  bool checkpoint_owed_said_ = false;  // the store's owed WAL checkpoint was said (admin thread only)
  // The wall and steady clocks at the first retention run: retention goes by the earlier of the
  // clock and the time passed since (apply_retention; admin thread only).
  std::optional<std::pair<std::chrono::system_clock::time_point, std::chrono::steady_clock::time_point>> retention_clock_;
  bool retention_clock_said_ = false;  // the clock's being ahead was said (until it is not)
  std::atomic<std::size_t> queued_bans_{0};  // automatic bans posted, not yet filed
  // The verbs ban, unban and bans (000 7.2; 002). Sets `changed` when the overlay must be rebuilt.
  store::result handle_ban_verb(const std::string& verb, const boost::json::object& args, const std::string& os_user,
                                const std::set<std::string>& roles, bool& changed);
  // The verbs incident and incidents (admin_incidents.cpp; the DSL and the headteacher only).
  store::result handle_incident_verb(const std::string& verb, const boost::json::object& args,
                                     const store::actor& actor);
  // `incidents` answers with the newest this many, and says how many older ones it left out.
  static constexpr std::size_t incident_list_limit = 200;
  // Declared last, so destroyed first: its destruction destroys the coroutines still suspended
  // in it (an admin connection whose answer was being written when the daemon stopped), whose
  // scope guards touch the members above (connections_by_uid_). Declared first, those were
  // already freed: a SIGTERM during `hallpassctl reload` ended in a segfault, every time
  // (reload audit, 2026-12-06; valgrind showed the guard reading the freed map). The acceptor
  // goes before it (~admin_server).
  net::io_context ioc_{1};
};

}  // namespace hallpass
