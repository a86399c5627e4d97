// Incident records (the DfE standard's "incident record of action and outcome"; 000 7.4; 002):
// opening one, recording actions and the outcome, reading them back. Part of exception_store:
// the same connection, transactions and audit log. The words are the DSL's and the
// headteacher's: the admin socket gives them to those two roles only (proxy/admin_incidents.cpp).
#include <boost/json.hpp>

#include <algorithm>

#include "store/exception_store.hpp"

namespace hallpass::store {
namespace json = boost::json;

namespace {

std::string incident_name(std::int64_t id) {
  return "incident " + std::to_string(id);
}

}  // namespace

std::optional<json::object> exception_store::incident_object(std::int64_t id, std::string* error) {
  std::string err;
  // nullopt with *error set when the store could not be read, without when there is no such row.
  auto failed = [&] {
    if (error && !err.empty()) *error = err;
    return std::nullopt;
  };
  auto st = db_.prepare(
      "SELECT id, kind, subject, what, category, happened_at, opened_by, opened_role, opened_at, outcome, "
      "closed_by, closed_at FROM incidents WHERE id = ?",
      &err);
  if (!st) return failed();
  st.bind(1, id);
  if (!st.step(&err)) return failed();
  json::object o;
  o["id"] = st.integer(0);
  o["kind"] = st.text(1);
  o["subject"] = st.text(2);
  o["what"] = st.text(3);
  o["category"] = st.text(4).empty() ? json::value(nullptr) : json::value(st.text(4));
  o["happened"] = iso(st.integer(5));
  o["opened"] = json::object{{"by", st.text(6)}, {"role", st.text(7)}, {"at", iso(st.integer(8))}};
  const bool closed = !st.is_null(9);
  o["status"] = closed ? "closed" : "open";
  o["closed"] = closed ? json::value(json::object{{"by", st.text(10)}, {"at", iso(st.integer(11))}, {"outcome", st.text(9)}})
                       : json::value(nullptr);
  auto acts = db_.prepare("SELECT at, by, role, action FROM incident_actions WHERE incident_id = ? ORDER BY id", &err);
  if (!acts) return failed();
  acts.bind(1, id);
  json::array actions;
  while (acts.step(&err)) {
    actions.push_back(
        json::object{{"at", iso(acts.integer(0))}, {"by", acts.text(1)}, {"role", acts.text(2)}, {"action", acts.text(3)}});
  }
  if (!err.empty()) return failed();
  o["actions"] = std::move(actions);
  return o;
}

result exception_store::open_incident(const actor& who, const incident_form& f) {
  transaction tx(db_);
  if (!tx.error().empty()) return result::fail("internal", tx.error());
  const auto n = now_seconds().time_since_epoch().count();
  std::string err;
  auto st = db_.prepare(
      "INSERT INTO incidents(kind, subject, what, category, happened_at, opened_by, opened_role, opened_at, outcome, "
      "closed_by, closed_at) VALUES(?,?,?,?,?,?,?,?,?,?,?)",
      &err);
  if (!st) return result::fail("internal", err);
  st.bind(1, f.device ? "device" : "user")
      .bind(2, f.subject)
      .bind(3, f.what)
      .bind(4, f.category)
      .bind(5, static_cast<std::int64_t>(f.happened.time_since_epoch().count()))
      .bind(6, who.os_user)
      .bind(7, who.admin_role)
      .bind(8, n);
  if (f.outcome.empty()) {
    st.bind_null(9).bind_null(10).bind_null(11);
  } else {
    st.bind(9, f.outcome).bind(10, who.os_user).bind(11, n);
  }
  if (auto e = st.run(); !e.empty()) return result::fail("internal", e);
  const auto id = db_.last_insert_id();
  if (!f.action.empty()) {
    auto act = db_.prepare("INSERT INTO incident_actions(incident_id, at, by, role, action) VALUES(?,?,?,?,?)", &err);
    if (!act) return result::fail("internal", err);
    act.bind(1, id).bind(2, n).bind(3, who.os_user).bind(4, who.admin_role).bind(5, f.action);
    if (auto e = act.run(); !e.empty()) return result::fail("internal", e);
  }
  auto after = incident_object(id);
  if (!after) return result::fail("internal", "the new incident cannot be read back");
  return audit_and_commit(tx, who, f.outcome.empty() ? "open incident" : "open and close incident", incident_name(id),
                          nullptr, *after, "", "ok", *after);
}

result exception_store::record_incident(const actor& who, std::int64_t id, const std::string& action,
                                        const std::string& outcome) {
  transaction tx(db_);
  if (!tx.error().empty()) return result::fail("internal", tx.error());
  std::string read_error;
  auto before = incident_object(id, &read_error);
  if (!before && !read_error.empty()) return result::fail("internal", read_error);
  if (!before) return result::fail("not_found", "there is no incident " + std::to_string(id));
  const auto* closed = before->at("closed").if_object();
  if (!outcome.empty() && closed) {
    return result::fail("conflict", incident_name(id) + " was closed by " + std::string(closed->at("by").as_string()) +
                                        " at " + std::string(closed->at("at").as_string()) +
                                        ": its outcome stands; record what followed as an action");
  }
  if (!action.empty() && before->at("actions").as_array().size() >= max_incident_actions) {
    return result::fail("conflict", incident_name(id) + " has " + std::to_string(max_incident_actions) +
                                        " actions, the most one holds: open a new incident for what follows");
  }
  const auto n = now_seconds().time_since_epoch().count();
  std::string err;
  if (!action.empty()) {
    auto act = db_.prepare("INSERT INTO incident_actions(incident_id, at, by, role, action) VALUES(?,?,?,?,?)", &err);
    if (!act) return result::fail("internal", err);
    act.bind(1, id).bind(2, n).bind(3, who.os_user).bind(4, who.admin_role).bind(5, action);
    if (auto e = act.run(); !e.empty()) return result::fail("internal", e);
  }
  if (!outcome.empty()) {
    auto upd = db_.prepare("UPDATE incidents SET outcome = ?, closed_by = ?, closed_at = ? WHERE id = ?", &err);
    if (!upd) return result::fail("internal", err);
    upd.bind(1, outcome).bind(2, who.os_user).bind(3, n).bind(4, id);
    if (auto e = upd.run(); !e.empty()) return result::fail("internal", e);
  }
  auto after = incident_object(id);
  if (!after) return result::fail("internal", "the incident cannot be read back");
  const char* what = outcome.empty() ? "incident action" : action.empty() ? "close incident" : "incident action and close";
  // What changed, not the whole incident twice (exception_store.hpp).
  json::object change{{"id", id}};
  if (!action.empty()) change["action"] = after->at("actions").as_array().back();
  if (!outcome.empty()) change["closed"] = after->at("closed");
  return audit_and_commit(tx, who, what, incident_name(id), json::object{{"id", id}, {"status", before->at("status")}},
                          change, "", "ok", *after);
}

result exception_store::incident(std::int64_t id) {
  std::string read_error;
  auto o = incident_object(id, &read_error);
  if (!o && !read_error.empty()) return result::fail("internal", read_error);
  if (!o) return result::fail("not_found", "there is no incident " + std::to_string(id));
  result r;
  r.data = std::move(*o);
  return r;
}

result exception_store::incidents(const incident_filter& filter, std::size_t limit, std::size_t max_bytes) {
  // Open ones, or every one; of one subject (a user name compares without case, as bans').
  std::string where = " WHERE 1";
  // The same device under up to three other spellings (?3 to ?5; unused ones are the subject again).
  if (filter.subject) where += " AND kind = ?1 AND subject COLLATE NOCASE IN (?2, ?3, ?4, ?5)";
  if (!filter.all) where += " AND closed_at IS NULL";
  auto bind = [&](statement& st) {
    if (!filter.subject) return;
    st.bind(1, filter.subject->first ? "device" : "user").bind(2, filter.subject->second);
    for (int i = 0; i < 3; ++i) {
      st.bind(3 + i, static_cast<std::size_t>(i) < filter.also.size() ? filter.also[static_cast<std::size_t>(i)]
                                                                          : filter.subject->second);
    }
  };
  // One that cannot be read fails the answer: left out, it would read as "older ones not shown".
  std::string read_error;
  auto r = newest_page("incidents", "id", " FROM incidents" + where, bind, 6, limit, max_bytes,
                       [&](std::int64_t id) { return incident_object(id, &read_error); });
  if (r.ok && !read_error.empty()) return result::fail("internal", "an incident cannot be read: " + read_error);
  return r;
}

std::optional<std::vector<incident_summary>> exception_store::incident_summaries(seconds_t from, seconds_t to,
                                                                                 std::size_t limit, std::uint64_t* omitted,
                                                                                 std::string* error) {
  std::string err;
  auto failed = [&] {
    if (error) *error = err.empty() ? std::string("unknown SQLite error") : err;
    return std::nullopt;
  };
  constexpr const char* open_in_period =
      " FROM incidents i WHERE (i.closed_at IS NULL OR i.closed_at >= ?1) AND (i.happened_at < ?2 OR i.opened_at < ?2)";
  const auto bind_period = [&](statement& st) {
    st.bind(1, static_cast<std::int64_t>(from.time_since_epoch().count()))
        .bind(2, static_cast<std::int64_t>(to.time_since_epoch().count()));
  };
  auto count = db_.prepare(std::string("SELECT COUNT(*)") + open_in_period, &err);
  if (!count) return failed();
  bind_period(count);
  if (!count.step(&err)) return failed();
  const auto total = static_cast<std::uint64_t>(count.integer(0));
  auto st = db_.prepare(std::string("SELECT i.id, i.kind, i.subject, i.category, i.happened_at, i.closed_at, "
                                    "(SELECT COUNT(*) FROM incident_actions a WHERE a.incident_id = i.id), "
                                    "(SELECT MAX(a.at) FROM incident_actions a WHERE a.incident_id = i.id)") +
                            open_in_period + " ORDER BY i.id DESC LIMIT ?3",
                        &err);
  if (!st) return failed();
  bind_period(st);
  st.bind(3, static_cast<std::int64_t>(limit));
  std::vector<incident_summary> out;
  const auto at = [&](int col) { return seconds_t{std::chrono::seconds{st.integer(col)}}; };
  while (st.step(&err)) {
    incident_summary i;
    i.id = st.integer(0);
    i.device = st.text(1) == "device";
    i.subject = st.text(2);
    i.category = st.text(3);
    i.happened = at(4);
    if (!st.is_null(5)) i.closed = at(5);
    i.actions = static_cast<std::size_t>(st.integer(6));
    if (!st.is_null(7)) i.last_action = at(7);
    out.push_back(std::move(i));
  }
  if (!err.empty()) return failed();
  std::reverse(out.begin(), out.end());
  if (omitted) *omitted = total - out.size();
  return out;
}

std::size_t exception_store::open_incidents() {
  std::string err;
  auto st = db_.prepare("SELECT count(*) FROM incidents WHERE closed_at IS NULL", &err);
  if (!st || !st.step(&err)) return 0;
  return static_cast<std::size_t>(st.integer(0));
}

}  // namespace hallpass::store
