// The feeds' load history: STATE_DIR/feeds/history, one JSON object per line, appended by
// each successful `hallpass feeds update` ("updated") and by the daemon each time it starts
// serving a feed version it was not serving before ("loaded"). It is what `hallpass feeds
// status` reads to say when each list was last loaded, and what `hallpass feeds history`
// prints for the weekly figures (the DfE filtering standard asks when lists were last
// updated). Bounded: the newest `history_lines` lines are kept.
//
// A line (feeds/README.md, "Load history"):
//   {"time":1764693000,"event":"updated","feed":"ut1","version":"v1764693000-4242",
//    "lists":[{"list":"gambling","entries":2761,"added":12,"removed":3}]}
// "loaded" lines carry no added/removed (the daemon does not diff lists).
//
// Blocking file I/O: call from the command line, the daemon's signal thread or its admin
// thread, never from a proxy event loop. Writers in different processes are serialised by an
// flock on STATE_DIR/feeds/history.lock; the file is replaced whole (a temporary file renamed
// over it), so a reader sees the old history or the new one, never half a line.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "rules/policy.hpp"

namespace hallpass::feeds {

inline constexpr std::size_t history_lines = 400;

struct history_list {
  std::string list;
  std::size_t entries = 0;
  std::optional<std::size_t> added, removed;  // "updated" lines only
};

struct history_entry {
  std::int64_t time = 0;  // Unix seconds
  std::string event;      // "updated" or "loaded"
  std::string feed, version;
  std::vector<history_list> lists;
};

// One line of JSON, without the newline.
std::string to_json(const history_entry& e);
// The entry a line holds, or nothing for a line that is not one (skipped by readers).
std::optional<history_entry> parse_history_line(const std::string& line);

// Appends entries to FEEDS_DIR/history, keeping the newest history_lines lines. Returns an
// error in words, or "" on success.
std::string append_history(const std::string& feeds_dir, const std::vector<history_entry>& entries);

struct history_read {
  std::vector<history_entry> entries;  // oldest first
  std::size_t unreadable = 0;          // lines that were not history entries
  std::string error;                   // the file exists but cannot be read
};
history_read read_history(const std::string& feeds_dir);

// "loaded" entries for the feeds of `after` whose version (the directory its `current`
// resolved to) differs from the one in `before` (null: the daemon's first load).
std::vector<history_entry> loads_between(const rules::policy* before, const rules::policy& after,
                                         std::int64_t now);

}  // namespace hallpass::feeds
