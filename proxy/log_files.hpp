// The access log's files as logrotate leaves them (deploy/hallpass.logrotate: PATH, PATH.1,
// PATH.2.gz, ...), found and read line by line for `hallpass safeguarding-report`.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace hallpass {

// The access log at `path` and logrotate's rotations of it beside it (PATH.1, PATH.2.gz, ...),
// oldest first; files last written before `from` are left out (they hold nothing newer).
std::vector<std::string> access_log_files(const std::string& path, std::chrono::sys_seconds from);

// Calls `line` for each line of `file` (gzip or plain: zlib reads both), each without its
// newline; a line longer than 1 MiB is passed as "" (the builder counts it unreadable). Returns
// "" or why the file could not be read (a truncated gzip file: its lines before the damage are
// read, and the error says so).
std::string read_log_lines(const std::string& file, const std::function<void(std::string_view)>& line);

}  // namespace hallpass
