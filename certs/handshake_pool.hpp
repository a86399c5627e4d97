// TLS handshake steps on threads of their own, so that the CPU of a handshake (a full one costs
// 300-600 us of OpenSSL 3.0 on each side) never runs on an event loop that is also serving
// other connections (proxy/README.md, "HTTPS inspection"; bench/README.md, issue 10).
//
// A step is one SSL_do_handshake call on an SSL whose BIOs are memory BIOs: the caller (an
// event loop) moves bytes between the socket and those BIOs, and hands the SSL to the pool for
// the step that turns the bytes it has into the bytes it sends. Nothing here touches a socket
// or waits for the network, so a slow client never holds a thread: threads only ever run
// steps that have all their input.
//
// - `threads` threads, a queue of at most `max_queued` steps; submit() refuses a step when
//   the queue is full (the caller then runs it itself: a burst slows, it never fails).
// - The threads run as SCHED_BATCH (Linux): the scheduler does not let a thread that has just
//   woken up for a step preempt an event loop, so a kept-alive connection's request waits for
//   no handshake; the threads still get their fair share of the CPU.
// - The pool holds a reference to each SSL while its step waits or runs (SSL_up_ref), so an
//   event loop that drops a connection meanwhile frees nothing the pool is using.
// - OpenSSL's error queue is per thread: a step takes its first error off the pool thread's
//   queue and returns it in the result, leaving the queue empty.
//
// `done` runs on a pool thread (or, for a step refused at shutdown, on the destroying thread);
// it must only hand the result back to its event loop.
#pragma once

#include <openssl/ssl.h>

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace hallpass::certs {

class handshake_pool {
 public:
  // One SSL_do_handshake's outcome.
  struct step {
    int ret = -1;                 // SSL_do_handshake's return: 1 done, else see ssl_error
    int ssl_error = SSL_ERROR_SSL;  // SSL_get_error(ssl, ret)
    unsigned long error = 0;      // the first error of the step (ERR_get_error), 0 for none
  };
  using callback = std::function<void(const step&)>;

  struct counters {
    std::uint64_t steps = 0;     // steps run on a pool thread
    std::uint64_t refused = 0;   // submit() returned false (queue full or stopping)
  };

  // REQUIRES: threads >= 1, max_queued >= 1.
  handshake_pool(unsigned threads, std::size_t max_queued);
  // Joins the threads; steps still queued are not run: their callbacks get a failed step.
  ~handshake_pool();
  handshake_pool(const handshake_pool&) = delete;
  handshake_pool& operator=(const handshake_pool&) = delete;

  // Queues one step of ssl's handshake; `done` gets its outcome on a pool thread. Returns false,
  // queueing nothing, when the queue is full or the pool is stopping.
  // REQUIRES: nothing else uses ssl until `done` runs.
  bool submit(SSL* ssl, callback done);

  // One step on the calling thread (what a pool thread runs; also the fallback when submit()
  // refuses and when there is no pool).
  static step run(SSL* ssl);

  counters stats() const;
  unsigned threads() const { return static_cast<unsigned>(threads_.size()); }

 private:
  struct job {
    SSL* ssl;  // one reference, taken by submit() and dropped after the step
    callback done;
  };
  void run_thread();

  const std::size_t max_queued_;
  mutable std::mutex mutex_;
  std::condition_variable work_;
  std::deque<job> queue_;
  counters counters_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace hallpass::certs
