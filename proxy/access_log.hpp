// The access log writer: takes finished lines from any thread and writes them to a file (or
// standard output) on its own thread, so the event loop never waits for a disk.
//
// Bounded: at most `queue_lines` lines, and at most max_queued_bytes of them, wait in the queue,
// plus one batch of at most as many that the writer has taken and is writing. When the queue is
// full, write() drops the line and counts it; it never blocks and never allocates without
// bound. (Lines alone were bounded until 2026-12-06: a log disk that stalled, with requests
// whose paths are 30 KB, grew the daemon to 1.5 GB in 12 s, resource audit.) Lines the writer
// cannot write (the file cannot be opened, the disk is full or failing) are dropped and
// counted too: nothing is held back for a retry, so a dead disk cannot grow memory.
//
// Never silent: each failed open or write is counted (write_failures(), and the metrics) and
// reported on standard error at most once every 10 s, with the number of lines lost; so is a
// full queue. After a failure the writer closes the file and tries to reopen it every second;
// it says so on standard error when writing works again.
//
// Durability: lines are written with ::write() in batches, every 50 ms or sooner when 256 lines
// wait, and never fsync'ed; the OS flushes them. A process crash loses only lines still in the queue; a machine crash can also lose
// the last lines the OS had not yet flushed.
//
// The file is opened O_WRONLY|O_APPEND|O_CREAT|O_CLOEXEC with mode 0640 (less the umask):
// every write lands at the current end of the file, also after logrotate's copytruncate. If a
// failing write left half a line, the next successful open starts with a newline, so every
// other line stays parseable. The writer thread runs with all signals blocked, so writing to
// a closed pipe on standard output is an EPIPE failure, not a SIGPIPE that kills the daemon.
//
// Thread-safety: write(), reopen() and every accessor may be called from any thread at once.
// reopen() is not async-signal-safe: call it from an asio::signal_set handler (SIGUSR1), not
// from a raw signal handler. The constructor and destructor must not race with other calls.
//
// Ownership: owns the writer thread and the file descriptor (standard output is borrowed,
// never closed). `m`, if given, must outlive this object.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace hallpass {

class metrics;

class access_log {
 public:
  // `path`: a file, "-" for standard output, "" or "off" for no log (write() then discards).
  // `queue_lines`: the most lines that may wait for the writer (at least 1). Opens the file
  // at once, so a bad path is reported at start-up, but never throws for it: the failure is
  // counted and retried like any other.
  access_log(std::string path, std::size_t queue_lines, metrics* m);
  // The most bytes of lines that may wait for the writer (and as many more in its batch).
  static constexpr std::size_t max_queued_bytes = 32u << 20;

  // Asks the writer to write what is queued and stop, and waits for it at most `limit`. False
  // when it did not finish in time: a write that blocks (a stalled disk, a pipe on standard
  // output that nobody reads) holds it, and the caller should not wait for it any longer.
  bool finish(std::chrono::milliseconds limit);
  // finish() without a limit, then joins the writer. A write that blocks blocks this too: the
  // daemon calls finish() first and exits without it when it is stuck.
  ~access_log();
  access_log(const access_log&) = delete;
  access_log& operator=(const access_log&) = delete;

  bool enabled() const { return enabled_; }
  const std::string& path() const { return path_; }

  // Queues one line; a missing final '\n' is added by the writer. Never blocks on I/O: holds
  // a mutex for one push_back. Drops and counts the line when the queue is full.
  void write(std::string line) noexcept;

  // Asks the writer to close and reopen the file before writing anything queued after this
  // call (logrotate's postrotate, SIGUSR1). Returns at once. No effect on standard output.
  void reopen() noexcept;

  std::size_t queue_depth() const;
  std::uint64_t dropped() const;         // lines lost, for any reason, since construction
  std::uint64_t write_failures() const;  // failed opens and failed writes since construction

  // Blocks until every line queued before the call has been written or dropped.
  void flush_for_tests();

 private:
  void run();
  void write_batch(std::vector<std::string>& batch);
  bool open_file();  // writer thread (and the constructor, before it starts)
  void close_file();
  void fail(const char* what, int err, std::size_t lines_lost);
  void lose(std::size_t lines);  // lines the writer could not write, without a new failure
  void report_if_due(bool force);

  const std::string path_;
  const bool enabled_;
  const bool to_stdout_;
  const std::size_t capacity_;
  metrics* const metrics_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;     // writer waits: lines queued, reopen, stop, flush
  std::condition_variable written_;  // flush_for_tests waits: a batch finished
  std::vector<std::string> pending_;
  std::size_t pending_bytes_ = 0;  // the bytes of the lines in pending_
  std::uint64_t queued_ = 0;  // lines ever accepted into pending_
  std::uint64_t done_ = 0;    // of those, lines the writer has finished with
  bool stop_ = false;
  bool writer_done_ = false;       // run() has returned
  std::condition_variable ended_;  // finish() waits: the writer returned
  bool reopen_requested_ = false;
  bool flush_requested_ = false;

  std::atomic<std::uint64_t> dropped_full_{0};  // write(): queue full (or out of memory)
  std::atomic<std::uint64_t> dropped_io_{0};    // writer: file not open or write failed
  std::atomic<std::uint64_t> write_failures_{0};

  // Writer thread only (and the constructor before the thread starts).
  int fd_ = -1;
  bool mid_line_ = false;           // a failed write may have left half a line in the file
  bool failing_ = false;            // the last open or write failed
  bool announced_failing_ = false;  // standard error was told so and not yet told it recovered
  int last_errno_ = 0;
  const char* last_what_ = "";
  std::int64_t last_open_attempt_ms_;
  std::int64_t last_report_ms_;
  std::uint64_t reported_failures_ = 0, reported_io_ = 0, reported_full_ = 0;
  std::string buffer_;                  // one batch, concatenated
  std::vector<std::size_t> line_ends_;  // offsets in buffer_ just after each line

  std::thread writer_;  // declared last: started after everything above is initialised
};

}  // namespace hallpass
