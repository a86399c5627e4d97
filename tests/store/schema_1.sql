-- The store's schema 1, verbatim as hallpass made it before the review columns (commit 09e01ac,
-- store/exception_store.cpp): tests/store/exception_store_test.cpp and
-- tests/integration/review_test.py open stores made with it.
CREATE TABLE IF NOT EXISTS requests (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  created_at INTEGER NOT NULL,
  url TEXT NOT NULL,
  requester TEXT NOT NULL,
  reasons TEXT NOT NULL,
  site_content TEXT NOT NULL DEFAULT '',
  risks TEXT NOT NULL DEFAULT '',
  control_measures TEXT NOT NULL DEFAULT '',
  scope_roles TEXT NOT NULL DEFAULT '',
  scope_user TEXT,
  scope_client TEXT,
  filed_by TEXT NOT NULL,
  source TEXT NOT NULL,
  client_address TEXT,
  decision TEXT,                -- NULL pending, 'approved', 'denied'
  decided_by TEXT,
  decided_at INTEGER,
  decision_reason TEXT
);
CREATE TABLE IF NOT EXISTS exceptions (
  request_id INTEGER PRIMARY KEY REFERENCES requests(id),
  kind TEXT NOT NULL,           -- domain, prefix, url
  host TEXT NOT NULL,
  path TEXT NOT NULL,
  display TEXT NOT NULL,
  valid_from INTEGER NOT NULL,
  valid_until INTEGER NOT NULL,
  revoked_by TEXT,
  revoked_at INTEGER,
  revoke_reason TEXT
);
CREATE TABLE IF NOT EXISTS reports (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  created_at INTEGER NOT NULL,
  reporter TEXT NOT NULL,
  individual TEXT,
  url TEXT NOT NULL,
  nature TEXT NOT NULL,
  filed_by TEXT NOT NULL,
  action_taken TEXT,
  action_by TEXT,
  action_at INTEGER,
  entry_id INTEGER
);
CREATE TABLE IF NOT EXISTS local_entries (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  block INTEGER NOT NULL,
  kind TEXT NOT NULL,
  host TEXT NOT NULL,
  path TEXT NOT NULL,
  display TEXT NOT NULL,
  reason TEXT NOT NULL,
  created_by TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  report_id INTEGER,
  removed_by TEXT,
  removed_at INTEGER,
  remove_reason TEXT
);
CREATE TABLE IF NOT EXISTS audit (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  at INTEGER NOT NULL,
  os_user TEXT NOT NULL,
  admin_role TEXT NOT NULL,
  action TEXT NOT NULL,
  object TEXT NOT NULL,
  before_json TEXT,
  after_json TEXT,
  reason TEXT NOT NULL DEFAULT '',
  outcome TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_append_only_update BEFORE UPDATE ON audit
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_append_only_delete BEFORE DELETE ON audit
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
PRAGMA user_version = 1;
