// One connection to the daemon's admin socket (docs/admin-protocol.md): a POSIX Unix-domain
// stream socket speaking one JSON object per line. Every step has a deadline, so hallpassctl
// never hangs on a daemon that is stuck or on a socket that is not answering.
// Not thread-safe. Owns its file descriptor and closes it on destruction. Errors come back as
// values; nothing here throws.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <variant>

namespace hallpass::ctl {

struct transport_error {
  enum class kind {
    connect,    // could not connect (the daemon is not running, no permission, bad path)
    timeout,    // no connection or no complete answer before the deadline
    io,         // a read or write failed
    closed,     // the daemon closed the connection before a complete line
    too_large,  // the answer is longer than the limit
  };
  kind what;
  std::string message;   // plain words, with the path and the errno text where there is one
  int error_number = 0;  // errno, or 0
};

class admin_connection {
 public:
  // Connects to the socket at `path`, waiting at most `timeout` for the daemon to accept.
  static std::variant<admin_connection, transport_error> open(const std::string& path,
                                                              std::chrono::milliseconds timeout);

  admin_connection(admin_connection&& other) noexcept;
  admin_connection& operator=(admin_connection&& other) noexcept;
  admin_connection(const admin_connection&) = delete;
  admin_connection& operator=(const admin_connection&) = delete;
  ~admin_connection();

  // Sends `line` and a newline, then reads the answer up to its newline, all within `timeout`.
  // Returns the answer without the newline.
  // REQUIRES: `line` contains no newline.
  std::variant<std::string, transport_error> exchange(std::string_view line,
                                                      std::chrono::milliseconds timeout,
                                                      std::size_t max_answer_bytes);

 private:
  admin_connection(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}

  int fd_ = -1;
  std::string path_;
};

}  // namespace hallpass::ctl
