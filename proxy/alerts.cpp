#include "proxy/alerts.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iostream>

#include "rules/category_words.hpp"
#include "proxy/access_log.hpp"
#include "proxy/base64.hpp"
#include "proxy/metrics.hpp"
#include "proxy/signal_free_thread.hpp"
#include "rules/exception_index.hpp"
#include "rules/host.hpp"
#include "rules/explain.hpp"
#include "rules/json_writer.hpp"
#include "rules/utf8.hpp"

namespace hallpass {

std::string_view to_string(alert_kind k) {
  switch (k) {
    case alert_kind::category: return "category";
    case alert_kind::circumvention: return "circumvention";
    case alert_kind::ban: return "ban";
    case alert_kind::report_unblocked: return "report_unblocked";
  }
  return "category";
}

std::string alert_url(std::string_view scheme, std::string_view host, std::uint16_t port, std::string_view path) {
  std::string url = std::string(scheme) + "://" + std::string(host);
  const bool default_port = ((scheme == "http" || scheme == "ws") && port == 80) ||
                            ((scheme == "https" || scheme == "wss") && port == 443);
  if (!default_port && port != 0) url += ":" + std::to_string(port);
  return url + rules::path_without_parameters(path.substr(0, path.find_first_of("?#")));
}

std::string alert_subject_key(const alert& a) {
  std::string key(to_string(a.kind));
  key += '\n';
  if (!a.user.empty()) {
    key += "user:" + a.user;
  } else {
    key += "device:" + (a.hardware_address.empty() ? a.client : a.hardware_address);
  }
  if (a.kind == alert_kind::category) key += "\n" + a.category;
  if (a.request != 0) key += "\nrequest " + std::to_string(a.request);
  if (a.kind == alert_kind::ban) key += "\n" + std::to_string(a.ban);  // each ban is its own alert
  if (a.kind == alert_kind::report_unblocked) key += "\n" + std::to_string(a.entry);  // each removal likewise
  return key;
}

std::optional<std::uint64_t> alert_gate::admit(const std::string& key, std::chrono::steady_clock::time_point now,
                                               std::chrono::seconds every) {
  if (auto it = keys_.find(key); it != keys_.end()) {
    auto& e = it->second;
    if (now - e.sent < every) {
      ++e.held;
      return std::nullopt;
    }
    const auto held = std::exchange(e.held, 0);
    e.sent = now;
    return held;
  }
  if (keys_.size() >= max_keys_) {
    // Forget subjects whose time is up (their held counts are lost: the access log has every
    // request). If every one is still within its time, forget them all rather than grow:
    // more alerts then, never fewer.
    std::erase_if(keys_, [&](const auto& kv) { return now - kv.second.sent >= every; });
    if (keys_.size() >= max_keys_) keys_.clear();
  }
  keys_.emplace(key, entry{now, 0});
  return 0;
}

namespace {

// The alert's time for `hallpassctl incident --at`: school-local minutes, with the UTC offset
// only where the wall time happens twice (the autumn's repeated hour), which then names the one
// meant (outside-in audit of time, 2026-12-07, F8: the second 01:30 was recorded as the first).
std::string incident_at(const rules::time_zone& zone, std::chrono::sys_seconds at) {
  const std::string minutes = rules::local_minutes(zone, at).substr(0, 16);
  const auto local = rules::parse_local_time(minutes);
  const auto whole_minute = std::chrono::floor<std::chrono::minutes>(at);
  if (local && zone.to_sys(*local) == whole_minute) return minutes;
  return minutes + rules::utc_offset_text(zone.offset_at(at));
}

constexpr std::size_t max_waiting_alerts = 64;
constexpr std::size_t max_alert_message = 16 * 1024;
constexpr std::size_t max_alert_field = 512;
constexpr auto alert_command_limit = std::chrono::seconds(30);
// The mail limit (alert_sender::raise): 20 at once, then one every 30 s.

// One line of text for the body: no control or invisible characters (terminal_safe shows them
// as escapes), valid UTF-8, at most max_alert_field bytes.
std::string alert_body_text(std::string_view s) {
  std::string t = rules::terminal_safe(s);
  if (t.size() > max_alert_field) {
    t.resize(max_alert_field);
    t = rules::valid_utf8(t);  // the cut may have split a character
    t += "...";
  }
  return t;
}

// A header's text (To, Subject): at most `limit` characters, with control characters and the
// invisible ones that reorder or hide text (rules::is_unsafe_on_a_terminal: a bidi override in
// a DHCP name a pupil chose) dropped. Printable ASCII goes as it is, with "=?" (which starts an
// RFC 2047 encoded word: a device name could make the DSL's mail client show other words)
// written "= ?". Text outside ASCII (a DHCP name "Zoë-laptop", a Welsh user name) goes as
// RFC 2047 encoded words, UTF-8 in base64, folded onto lines of their own: before 2026-12-06
// every byte of it became '?' (outside-in audit). A line with an encoded word is at most 76
// characters (RFC 2047, 2): the first word shares its line with "Subject: ", so it is shorter.
// Base64 is opaque, so nothing in it can start a header.
std::string alert_header_text(std::string_view s, std::size_t limit) {
  const std::string text = rules::valid_utf8(s);
  std::string t;
  std::size_t chars = 0;
  bool ascii = true;
  for (std::size_t i = 0; i < text.size() && chars < limit;) {
    std::uint32_t cp = 0;
    const std::size_t len = std::max<std::size_t>(1, rules::utf8_sequence(text, i, cp));
    if (rules::is_unsafe_on_a_terminal(cp)) {
      i += len;
      continue;
    }
    ascii = ascii && cp < 0x80;
    if (cp == '?' && !t.empty() && t.back() == '=') t += ' ';
    t.append(text, i, len);
    i += len;
    ++chars;
  }
  if (ascii) return t;
  std::string out;
  for (std::size_t i = 0; i < t.size();) {
    // 45 bytes of UTF-8 are 60 of base64: "=?UTF-8?B?" + 60 + "?=" is 72, after the fold's
    // space 73. The first: 39 bytes, 52 of base64, 64 characters after "Subject: " (9), 73.
    std::size_t end = std::min(t.size(), i + (out.empty() ? 39 : 45));
    while (end < t.size() && (static_cast<unsigned char>(t[end]) & 0xc0) == 0x80) --end;  // whole characters
    out += (out.empty() ? "" : "\n ") + std::string("=?UTF-8?B?") + encode_base64(t.data() + i, end - i) + "?=";
    i = end;
  }
  return out;
}

std::string alert_who_text(const alert& a) {
  std::string who = a.user.empty() ? std::string("not signed in") : alert_body_text(a.user);
  if (!a.role.empty()) who += " (" + std::string(a.user.empty() ? "treated as " : "") + alert_body_text(a.role) + ")";
  return who;
}

std::string alert_device_text(const alert& a) {
  std::string d;
  if (!a.device_name.empty()) d += alert_body_text(a.device_name) + ", ";
  if (!a.hardware_address.empty()) d += "hardware address " + alert_body_text(a.hardware_address) + ", ";
  return d + "network address " + alert_body_text(a.client);
}

}  // namespace

std::string mail_address_list(const std::vector<std::string>& to) {
  std::string out;
  for (const auto& t : to) out += (out.empty() ? "" : ", ") + t;
  return out;
}

std::string mail_to_header(const std::vector<std::string>& to) {
  if (to.empty()) return {};
  std::string out = "To: ";
  std::size_t line = out.size();
  for (std::size_t i = 0; i < to.size(); ++i) {
    // Each address was checked at load (daemon_config.cpp): printable ASCII, no specials, at
    // most 254 characters; a long one alone on its line stays under RFC 5322's 998.
    const std::string piece = to[i] + (i + 1 < to.size() ? "," : "");
    if (i > 0) {
      if (line + 1 + piece.size() > 78) {
        out += "\n ";
        line = 1;
      } else {
        out += " ";
        ++line;
      }
    }
    out += piece;
    line += piece.size();
  }
  return out + "\n";
}

namespace {

// A category as the DSL reads it: "self harm", not the policy's key "self_harm" (the block page
// says it so too). The key stays in the access log's alert line.
std::string category_words(std::string_view key) { return rules::category_words(alert_body_text(key)); }

// The first sentence of a category's description: what the category is. The rest is the
// technician's ("UT1 has no list for it: add the provider's list ...; until then it blocks
// nothing" read, in an alert that it had blocked, as nonsense: people-side audit, 2026-12-07, M8).
std::string first_sentence(std::string_view description) {
  const auto end = description.find(". ");
  return alert_body_text(end == std::string_view::npos ? description : description.substr(0, end + 1));
}

}  // namespace

std::string format_alert_message(const alert& a, const std::vector<std::string>& to, std::string_view school_name,
                                 const rules::time_zone& zone) {
  const std::string school = school_name.empty() ? std::string("the school") : alert_body_text(school_name);
  const std::string device_short =
      !a.device_name.empty() ? std::string(a.device_name) : !a.hardware_address.empty() ? a.hardware_address : a.client;
  const std::string person = !a.user.empty() ? a.user : a.role.empty() ? std::string("someone") : "a device of " + a.role;
  std::string subject = "[hallpass] ";
  std::string opening;
  switch (a.kind) {
    case alert_kind::category:
      if (a.request != 0) {
        subject += "Request for a blocked " + category_words(a.category) + " site from " + person + " (" + device_short + ")";
        opening = "someone asked, with the block page's form, for a site in a category the school watches (" +
                  category_words(a.category) + "). What they wrote may need a safeguarding response: " +
                  "`hallpassctl show " + std::to_string(a.request) + "` has it.";
      } else {
        subject += "Blocked " + category_words(a.category) + " site for " + person + " (" + device_short + ")";
        opening = "a site in a category the school watches (" + category_words(a.category) +
                  ") was blocked. Nothing from it was shown.";
      }
      break;
    case alert_kind::circumvention:
      subject += "Attempt to get round the filter by " + person + " (" + device_short + ")";
      opening = "something on this device tried to get round the school's web filter (a VPN, a web proxy, "
                "private DNS, or a connection that hid where it was going). It was blocked.";
      break;
    case alert_kind::report_unblocked:
      subject += "A reported page's block was removed: " + a.url;
      opening = "the block put on a page after a report of inappropriate content (report " +
                std::to_string(a.report) + ") was removed by " + alert_body_text(a.removed_by) +
                ". The page is open again, unless another block covers it (000 7.3: inappropriate content is "
                "reported to the e-safety officer so that the site can be blocked).";
      break;
    case alert_kind::ban:
      subject += "Use limited to supervised sites: " + a.ban_subject;
      opening = "the filter limited " + alert_body_text(a.ban_subject) +
                " to the sites chosen for supervised use, by itself, after repeated attempts to get round it "
                "(000 7.2: a ban from school equipment except under supervision).";
      break;
  }
  std::string m;
  m += mail_to_header(to);
  m += "Subject: " + alert_header_text(subject, 200) + "\n";
  m += "Auto-Submitted: auto-generated\n";
  m += "MIME-Version: 1.0\n";
  m += "Content-Type: text/plain; charset=utf-8\n";
  m += "Content-Transfer-Encoding: 8bit\n";
  m += "\n";
  std::string body;
  body += school + ": " + opening + "\n\n";
  const auto line = [&](std::string_view label, const std::string& value) {
    if (value.empty()) return;
    body += std::string(label) + std::string(label.size() < 10 ? 10 - label.size() : 1, ' ') + value + "\n";
  };
  line("When:", rules::time_in_words(zone, a.at));
  if (a.kind == alert_kind::report_unblocked) {
    line("Page:", alert_body_text(a.url));
    line("Report:", "number " + std::to_string(a.report) + ": " + alert_body_text(a.report_nature) + ", reported by " +
                        alert_body_text(a.reporter));
    line("Removed:", rules::local_entry_rule_id(true, a.entry) + ", by " + alert_body_text(a.removed_by));
    line("Why:", alert_body_text(a.removed_reason));
  } else if (a.kind == alert_kind::ban) {
    line("Ban:", "number " + std::to_string(a.ban) + ", until " + alert_body_text(a.ban_until_text));
    line("Why:", alert_body_text(a.ban_reason));
  } else {
    line("Who:", alert_who_text(a));
    line("Device:", alert_device_text(a));
    line("Site:", alert_body_text(a.url));
    if (a.kind == alert_kind::category || !a.category.empty()) {
      std::string c = category_words(a.category);
      if (!a.category_description.empty()) c += ": " + first_sentence(a.category_description);
      line("Category:", c);
    }
    line("Searched:", a.search.empty() ? std::string() : "\"" + alert_body_text(a.search) + "\"");
    std::string rule = alert_body_text(a.rule);
    if (!a.clause.empty()) rule += " (school policy " + alert_body_text(a.clause) + ")";
    line("Rule:", rule);
    line("Note:", alert_body_text(a.note));
  }
  if (a.held > 0) {
    body += "\nSince the last alert like this one, " + std::to_string(a.held) + " more " +
            (a.held == 1 ? "was" : "were") + " held back (one alert per person or device and kind per "
            "alerts.every); the access log has each of them.\n";
  }
  if (a.kind == alert_kind::report_unblocked) {
    body += "\nThe report is in `hallpassctl reports`, and the removal, with its reason, in `hallpassctl audit`. "
            "To block the page again: hallpassctl block --url ADDRESS --scope url --reason TEXT.\n";
  } else if (a.kind == alert_kind::ban) {
    body += "\nThe ban is in `hallpassctl bans`; the DSL or the headteacher can lift it early with "
            "`hallpassctl unban`. The access log has the attempts that led to it.\n";
  } else {
    body += "\nA block is not proof of intent: a link, an advert or an app can ask for a site by itself. "
            "The access log has everything this device asked for around this time.\n";
  }
  // The incident record (README.md "Incident records"). Only the time goes into the command:
  // a user or device name is the network's text (a DHCP name is whatever a pupil set), never
  // something to paste into a shell. Not for a removed block: no pupil did anything.
  if (a.kind != alert_kind::report_unblocked) body += "\nTo record what is done about it, and how it ends (the incident record): hallpassctl incident "
          "--user NAME (or --device ADDRESS) --what TEXT --at \"" + incident_at(zone, a.at) +
          "\"; then hallpassctl incident ID --action TEXT, and --outcome TEXT.\n";
  body += "-- \nhallpass, the school's web filter. What alerts are sent, and to whom: the alerts section of "
          "its configuration.\n";
  m += body;
  if (m.size() > max_alert_message) {
    m.resize(max_alert_message);
    m = rules::valid_utf8(m);
    m += "\n[cut]\n";
  }
  return m;
}

std::string held_alert_line(const alert& a, const rules::time_zone& zone) {
  std::string what;
  switch (a.kind) {
    case alert_kind::category:
      what = a.request != 0 ? "request " + std::to_string(a.request) + " (hallpassctl show " + std::to_string(a.request) +
                                  ") for a blocked " + category_words(a.category) + " site"
                            : "blocked " + category_words(a.category) + " site";
      break;
    case alert_kind::circumvention: what = "attempt to get round the filter"; break;
    case alert_kind::ban: what = "ban " + std::to_string(a.ban) + " put in force"; break;
    case alert_kind::report_unblocked: what = "report " + std::to_string(a.report) + "'s block removed"; break;
  }
  std::string who = a.kind == alert_kind::ban                ? alert_body_text(a.ban_subject)
                    : a.kind == alert_kind::report_unblocked ? "by " + alert_body_text(a.removed_by)
                                                             : alert_who_text(a);
  if (a.kind != alert_kind::ban && a.kind != alert_kind::report_unblocked) {
    const std::string device = alert_device_text(a);
    if (!device.empty()) who += " (" + device + ")";
  }
  std::string line = rules::short_time_in_words(zone, a.at) + "  " + what + "  " + who;
  if (a.kind != alert_kind::ban) line += "  " + alert_body_text(a.url);
  if (line.size() > 300) {
    line.resize(300);
    line = rules::valid_utf8(line) + "...";
  }
  return line;
}

std::string format_held_alerts_message(const std::vector<std::string>& lines, std::uint64_t count,
                                       const std::vector<std::string>& to, std::string_view school_name) {
  const std::string school = school_name.empty() ? std::string("the school") : alert_body_text(school_name);
  const std::string n = std::to_string(count) + (count == 1 ? " alert" : " alerts");
  std::string m = mail_to_header(to);
  m += "Subject: " + alert_header_text("[hallpass] " + n + " that could not be mailed at once", 200) + "\n";
  m += "Auto-Submitted: auto-generated\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
       "Content-Transfer-Encoding: 8bit\n\n";
  m += school + ": " + n + " could not be mailed when " + (count == 1 ? "it was" : "they were") +
       " raised (more alerts came at once than the mail limit lets through, or the mail command failed). ";
  m += lines.size() < count ? "The first " + std::to_string(lines.size()) + ", a watched category's first:"
                            : std::string(count == 1 ? "It was:" : "They were:");
  m += "\n\n";
  for (const auto& l : lines) m += l + "\n";
  if (lines.size() < count) {
    m += "\n" + std::to_string(count - lines.size()) + " more are in the access log as \"alert\" events.\n";
  }
  m += "\n-- \nhallpass, the school's web filter. What alerts are sent, and to whom: the alerts section of "
       "its configuration.\n";
  if (m.size() > max_alert_message) {
    m.resize(max_alert_message);
    m = rules::valid_utf8(m) + "\n[cut]\n";
  }
  return m;
}

std::string format_alert_line(const alert& a, const rules::time_zone& zone) {
  rules::json_object o;
  o.str("time", rules::iso8601_local(zone, a.at));
  o.str("event", "alert");
  o.str("kind", to_string(a.kind));
  if (a.kind == alert_kind::ban) {
    o.num("ban", a.ban);
  } else if (a.kind == alert_kind::report_unblocked) {
    o.num("report", a.report);
    o.num("entry", a.entry);
    o.str("url", a.url);
    o.str("by", a.removed_by);
  } else {
    o.str("client", a.client);
    if (a.user.empty()) {
      o.null("user");
    } else {
      o.str("user", a.user);
    }
    if (!a.device_name.empty()) o.str("device", a.device_name);
    if (!a.hardware_address.empty()) o.str("mac", a.hardware_address);
    o.str("role", a.role);
    o.str("url", a.url);
    if (!a.category.empty()) o.str("category", a.category);
  }
  o.num("held", static_cast<std::int64_t>(a.held));
  if (a.request != 0) o.num("request", a.request);
  return o.done() + "\n";
}

}  // namespace hallpass

