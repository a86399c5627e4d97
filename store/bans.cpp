// The bans table (000 7.2; 002): filing, confirming and lifting bans, listing them, and
// loading those in force for the overlay (rules/ban.hpp). Part of exception_store: the same
// connection, transactions and audit log.
#include <boost/json.hpp>

#include "store/exception_store.hpp"

namespace hallpass::store {
namespace json = boost::json;

namespace {

constexpr const char* ban_columns =
    "id, kind, subject, reason, how, created_by, created_role, created_at, length, valid_from, "
    "valid_until, "
    "confirmed_by, confirmed_at, lifted_by, lifted_at, lift_reason";

std::string ban_name(std::int64_t id) {
  return "ban " + std::to_string(id);
}

std::string subject_text(bool device, const std::string& subject) {
  return (device ? "device " : "user ") + subject;
}

}  // namespace

std::optional<json::object> exception_store::ban_object(std::int64_t id, seconds_t now) {
  std::string err;
  auto st = db_.prepare(std::string("SELECT ") + ban_columns + " FROM bans WHERE id = ?", &err);
  if (!st) return std::nullopt;
  st.bind(1, id);
  if (!st.step(&err)) return std::nullopt;
  json::object o;
  o["id"] = st.integer(0);
  o["kind"] = st.text(1);
  o["subject"] = st.text(2);
  o["reason"] = st.text(3);
  o["how"] = st.text(4);
  o["by"] = st.text(5);
  o["role"] = st.text(6);
  o["created"] = iso(st.integer(7));
  o["length"] = rules::duration_text(std::chrono::seconds(st.integer(8)));
  const bool proposed = st.is_null(9);
  o["from"] = proposed ? json::value(nullptr) : json::value(iso(st.integer(9)));
  o["until"] = proposed ? json::value(nullptr) : json::value(iso(st.integer(10)));
  o["confirmed"] =
      st.is_null(12) ? json::value(nullptr)
                     : json::value(json::object{{"by", st.text(11)}, {"at", iso(st.integer(12))}});
  std::string status = proposed                                           ? "proposed"
                       : st.integer(10) <= now.time_since_epoch().count() ? "expired"
                                                                          : "active";
  if (!st.is_null(14)) {
    o["lifted"] =
        json::object{{"by", st.text(13)}, {"at", iso(st.integer(14))}, {"reason", st.text(15)}};
    status = proposed ? "withdrawn" : "lifted";
  } else {
    o["lifted"] = nullptr;
  }
  o["status"] = status;
  return o;
}

result exception_store::ban(const actor& who, const ban_form& f) {
  transaction tx(db_);
  if (!tx.error().empty()) return result::fail("internal", tx.error());
  const auto now = now_seconds();
  const auto n = now.time_since_epoch().count();
  const char* kind = f.device ? "device" : "user";
  std::string err;
  if (f.how == "automatic") {
    // One ban per burst: the tracker may count more attempts before the first ban is in force.
    auto same = db_.prepare(
        "SELECT id FROM bans WHERE kind = ? AND subject = ? COLLATE NOCASE AND lifted_at IS NULL AND valid_until "
        "> ? LIMIT 1",
        &err);
    if (!same) return result::fail("internal", err);
    same.bind(1, kind).bind(2, f.subject).bind(3, n);
    if (same.step(&err)) {
      return result::fail("conflict", subject_text(f.device, f.subject) +
                                          " is already banned (ban " +
                                          std::to_string(same.integer(0)) + ")");
    }
    if (!err.empty()) return result::fail("internal", err);
  }
  auto st = db_.prepare(
      "INSERT INTO bans(kind, subject, reason, how, created_by, created_role, created_at, length, "
      "valid_from, "
      "valid_until) VALUES(?,?,?,?,?,?,?,?,?,?)",
      &err);
  if (!st) return result::fail("internal", err);
  st.bind(1, kind)
      .bind(2, f.subject)
      .bind(3, f.reason)
      .bind(4, f.how)
      .bind(5, who.os_user)
      .bind(6, who.admin_role)
      .bind(7, n)
      .bind(8, static_cast<std::int64_t>(f.length.count()));
  if (f.how == "proposal") {
    st.bind_null(9).bind_null(10);
  } else {
    st.bind(9, n).bind(10, n + f.length.count());
  }
  if (auto e = st.run(); !e.empty()) return result::fail("internal", e);
  const auto id = db_.last_insert_id();
  auto after = ban_object(id, now);
  if (!after) return result::fail("internal", "the new ban cannot be read back");
  const char* action = f.how == "proposal" ? "propose ban" : "ban";
  return audit_and_commit(tx, who, action, ban_name(id), nullptr, *after, f.reason,
                          f.how == "automatic" ? "automatic" : "ok", *after);
}

result exception_store::confirm_ban(const actor& who, std::int64_t id, const std::string& reason) {
  transaction tx(db_);
  if (!tx.error().empty()) return result::fail("internal", tx.error());
  const auto now = now_seconds();
  auto before = ban_object(id, now);
  if (!before) return result::fail("not_found", "there is no ban " + std::to_string(id));
  if (before->at("status") != "proposed") {
    return result::fail("conflict", "ban " + std::to_string(id) + " is " +
                                        std::string(before->at("status").as_string()) +
                                        ", not proposed: only a proposal can be confirmed");
  }
  std::string err;
  auto upd = db_.prepare(
      "UPDATE bans SET valid_from = ?, valid_until = ? + length, confirmed_by = ?, confirmed_at = "
      "? WHERE id = ?",
      &err);
  if (!upd) return result::fail("internal", err);
  const auto n = now.time_since_epoch().count();
  upd.bind(1, n).bind(2, n).bind(3, who.os_user).bind(4, n).bind(5, id);
  if (auto e = upd.run(); !e.empty()) return result::fail("internal", e);
  auto after = ban_object(id, now);
  return audit_and_commit(tx, who, "confirm ban", ban_name(id), *before, *after, reason, "ok",
                          *after);
}

bool exception_store::device_banned(const std::string& subject) {
  std::string err;
  auto st = db_.prepare(
      "SELECT 1 FROM bans WHERE kind = 'device' AND subject = ? COLLATE NOCASE AND lifted_at IS NULL AND "
      "(valid_until IS NULL OR valid_until > ?) LIMIT 1",
      &err);
  if (!st) return false;
  st.bind(1, subject).bind(2, now_seconds().time_since_epoch().count());
  return st.step(&err);
}

result exception_store::unban(const actor& who, std::optional<std::int64_t> id, bool device,
                              const std::string& subject, const std::string& reason) {
  transaction tx(db_);
  if (!tx.error().empty()) return result::fail("internal", tx.error());
  const auto now = now_seconds();
  const auto n = now.time_since_epoch().count();
  std::string err;
  // The bans to lift: one by id, or every one in force or proposed on the subject.
  std::vector<std::int64_t> ids;
  {
    auto st =
        id ? db_.prepare(
                 "SELECT id FROM bans WHERE id = ? AND lifted_at IS NULL AND "
                 "(valid_until IS NULL OR valid_until > ?)",
                 &err)
           : db_.prepare(
                 "SELECT id FROM bans WHERE kind = ? AND subject = ? COLLATE NOCASE AND lifted_at IS NULL AND "
                 "(valid_until IS NULL OR valid_until > ?) ORDER BY id",
                 &err);
    if (!st) return result::fail("internal", err);
    if (id) {
      st.bind(1, *id).bind(2, n);
    } else {
      st.bind(1, device ? "device" : "user").bind(2, subject).bind(3, n);
    }
    while (st.step(&err)) ids.push_back(st.integer(0));
    if (!err.empty()) return result::fail("internal", err);
  }
  if (ids.empty()) {
    if (id) {
      auto o = ban_object(*id, now);
      if (!o) return result::fail("not_found", "there is no ban " + std::to_string(*id));
      return result::fail("conflict", "ban " + std::to_string(*id) + " is " +
                                          std::string(o->at("status").as_string()) +
                                          ": there is nothing to lift");
    }
    return result::fail("not_found",
                        subject_text(device, subject) + " has no ban in force or proposed");
  }
  json::array lifted;
  for (const auto b : ids) {
    auto before = ban_object(b, now);
    auto upd = db_.prepare(
        "UPDATE bans SET lifted_by = ?, lifted_at = ?, lift_reason = ? WHERE id = ?", &err);
    if (!upd) return result::fail("internal", err);
    upd.bind(1, who.os_user).bind(2, n).bind(3, reason).bind(4, b);
    if (auto e = upd.run(); !e.empty()) return result::fail("internal", e);
    auto after = ban_object(b, now);
    if (auto e = write_audit(who, "unban", ban_name(b), *before, *after, reason, "ok"); !e.empty())
      return result::fail("internal", e);
    lifted.push_back(std::move(*after));
  }
  return commit(tx, json::object{{"bans", std::move(lifted)}});
}

result exception_store::bans(bool all) {
  const auto now = now_seconds();
  std::string err;
  auto st = db_.prepare(all ? "SELECT id FROM bans ORDER BY id"
                            : "SELECT id FROM bans WHERE lifted_at IS NULL AND (valid_until IS "
                              "NULL OR valid_until > ?) "
                              "ORDER BY id",
                        &err);
  if (!st) return result::fail("internal", err);
  if (!all) st.bind(1, now.time_since_epoch().count());
  json::array out;
  while (st.step(&err)) {
    if (auto o = ban_object(st.integer(0), now)) out.push_back(std::move(*o));
  }
  if (!err.empty()) return result::fail("internal", err);
  result r;
  r.data = json::object{{"bans", std::move(out)}};
  return r;
}

std::optional<std::vector<rules::ban_entry>> exception_store::load_bans(seconds_t now,
                                                                        std::string* error) {
  std::string err;
  auto failed = [&] {
    if (error) *error = err.empty() ? std::string("unknown SQLite error") : err;
    return std::nullopt;
  };
  auto st = db_.prepare(
      "SELECT id, kind, subject, reason, how, valid_from, valid_until FROM bans "
      "WHERE lifted_at IS NULL AND valid_from IS NOT NULL AND valid_until > ? ORDER BY id",
      &err);
  if (!st) return failed();
  st.bind(1, now.time_since_epoch().count());
  std::vector<rules::ban_entry> out;
  while (st.step(&err)) {
    rules::ban_entry b;
    b.id = st.integer(0);
    b.device = st.text(1) == "device";
    b.subject = st.text(2);
    b.reason = st.text(3);
    b.how = st.text(4);
    b.from = seconds_t{std::chrono::seconds{st.integer(5)}};
    b.until = seconds_t{std::chrono::seconds{st.integer(6)}};
    b.until_text = iso(st.integer(6));
    // An address, a DHCP name or a hardware address (rules/device_ref.hpp; exception_index::build
    // reads which). A subject that names no device can match none (the daemon checks at ban).
    if (b.device && !rules::parse_device(b.subject)) continue;
    out.push_back(std::move(b));
  }
  if (!err.empty()) return failed();
  return out;
}

}  // namespace hallpass::store
