// The hallpassctl command line: turns the arguments into one admin-protocol request
// ({"verb": ..., "args": {...}}, docs/admin-protocol.md) or a usage error. It never touches
// the socket or the environment, so every check the client can make (required and exclusive
// flags, durations, local times, ids) is made before a connection is opened.
// Pure functions over their arguments; safe to call from any thread.
#pragma once

#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <boost/json/object.hpp>

namespace hallpass::ctl {

// A request ready to send.
struct command {
  std::string verb;
  boost::json::object args;  // exactly the protocol's args, in a stable key order
  std::string socket_path;   // --socket; empty when not given (the caller picks the default)
  bool json_output = false;  // --json
};

struct help_request {
  std::string verb;  // empty: the general help
};

struct version_request {};

struct usage_error {
  std::string verb;  // empty when the verb itself is missing or unknown
  std::string message;
};

using parse_result = std::variant<command, help_request, version_request, usage_error>;

// `args` excludes the program name.
parse_result parse_command_line(const std::vector<std::string>& args);

// The whole help text.
std::string general_usage();

// One verb's synopsis and description; empty for an unknown verb.
std::string verb_usage(std::string_view verb);

// What to print after a usage error's message: the verb's synopsis (or the verb list) and
// where to find more.
std::string usage_hint(const usage_error& error);

// "30s", "45m", "2h", "1d": a whole number above zero and one unit.
bool is_duration(std::string_view text);

// School-local "YYYY-MM-DD HH:MM" naming a real calendar date and time of day.
bool is_local_time(std::string_view text);

}  // namespace hallpass::ctl