namespace hallpass {

std::string run_alert_command(const std::vector<std::string>& argv, const std::string& input,
                              std::chrono::milliseconds limit, const std::atomic<bool>* stop) {
  using clock = std::chrono::steady_clock;
  if (argv.empty()) return "no command";
  const auto deadline = clock::now() + limit;
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return std::string("cannot make a pipe: ") + std::strerror(errno);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[0], 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);  // nothing of the daemon's leaks into it
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attributes, &none);  // the sender thread blocks every signal
  posix_spawnattr_setsigdefault(&attributes, &all);
  posix_spawnattr_setpgroup(&attributes, 0);  // its own group: a timeout kills what it started too
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  std::vector<char*> args;
  for (const auto& s : argv) args.push_back(const_cast<char*>(s.c_str()));
  args.push_back(nullptr);
  char path_env[] = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";
  char lang_env[] = "LANG=C.UTF-8";
  char* env[] = {path_env, lang_env, nullptr};
  pid_t pid = -1;
  const int spawned = ::posix_spawn(&pid, argv.front().c_str(), &actions, &attributes, args.data(), env);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  ::close(fds[0]);
  if (spawned != 0) {
    ::close(fds[1]);
    return "cannot start " + argv.front() + ": " + std::strerror(spawned);
  }
  const auto remaining_ms = [&] {
    return static_cast<int>(std::max<long long>(
        0, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count()));
  };
  const auto stopping = [&] { return stop && stop->load(std::memory_order_relaxed); };
  // The message, without waiting past the deadline for a command that does not read it.
  ::fcntl(fds[1], F_SETFL, O_NONBLOCK);
  std::size_t sent = 0;
  bool timed_out = false;
  while (sent < input.size()) {
    const ssize_t n = ::write(fds[1], input.data() + sent, input.size() - sent);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      if (remaining_ms() == 0 || stopping()) {
        timed_out = true;
        break;
      }
      pollfd p{fds[1], POLLOUT, 0};
      ::poll(&p, 1, std::min(100, remaining_ms()));
      continue;
    }
    break;  // EPIPE: it closed its input; its exit status says whether it worked
  }
  ::close(fds[1]);
  // Its exit, polled in slices of at most 100 ms so that a stop is seen soon.
  const int pidfd = timed_out ? -1 : static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  int status = 0;
  bool exited = false;
  std::string wait_error;
  while (!timed_out && !exited) {
    if (stopping() || remaining_ms() == 0) {
      timed_out = true;
      break;
    }
    if (pidfd >= 0) {
      pollfd p{pidfd, POLLIN, 0};
      ::poll(&p, 1, std::min(100, remaining_ms()));
    } else {
      ::usleep(20000);
    }
    const pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) exited = true;
    if (w < 0 && errno != EINTR) {
      wait_error = std::string("cannot wait for the command: ") + std::strerror(errno);
      break;
    }
  }
  if (pidfd >= 0) ::close(pidfd);
  if (!wait_error.empty()) {
    ::kill(-pid, SIGKILL);  // whatever it started; the child itself cannot be waited for
    return wait_error;
  }
  if (!exited) {
    ::kill(-pid, SIGKILL);
    ::kill(pid, SIGKILL);
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return stopping() ? "stopped with the proxy"
                      : "did not finish within " + std::to_string(limit.count() / 1000) + " s and was killed";
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return "";
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "was killed by signal " + std::to_string(WTERMSIG(status));
  return "ended abnormally";
}

