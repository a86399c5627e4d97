// result<T>: a value or a message saying, in plain words, why there is none. certs/ returns
// errors as values and never lets an exception cross its API.
//
// A plain value type; the same thread-safety as T.
#pragma once

#include <optional>
#include <string>
#include <utility>

namespace hallpass::certs {

template <class T>
class result {
 public:
  result(T value) : value_(std::move(value)) {}  // NOLINT: implicit, so `return value;` works
  static result failure(std::string message) {
    result r;
    r.error_ = std::move(message);
    return r;
  }

  explicit operator bool() const { return value_.has_value(); }
  bool ok() const { return value_.has_value(); }
  // REQUIRES: ok()
  T& operator*() { return *value_; }
  const T& operator*() const { return *value_; }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  // Empty when ok().
  const std::string& error() const { return error_; }

 private:
  result() = default;
  std::optional<T> value_;
  std::string error_;
};

}  // namespace hallpass::certs
