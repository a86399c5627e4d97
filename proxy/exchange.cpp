// decide_exchange and finish_exchange: the decision of one exchange and its record (the
// access log line and the metrics). Shared by the session and the tunnel, so neither calls
// back into the other.
#include "proxy/exchange.hpp"

#include "proxy/access_record.hpp"
#include "proxy/shared_state.hpp"
#include "proxy/worker.hpp"
#include "rules/decision.hpp"

namespace hallpass {

const rules::verdict& decide_exchange(worker& w, const client_connection& c, exchange& ex,
                                      std::optional<std::string_view> path) {
  rules::request_facts f;
  f.client = c.ip;
  f.method = ex.method;
  f.scheme = ex.scheme;
  f.host = ex.host;
  f.port = ex.port;
  f.path = path;
  f.time = std::chrono::floor<std::chrono::seconds>(ex.start);
  const auto t0 = std::chrono::steady_clock::now();
  // The one decision function (rules/decision.hpp), the same explain uses: the policy, then the
  // headteacher's exceptions and local entries (never over a locked category). The index is
  // pinned with the verdict, whose views point into it.
  ex.exceptions = w.state().exceptions.load(std::memory_order_acquire);
  ex.verdict.emplace(rules::decide_request(*ex.cfg->policy, ex.exceptions.get(), f));
  // A blocked VPN, web proxy or DNS-over-HTTPS host is an attempt to get round the filter.
  const auto& v = *ex.verdict;
  if (v.act == rules::action::block && v.matched_category && v.matched_category->circumvention) ex.circumvention = true;
  w.state().metrics.decision_seconds.Observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return *ex.verdict;
}

namespace {

// Every browser's User-Agent begins with "Mozilla/" (Chrome, Edge, Safari, Firefox alike); apps,
// update agents and command-line tools send their own. Only a browser can show a page in
// answer to a blocked HTTPS site; other clients get the plain refusal.
bool looks_like_browser(std::string_view user_agent) { return user_agent.starts_with("Mozilla/"); }

}  // namespace

tunnel_plan plan_tunnel(worker& w, const client_connection& c, exchange& ex, std::string_view user_agent) {
  const auto& v = decide_exchange(w, c, ex, std::nullopt);
  if (!v.host.text.empty()) ex.host = v.host.text;
  const bool ca = ex.cfg->inspecting();
  if (v.act == rules::action::block) {
    if (ca && v.by != rules::decided_by::invalid_host && looks_like_browser(user_agent)) return tunnel_plan::block_page;
    return tunnel_plan::refuse;
  }
  if (!ca) return tunnel_plan::relay;
  // TODO(inspection rules): rules::decide_inspection; until then every allowed tunnel is inspected.
  return tunnel_plan::inspect;
}

void finish_exchange(worker& w, const client_connection& c, exchange& ex) {
  auto& m = w.state().metrics;
  m.bytes_from_clients.Increment(static_cast<double>(ex.bytes_in));
  m.bytes_to_clients.Increment(static_cast<double>(ex.bytes_out));
  if (ex.circumvention) m.circumvention_attempts.Increment();
  const auto ended = ex.answered.value_or(std::chrono::steady_clock::now());
  m.observe_exchange(ex.status, std::chrono::duration<double>(ended - ex.started).count());
  const rules::verdict* v = ex.verdict ? &*ex.verdict : nullptr;
  if (v && v->chosen_role && ex.action != outcome::error) {
    const auto& counters = w.role_counters();
    const auto index = static_cast<std::size_t>(v->chosen_role - ex.cfg->policy->roles.data());
    if (index < counters.size() && ex.cfg->generation == w.config()->generation) {
      (ex.action == outcome::allow ? counters[index].allowed : counters[index].blocked)->Increment();
    }
  }
  if (!w.state().access_log.enabled() || !ex.cfg) return;
  access_record r;
  r.start = ex.start;
  r.client = c.ip_text;
  r.role = v && v->chosen_role ? std::string_view(v->chosen_role->name) : std::string_view();
  r.method = ex.method;
  r.scheme = ex.scheme;
  r.host = ex.host;
  r.port = ex.port;
  r.path = ex.path;
  r.query = ex.query;
  r.status = ex.status;
  r.action = to_string(ex.action);
  r.rule = v ? v->rule_id : std::string_view();
  r.category = v ? v->category_name() : std::string_view();
  r.reason = !ex.reason_override.empty() ? ex.reason_override : v ? v->reason : std::string_view();
  r.bytes_from_client = ex.bytes_in;
  r.bytes_to_client = ex.bytes_out;
  r.duration_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - ex.started).count();
  r.circumvention = ex.circumvention;
  r.tls = ex.inspected ? std::string_view("inspected") : std::string_view();
  if (ex.cfg->daemon.access_log.search_terms) r.search = ex.search_terms;
  r.note = ex.note;
  w.state().access_log.write(format_access_record(r, ex.cfg->policy->zone, ex.cfg->daemon.access_log.keep_query));
}
}  // namespace hallpass