alert_sender::alert_sender(metrics* m, alert_mail_limit limit) : metrics_(m), limit_(limit), tokens_(limit.burst) {
  // Every signal blocked in the sender (a command that closed its input is EPIPE, not SIGPIPE);
  // run_alert_command gives the child an empty mask and default handlers.
  thread_ = start_signal_free_thread([this] { run(); });
}

alert_sender::~alert_sender() {
  std::size_t dropped = 0;
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
    dropped = queue_.size();
    queue_.clear();
  }
  stopping_.store(true);
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (metrics_ && dropped > 0) metrics_->alert_failures.Increment(static_cast<double>(dropped));
  // The one being mailed when the stop killed its command is lost too (counted by note_failure).
  const std::size_t lost = dropped + killed_at_stop_;
  if (lost > 0) {
    std::cerr << "hallpass: warning: " << lost << (lost == 1 ? " alert was" : " alerts were")
              << " waiting for the alert command or being mailed when the proxy stopped, and "
              << (lost == 1 ? "was" : "were") << " not mailed; each is in the access log as an \"alert\" event"
              << std::endl;
  }
}

namespace {

// Whether a message made for `was` may still go after a reload set `now`: nobody it names was
// taken off the list. Adding a deputy keeps what waits for the DSL (review, 2026-12-06: every
// change of the list dropped it); the new address gets the alerts made from now on.
bool recipients_kept(const std::vector<std::string>& was, const std::vector<std::string>& now) {
  return std::all_of(was.begin(), was.end(), [&](const std::string& a) {
    return std::any_of(now.begin(), now.end(), [&](const std::string& b) { return rules::ascii_iequals(a, b); });
  });
}

}  // namespace

