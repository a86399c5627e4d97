// Whole-file reads and durable replacements, shared by the policy loader, the daemon's lists
// record (proxy/list_record.hpp) and the feeds' load history (feeds/feed_history.hpp).
//
// Both are safe where someone else owns the directory: the daemon starts as root and reads and
// writes in its service user's state directory before (or after) dropping privileges, so a
// symbolic link planted there must not make root read or write another file, and a FIFO must
// not hang the start.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace hallpass::rules {

// The largest file read_regular_file reads unless told otherwise: the policy loader's limit for
// the policy and for each list file. `hallpass feeds update` installs no list file larger than
// its own, smaller limit (feeds/feed_update.hpp), so the daemon never refuses what it installed.
constexpr std::size_t max_read_bytes = std::size_t{4} << 30;

// Reads a whole regular file (never a FIFO, a device or a directory) of at most `max_bytes`.
// Nothing else is ever opened for reading: the path is opened with O_PATH and checked first,
// then read through that descriptor. With `follow_links` false, a symbolic link as the last
// component is refused (O_NOFOLLOW: no window between a check and the open). On failure *error says why in a few words, without
// the path ("is a directory", "does not exist", "is a symbolic link", "cannot be read: ..."):
// callers put the path where their message needs it.
std::optional<std::string> read_regular_file(const std::string& path, std::string* error, bool follow_links = true,
                                             std::size_t max_bytes = max_read_bytes);

// Replaces `path` with `data`: a new PATH.tmp (whatever stood there removed first; created
// O_EXCL|O_NOFOLLOW with `mode`), written, fsynced, renamed over `path`. A power cut leaves the
// old file or the new one, whole. "" or the error (with the path).
std::string replace_file_durably(const std::string& path, std::string_view data, mode_t mode);

}  // namespace hallpass::rules
