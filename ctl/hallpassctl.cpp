// hallpassctl: the admin client of the hallpass daemon. It turns the command line into one
// request on the admin socket (docs/admin-protocol.md), waits for the answer with a deadline,
// and prints it for a person or, with --json, for a script.
// Exit codes: 0 done, 1 the daemon refused or failed, 2 bad usage, 3 cannot connect.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "ctl/admin_connection.hpp"
#include "ctl/command_line.hpp"
#include "ctl/human_output.hpp"
#include "ctl/text_table.hpp"
#include "rules/utf8.hpp"

namespace {

namespace json = boost::json;
using namespace hallpass::ctl;

constexpr int exit_ok = 0;
constexpr int exit_refused = 1;
constexpr int exit_usage = 2;
constexpr int exit_cannot_connect = 3;

constexpr std::string_view default_socket = "/run/hallpass/admin.socket";
constexpr std::size_t max_request_line = 64 * 1024;  // the daemon's limit (docs/admin-protocol.md)
constexpr std::size_t max_answer_bytes = 16 * 1024 * 1024;  // audit and list answers can be large
constexpr std::chrono::milliseconds default_timeout{30'000};

std::string socket_path(const command& cmd) {
  if (!cmd.socket_path.empty()) return cmd.socket_path;
  if (const char* env = std::getenv("HALLPASS_SOCKET"); env && *env) return env;
  return std::string(default_socket);
}

// HALLPASSCTL_TIMEOUT in seconds (fractions allowed); false when it is set but not a number.
bool read_timeout(std::chrono::milliseconds& timeout) {
  timeout = default_timeout;
  const char* env = std::getenv("HALLPASSCTL_TIMEOUT");
  if (!env || !*env) return true;
  char* end = nullptr;
  const double seconds = std::strtod(env, &end);
  if (*end != '\0' || !std::isfinite(seconds) || seconds <= 0 || seconds > 86400) return false;
  timeout = std::chrono::milliseconds(static_cast<long long>(std::ceil(seconds * 1000)));
  return true;
}

// A daemon error may run over several lines (reload lists every policy error): the code goes
// on the first line, the rest follow as they are.
void print_refusal(const json::object& answer) {
  std::string error;
  if (auto it = answer.find("error"); it != answer.end() && it->value().is_string()) {
    error = std::string(it->value().get_string());
  }
  if (error.empty()) error = "the daemon refused the request without saying why";
  std::string code;
  if (auto it = answer.find("code"); it != answer.end() && it->value().is_string()) {
    code = std::string(it->value().get_string());
  }
  const std::size_t newline = error.find('\n');
  std::string first = error.substr(0, newline);
  // A first line that introduces the lines below ("...; still serving generation 2:") keeps its
  // colon last: the code goes before it (it read "generation 2: (bad_request)": admin audit,
  // 2026-12-06).
  const bool introduces = newline != std::string::npos && first.ends_with(':');
  if (introduces) first.pop_back();
  std::cerr << "hallpassctl: " << printable(first);
  if (!code.empty()) std::cerr << " (" << printable(code) << ")";
  std::cerr << (introduces ? ":\n" : "\n");
  std::size_t start = newline;
  while (start != std::string::npos) {
    const std::size_t end = error.find('\n', start + 1);
    std::cerr << printable(
                     error.substr(start + 1, end == std::string::npos ? end : end - start - 1))
              << "\n";
    start = end;
  }
  if (auto it = answer.find("errors"); it != answer.end() && it->value().is_array()) {
    for (const auto& e : it->value().get_array()) {
      std::cerr << "  "
                << printable(e.is_string() ? std::string(e.get_string()) : json::serialize(e))
                << "\n";
    }
  }
}

// For a verb that changes something: the command that shows whether it was done ("" for one
// that only reads).
std::string where_to_check(const std::string& verb) {
  static const std::map<std::string, std::string> checks = {
      {"request", "list --pending"}, {"review", "show ID"},  {"approve", "show ID"},    {"deny", "show ID"},
      {"revoke", "show ID"},         {"extend", "show ID"},  {"report", "reports"},     {"block", "blocks"},
      {"unblock", "blocks"},         {"reload", "status"},   {"ban", "bans"},           {"unban", "bans --all"},
      {"incident", "incidents"}};
  const auto it = checks.find(verb);
  return it == checks.end() ? std::string() : it->second;
}

int run(const command& cmd) {
  std::chrono::milliseconds timeout;
  if (!read_timeout(timeout)) {
    std::cerr << "hallpassctl: HALLPASSCTL_TIMEOUT must be a number of seconds such as 30\n";
    return exit_usage;
  }
  const std::string line = json::serialize(json::object{{"verb", cmd.verb}, {"args", cmd.args}});
  if (line.size() + 1 > max_request_line) {
    std::cerr << "hallpassctl " << cmd.verb << ": the request is " << line.size()
              << " bytes, over the admin socket's 64 KiB line limit; shorten the longest text\n";
    return exit_usage;
  }

  const std::string path = socket_path(cmd);
  auto opened = admin_connection::open(path, timeout);
  if (auto* e = std::get_if<transport_error>(&opened)) {
    std::cerr << "hallpassctl: " << e->message << "\n";
    return exit_cannot_connect;
  }
  auto& connection = std::get<admin_connection>(opened);
  auto exchanged = connection.exchange(line, timeout, max_answer_bytes);
  if (auto* e = std::get_if<transport_error>(&exchanged)) {
    std::cerr << "hallpassctl: " << e->message << "\n";
    // A change sent and not answered may still have been made (a slow or locked store answers
    // late): said, so that a retry does not file it twice (admin audit, 2026-12-06).
    auto check = where_to_check(cmd.verb);
    if (const auto* id = cmd.args.if_contains("id"); id && check == "show ID") check = "show " + json::serialize(*id);
    // Only when the request went out whole: one refused before it was sent was not done.
    if (e->message.find("before the request was sent") != std::string::npos) check.clear();
    if (!check.empty()) {
      std::cerr << "hallpassctl: the " << cmd.verb << " may still have been done: check with `hallpassctl " << check
                << "` before trying again\n";
    }
    return exit_refused;
  }
  const std::string& answer_text = std::get<std::string>(exchanged);

  boost::system::error_code ec;
  json::value answer = json::parse(answer_text, ec);
  const json::object* object = ec ? nullptr : answer.if_object();
  const json::value* ok = nullptr;
  if (object) {
    if (auto it = object->find("ok"); it != object->end() && it->value().is_bool())
      ok = &it->value();
  }
  if (!ok) {
    std::cerr << "hallpassctl: the daemon's answer is not a protocol response: "
              << printable(answer_text.substr(0, 200)) << (answer_text.size() > 200 ? "..." : "")
              << "\n";
    return exit_refused;
  }
  if (!ok->get_bool()) {
    print_refusal(*object);
    return exit_refused;
  }

  // A warning comes with a success (approve of an incomplete form): it goes to stderr, so
  // that stdout (and --json) stays the answer's data and the exit status stays 0.
  if (auto it = object->find("warning"); it != object->end() && it->value().is_string()) {
    std::cerr << "hallpassctl: warning: " << printable(std::string(it->value().get_string())) << "\n";
  }
  static const json::object no_data;
  const json::object* data = &no_data;
  if (auto it = object->find("data"); it != object->end() && it->value().is_object()) {
    data = &it->value().get_object();
  }
  if (cmd.json_output) {
    std::cout << json::serialize(*data) << "\n";
  } else {
    const json::value* names = object->if_contains("zone_names");
    std::cout << render_human(cmd, *data, names && names->is_object() ? &names->get_object() : nullptr);
  }
  std::cout.flush();
  return exit_ok;
}

// An incident's words given as "-" (--what -, --action -, --outcome -), and a ban's reason
// (ban and unban --reason -: a safeguarding concern), are read from standard input, so that
// they are not on the command line, where any local user reads them in /proc (ps) and the
// shell keeps them in its history: what happened to a child is the DSL's to know (a ban's
// "-" was stored as the reason itself until 2026-12-06: admin audit). At most one of them; at
// most 64 KiB; one final line end dropped. "" when done, else the error.
std::string read_words_from_stdin(command& cmd) {
  std::vector<const char*> keys;
  if (cmd.verb == "incident") keys = {"what", "action", "outcome"};
  if (cmd.verb == "ban" || cmd.verb == "unban") keys = {"reason"};
  json::string* dash = nullptr;
  std::string which;
  for (const char* key : keys) {
    auto* v = cmd.args.if_contains(key);
    if (!v || !v->is_string() || v->get_string() != "-") continue;
    if (dash) return "only one of --what, --action and --outcome can be read from standard input (-)";
    dash = &v->get_string();
    which = key;
  }
  if (!dash) return {};
  if (isatty(STDIN_FILENO)) {
    std::cerr << "Type the " << which << " (at most 2,000 characters), then Ctrl-D on a line of its own:\n";
  }
  std::string text;
  char buf[4096];
  while (std::cin.read(buf, sizeof buf) || std::cin.gcount() > 0) {
    text.append(buf, static_cast<std::size_t>(std::cin.gcount()));
    if (text.size() > 64 * 1024) return "--" + which + " - : more than 64 KiB on standard input";
  }
  if (text.ends_with("\n")) text.pop_back();
  if (text.ends_with("\r")) text.pop_back();
  if (text.empty()) return "--" + which + " - : nothing on standard input";
  if (!hallpass::rules::is_valid_utf8(text)) return "--" + which + " - : standard input is not UTF-8 text";
  // The daemon takes at most 2,000 characters: said before sending, with the words given back,
  // so that a DSL's account of a conversation is not lost to a refusal after it was typed
  // (people-side audit, 2026-12-07, M11).
  if (const auto n = hallpass::rules::code_points(text); n > 2000) {
    // Given back only to a person at a terminal: a script's input is in its own file, and its
    // output may go to a log, where a safeguarding text does not belong (review, 2026-12-07).
    const bool typed = isatty(STDIN_FILENO);
    if (typed) std::cout << text << "\n";
    return "--" + which + " - : " + std::to_string(n) + " characters, more than the 2,000 a record takes: nothing " +
           "was sent." + (typed ? " The text is above, to shorten" : "") +
           (cmd.verb == "incident" ? std::string(typed ? " (or to split: " : " Split it: ") +
                                         "hallpassctl incident ID --action - adds another entry" + (typed ? ")" : "")
                                   : std::string());
  }
  *dash = text;
  return {};
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    std::cerr << general_usage();
    return exit_usage;
  }
  const parse_result parsed = parse_command_line(args);
  if (const auto* help = std::get_if<help_request>(&parsed)) {
    std::cout << (help->verb.empty() ? general_usage() : verb_usage(help->verb));
    return exit_ok;
  }
  if (std::holds_alternative<version_request>(parsed)) {
    std::cout << "hallpassctl " << HALLPASS_VERSION << "\n";
    return exit_ok;
  }
  if (const auto* error = std::get_if<usage_error>(&parsed)) {
    std::cerr << "hallpassctl" << (error->verb.empty() ? "" : " " + error->verb) << ": "
              << printable(error->message) << "\n"
              << usage_hint(*error);
    return exit_usage;
  }
  command cmd = std::get<command>(parsed);
  if (const auto e = read_words_from_stdin(cmd); !e.empty()) {
    std::cerr << "hallpassctl " << cmd.verb << ": " << printable(e) << "\n";
    return exit_usage;
  }
  return run(cmd);
}