void alert_sender::settings_changed(const daemon_config::alert_settings& settings, std::uint64_t generation) {
  std::size_t dropped = 0;
  std::uint64_t unsaid = 0;  // what the dropped ones would have said of earlier losses
  {
    std::lock_guard lock(mutex_);
    if (generation < generation_) return;  // a newer reload has been told already
    generation_ = generation;
    current_command_ = settings.command;
    current_to_ = settings.to;
    // The lines of alerts not mailed go with the new settings, never to someone the reload took
    // off the list (review, 2026-12-06: a message of their own went to the old address); their
    // count stays, said in the next message.
    if (settings.command.empty() || !recipients_kept(last_to_, settings.to)) unmailed_lines_.clear();
    last_command_ = settings.command;
    last_to_ = settings.to;
    for (auto it = queue_.begin(); it != queue_.end();) {
      if (it->generation >= generation || (it->argv == settings.command && recipients_kept(it->to, settings.to))) {
        ++it;
        continue;
      }
      unsaid += it->unmailed_before;
      it = queue_.erase(it);
      ++dropped;
    }
    unmailed_ += unsaid;
  }
  // Outside-in audit, 2026-12-06: a reload that corrected alerts.to still mailed what waited
  // to the old address.
  for (std::size_t i = 0; i < dropped; ++i) {
    note_failure("a reload changed alerts.command or alerts.to while it waited, so it was not mailed");
  }
}

