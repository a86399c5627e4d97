// Where other threads (the leaf cache's minting threads, the handshake threads, the login
// service) post completions back to one worker's event loop. The worker closes it when its
// thread has been joined, so nothing is ever posted to an io_context that is gone: post only
// through post_to(), which holds `mutex` and checks `open`.
#pragma once

#include <memory>
#include <mutex>
#include <utility>

#include "proxy/net.hpp"

namespace hallpass {

struct mailbox {
  explicit mailbox(net::any_io_executor e) : ex(std::move(e)) {}
  std::mutex mutex;
  bool open = true;
  net::any_io_executor ex;
};

// Posts f to the mailbox's event loop unless it is closed (then f is dropped, unrun).
template <class F>
void post_to(const std::shared_ptr<mailbox>& box, F&& f) {
  std::lock_guard lock(box->mutex);
  if (!box->open) return;
  net::post(box->ex, std::forward<F>(f));
}

}  // namespace hallpass
