#include "proxy/stderr_lines.hpp"

#include <unistd.h>

#include <cerrno>
#include <utility>

namespace hallpass {
namespace {

void write_all(int fd, const std::string& s) {
  std::size_t off = 0;
  while (off < s.size()) {
    const ssize_t n = ::write(fd, s.data() + off, s.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // nowhere to say it: nothing else to do
    off += static_cast<std::size_t>(n);
  }
}

}  // namespace

stderr_lines::stderr_lines(int fd) : fd_(fd), thread_([this] { run(); }) {}

stderr_lines::~stderr_lines() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

void stderr_lines::say(std::string line) {
  if (line.empty() || line.back() != '\n') line += '\n';
  {
    std::lock_guard lock(mutex_);
    if (queue_.size() >= max_waiting) {
      ++dropped_;
      ++unsaid_dropped_;
      return;
    }
    queue_.push_back(std::move(line));
  }
  wake_.notify_one();
}

std::uint64_t stderr_lines::dropped() const {
  std::lock_guard lock(mutex_);
  return dropped_;
}

void stderr_lines::flush_for_tests() {
  std::unique_lock lock(mutex_);
  written_.wait(lock, [&] { return queue_.empty() && !writing_; });
}

void stderr_lines::run() {
  std::unique_lock lock(mutex_);
  while (true) {
    wake_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty() && stop_) return;
    std::deque<std::string> batch;
    batch.swap(queue_);
    const std::uint64_t lost = std::exchange(unsaid_dropped_, 0);
    writing_ = true;
    lock.unlock();
    if (lost > 0) {
      write_all(fd_, "hallpass: " + std::to_string(lost) + " line" + (lost == 1 ? " was" : "s were") +
                         " not written here: more than " + std::to_string(max_waiting) +
                         " waited (standard error was slow)\n");
    }
    for (const auto& line : batch) write_all(fd_, line);
    lock.lock();
    writing_ = false;
    written_.notify_all();
  }
}

}  // namespace hallpass