std::uint64_t alert_sender::not_mailed() const {
  std::lock_guard lock(mutex_);
  return not_mailed_total_;
}

void alert_sender::run() {
  for (;;) {
    job j;
    bool have_job = false;
    std::string warning;
    {
      std::unique_lock lock(mutex_);
      // A job, or a failure to say on stderr once its minute has passed: a failure within the
      // minute of the last line waits for it, never dropped (outside-in audit, 2026-12-06).
      for (;;) {
        if (stop_) return;
        if (!queue_.empty()) break;
        const auto now = std::chrono::steady_clock::now();
        // Alerts that could not be mailed, and no new one to list them in: a message of their
        // own as soon as the mail limit allows one (outside-in audit, 2026-12-06, H1).
        if (!unmailed_lines_.empty() && !last_command_.empty() && now >= digest_not_before_ && take_token(now)) {
          std::vector<std::string> lines;
          for (const auto& l : unmailed_lines_) lines.push_back(l.first);
          j = job{last_command_, last_to_, generation_, {}};
          j.message = format_held_alerts_message(lines, std::max<std::uint64_t>(unmailed_, lines.size()), last_to_,
                                                 last_school_);
          j.unmailed_lines.assign(std::make_move_iterator(unmailed_lines_.begin()),
                                  std::make_move_iterator(unmailed_lines_.end()));  // given back if this fails too
          unmailed_lines_.clear();
          j.unmailed_before = std::exchange(unmailed_, 0);
          j.digest = true;
          have_job = true;
          break;
        }
        auto due = std::chrono::steady_clock::time_point::max();
        if (!pending_warning_.empty()) {
          due = last_report_ + std::chrono::minutes(1);
          if (last_report_ == std::chrono::steady_clock::time_point{} || now >= due) break;
        }
        if (!unmailed_lines_.empty() && !last_command_.empty()) {
          due = std::min(due, std::max(refilled_ + limit_.interval, digest_not_before_));
        }
        if (due == std::chrono::steady_clock::time_point::max()) {
          wake_.wait(lock);
        } else {
          wake_.wait_until(lock, due);
        }
      }
      warning = warning_due(std::chrono::steady_clock::now());
      if (!have_job && !queue_.empty()) {
        j = std::move(queue_.front());
        queue_.pop_front();
        have_job = true;
      }
    }
    // Standard error is written here, never on an event loop.
    if (!warning.empty()) std::cerr << warning << std::endl;
    if (!have_job) continue;
    if (j.unmailed_before > 0 && !j.digest) {
      // The alerts before this one that were not mailed: said in this one, each on a line, so
      // that its "held back" count is never read as "the last alert reached you", and no child's
      // alert reaches the DSL only as a number.
      const auto at = j.message.rfind("\n-- \n");
      std::string note = "\nBefore this alert, " + std::to_string(j.unmailed_before) +
                         (j.unmailed_before == 1 ? " alert" : " alerts") +
                         " could not be mailed (the mail limit, a full queue, or the command failed)";
      if (j.unmailed_lines.empty()) {
        note += "; the access log has each as an \"alert\" event.\n";
      } else {
        note += (j.unmailed_lines.size() < j.unmailed_before
                     ? ". The first " + std::to_string(j.unmailed_lines.size()) +
                           ", a watched category's first (the access log has every one):\n"
                     : std::string(":\n"));
        for (const auto& l : j.unmailed_lines) note += "  " + l.first + "\n";
      }
      j.message.insert(at == std::string::npos ? j.message.size() : at, note);
      if (j.message.size() > max_alert_message + 32 * 1024) {
        j.message.resize(max_alert_message + 32 * 1024);
        j.message = rules::valid_utf8(j.message) + "\n[cut]\n";
      }
    }
    const std::string why = run_alert_command(j.argv, j.message, alert_command_limit, &stopping_);
    if (!why.empty()) {
      {
        std::lock_guard lock(mutex_);
        unmailed_ += j.unmailed_before;  // not said after all: the next message says them
        // Their lines, in their order and with their kind, then this one's, wait for the next
        // message (or one of their own): before any kept meanwhile, which are newer.
        std::deque<std::pair<std::string, bool>> newer;
        newer.swap(unmailed_lines_);
        for (auto& l : j.unmailed_lines) keep_unmailed_line(std::move(l.first), l.second);
        if (!j.digest) keep_unmailed_line(std::move(j.own_line), j.category);
        for (auto& l : newer) keep_unmailed_line(std::move(l.first), l.second);
        digest_not_before_ = std::chrono::steady_clock::now() + std::chrono::minutes(1);
        if (stopping_.load()) ++killed_at_stop_;
        // A digest's alerts were counted when they were not mailed: not again.
        note_failure_locked("the alert command " + j.argv.front() + " " + why, j.digest ? 0 : 1);
      }
      wake_.notify_one();
    }
  }
}

