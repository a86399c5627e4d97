#include "store/sqlite.hpp"

namespace hallpass::store {

statement::statement(sqlite3* db, std::string_view sql, std::string* error) : db_(db) {
  if (sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &s_, nullptr) != SQLITE_OK) {
    if (error) *error = sqlite3_errmsg(db);
    s_ = nullptr;
  }
}

bool statement::step(std::string* error) {
  const int rc = sqlite3_step(s_);
  if (rc == SQLITE_ROW) return true;
  if (rc != SQLITE_DONE && error) *error = sqlite3_errmsg(db_);
  return false;
}

std::string statement::run() {
  std::string error;
  while (step(&error)) {
  }
  return error;
}

std::optional<database> database::open(const std::string& path, std::string* error) {
  database d;
  if (sqlite3_open_v2(path.c_str(), &d.db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK) {
    if (error) *error = d.db_ ? sqlite3_errmsg(d.db_) : "out of memory";
    return std::nullopt;
  }
  sqlite3_busy_timeout(d.db_, 5000);
  // secure_delete: a deleted row's bytes are overwritten, not left in free pages (retention
  // deletes personal data: store/retention.cpp).
  for (const char* pragma : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL", "PRAGMA foreign_keys=ON",
                             "PRAGMA secure_delete=ON"}) {
    if (auto e = d.exec(pragma); !e.empty()) {
      if (error) *error = e;
      return std::nullopt;
    }
  }
  return d;
}

std::optional<database> database::open_read_only(const std::string& path, std::string* error) {
  database d;
  if (sqlite3_open_v2(path.c_str(), &d.db_, SQLITE_OPEN_READONLY | SQLITE_OPEN_FULLMUTEX, nullptr) != SQLITE_OK) {
    if (error) *error = d.db_ ? sqlite3_errmsg(d.db_) : "out of memory";
    return std::nullopt;
  }
  sqlite3_busy_timeout(d.db_, 5000);
  return d;
}

std::string database::exec(std::string_view sql) {
  char* msg = nullptr;
  const std::string s(sql);
  if (sqlite3_exec(db_, s.c_str(), nullptr, nullptr, &msg) != SQLITE_OK) {
    std::string e = msg ? msg : sqlite3_errmsg(db_);
    sqlite3_free(msg);
    return e;
  }
  return {};
}

}  // namespace hallpass::store
