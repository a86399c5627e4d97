// Waiting on the event loop for an answer another thread makes (the directory's threads, the
// store's thread, the leaf cache's minting threads), with a deadline: the one way a worker
// hands work off and waits for it.
//
// `start(callback)` hands the work to the other thread and arranges for `callback(Result)` to
// be called once, on any thread, with the answer (or at once, on this thread, when that
// thread's queue is full). The answer is posted back through the worker's mailbox (never to a
// worker that has stopped: worker.hpp), and the coroutine resumes with it on the worker's
// thread; if `deadline` passes first, it resumes with `late()` instead, and the answer that
// comes later is dropped. The other thread's work is not cancelled: what it does still
// happens (a request it files is filed), so the caller's words for `late()` must say so.
//
// Before 2026-12-06 only the sign-in checks had a deadline (login_gate.cpp, its own copy of
// this); a request form waited on the store thread without one, behind a reload of the whole
// policy or a disk that had stopped answering (event-loop review, 2026-12-06), and a new
// host's TLS handshake waited on the minting threads without one.
//
// Named types, not lambdas, for everything a coroutine creates (proxy/README.md, GCC 12).
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <type_traits>
#include <utility>
#include <vector>

#include "proxy/net.hpp"
#include "proxy/worker.hpp"

namespace hallpass {

namespace thread_answer_detail {

// Where answer_to keeps the states it may not free (below): reachable from a global, so that
// LeakSanitizer does not report them, and never freed.
inline void keep_for_good(std::shared_ptr<void> p) {
  static std::mutex mutex;
  static auto* kept = new std::vector<std::shared_ptr<void>>();
  std::lock_guard lock(mutex);
  kept->push_back(std::move(p));
}

// Shared by the answer and the deadline; both arrive on the worker's thread, and whichever
// comes first completes the wait.
template <class Result, class Handler>
struct wait_state {
  wait_state(Handler&& h, const net::any_io_executor& ex) : handler(std::move(h)), timer(ex) {}
  Handler handler;
  net::steady_timer timer;
  bool done = false;
  void finish(Result r) {
    if (done) return;
    done = true;
    timer.cancel();
    handler(std::move(r));
  }
};

template <class State, class Late>
struct deadline_passed {
  std::shared_ptr<State> state;
  Late late;
  void operator()(const error_code& ec) const {
    if (ec == net::error::operation_aborted) return;
    state->finish(late());
  }
};

// What the other thread is given to answer with. It holds the wait's state, which holds a timer
// of the worker's io_context and the coroutine's handler: neither may be destroyed once that
// io_context is gone, which happens when the other thread keeps its queue past the workers
// (the leaf cache and the login service live as long as the configuration, after the workers
// at the daemon's stop: review, 2026-12-06). So a copy that finds the mailbox closed keeps its
// state for good, a few hundred bytes at the end of the process, instead of freeing it.
template <class Result, class State>
struct answer_to {
  std::shared_ptr<worker::mailbox> box;
  std::shared_ptr<State> state;
  void operator()(Result r) const {
    std::lock_guard lock(box->mutex);
    if (!box->open) return;
    net::post(box->ex, [state = state, r = std::move(r)]() mutable { state->finish(std::move(r)); });
  }
  answer_to(std::shared_ptr<worker::mailbox> b, std::shared_ptr<State> s) : box(std::move(b)), state(std::move(s)) {}
  answer_to(const answer_to&) = default;
  answer_to(answer_to&&) noexcept = default;
  answer_to& operator=(const answer_to&) = delete;
  answer_to& operator=(answer_to&&) = delete;
  ~answer_to() {
    if (!box || !state) return;
    std::lock_guard lock(box->mutex);
    if (!box->open) keep_for_good(std::move(state));  // see above
  }
};

template <class Result, class Start, class Late>
struct initiation {
  std::shared_ptr<worker::mailbox> box;
  std::chrono::steady_clock::duration deadline;
  Start start;
  Late late;

  template <class Handler>
  void operator()(Handler&& handler) {
    using state_t = wait_state<Result, std::decay_t<Handler>>;
    auto state = std::make_shared<state_t>(std::forward<Handler>(handler), box->ex);
    state->timer.expires_after(deadline);
    state->timer.async_wait(deadline_passed<state_t, Late>{state, late});
    start(answer_to<Result, state_t>(box, std::move(state)));
  }
};

}  // namespace thread_answer_detail

// `start` and `late` by reference, moved into the frame's named local here: a by-value
// parameter would be a non-trivial temporary inside the caller's co_await expression, which
// GCC 12 destroys twice (proxy/README.md). Callers move named locals in.
template <class Result, class Start, class Late>
net::awaitable<Result> answer_from_thread(worker& w, std::chrono::steady_clock::duration deadline, Start&& start,
                                          Late&& late) {
  thread_answer_detail::initiation<Result, std::decay_t<Start>, std::decay_t<Late>> wait{
      w.inbox(), deadline, std::forward<Start>(start), std::forward<Late>(late)};
  auto r = co_await net::async_initiate<const net::use_awaitable_t<>&, void(Result)>(std::move(wait),
                                                                                     net::use_awaitable);
  co_return r;
}

}  // namespace hallpass