// Under mutex_. The stderr line for the failures since the last one, at most once a minute;
// "" when none is due (the failure stays pending, said when the minute has passed). No
// personal data: the command and what went wrong only.
std::string alert_sender::warning_due(std::chrono::steady_clock::time_point now) {
  if (pending_warning_.empty()) return {};
  if (last_report_ != std::chrono::steady_clock::time_point{} && now - last_report_ < std::chrono::minutes(1)) return {};
  last_report_ = now;
  const auto count = std::exchange(unreported_failures_, 0);
  std::string line = "hallpass: warning: an alert was not mailed: " + std::exchange(pending_warning_, {}) + " (" +
                     std::to_string(count) + (count == 1 ? " alert" : " alerts") +
                     " not mailed since the last such line; each is in the access log as an \"alert\" event, and "
                     "counted in hallpass_alert_failures_total)";
  return line;
}

void alert_sender::keep_unmailed_line(std::string line, bool category) {
  constexpr std::size_t max_lines = 100;
  if (unmailed_lines_.size() >= max_lines) {
    // A watched category's line (self-harm, extremism) takes the place of the oldest other one.
    auto other = std::find_if(unmailed_lines_.begin(), unmailed_lines_.end(), [](const auto& l) { return !l.second; });
    if (!category || other == unmailed_lines_.end()) return;
    unmailed_lines_.erase(other);
  }
  unmailed_lines_.emplace_back(std::move(line), category);
}

