// A thread that starts with every signal blocked (the access log's writer, the alert sender):
// a write to a closed pipe is then EPIPE rather than a SIGPIPE, and SIGTERM, SIGHUP and
// SIGUSR1 stay with the main thread's handlers. The calling thread's own mask is restored,
// also when the thread cannot be started (std::thread's exception is passed on).
#pragma once

#include <pthread.h>
#include <signal.h>

#include <thread>
#include <utility>

namespace hallpass {

template <class F>
std::thread start_signal_free_thread(F&& body) {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  struct restore {
    sigset_t mask;
    ~restore() { pthread_sigmask(SIG_SETMASK, &mask, nullptr); }
  } on_exit{old};
  return std::thread(std::forward<F>(body));
}

}  // namespace hallpass
