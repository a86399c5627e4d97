// Immediate alerts for the designated safeguarding lead (README.md, "Alerts for the DSL"): a
// block in a category the school watches (self-harm, extremism, ...), an attempt to get round
// the filter, a ban the proxy put in force by itself, and the removal of a block that a report
// of inappropriate content put on a page (000 7.3: the e-safety officer hears of it). The DfE filtering standard asks for
// alerts when content is blocked in high-risk categories; the policies ask that circumvention
// is detected and acted on (000 7.2; 002) and that the e-safety officer monitors (000 7.4; 002).
//
// An alert that goes out is
//   - one `{"event":"alert",...}` line in the access log (the incident record, beside the
//     request's own line), and hallpass_alerts_total{kind};
//   - when `alerts.command` is set, a mail message on that program's standard input (so
//     `[/usr/sbin/sendmail, -t]` with `alerts.to` mails the DSL), run on the sender's own
//     thread, never on an event loop.
// Repeats are held: one alert per person (or device, when nobody is signed in), kind and
// category per `alerts.every`; the next alert says how many were held. A page that loads
// twenty blocked images is one alert, not twenty mails.
//
// Bounded: at most 64 messages wait for the command, one command runs at a time and is killed
// after 30 s; at most 20 messages go at once, then one every 30 s (the mail limit). A message
// that cannot go (the limit, a full queue, the command failed) is counted, said on standard
// error at most once a minute by the sender's thread, and listed, one line each (when, what,
// who, which site), in the next message that goes, or in a message of its own as soon as the
// limit allows one: other pupils' alerts must never make one child's self-harm alert reach the
// DSL only as a number (outside-in audit, 2026-12-06, H1). At most 100 such lines are kept, a
// watched category's before any other kind; the access log still has every alert's line. The
// gate keeps at most 4096 subjects.
//
// Thread-safety: raise() may be called from any thread (workers, the store thread). The pure
// functions are safe anywhere.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "proxy/daemon_config.hpp"
#include "rules/time_zone.hpp"

namespace hallpass {

class access_log;
class metrics;

enum class alert_kind : std::uint8_t { category, circumvention, ban, report_unblocked };
std::string_view to_string(alert_kind k);

// What happened, as the access log has it. A plain value: the sender keeps its own copy.
struct alert {
  alert_kind kind = alert_kind::category;
  std::chrono::sys_seconds at{};
  std::string category, category_description;  // category: the watched one; circumvention: any
  std::string client, user, role, device_name, hardware_address;
  std::string url;     // what was asked for, without the query ("https://bad.example/page", or
                       // "bad.example:443" for a tunnel decided on its host)
  std::string search;  // search terms, only when access_log.search_terms keeps them
  std::string rule, clause, note;
  // A ban: its id, whom it bans ("device 10.10.4.20", "user sam"), until when, and why (the
  // proxy's own words: so many attempts).
  std::int64_t ban = 0;
  std::string ban_subject, ban_until_text, ban_reason;
  // A report's block removed (report_unblocked): the local entry, the report's number, what it
  // reported and who reported it, and who removed the block, why. `url` is the page.
  std::int64_t entry = 0, report = 0;
  std::string report_nature, reporter, removed_by, removed_reason;
  std::uint64_t held = 0;  // alerts like it held since the last one for the same subject
  // A request the block page's form filed for the page (a watched category's): its number.
  // Each such request is an alert of its own, never held as a repeat of the visit's.
  std::int64_t request = 0;
};

// An alert's address for what was asked for: "scheme://host[:port]/path", the port only when
// not the scheme's own, the path without its query or path parameters (";jsessionid=..."):
// personal data and session tokens, which the log keeps only by choice, and a mail leaves the
// gateway. `path` may carry a query or fragment; it is cut there.
std::string alert_url(std::string_view scheme, std::string_view host, std::uint16_t port, std::string_view path);

// The gate's key: kind, subject (the user when signed in, else the device) and category.
std::string alert_subject_key(const alert& a);

// One alert per key per `every`; the rest held and counted. Pure: the caller gives the time.
class alert_gate {
 public:
  explicit alert_gate(std::size_t max_keys = 4096) : max_keys_(max_keys) {}
  // nullopt: hold this one. Else send it, with the number held since the last one sent.
  std::optional<std::uint64_t> admit(const std::string& key, std::chrono::steady_clock::time_point now,
                                     std::chrono::seconds every);
  std::size_t size() const { return keys_.size(); }

 private:
  struct entry {
    std::chrono::steady_clock::time_point sent;
    std::uint64_t held = 0;
  };
  std::size_t max_keys_;
  std::unordered_map<std::string, entry> keys_;
};

// The mail message for `a` (times school-local, in words): headers (To: when `to` names someone,
// Subject: in printable ASCII), a blank line, then the text in UTF-8 for a person who is not
// technical. Lines end in LF alone, as sendmail's standard input expects (the mail agent
// writes CRLF on the wire). Every field is made
// safe first (no line breaks or control characters from a user name, host or search), and the
// message is at most 16 KiB.
std::string format_alert_message(const alert& a, const std::vector<std::string>& to, std::string_view school_name,
                                 const rules::time_zone& zone);

// The To: header for `to` (alerts.to's checked addresses), folded after a comma so that no
// line passes 78 characters, with its '\n'; "" when `to` is empty. The alerts and the
// weekly report (safeguarding_report_command.cpp) write it.
std::string mail_to_header(const std::vector<std::string>& to);

// `to` for a person to read: "a@x, b@y".
std::string mail_address_list(const std::vector<std::string>& to);

// One line for an alert that could not be mailed, listed in the next message (at most about
// 300 bytes): "Sun 6 Dec 21:05  blocked self_harm site  sam (laptop-7, 10.10.4.20)  http://x.example".
std::string held_alert_line(const alert& a, const rules::time_zone& zone);

// A message of its own for alerts that could not be mailed at once: their lines, and how many
// more were not kept.
std::string format_held_alerts_message(const std::vector<std::string>& lines, std::uint64_t count,
                                       const std::vector<std::string>& to, std::string_view school_name);

// The access log's line for an alert that went out (one JSON object and '\n').
std::string format_alert_line(const alert& a, const rules::time_zone& zone);

// The mail limit: at most `burst` messages at once, then one every `interval`.
struct alert_mail_limit {
  std::uint64_t burst = 20;
  std::chrono::seconds interval{30};
};

class alert_sender {
 public:
  explicit alert_sender(metrics* m, alert_mail_limit limit = {});
  ~alert_sender();  // kills a command still running, drops what waits, joins
  alert_sender(const alert_sender&) = delete;
  alert_sender& operator=(const alert_sender&) = delete;

