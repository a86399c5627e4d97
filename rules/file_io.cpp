#include "rules/file_io.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace hallpass::rules {

std::optional<std::string> read_regular_file(const std::string& path, std::string* error, bool follow_links,
                                             std::size_t max_bytes) {
  // The path is first opened with O_PATH, which opens nothing for reading (a device's or a
  // FIFO's open has effects: a watchdog starts, a tape rewinds, a FIFO waits), and checked with
  // fstat; only a regular file is then opened for reading, through that same descriptor
  // (/proc/self/fd), so nothing can be swapped in between. With O_NOFOLLOW, O_PATH opens a
  // link itself, which fstat names.
  const int at = ::open(path.c_str(), O_PATH | O_CLOEXEC | (follow_links ? 0 : O_NOFOLLOW));
  if (at < 0) {
    const int e = errno;
    *error = e == ENOENT ? "does not exist" : std::string("cannot be read: ") + std::strerror(e);
    return std::nullopt;
  }
  struct stat first {};
  if (::fstat(at, &first) != 0) {
    *error = std::string("cannot be read: ") + std::strerror(errno);
    ::close(at);
    return std::nullopt;
  }
  if (S_ISLNK(first.st_mode) || S_ISDIR(first.st_mode) || !S_ISREG(first.st_mode)) {
    *error = S_ISLNK(first.st_mode) ? "is a symbolic link" : S_ISDIR(first.st_mode) ? "is a directory"
                                                                                   : "is not a regular file";
    ::close(at);
    return std::nullopt;
  }
  const std::string through = "/proc/self/fd/" + std::to_string(at);
  int fd = ::open(through.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0 && errno == ENOENT) {
    // No /proc (a bare chroot): the path itself, checked to be the same file below.
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | (follow_links ? 0 : O_NOFOLLOW));
  }
  const int open_error = errno;
  ::close(at);
  if (fd < 0) {
    *error = std::string("cannot be read: ") + std::strerror(open_error);
    return std::nullopt;
  }
  struct stat st {};
  std::string text;
  if (::fstat(fd, &st) != 0) {
    *error = std::string("cannot be read: ") + std::strerror(errno);
  } else if (st.st_dev != first.st_dev || st.st_ino != first.st_ino) {
    *error = "changed while it was opened";
  } else if (S_ISDIR(st.st_mode)) {
    *error = "is a directory";
  } else if (!S_ISREG(st.st_mode)) {
    *error = "is not a regular file";
  } else if (static_cast<std::size_t>(st.st_size) > max_bytes) {
    *error = "is larger than " + std::to_string(max_bytes) + " bytes";
  } else {
    // Read to the end, not st_size: a file that grows while it is read is read whole.
    char buf[65536];
    for (;;) {
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        // A read error (EIO) is an error: an unreadable file must not look empty.
        *error = std::string("cannot be read: ") + std::strerror(errno);
        break;
      }
      if (n == 0) {
        ::close(fd);
        return text;
      }
      text.append(buf, static_cast<std::size_t>(n));
      if (text.size() > max_bytes) {
        *error = "is larger than " + std::to_string(max_bytes) + " bytes";
        break;
      }
    }
  }
  ::close(fd);
  return std::nullopt;
}

std::string replace_file_durably(const std::string& path, std::string_view data, mode_t mode) {
  const std::string tmp = path + ".tmp";
  ::unlink(tmp.c_str());  // a new file, never one that is there (nor what a link there names)
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0) return "cannot create " + tmp + ": " + std::strerror(errno);
  std::string error;
  std::size_t done = 0;
  while (error.empty() && done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      error = "cannot write " + tmp + ": " + std::strerror(n < 0 ? errno : ENOSPC) + " (disk full?)";
    else
      done += static_cast<std::size_t>(n);
  }
  // Durable before it replaces the old file: a power cut leaves one or the other.
  if (error.empty() && ::fsync(fd) != 0) error = "cannot sync " + tmp + ": " + std::strerror(errno);
  if (::close(fd) != 0 && error.empty()) error = "cannot write " + tmp + ": " + std::strerror(errno);
  if (error.empty() && ::rename(tmp.c_str(), path.c_str()) != 0)
    error = "cannot replace " + path + ": " + std::strerror(errno);
  if (!error.empty()) ::unlink(tmp.c_str());
  return error;
}

}  // namespace hallpass::rules
