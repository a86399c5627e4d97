// The durable record of the exception workflow (000 7.3, 7.5 and the appendix forms; 002):
// blocked content access requests with every field of the form, the headteacher's decisions
// and the exceptions they create, inappropriate-content reports, the technician's local
// block/allow entries, and an append-only audit log of every change and every refusal.
//
// SQLite in WAL mode with synchronous=FULL, one transaction per change: a change is
// acknowledged (the call returns ok) only after it is committed, so no acknowledged change
// is lost to a crash, kill -9 or power loss.
//
// Not thread-safe: one store thread owns an exception_store and calls it. Never call it from
// a proxy event loop.
#pragma once

#include <boost/json/value.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "rules/exception_index.hpp"
#include "rules/time_zone.hpp"
#include "store/sqlite.hpp"

namespace hallpass::store {

using clock = std::chrono::system_clock;
using seconds_t = std::chrono::sys_seconds;

// Who is acting: the OS user from SO_PEERCRED (or "block page" for the form) and the admin
// role under which the action was allowed.
struct actor {
  std::string os_user;
  std::string admin_role;
};

struct result {
  bool ok = true;
  boost::json::value data;
  std::string error;
  std::string code;  // bad_request, forbidden, not_found, conflict, internal
  static result fail(std::string code, std::string error) {
    result r;
    r.ok = false;
    r.code = std::move(code);
    r.error = std::move(error);
    return r;
  }
};

// The blocked content access request form (000 appendix), plus the scope asked for.
struct request_form {
  std::string url, requester, reasons, site_content, risks, control_measures;
  std::vector<std::string> roles;
  std::optional<std::string> user, client;  // client: CIDR or address
  std::string source = "hallpassctl";      // or "block page"
  std::optional<std::string> client_address;  // the device the form came from
};

enum class list_filter { pending, active, expired, all };

class exception_store {
 public:
  // Opens or creates <dir>/hallpass.db. The zone formats times in responses.
  static std::unique_ptr<exception_store> open(const std::string& dir, const rules::time_zone& zone,
                                               std::string* error);

  // Opens an existing <dir>/hallpass.db for reading only (load_active and the other reads);
  // nullptr with *error when there is none or it cannot be read. Never creates or migrates.
  static std::unique_ptr<exception_store> open_read_only(const std::string& dir, const rules::time_zone& zone,
                                                         std::string* error);

  void set_zone(const rules::time_zone& zone) { zone_ = zone; }

  result file_request(const actor& who, const request_form& form);
  result approve(const actor& who, std::int64_t id, seconds_t from, seconds_t until, rules::target target,
                 const std::string& reason);
  result deny(const actor& who, std::int64_t id, const std::string& reason);
  result revoke(const actor& who, std::int64_t id, const std::string& reason);
  result show(std::int64_t id);
  result list(list_filter filter);
  result file_report(const actor& who, const std::string& url, const std::string& nature, const std::string& reporter,
                     const std::optional<std::string>& individual, const std::optional<rules::target>& block);
  result reports();
  result add_local(const actor& who, bool block, const rules::target& target, const std::string& reason);
  result remove_local(const actor& who, std::int64_t id, const std::string& reason);
  // The local block entries, oldest first: those in force, or (all) removed ones too.
  result local_blocks(bool all);
  result audit(std::optional<seconds_t> since);
  // Records an action that changes no table here (a policy reload) in the audit log.
  void audit_event(const actor& who, const std::string& action, const std::string& object, const std::string& reason,
                   const std::string& outcome);
  // Records a refused command (who, what, why) in the audit log.
  void audit_refusal(const actor& who, const std::string& action, const std::string& object, const std::string& why);

  // The URL a request asks for (empty when the id does not exist).
  std::optional<std::string> request_url(std::int64_t id);
  std::size_t pending_requests();
  // Everything the proxy needs now: unexpired, unrevoked exceptions and live local entries.
  // Everything the exception index needs: live exceptions and local entries. Returns nullopt
  // with *error set when the store cannot be read completely, so that the caller keeps the
  // index it has rather than publishing a partial one (which would drop local blocks). A row
  // whose client scope does not parse is left out: that exception allows nothing.
  std::optional<std::pair<std::vector<rules::exception_entry>, std::vector<rules::local_entry>>> load_active(
      seconds_t now, std::string* error);

 private:
  explicit exception_store(database db, const rules::time_zone& zone) : db_(std::move(db)), zone_(zone) {}
  std::string migrate();
  std::optional<boost::json::object> request_object(std::int64_t id, seconds_t now);
  std::string write_audit(const actor& who, const std::string& action, const std::string& object,
                          const boost::json::value& before, const boost::json::value& after, const std::string& reason,
                          const std::string& outcome);
  std::string iso(std::int64_t unix_seconds) const;
  // One change to a request in one transaction: checks the status is `need`, runs apply(),
  // audits before and after, commits. approve, deny and revoke are this with their UPDATEs.
  result change_request(const actor& who, std::int64_t id, const char* action, const char* need,
                        const std::string& reason, const std::function<std::string()>& apply);
  std::string decide_request(std::int64_t id, const actor& who, const char* decision, const std::string& reason);

  database db_;
  rules::time_zone zone_;
};

seconds_t now_seconds();

}  // namespace hallpass::store
