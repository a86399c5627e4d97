// `hallpass feeds update` for one feed: download (feed_download.hpp), unpack into a new
// directory, verify, then switch STATE_DIR/feeds/NAME/current to it with one rename, keeping
// the version it replaces as previous/. On any failure nothing in force changes.
//
// The layout (feeds/README.md): NAME/v<TIME>-<PID>/ are versions; NAME/current and
// NAME/previous are symbolic links to two of them, each replaced atomically (a new link
// renamed over the old), so a reader (the policy loader) sees the old version or the new one,
// never a half-written one. Blocking; not for an event loop. Two updates of the same feed at
// once are not supported (the systemd timer runs one at a time).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>
#include <utility>
#include <string>
#include <vector>

#include "rules/file_io.hpp"
#include "rules/policy.hpp"
#include "rules/policy_loader.hpp"

namespace hallpass::feeds {

struct update_options {
  std::string feeds_dir;  // STATE_DIR/feeds
  std::int64_t now = 0;   // Unix seconds, recorded in feed.info as fetched_at
  // A list in force of at least shrink_guard_entries that would lose more than half its
  // entries is refused (a truncated or wrong download that still passes min_entries) unless
  // this is set (`hallpass feeds update --allow-shrink`, after a look at the source).
  bool allow_shrink = false;
  // The timeouts and size limit are the feed's own (rules::feed).
  // Whether an entry is a top-level domain or a registry's suffix ("com", "co.uk"): left out
  // of the counts and reported, as the loader leaves it out (rules::load_options::
  // is_registry_suffix). Unset: a name of one label.
  std::function<bool(std::string_view host)> is_registry_suffix;
  // Run as root for a state directory another user owns (the daemon's): what the update
  // writes is given to that user and group, so that the daemon can read it and its own
  // timer's update can replace it (outside-in audit of the feeds, 2026-12-06, H1 and M2).
  std::optional<std::pair<uid_t, gid_t>> owner;
};

// The same bound a reload keeps (rules::shrunk_sources): one number for both guards.
using rules::shrink_guard_entries;

// What an unpacked download may hold: a gzip tarball of a few MB can unpack to terabytes (a
// compression bomb) or to a directory and a file per member (inodes). The limits are wide
// over the real UT1 (largest list adult/domains about 100 MB; about 70-100 categories, so
// at most about 200 domains and urls files; roughly 150 MB unpacked in all, an estimate from
// the 20 MB tarball, most of it the adult list).
struct unpack_limits {
  // One list file: 10 times UT1's largest, and a quarter of what the policy loader reads at
  // most (rules::max_read_bytes), so that an update never installs a file the daemon refuses.
  // A `lines` feed's download is held to it too.
  std::uint64_t list_file_bytes = std::uint64_t{1} << 30;  // 1 GiB
  // Every list file of the archive together: disk space, and what one reload may read.
  std::uint64_t total_bytes = std::uint64_t{2} << 30;  // 2 GiB
  // blacklists/<list>/{domains,urls} files kept: 500 lists with both files.
  std::size_t list_files = 1000;
  // Everything the archive unpacks to, members skipped included: the time unpacking takes
  // (zlib at some 0.5 GB/s: about 8 s). Twice total_bytes.
  std::uint64_t archive_bytes = std::uint64_t{4} << 30;  // 4 GiB
};
static_assert(unpack_limits{}.list_file_bytes < rules::max_read_bytes);

struct list_change {
  std::string list;  // the feed's category: `gambling`, `list`
  std::size_t entries = 0, added = 0, removed = 0;
  // Lines that are no entries (the loader skips them too), and entries left out for naming a
  // whole top-level domain or registry suffix, with the first few of those.
  std::size_t skipped = 0, left_out = 0;
  std::string left_out_examples;  // "com, co.uk"
};

struct update_result {
  bool ok = false;
  bool unchanged = false;            // 304 Not Modified: nothing was written
  std::string error;                 // when !ok: what failed, in words (never the credentials)
  std::vector<list_change> changes;  // each list the policy uses, when updated
  std::string version;               // the new version's directory name, when updated
};

// REQUIRES: f comes from a loaded policy (f.lists names the lists its categories use).
update_result update_feed(const rules::feed& f, const update_options& o);

// `url` without its user information ("https://user:pw@host/x" -> "https://host/x"): what is
// printed and written to feed.info (credentials belong in credentials_file).
std::string url_without_credentials(std::string_view url);

// Unpacks blacklists/<list>/{domains,urls} of a UT1 tarball (gzip or not) at `archive_path`
// into `dir`; everything else (usage files, links, absolute or '..' paths) is skipped. "" or
// what is wrong (a damaged archive, a limit passed: naming the limit). `limits` other than
// the defaults are for tests. REQUIRES: `dir` exists.
std::string unpack_ut1(const std::string& archive_path, const std::string& dir,
                       const unpack_limits& limits = {});

// The lines of a list file that are neither blank nor a comment, and yet not entries.
struct skipped_lines {
  std::size_t count = 0;
  std::string first;  // the first of them, for the error: printable ASCII, at most 60 characters
};

// The entries of a list file as the policy loader keeps them (rules::list_entry: normalised,
// so that two spellings of one entry are the same text), repeats included, in file order:
// lines that are not blank, not a '#' comment, and a domain or URL prefix it accepts. An HTML
// page or garbage served in place of a list has none, and never counts towards a feed's
// minimum.
// The other lines that are not blank or comments are counted into `skipped` when given.
std::vector<std::string> read_entries(const std::string& path, rules::list_file_kind kind,
                                      skipped_lines* skipped = nullptr);

}  // namespace hallpass::feeds
