// Lines for the daemon's standard error (the journal) said from an event loop: a failed
// sign-in, a directory that did not answer, an automatic ban that could not be queued.
//
// std::cerr on a worker was a blocking write(2) to journald's socket under stdio's lock, which
// every worker shares: when journald stalls (its disk full or slow, a restart), one worker
// blocked in write and the others on the lock, and a directory outage made hundreds of such
// lines a second (event-loop review, 2026-12-06). Here a line is queued (at most
// max_waiting) and written by a thread of its own, one write(2) a line; a line that finds the
// queue full is dropped and counted, and the next line written says how many went.
//
// Thread-safe. The destructor writes what waits, then joins the thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

namespace hallpass {

class stderr_lines {
 public:
  static constexpr std::size_t max_waiting = 256;
  // `fd`: where the lines go (standard error; tests give a pipe).
  explicit stderr_lines(int fd = 2);
  ~stderr_lines();
  stderr_lines(const stderr_lines&) = delete;
  stderr_lines& operator=(const stderr_lines&) = delete;

  // Queues `line` (a '\n' is added when it has none). Never waits for the write.
  void say(std::string line);
  // Lines dropped because max_waiting waited, since construction.
  std::uint64_t dropped() const;
  // Returns once every line queued before the call has been written (tests).
  void flush_for_tests();

 private:
  void run();

  const int fd_;
  mutable std::mutex mutex_;
  std::condition_variable wake_, written_;
  std::deque<std::string> queue_;
  bool writing_ = false;
  bool stop_ = false;
  std::uint64_t dropped_ = 0;
  std::uint64_t unsaid_dropped_ = 0;  // dropped, and not yet said in a line
  std::thread thread_;
};

}  // namespace hallpass
