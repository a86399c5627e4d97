#include "proxy/splice_pump.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include <boost/asio/experimental/awaitable_operators.hpp>

namespace hallpass {
namespace {
constexpr std::size_t pipe_capacity = 1024 * 1024;
constexpr std::size_t chunk = pipe_capacity;  // asked for per splice; a smaller pipe takes less
constexpr unsigned flags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;
}  // namespace

std::unique_ptr<splice_pipe> splice_pipe::open() {
  std::unique_ptr<splice_pipe> p(new splice_pipe);
  if (::pipe2(p->fds_, O_NONBLOCK | O_CLOEXEC) != 0) return nullptr;
  // A larger pipe moves more per system call (a pipe holds pages only while bytes are in
  // it). Refused beyond /proc/sys/fs/pipe-max-size: the default 64 KiB then serves.
  ::fcntl(p->fds_[1], F_SETPIPE_SZ, static_cast<int>(pipe_capacity));
  return p;
}

splice_pipe::~splice_pipe() {
  for (int fd : fds_) {
    if (fd >= 0) ::close(fd);
  }
}

net::awaitable<splice_result> splice_bytes(tcp::socket& from, tcp::socket& to, splice_pipe& pipe,
                                           std::optional<std::uint64_t> limit,
                                           std::chrono::steady_clock::time_point* activity,
                                           splice_progress* progress, const bool* stop) {
  splice_result r;
  splice_progress unused;
  splice_progress& live = progress != nullptr ? *progress : unused;
  error_code ec;
  from.native_non_blocking(true, ec);
  if (!ec) to.native_non_blocking(true, ec);
  if (ec) {
    r.read_error = ec;
    co_return r;
  }
  const int in = from.native_handle();
  const int out = to.native_handle();
  std::size_t& pending = pipe.pending();
  for (;;) {
    if (stop_requested(stop, r.write_error)) co_return r;
    // Fill the pipe from `from`, unless it still holds bytes or the limit is reached.
    const std::uint64_t left = limit ? *limit - r.moved - pending : chunk;
    if (pending == 0 && !r.ended && left > 0) {
      const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(left, chunk));
      const ssize_t n = ::splice(in, nullptr, pipe.write_end(), nullptr, want, flags);
      if (n > 0) {
        pending = static_cast<std::size_t>(n);
      } else if (n == 0) {
        r.ended = true;
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        live.waiting_to_write = false;
        live.read_wait_began = std::chrono::steady_clock::now();
        auto [wec] = co_await from.async_wait(tcp::socket::wait_read, nothrow);
        live.read_waited += std::chrono::steady_clock::now() - live.read_wait_began;
        live.read_wait_began = {};
        if (wec) {
          r.read_error = wec;
          co_return r;
        }
        continue;
      } else if (errno != EINTR) {
        r.read_error = error_code(errno, boost::system::system_category());
        co_return r;
      } else {
        continue;
      }
    }
    // Drain the pipe into `to`.
    while (pending > 0) {
      if (stop_requested(stop, r.write_error)) co_return r;
      const ssize_t n = ::splice(pipe.read_end(), nullptr, out, nullptr, pending, flags);
      if (n > 0) {
        pending -= static_cast<std::size_t>(n);
        r.moved += static_cast<std::uint64_t>(n);
        live.moved = r.moved;
        if (activity) *activity = std::chrono::steady_clock::now();
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        live.waiting_to_write = true;
        auto [wec] = co_await to.async_wait(tcp::socket::wait_write, nothrow);
        if (wec) {
          r.write_error = wec;
          co_return r;
        }
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else {
        r.write_error = n == 0 ? net::error::broken_pipe : error_code(errno, boost::system::system_category());
        co_return r;
      }
    }
    if (r.ended || (limit && r.moved >= *limit)) co_return r;
  }
}

net::awaitable<void> idle_watchdog(const std::chrono::steady_clock::time_point& activity,
                                   std::chrono::milliseconds idle) {
  net::steady_timer t(co_await net::this_coro::executor);
  const auto step = std::clamp<std::chrono::milliseconds>(idle / 4, std::chrono::milliseconds(100),
                                                          std::chrono::seconds(5));
  for (;;) {
    t.expires_after(step);
    auto [ec] = co_await t.async_wait(nothrow);
    if (ec) co_return;
    if (std::chrono::steady_clock::now() - activity >= idle) co_return;
  }
}

namespace {

// What `pace` has waited for the side being read: what it had waited before this splice, the
// splice's finished waits to read and the one under way.
void count_read_waits(body_pace& pace, std::chrono::steady_clock::duration before, const splice_progress& progress) {
  pace.waited = before + progress.read_waited;
  if (progress.read_wait_began != std::chrono::steady_clock::time_point{}) {
    pace.waited += std::chrono::steady_clock::now() - progress.read_wait_began;
  }
}

// Completes when the side being read falls behind `pace` (its waits to read against what has
// moved, and `before` bytes moved earlier).
net::awaitable<void> pace_watchdog(const splice_progress& progress, body_pace& pace, std::uint64_t before) {
  net::steady_timer t(co_await net::this_coro::executor);
  const auto waited_before = pace.waited;
  for (;;) {
    count_read_waits(pace, waited_before, progress);
    if (pace.left(before + progress.moved) <= std::chrono::steady_clock::duration::zero()) {
      pace.too_slow = true;
      co_return;
    }
    t.expires_after(std::clamp<std::chrono::steady_clock::duration>(pace.left(before + progress.moved),
                                                                      std::chrono::milliseconds(1),
                                                                      std::chrono::milliseconds(250)));
    auto [ec] = co_await t.async_wait(nothrow);
    if (ec) co_return;
  }
}

}  // namespace

net::awaitable<splice_result> splice_bytes_or_idle(tcp::socket& from, tcp::socket& to, splice_pipe& pipe,
                                                   std::uint64_t limit, std::chrono::milliseconds idle,
                                                   const bool* stop, body_pace* pace, std::uint64_t paced_before) {
  using namespace net::experimental::awaitable_operators;
  auto activity = std::chrono::steady_clock::now();
  splice_progress progress;
  if (pace != nullptr && pace->active()) {
    const auto waited_before = pace->waited;
    auto paced = co_await (splice_bytes(from, to, pipe, limit, &activity, &progress, stop) ||
                           idle_watchdog(activity, idle) || pace_watchdog(progress, *pace, paced_before));
    count_read_waits(*pace, waited_before, progress);  // what it waited in all, for the log's note
    if (paced.index() == 0) co_return std::get<0>(std::move(paced));
  } else {
    auto done = co_await (splice_bytes(from, to, pipe, limit, &activity, &progress, stop) || idle_watchdog(activity, idle));
    if (done.index() == 0) co_return std::get<0>(std::move(done));
  }
  splice_result r;
  r.moved = progress.moved;  // the access log counts what did move (the audit saw 16 MiB logged as 241 bytes)
  // The idle timeout says which side stalled; the pace ends only a wait to read.
  const bool behind = pace != nullptr && pace->too_slow;
  (progress.waiting_to_write && !behind ? r.write_error : r.read_error) = beast::error::timeout;
  co_return r;
}

}  // namespace hallpass
