// What a person sees for each verb's answer: one sentence for a change ("approved request 7:
// www.facebook.com (domain) for pupils until ..."), aligned tables for list, reports and
// audit, labelled lines for show and status. Text that came from the daemon (and so maybe
// from a form a pupil filled in) is made safe for the terminal first.
// Pure: a function of the command and the answer's data. Any thread.
#pragma once

#include <string>

#include <boost/json/object.hpp>

#include "ctl/command_line.hpp"

namespace hallpass::ctl {

// `data` is the `data` object of an {"ok": true} answer to `request`. Tolerates missing or
// oddly typed fields (it prints what is there). The result ends with '\n'.
// `zone_names` is the answer's (beside `data`): the school zone's name for each offset
// ({"+00:00": "GMT", "+01:00": "BST"}), used for every time shown; null for a daemon that
// sends none.
std::string render_human(const command& request, const boost::json::object& data,
                         const boost::json::object* zone_names = nullptr);

// A daemon's time "2026-11-23T10:58:00+00:00" (school-local, with its offset) as a person reads
// it: "Mon 23 Nov 2026 10:58 GMT", the offset named by `zone_names` (an offset it does not
// name: UTC+HH:MM; without names, +00:00 is GMT and +01:00 BST); any other text as it is. Every
// human table and line shows times so; --json keeps the daemon's.
std::string human_time(std::string_view iso, const boost::json::object* zone_names = nullptr);

// Seconds as "2d 3h 4m 5s" (the largest units only as needed).
std::string duration_text(long long seconds);

}  // namespace hallpass::ctl
