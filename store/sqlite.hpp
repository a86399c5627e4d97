// A thin RAII layer over the SQLite C API: a connection, prepared statements, transactions.
// Errors come back as values (an empty string is success). One connection is used by one
// thread at a time (the store thread).
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace hallpass::store {

class statement {
 public:
  statement() = default;
  statement(sqlite3* db, std::string_view sql, std::string* error);
  statement(statement&& o) noexcept : s_(std::exchange(o.s_, nullptr)), db_(o.db_) {}
  statement& operator=(statement&& o) noexcept {
    std::swap(s_, o.s_);
    db_ = o.db_;
    return *this;
  }
  ~statement() { sqlite3_finalize(s_); }
  explicit operator bool() const { return s_ != nullptr; }

  statement& bind(int i, std::int64_t v) { sqlite3_bind_int64(s_, i, v); return *this; }
  statement& bind(int i, std::string_view v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  statement& bind_null(int i) { sqlite3_bind_null(s_, i); return *this; }
  statement& bind_optional(int i, const std::optional<std::string>& v) {
    return v ? bind(i, std::string_view(*v)) : bind_null(i);
  }

  // Steps once: true when a row is available. *error is set on failure.
  bool step(std::string* error);
  // Runs to completion (for statements without rows). Returns "" or the error.
  std::string run();

  std::int64_t integer(int col) const { return sqlite3_column_int64(s_, col); }
  std::string text(int col) const {
    const auto* p = sqlite3_column_text(s_, col);
    return p ? std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(sqlite3_column_bytes(s_, col)))
             : std::string();
  }
  bool is_null(int col) const { return sqlite3_column_type(s_, col) == SQLITE_NULL; }
  std::optional<std::string> optional_text(int col) const {
    return is_null(col) ? std::nullopt : std::optional<std::string>(text(col));
  }

 private:
  sqlite3_stmt* s_ = nullptr;
  sqlite3* db_ = nullptr;
};

class database {
 public:
  // Opens (creating if needed) with WAL and synchronous=FULL: a committed change survives a
  // crash, kill -9 or power loss.
  static std::optional<database> open(const std::string& path, std::string* error);
  // Opens an existing database for reading only (hallpass explain): never creates, migrates or
  // writes it, and reads while the daemon writes (WAL).
  static std::optional<database> open_read_only(const std::string& path, std::string* error);
  database(database&& o) noexcept : db_(std::exchange(o.db_, nullptr)) {}
  database& operator=(database&& o) noexcept {
    std::swap(db_, o.db_);
    return *this;
  }
  ~database() { sqlite3_close(db_); }

  std::string exec(std::string_view sql);  // "" or the error
  statement prepare(std::string_view sql, std::string* error) { return statement(db_, sql, error); }
  std::int64_t last_insert_id() const { return sqlite3_last_insert_rowid(db_); }
  int changes() const { return sqlite3_changes(db_); }
  sqlite3* handle() const { return db_; }

 private:
  database() = default;
  sqlite3* db_ = nullptr;
};

// BEGIN IMMEDIATE ... COMMIT; rolls back when destroyed without commit().
class transaction {
 public:
  explicit transaction(database& db) : db_(db) { error_ = db_.exec("BEGIN IMMEDIATE"); }
  ~transaction() {
    if (!done_ && error_.empty()) db_.exec("ROLLBACK");
  }
  const std::string& error() const { return error_; }
  // A COMMIT that fails (SQLITE_BUSY, a full disk) leaves SQLite's transaction open: rolled
  // back here, so that "nothing was changed" is true and the next BEGIN works (review,
  // 2026-12-06: an open transaction was read as committed by the next index read).
  std::string commit() {
    done_ = true;
    auto e = db_.exec("COMMIT");
    if (!e.empty()) db_.exec("ROLLBACK");
    return e;
  }

 private:
  database& db_;
  std::string error_;
  bool done_ = false;
};

}  // namespace hallpass::store