bool alert_sender::take_token(std::chrono::steady_clock::time_point now) {
  // The mail limit: at most limit_.burst at once, then one every limit_.interval. Many pupils at a
  // bad site at once, or one device whose address changes with every request, must not bury
  // the DSL's mailbox (or the mail server's quota).
  if (refilled_ == std::chrono::steady_clock::time_point{}) refilled_ = now;
  const auto earned = (now - refilled_) / limit_.interval;
  if (earned > 0) {
    tokens_ = std::min<std::uint64_t>(limit_.burst, tokens_ + static_cast<std::uint64_t>(earned));
    refilled_ += earned * limit_.interval;
  }
  if (tokens_ == 0) return false;
  --tokens_;
  return true;
}

void alert_sender::note_failure(const std::string& why) {
  {
    std::lock_guard lock(mutex_);
    note_failure_locked(why, 1);
  }
  wake_.notify_one();
}

void alert_sender::note_failure_locked(const std::string& why, std::uint64_t count) {
  if (metrics_ && count > 0) metrics_->alert_failures.Increment(static_cast<double>(count));
  unreported_failures_ += count;
  unmailed_ += count;
  not_mailed_total_ += count;
  pending_warning_ = why;
}

void alert_sender::raise(alert a, const daemon_config::alert_settings& settings, std::string_view school_name,
                         const rules::time_zone& zone, access_log& log, std::uint64_t generation) {
  const std::string key = alert_subject_key(a);
  const auto now = std::chrono::steady_clock::now();
  std::optional<std::uint64_t> held;
  {
    std::lock_guard lock(mutex_);
    held = gate_.admit(key, now, settings.every);
  }
  if (!held) {
    if (metrics_) metrics_->alerts_held.Increment();
    return;
  }
  a.held = *held;
  if (metrics_) metrics_->alert_raised(a.kind).Increment();
  if (log.enabled()) log.write(format_alert_line(a, zone));
  if (settings.command.empty()) return;
  // Decided first, under the lock, and the message (about 2 KB of text) made only for one that
  // goes: a flood past the mail limit costs the event loop no formatting. Its place in the
  // queue is held (reserved_) while the message is made outside the lock.
  job j{settings.command, settings.to, generation, {}};
  j.own_line = held_alert_line(a, zone);
  j.category = a.kind == alert_kind::category;
  enum { queued, over_limit, full, superseded } outcome = queued;
  {
    std::lock_guard lock(mutex_);
    if (generation >= generation_) {
      last_command_ = settings.command;
      last_to_ = settings.to;
      last_school_ = std::string(school_name);
    }
    if (generation < generation_ && (settings.command != current_command_ || !recipients_kept(settings.to, current_to_))) {
      outcome = superseded;  // made under a configuration a reload has replaced
    } else if (stop_ || queue_.size() + reserved_ >= max_waiting_alerts) {
      outcome = full;
    } else if (!take_token(now)) {
      outcome = over_limit;  // listed in the next message, or in one of its own (run)
    } else {
      ++reserved_;
      j.unmailed_before = std::exchange(unmailed_, 0);
      j.unmailed_lines.assign(std::make_move_iterator(unmailed_lines_.begin()),
                              std::make_move_iterator(unmailed_lines_.end()));
      unmailed_lines_.clear();
    }
    if (outcome == over_limit || outcome == full) {
      // Its line and its count together, under one lock: a message of its own taken in between
      // would list it and not count it, or count it twice (review, 2026-12-06).
      keep_unmailed_line(j.own_line, j.category);
      note_failure_locked(outcome == over_limit
                              ? "more than " + std::to_string(limit_.burst) + " alerts came within " +
                                    (limit_.interval.count() * static_cast<long long>(limit_.burst) >= 120
                                         ? std::to_string(limit_.interval.count() *
                                                          static_cast<long long>(limit_.burst) / 60) +
                                               " minutes"
                                         : std::to_string(limit_.interval.count() *
                                                          static_cast<long long>(limit_.burst)) +
                                               " s") +
                                    " (the mail limit); each is listed in the next message"
                              : "the queue of alerts waiting for " + settings.command.front() + " is full (" +
                                    std::to_string(max_waiting_alerts) + ")",
                          1);
    }
  }
  if (outcome == queued) {
    j.message = format_alert_message(a, settings.to, school_name, zone);
    bool stopped = false;
    {
      std::lock_guard lock(mutex_);
      --reserved_;
      stopped = stop_;
      if (!stopped) queue_.push_back(std::move(j));
    }
    if (stopped) note_failure("the proxy was stopping");
    else wake_.notify_one();
  } else if (outcome == superseded) {
    note_failure("a reload changed alerts.command or alerts.to before it was sent, so it was not mailed");
  } else {
    wake_.notify_one();  // counted above; the sender thread says it, and sends the lines when it may
  }
}

}  // namespace hallpass
