// One request line of the admin socket protocol (docs/admin-protocol.md), parsed and checked
// before the caller's roles are compared and anything is looked up in the store: a JSON
// object with a string "verb" naming a known verb, and an optional object "args" whose names
// are all arguments that verb takes; nothing else beside them.
//
// Pure: no I/O, no Asio, no store. Functions of their arguments; any thread. Split out of
// admin_server.cpp so that tests/fuzz/fuzz_admin_line.cpp can reach it without a socket.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>

#include <boost/json/object.hpp>

namespace hallpass {

struct admin_request {
  std::string verb;
  boost::json::object args;  // empty when the line has none
  // The admin roles that may use the verb (headteacher, technician, dsl); never null.
  const std::set<std::string>* allowed_roles = nullptr;
  // For a verb that changes the store, what still holds when the change cannot be saved ("the
  // page is NOT blocked"); nullptr for a verb that only reads. The verb table is the one place
  // that says which verbs write.
  const char* unsaved = nullptr;
  // Why an argument is refused, "" when none is: kept for after the role check, so that a caller
  // who may not use the verb is refused (and audited) for that first, whatever its arguments
  // (outside-in audit of the admin socket, 2026-12-07, L1: a bad argument hid the attempt).
  std::string bad_argument;
};

// Which admin roles may use `verb`; nullptr for an unknown verb. The table is
// docs/admin-protocol.md "Authorisation".
const std::set<std::string>* admin_verb_roles(std::string_view verb);

// Parses one line, without its '\n'. On failure returns nullopt and sets `error` to the
// message the daemon answers with code bad_request. A number too large for a double (1e999)
// is refused: it would come out as infinity, which no JSON reader can read back. So is an
// argument the verb does not take, and one whose value is not of its kind, naming it: text
// that is not a string or has a control character (free text may have tabs and line ends; a
// URL, a name, a time or a keyword none), a flag that is not true or false, a list of roles
// that is not a list of such names. A null value is an argument not given. Ids are the verb's
// to check. So a verb never takes a bad optional argument for an absent one.
std::optional<admin_request> parse_admin_line(std::string_view line, std::string& error);

// The longest text argument, in bytes.
inline constexpr std::size_t max_admin_text_bytes = 8192;

// Why `value`, the text of argument `key`, is refused ("'reason' must not contain control
// characters"), or "" when it is good: longer than max_admin_text_bytes, or with a control
// character (NUL, ESC, DEL, ...; tab, CR and LF are allowed unless `one_line`).
std::string admin_text_error(std::string_view key, std::string_view value, bool one_line);

// A user name given as argument `key` (request, ban and unban's 'user'), as it is stored and
// compared: outer blanks dropped, as approve's group:NAME and the directory (caseIgnoreMatch)
// treat names, so "ava.b " bans ava.b. nullopt with `error` naming the key when nothing is
// left ("   ", ""), when it is longer than 256 bytes or has a control character.
std::optional<std::string> admin_user_name(std::string_view key, std::string_view text, std::string& error);

// Whom a ban or an incident is about: 'user' (admin_user_name) or 'device' (one device: an
// address, or a DHCP name or hardware address, in the canonical form rules/device_ref.hpp
// compares), as (device, subject); (false, "") when neither is given; nullopt with `error`
// when both are, or one is bad.
std::optional<std::pair<bool, std::string>> admin_subject(const boost::json::object& args, std::string& error);

// The verbs' readers of an argument parse_admin_line has checked: its text, or nullopt when it
// is absent or null (a bad one never reaches a verb, so nullopt is never a bad value read as
// absent: admin audit, 2026-12-05, F4).
std::optional<std::string> admin_text_arg(const boost::json::object& args, std::string_view key);
// A whole number above 0 given as a JSON number or a string of digits only (no sign, no
// blanks); nullopt otherwise. Ids, 'confirm', 'before' and 'limit'.
std::optional<std::int64_t> admin_positive_number(const boost::json::value& v);
// The same of argument `key`; nullopt when it is absent too.
std::optional<std::int64_t> admin_positive_number(const boost::json::object& args, std::string_view key);

}  // namespace hallpass
