#include "ctl/admin_connection.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace hallpass::ctl {
namespace {

using clock = std::chrono::steady_clock;

std::string seconds_text(std::chrono::milliseconds timeout) {
  const auto ms = timeout.count();
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + " s";
  return std::to_string(ms / 1000) + "." + std::to_string(ms % 1000 / 100) + " s";
}

std::string connect_hint(int error_number) {
  switch (error_number) {
    case ENOENT:
    case ECONNREFUSED:
      return "The daemon may not be running (hallpass run with admin.socket in the config, or "
             "--admin-socket PATH), or it listens elsewhere: use --socket PATH or HALLPASS_SOCKET.";
    case EACCES:
    case EPERM:
      return "Your user may not be in the admin socket's group (admin.socket_group in the config); "
             "after being added, log in again.";
    default:
      return "The daemon may not be running, or your user may not be in the admin socket's group.";
  }
}

// Milliseconds left before `deadline`, at least 0, for poll().
int remaining_ms(clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
  return left.count() <= 0 ? 0 : static_cast<int>(std::min<long long>(left.count(), 1 << 30));
}

// Waits until `fd` is ready for `events` or the deadline passes. Returns 0, or an errno
// (ETIMEDOUT when the deadline passed).
int wait_for(int fd, short events, clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, remaining_ms(deadline));
    if (n > 0) return 0;  // ready, or an error/hang-up the next read or write reports
    if (n == 0) return ETIMEDOUT;
    if (errno != EINTR) return errno;
  }
}

}  // namespace

std::variant<admin_connection, transport_error> admin_connection::open(
    const std::string& path, std::chrono::milliseconds timeout) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(address.sun_path)) {
    return transport_error{transport_error::kind::connect,
                           "cannot connect to " + path + ": a socket path must be 1 to " +
                               std::to_string(sizeof(address.sun_path) - 1) + " bytes long",
                           ENAMETOOLONG};
  }
  std::memcpy(address.sun_path, path.data(), path.size());

  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    const int e = errno;
    return transport_error{transport_error::kind::connect,
                           "cannot create a socket: " + std::string(std::strerror(e)), e};
  }
  admin_connection connection(fd, path);

  // A Unix-domain connect waits only when the daemon's backlog is full; Linux bounds that
  // wait by the send timeout.
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(timeout);
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(seconds.count());
  tv.tv_usec = static_cast<suseconds_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(timeout - seconds).count());
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);

  int result;
  do {
    result = ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address);
  } while (result != 0 && errno == EINTR);
  if (result != 0) {
    const int e = errno;
    if (e == EAGAIN || e == EINPROGRESS || e == ETIMEDOUT) {
      return transport_error{transport_error::kind::timeout,
                             "cannot connect to " + path + ": the daemon did not accept within " +
                                 seconds_text(timeout) + " (it may be overloaded or stuck)",
                             e};
    }
    return transport_error{
        transport_error::kind::connect,
        "cannot connect to " + path + ": " + std::strerror(e) + "\n  " + connect_hint(e), e};
  }
  // From here on, poll() enforces the deadlines.
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  return connection;
}

admin_connection::admin_connection(admin_connection&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), path_(std::move(other.path_)) {}

admin_connection& admin_connection::operator=(admin_connection&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
  }
  return *this;
}

admin_connection::~admin_connection() {
  if (fd_ >= 0) ::close(fd_);
}

std::variant<std::string, transport_error> admin_connection::exchange(
    std::string_view line, std::chrono::milliseconds timeout, std::size_t max_answer_bytes) {
  const auto deadline = clock::now() + timeout;
  auto timed_out = [&] {
    return transport_error{
        transport_error::kind::timeout,
        "no answer from the daemon on " + path_ + " within " + seconds_text(timeout) +
            " (it may be overloaded or stuck; HALLPASSCTL_TIMEOUT sets the wait)",
        ETIMEDOUT};
  };
  auto failed = [&](const char* doing, int e) {
    return transport_error{transport_error::kind::io,
                           std::string(doing) + " " + path_ + ": " + std::strerror(e), e};
  };

  std::string out(line);
  out += '\n';
  std::size_t sent = 0;
  while (sent < out.size()) {
    const ssize_t n = ::send(fd_, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (int e = wait_for(fd_, POLLOUT, deadline); e != 0) {
        return e == ETIMEDOUT ? timed_out() : failed("cannot write to", e);
      }
      continue;
    }
    if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
      // The daemon may have said why before it closed (its connections are all in use: one
      // "busy" line at accept, then the close): that line is the answer, where it was reported
      // as a connection closed for no reason (admin audit, 2026-12-06).
      const int send_errno = errno;
      std::string said;
      char early[4096];
      for (int i = 0; i < 16; ++i) {
        const ssize_t got = ::recv(fd_, early, sizeof early, MSG_DONTWAIT);
        if (got <= 0) break;
        said.append(early, static_cast<std::size_t>(got));
        if (const auto newline = said.find('\n'); newline != std::string::npos) {
          said.resize(newline);
          return said;
        }
      }
      return transport_error{
          transport_error::kind::closed,
          "the daemon on " + path_ + " closed the connection before the request was sent", send_errno};
    }
    return failed("cannot write to", errno);
  }

  std::string answer;
  char buffer[65536];
  for (;;) {
    const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
    if (n > 0) {
      const std::size_t before = answer.size();
      answer.append(buffer, static_cast<std::size_t>(n));
      if (auto newline = answer.find('\n', before); newline != std::string::npos) {
        answer.resize(newline);  // one request at a time: nothing useful follows
        return answer;
      }
      if (answer.size() > max_answer_bytes) {
        return transport_error{transport_error::kind::too_large,
                               "the daemon's answer is longer than " +
                                   std::to_string(max_answer_bytes / (1024 * 1024)) + " MiB",
                               0};
      }
      continue;
    }
    if (n == 0) {
      return transport_error{
          transport_error::kind::closed,
          answer.empty() ? "the daemon on " + path_ + " closed the connection without answering"
                         : "the daemon on " + path_ + " closed the connection mid-answer",
          0};
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (int e = wait_for(fd_, POLLIN, deadline); e != 0) {
        return e == ETIMEDOUT ? timed_out() : failed("cannot read from", e);
      }
      continue;
    }
    if (errno == ECONNRESET) {
      return transport_error{transport_error::kind::closed,
                             "the daemon on " + path_ + " reset the connection", ECONNRESET};
    }
    return failed("cannot read from", errno);
  }
}

}  // namespace hallpass::ctl
