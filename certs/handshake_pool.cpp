#include "certs/handshake_pool.hpp"

#include <openssl/err.h>
#include <pthread.h>
#include <sched.h>

#include <utility>

namespace hallpass::certs {

handshake_pool::handshake_pool(unsigned threads, std::size_t max_queued) : max_queued_(max_queued) {
  threads_.reserve(threads);
  for (unsigned i = 0; i < threads; ++i) threads_.emplace_back([this] { run_thread(); });
}

handshake_pool::~handshake_pool() {
  std::deque<job> left;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    left.swap(queue_);
  }
  work_.notify_all();
  for (auto& t : threads_) t.join();
  const step stopped;  // a failure with no error of its own
  for (auto& j : left) {
    SSL_free(j.ssl);
    j.done(stopped);
  }
}

bool handshake_pool::submit(SSL* ssl, callback done) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ || queue_.size() >= max_queued_ || SSL_up_ref(ssl) != 1) {
      ++counters_.refused;
      return false;
    }
    queue_.push_back(job{ssl, std::move(done)});
  }
  work_.notify_one();
  return true;
}

handshake_pool::step handshake_pool::run(SSL* ssl) {
  ERR_clear_error();
  step s;
  s.ret = SSL_do_handshake(ssl);
  s.ssl_error = s.ret == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl, s.ret);
  s.error = ERR_get_error();
  ERR_clear_error();
  return s;
}

handshake_pool::counters handshake_pool::stats() const {
  std::lock_guard lock(mutex_);
  return counters_;
}

void handshake_pool::run_thread() {
  // SCHED_BATCH: a woken pool thread does not preempt an event loop (the header says why).
  // Failure (not Linux, a seccomp filter) leaves the thread as it was: only the scheduling
  // differs.
  sched_param param{};
  param.sched_priority = 0;
#ifdef SCHED_BATCH
  pthread_setschedparam(pthread_self(), SCHED_BATCH, &param);
#endif
  for (;;) {
    job j;
    {
      std::unique_lock lock(mutex_);
      work_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      j = std::move(queue_.front());
      queue_.pop_front();
      ++counters_.steps;
    }
    const step s = run(j.ssl);
    SSL_free(j.ssl);
    j.done(s);
  }
}

}  // namespace hallpass::certs