  // Passes `a` through the gate; if it goes out, writes its line to `log` and queues the
  // message for settings.command. Never waits for I/O: one short mutex.
  // `generation`: the configuration's, whose settings these are (see settings_changed).
  void raise(alert a, const daemon_config::alert_settings& settings, std::string_view school_name,
             const rules::time_zone& zone, access_log& log, std::uint64_t generation = 0);

  // After a reload to configuration `generation`: the messages still waiting that were made
  // under an older one for another command or another `to` are dropped, not mailed where the
  // school no longer wants them (a wrong address corrected, alerts turned off), and counted as
  // not mailed; so is a later raise() under an older configuration (a request that pinned it
  // before the reload) whose settings differ. A call for a generation older than one already
  // seen is ignored (two reloads finishing out of order). Any thread; never waits for I/O.
  void settings_changed(const daemon_config::alert_settings& settings, std::uint64_t generation);

  // Alerts that went out but were not handed to the command or not taken by it (the mail
  // limit, a full queue, the command failed, a reload changed where they go), since
  // construction.
  std::uint64_t not_mailed() const;

 private:
  struct job {
    std::vector<std::string> argv;
    std::vector<std::string> to;  // alerts.to when it was made
    std::uint64_t generation = 0;  // of the configuration it was made under
    std::string message;
    // Alerts raised before this one that were not mailed (unmailed_ when it was queued): said
    // in its message; given back to unmailed_ if it is not mailed either.
    std::uint64_t unmailed_before = 0;
    // Their lines (held_alert_line), as many as kept, each with whether it is a watched
    // category's: given back as they were if this one is not mailed either.
    std::vector<std::pair<std::string, bool>> unmailed_lines;
    std::string own_line;  // this alert's line, kept if it is not mailed either
    bool category = false;  // a watched category's alert
    bool digest = false;    // a message of its own for alerts not mailed (no alert of its own)
  };
  // Under mutex_: keeps the line of an alert that was not mailed (a watched category's first).
  void keep_unmailed_line(std::string line, bool category);
  // Under mutex_: takes a token of the mail limit if one is due; false when none is.
  bool take_token(std::chrono::steady_clock::time_point now);
  void run();
  void note_failure(const std::string& why);  // any thread; the sender thread says it
  // Under mutex_: the same, for an alert `count`ed as not mailed (0: a message of alerts already
  // counted, a digest, failed again).
  void note_failure_locked(const std::string& why, std::uint64_t count);
  std::string warning_due(std::chrono::steady_clock::time_point now);

  metrics* const metrics_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<job> queue_;
  std::size_t reserved_ = 0;  // places held by raise() while it makes the message
  alert_gate gate_;
  bool stop_ = false;
  std::atomic<bool> stopping_{false};  // run_alert_command polls it: kill a running command
  std::chrono::steady_clock::time_point last_report_{};
  std::uint64_t unreported_failures_ = 0;
  std::string pending_warning_;  // the last failure not yet said on stderr
  std::uint64_t unmailed_ = 0;   // not mailed, and not yet said in a queued message
  std::uint64_t killed_at_stop_ = 0;  // commands killed by the stop: said with the dropped ones
  // The settings of the newest configuration settings_changed() was told of (0: none yet).
  std::uint64_t generation_ = 0;
  std::vector<std::string> current_command_;
  std::vector<std::string> current_to_;
  std::uint64_t not_mailed_total_ = 0;
  // The lines of alerts not mailed, not yet in a queued message, with whether each is a watched
  // category's; the command, recipients and school name to send them with on their own.
  std::deque<std::pair<std::string, bool>> unmailed_lines_;
  std::vector<std::string> last_command_, last_to_;
  std::string last_school_;
  // After the command failed, the lines wait a minute for a message of their own (a mail
  // server that is down is not asked again at once); a new alert still lists them.
  std::chrono::steady_clock::time_point digest_not_before_{};
  const alert_mail_limit limit_;
  std::uint64_t tokens_;  // the mail limit's tokens now
  std::chrono::steady_clock::time_point refilled_{};
  std::thread thread_;  // last: started once the rest is ready
};

// Runs argv (argv[0] an absolute path; no shell; a minimal environment; standard output to
// /dev/null, standard error the daemon's) with `input` on its standard input, and waits at
// most `limit` for it to exit, then kills its process group. Returns "" when it exited with
// status 0, else why not. `stop` is polled while waiting: when it becomes true the command is
// killed at once.
std::string run_alert_command(const std::vector<std::string>& argv, const std::string& input,
                              std::chrono::milliseconds limit, const std::atomic<bool>* stop = nullptr);

}  // namespace hallpass
