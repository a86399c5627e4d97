// What the lists gave in the policy the daemon last served, kept across restarts.
//
// A reload refuses a policy in which a list that gave entries in the policy in force gives
// none (rules::emptied_sources: an emptied file, a truncated copy, an editor's half-written
// save). A restart has no policy in force, so the daemon keeps the entries each list source
// gave in `state_dir/list-sources.json`, written after every policy it starts serving, and
// compares a starting policy with it: a list emptied while hallpass was stopped stops it from
// starting, with the same words as a refused reload, instead of opening what the list blocked.
// To empty a list on purpose, take it out of the policy. A list that lost more than half its
// entries (rules::shrunk_sources) stops it too, as it stops a reload (outside-in audit of the
// feeds, 2026-12-06, H3: a feed list cut to 6 of 32,252 entries was refused by a reload and
// served after a restart); a feed list `hallpass feeds update` replaced since is left to that
// command's own guard (the record keeps each feed's fetched_at).
//
// Plain files; no Asio. Called at start and after a reload, never on an event loop.
#pragma once

#include <string>
#include <vector>

#include "rules/policy.hpp"

namespace hallpass {

// The file's path in `state_dir`.
std::string list_record_path(const std::string& state_dir);

// The errors a starting policy gives against the record in `state_dir` (none when there is no
// record yet). A record that cannot be read is a warning in `warnings`, and nothing is compared.
std::vector<std::string> emptied_since_last_run(const std::string& state_dir, const rules::policy& p,
                                                std::vector<std::string>& warnings);

// Writes the record of `p` (a temporary file, fsync, rename). "" or the error; a failure is
// not fatal (the next restart has nothing or an older record to compare with).
std::string write_list_record(const std::string& state_dir, const rules::policy& p);

}  // namespace hallpass
