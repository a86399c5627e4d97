#include "proxy/access_log.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <limits>
#include <system_error>
#include <utility>

#include "proxy/metrics.hpp"
#include "proxy/signal_free_thread.hpp"

namespace hallpass {

namespace {

constexpr std::int64_t retry_open_ms = 1000;
// The writer writes what has queued this often, or as soon as wake_lines lines wait. A line
// reaches the file at most this late.
constexpr std::chrono::milliseconds flush_interval{50};
constexpr std::size_t wake_lines = 256;
constexpr std::int64_t report_every_ms = 10000;
constexpr std::size_t max_write_bytes = 256 * 1024;  // one ::write() per this much of a batch
constexpr std::int64_t long_ago = std::numeric_limits<std::int64_t>::min() / 2;

std::int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

void to_stderr(const std::string& message) {
  std::size_t off = 0;
  while (off < message.size()) {
    const ssize_t n = ::write(STDERR_FILENO, message.data() + off, message.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // nowhere left to complain to
    off += static_cast<std::size_t>(n);
  }
}

}  // namespace

access_log::access_log(std::string path, std::size_t queue_lines, metrics* m)
    : path_(std::move(path)),
      enabled_(!path_.empty() && path_ != "off"),
      to_stdout_(path_ == "-"),
      capacity_(queue_lines == 0 ? 1 : queue_lines),
      metrics_(m),
      last_open_attempt_ms_(long_ago),
      last_report_ms_(long_ago) {
  if (!enabled_) return;
  open_file();
  report_if_due(false);
  // Every signal blocked in the writer (see the header).
  try {
    writer_ = start_signal_free_thread([this] { run(); });
  } catch (...) {
    close_file();
    throw;
  }
}

bool access_log::finish(std::chrono::milliseconds limit) {
  if (!writer_.joinable()) return true;
  std::unique_lock lock(mutex_);
  stop_ = true;
  wake_.notify_one();
  return ended_.wait_for(lock, limit, [this] { return writer_done_; });
}

access_log::~access_log() {
  if (!writer_.joinable()) return;
  finish(std::chrono::milliseconds::zero());  // asks it to stop; the join waits
  writer_.join();
  close_file();
}

void access_log::write(std::string line) noexcept {
  if (!enabled_) return;
  bool was_full_batch = false;
  bool accepted = false;
  {
    std::lock_guard lock(mutex_);
    if (pending_.size() < capacity_ && pending_bytes_ + line.size() <= max_queued_bytes) {
      try {
        const std::size_t bytes = line.size();
        pending_.push_back(std::move(line));
        pending_bytes_ += bytes;
        was_full_batch = pending_.size() == wake_lines;
        ++queued_;
        accepted = true;
      } catch (...) {  // out of memory: lose the line, not the process
      }
    }
  }
  if (accepted) {
    // The writer wakes by itself every flush_interval; it is woken early only when a batch is
    // large. Waking it for every line would cost a futex call and a cross-core wake-up (an
    // IPI, expensive in a VM) per request: measured at about 10 % of the proxy's CPU.
    if (was_full_batch) wake_.notify_one();
    return;
  }
  dropped_full_.fetch_add(1, std::memory_order_relaxed);
  if (metrics_) {
    metrics_->log_dropped.Increment();
    // The writer samples the depth when it wakes, and a writer stuck in a write never does:
    // a full queue says so itself.
    metrics_->log_queue_depth.Set(static_cast<double>(queue_depth()));
  }
}

void access_log::reopen() noexcept {
  if (!enabled_ || to_stdout_) return;
  {
    std::lock_guard lock(mutex_);
    reopen_requested_ = true;
  }
  wake_.notify_one();
}

std::size_t access_log::queue_depth() const {
  std::lock_guard lock(mutex_);
  return pending_.size();
}

std::uint64_t access_log::dropped() const {
  return dropped_full_.load(std::memory_order_relaxed) +
         dropped_io_.load(std::memory_order_relaxed);
}

std::uint64_t access_log::write_failures() const {
  return write_failures_.load(std::memory_order_relaxed);
}

void access_log::flush_for_tests() {
  if (!enabled_) return;
  std::unique_lock lock(mutex_);
  const std::uint64_t target = queued_;
  flush_requested_ = true;
  wake_.notify_one();
  written_.wait(lock, [&] { return done_ >= target; });
}

void access_log::run() {
  using namespace std::chrono_literals;
  std::vector<std::string> batch;
  for (;;) {
    bool reopen = false;
    bool stop = false;
    std::size_t depth = 0;
    std::uint64_t taken = 0;
    {
      std::unique_lock lock(mutex_);
      // Wakes every flush_interval to write what has queued (and to retry a failed file and
      // to report), or early for a large batch, a reopen or the stop.
      wake_.wait_for(lock, flush_interval, [&] { return stop_ || reopen_requested_ || flush_requested_ || pending_.size() >= wake_lines; });
      flush_requested_ = false;
      depth = pending_.size();
      batch.swap(pending_);  // batch was empty; pending_ keeps its capacity for next time
      pending_bytes_ = 0;
      taken = queued_;
      reopen = std::exchange(reopen_requested_, false);
      stop = stop_;
    }
    if (metrics_) metrics_->log_queue_depth.Set(static_cast<double>(depth));

    if (reopen) {
      close_file();
      open_file();
    } else if (fd_ < 0 && now_ms() - last_open_attempt_ms_ >= retry_open_ms) {
      open_file();
    }
    if (!batch.empty()) write_batch(batch);
    batch.clear();
    report_if_due(stop);

    {
      std::lock_guard lock(mutex_);
      done_ = taken;
    }
    written_.notify_all();
    // After stop_ no one may call write() (see the header), so this batch was the last.
    if (stop) {
      {
        std::lock_guard lock(mutex_);
        writer_done_ = true;
      }
      ended_.notify_all();
      return;
    }
  }
}

void access_log::write_batch(std::vector<std::string>& batch) {
  std::size_t next = 0;
  while (next < batch.size()) {
    if (fd_ < 0) {
      lose(batch.size() - next);
      return;
    }
    buffer_.clear();
    line_ends_.clear();
    const std::size_t first = next;
    while (next < batch.size() &&
           (buffer_.empty() || buffer_.size() + batch[next].size() < max_write_bytes)) {
      const std::string& line = batch[next++];
      buffer_ += line;
      if (line.empty() || line.back() != '\n') buffer_ += '\n';
      line_ends_.push_back(buffer_.size());
    }

    std::size_t off = 0;
    int err = 0;
    while (off < buffer_.size()) {
      const ssize_t n = ::write(fd_, buffer_.data() + off, buffer_.size() - off);
      if (n > 0) {
        off += static_cast<std::size_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else {
        err = n < 0 ? errno : EIO;  // 0 bytes written for a non-empty buffer: treat as an I/O error
        break;
      }
    }
    if (off == buffer_.size()) {
      mid_line_ = false;
      failing_ = false;
      continue;
    }

    // Lines in this chunk that were not completely written, and every line after it.
    std::size_t whole = 0;
    while (whole < line_ends_.size() && line_ends_[whole] <= off) ++whole;
    const std::size_t lost = (next - first - whole) + (batch.size() - next);
    mid_line_ = off > 0 && buffer_[off - 1] != '\n';
    if (mid_line_ && !to_stdout_) {
      // Take the half line back out, so the file holds whole JSON lines only (a reader that
      // parses each line must not meet a fragment): it is the last `fragment` bytes of the
      // file. Truncating needs no space; if it fails, the reopen ends the fragment instead.
      const std::size_t fragment = off - (whole > 0 ? line_ends_[whole - 1] : 0);
      struct stat st {};
      if (::fstat(fd_, &st) == 0 && S_ISREG(st.st_mode) && static_cast<std::size_t>(st.st_size) >= fragment &&
          ::ftruncate(fd_, st.st_size - static_cast<off_t>(fragment)) == 0) {
        mid_line_ = false;
      }
    }
    fail("write", err, lost);
    close_file();  // reopened after retry_open_ms
    return;
  }
}

bool access_log::open_file() {
  last_open_attempt_ms_ = now_ms();
  if (to_stdout_) {
    fd_ = STDOUT_FILENO;
  } else {
    int fd;
    do {
      // Never through a symbolic link: the log's directory is the daemon user's, and the first
      // open may run as root (run --user drops privileges later; audit19 D1).
      // O_NONBLOCK: a FIFO at the path with nothing reading it fails at once (ENXIO) instead of
      // hanging the start until something reads it (outside-in audit H, 2026-12-05). One with a
      // reader (a log collector's pipe) is written as before, blocking: the flag goes below.
      fd = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0640);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
      const int err = errno;
      fail(err == ENXIO ? "open (a FIFO that nothing reads)" : "open", err, 0);
      return false;
    }
    if (const int flags = ::fcntl(fd, F_GETFL); flags >= 0) ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    struct stat st {};
    if (::fstat(fd, &st) != 0) st.st_mode = 0;
    // An existing log keeps no mode wider than the one hallpass makes: it is personal data about
    // children, and a file other users may read or anyone may write (made by hand, or left by
    // a copy) was appended to as it was (outside-in audit J, 2026-12-05). Group write goes too:
    // the log's group (adm) reads it, never forges lines in it.
    if (S_ISREG(st.st_mode) && (st.st_mode & (S_IWGRP | S_IRWXO)) != 0) {
      if (::fchmod(fd, st.st_mode & ~(S_IWGRP | S_IRWXO) & 07777) == 0) {
        std::cerr << "hallpass: " << path_ << " could be read or written by other users; it no longer can\n";
      } else {
        // Not written to (privacy audit, 2026-12-06: after run --user dropped privileges, a
        // root-made 0666 file found at a reopen was warned about and then written, personal
        // data every user could read). Retried every second like any failed open, so the log
        // goes on once the technician has made it 0640; the lines until then are counted lost.
        const int err = errno;
        ::close(fd);
        fail("open (other users may read or write the file, and its mode cannot be changed: make it 0640 "
             "hallpass:adm)", err, 0);
        return false;
      }
    }
    fd_ = fd;
  }
  if (mid_line_) {
    // End the half line a failed write left, unless this is a new, empty file.
    struct stat st {};
    if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > 0) {
      ssize_t n;
      do {
        n = ::write(fd_, "\n", 1);
      } while (n < 0 && errno == EINTR);
    }
    mid_line_ = false;
  }
  return true;
}

void access_log::close_file() {
  if (fd_ >= 0 && !to_stdout_)
    ::close(fd_);  // EINTR on close: the descriptor is gone anyway on Linux
  fd_ = -1;
}

void access_log::fail(const char* what, int err, std::size_t lines_lost) {
  write_failures_.fetch_add(1, std::memory_order_relaxed);
  if (metrics_) metrics_->log_write_failures.Increment();
  lose(lines_lost);
  failing_ = true;
  last_errno_ = err;
  last_what_ = what;
  report_if_due(false);
}

void access_log::lose(std::size_t lines) {
  if (lines == 0) return;
  dropped_io_.fetch_add(lines, std::memory_order_relaxed);
  if (metrics_) metrics_->log_dropped.Increment(static_cast<double>(lines));
}

void access_log::report_if_due(bool force) {
  const std::int64_t now = now_ms();
  if (!force && now - last_report_ms_ < report_every_ms) return;
  const std::uint64_t failures = write_failures_.load(std::memory_order_relaxed);
  const std::uint64_t io = dropped_io_.load(std::memory_order_relaxed);
  const std::uint64_t full = dropped_full_.load(std::memory_order_relaxed);

  std::string message;
  const std::string name = to_stdout_ ? std::string("(standard output)") : path_;
  if (failures != reported_failures_ || io != reported_io_) {
    message += "hallpass: access log " + name + ": " + last_what_ +
               " failed: " + std::error_code(last_errno_, std::generic_category()).message() +
               " (" + std::to_string(failures - reported_failures_) + " failures, " +
               std::to_string(io - reported_io_) + " lines lost since the last report); " +
               (failing_ ? "retrying every second\n" : "writing again\n");
    announced_failing_ = failing_;
  } else if (announced_failing_ && !failing_) {
    message += "hallpass: access log " + name + ": writing again\n";
    announced_failing_ = false;
  }
  if (full != reported_full_) {
    message += "hallpass: access log " + name + ": queue full (" + std::to_string(capacity_) +
               " lines), " + std::to_string(full - reported_full_) +
               " lines dropped since the last report\n";
  }
  if (message.empty()) return;
  to_stderr(message);
  last_report_ms_ = now;
  reported_failures_ = failures;
  reported_io_ = io;
  reported_full_ = full;
}

}  // namespace hallpass
