#include "certs/origin_sessions.hpp"

#include <iterator>

namespace hallpass::certs {
namespace {

// The SSL's store and key, in two ex_data slots (Asio keeps its own pointer in app_data).
int store_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}
int key_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

}  // namespace

origin_sessions::origin_sessions(std::size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}

origin_sessions::~origin_sessions() {
  for (auto& [key, e] : sessions_) SSL_SESSION_free(e.session);
}

bool origin_sessions::attach(SSL* ssl, const std::string& key) {
  if (SSL_set_ex_data(ssl, store_index(), this) != 1 ||
      SSL_set_ex_data(ssl, key_index(), const_cast<std::string*>(&key)) != 1) {
    return false;
  }
  auto it = sessions_.find(key);
  if (it == sessions_.end()) return false;
  if (SSL_SESSION_is_resumable(it->second.session) != 1) {
    forget(key);
    return false;
  }
  return SSL_set_session(ssl, it->second.session) == 1;
}

void origin_sessions::forget(const std::string& key) {
  auto it = sessions_.find(key);
  if (it == sessions_.end()) return;
  SSL_SESSION_free(it->second.session);
  order_.erase(it->second.age);
  sessions_.erase(it);
}

void origin_sessions::keep(const std::string& key, SSL_SESSION* session) {
  if (auto it = sessions_.find(key); it != sessions_.end()) {
    SSL_SESSION_free(it->second.session);
    it->second.session = session;
    order_.splice(order_.end(), order_, it->second.age);
    return;
  }
  if (sessions_.size() >= capacity_) forget(order_.front());
  order_.push_back(key);
  sessions_.emplace(key, entry{session, std::prev(order_.end())});
}

int origin_sessions::on_new_session(SSL* ssl, SSL_SESSION* session) {
  auto* store = static_cast<origin_sessions*>(SSL_get_ex_data(ssl, store_index()));
  const auto* key = static_cast<const std::string*>(SSL_get_ex_data(ssl, key_index()));
  if (store == nullptr || key == nullptr || SSL_SESSION_is_resumable(session) != 1) return 0;
  // A copy: SSL_free marks the connection's own session not resumable when the connection
  // ends without a close_notify (as a pooled origin connection that is dropped does), which
  // would spoil the kept one too.
  SSL_SESSION* copy = SSL_SESSION_dup(session);
  if (copy == nullptr) return 0;
  store->keep(*key, copy);
  return 0;  // OpenSSL keeps its reference to `session`; the store owns the copy
}

}  // namespace hallpass::certs
