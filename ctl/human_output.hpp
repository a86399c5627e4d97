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
std::string render_human(const command& request, const boost::json::object& data);

// Seconds as "2d 3h 4m 5s" (the largest units only as needed).
std::string duration_text(long long seconds);

}  // namespace hallpass::ctl
