#include "rules/exception_index.hpp"

#include <algorithm>
#include <charconv>

#include "rules/explain.hpp"
#include "rules/host.hpp"

namespace hallpass::rules {

std::string_view to_string(target_kind k) {
  switch (k) {
    case target_kind::domain: return "domain";
    case target_kind::prefix: return "prefix";
    case target_kind::url: return "url";
  }
  return "domain";
}

std::optional<target_kind> parse_target_kind(std::string_view s) {
  if (s == "domain") return target_kind::domain;
  if (s == "prefix") return target_kind::prefix;
  if (s == "url") return target_kind::url;
  return std::nullopt;
}

target_kind default_target_kind(std::string_view url) {
  auto parts = split_url(url, nullptr);
  if (!parts) return target_kind::prefix;
  return parts->path == "/" || parts->path.empty() ? target_kind::domain : target_kind::prefix;
}

std::optional<target> make_target(std::string_view url, target_kind kind, std::string* error) {
  auto parts = split_url(url, error);
  if (!parts) return std::nullopt;
  auto host = normalize_host(parts->host, error);
  if (!host) return std::nullopt;
  target t;
  t.kind = kind;
  t.host = host->text;
  // A path typed as people read it ("/wiki/École", "/a b") as a browser sends it (the proxy
  // refuses such bytes raw in a request), in canonical form.
  const std::string path = canonical_entry_path(parts->path);
  t.path = kind == target_kind::domain ? "/" : path;
  // As people read it, a URL (an IPv6 host in brackets: "http://[::1]/page"); no port, since
  // an entry names a host, not a port.
  t.text = kind == target_kind::domain ? t.host : pattern_subject(parts->scheme, *host, 0, t.path);
  return t;
}

std::string duration_text(std::chrono::seconds d) {
  using namespace std::chrono;
  if (d % days(1) == seconds(0)) return std::to_string(d / days(1)) + "d";
  if (d % hours(1) == seconds(0)) return std::to_string(d / hours(1)) + "h";
  if (d % minutes(1) == seconds(0)) return std::to_string(d / minutes(1)) + "m";
  return std::to_string(d.count()) + "s";
}

exception_limit max_exception_until(const policy& p, std::chrono::sys_seconds now) {
  using namespace std::chrono;
  if (p.max_exception_duration) {
    const auto d = *p.max_exception_duration;
    return {now + d, "exceptions.max_duration (" + duration_text(d) + ")"};
  }
  // Term dates are school-local and inclusive: a term ends at local midnight after its last day.
  const auto today = floor<days>(p.zone.to_local(now)).time_since_epoch();
  const date_range* term = nullptr;
  for (const auto& t : p.timetable.terms) {
    if (t.last.time_since_epoch() < today) continue;
    if (!term || t.first < term->first) term = &t;
  }
  if (term) {
    const auto end = p.zone.to_sys(local_seconds{(term->last + days(1)).time_since_epoch()});
    return {end, "the end of term '" + term->name + "'"};
  }
  return {now + default_max_exception, "90 days (the policy has no term dates ahead)"};
}

bool path_prefix_matches(std::string_view prefix, std::string_view path, bool path_without_case) {
  if (!path_starts_with(path, prefix, path_without_case)) return false;
  if (path.size() == prefix.size() || prefix.empty()) return true;
  const char last = prefix.back();
  const char next = path[prefix.size()];
  if (prefix.find('?') != std::string_view::npos) {
    // Inside the query the boundary is a parameter: "/a?x=1" matches "/a?x=1&y=2", not "/a?x=10".
    return last == '&' || last == '?' || next == '&';
  }
  // "/a/" names everything under it; "/a" names the segment a (with any path parameters,
  // "/a;x") and what is under it.
  return last == '/' || next == '/' || next == '?' || next == ';';
}

bool same_page(std::string_view entry, std::string_view request) {
  const auto eq = entry.find('?');
  const auto rq = request.find('?');
  if (page_path(entry.substr(0, eq)) != page_path(request.substr(0, rq))) return false;
  if (eq == std::string_view::npos) return true;
  const std::string_view query = rq == std::string_view::npos ? std::string_view{} : request.substr(rq + 1);
  // Every parameter of the entry's query stands among the request's, in any order, read as
  // any server might read them (fail closed): pieces end at '&' or ';' ("?v=abc;" and
  // "?;v=abc" are v=abc to a server splitting at ';'), and the names compare without ASCII
  // case (ASP.NET reads "V=abc" as v=abc); the values compare exactly ("v=abc" and "v=ABC" are
  // different videos). Audit of ways round the filter, 2026-12-06, F2.
  auto same_param = [](std::string_view a, std::string_view b) {
    const auto an = a.find('='), bn = b.find('=');
    if (a.substr(an == std::string_view::npos ? a.size() : an) != b.substr(bn == std::string_view::npos ? b.size() : bn))
      return false;
    return ascii_iequals(a.substr(0, an), b.substr(0, bn));
  };
  bool all = true;
  for_each_param(entry.substr(eq + 1), [&](std::string_view wanted) {
    if (wanted.empty() || !all) return;
    bool found = false;
    if (!query.empty())
      for_each_param(query, [&](std::string_view piece) { found = found || same_param(piece, wanted); }, "&;");
    all = found;
  }, "&;");
  return all;
}

std::shared_ptr<const exception_index> exception_index::build(std::vector<exception_entry> exceptions,
                                                              std::vector<local_entry> entries,
                                                              std::vector<ban_entry> bans) {
  auto idx = std::make_shared<exception_index>();
  idx->bans_ = std::move(bans);
  for (auto& b : idx->bans_) {
    // A subject that names no device leaves the default device_id, which matches nothing.
    if (b.device) {
      if (auto d = parse_device(b.subject)) b.device_id = std::move(*d);
    }
    b.rule_id = "ban " + std::to_string(b.id);
  }
  idx->exceptions_ = std::move(exceptions);
  idx->entries_ = std::move(entries);
  // Paths in canonical form (entries stored before paths were normalised may not be).
  std::string canonical;
  for (auto& e : idx->exceptions_) {
    if (normalize_path(e.target.path, canonical)) e.target.path = canonical;
  }
  for (auto& e : idx->entries_) {
    if (normalize_path(e.target.path, canonical)) e.target.path = canonical;
  }
  for (std::size_t i = 0; i < idx->exceptions_.size(); ++i) {
    idx->by_host_[idx->exceptions_[i].target.host].push_back(static_cast<std::int64_t>(i));
    idx->ids_.push_back("exception " + std::to_string(idx->exceptions_[i].id));
  }
  for (std::size_t i = 0; i < idx->entries_.size(); ++i) {
    idx->by_host_[idx->entries_[i].target.host].push_back(-1 - static_cast<std::int64_t>(i));
    idx->ids_.push_back(local_entry_rule_id(idx->entries_[i].block, idx->entries_[i].id));
  }
  return idx;
}

namespace {
constexpr std::string_view local_block_prefix = "local block ";
}  // namespace

std::string local_entry_rule_id(bool block, std::int64_t id) {
  return std::string(block ? local_block_prefix : std::string_view("local allow ")) + std::to_string(id);
}

std::optional<std::int64_t> local_block_id(std::string_view rule_id) {
  if (!rule_id.starts_with(local_block_prefix)) return std::nullopt;
  const std::string_view digits = rule_id.substr(local_block_prefix.size());
  std::int64_t id = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), id);
  if (ec != std::errc() || end != digits.data() + digits.size() || digits.empty() || id <= 0) return std::nullopt;
  return id;
}

bool exception_index::target_matches(const rules::target& t, std::optional<std::string_view> path, bool for_block,
                                     bool later, bool parameters_dropped) {
  if (t.kind == target_kind::domain) return true;  // the host already matched
  if (parameters_dropped && !for_block && path) {
    // The reading without parameters (decision.hpp): an allow entry is read as that server reads
    // it too, so that one written with parameters ("/page;x=1") still opens its page there.
    const std::string_view entry_path = std::string_view(t.path).substr(0, t.path.find('?'));
    if (entry_path.find(';') != std::string_view::npos) {
      rules::target read = t;
      read.path = path_without_parameters(entry_path) + t.path.substr(entry_path.size());
      return target_matches(read, path, false, later, false);
    }
  }
  // A relayed tunnel: the path is unknown for good, fail closed. An inspected one: the path
  // comes with each request, so a page entry neither blocks the CONNECT nor keeps it shut.
  if (!path) return later ? !for_block : for_block;
  if (t.kind == target_kind::prefix) {
    if (path_prefix_matches(t.path, *path, for_block)) return true;
    // A block also holds against the path as servers that drop path parameters before resolving
    // dot segments read it (Tomcat, Jetty: "/x/..;/y" is "/y"). Fail closed; only a block.
    if (!for_block) return false;
    const auto q = path->find('?');
    const std::string_view request_path = path->substr(0, q);
    // And both the entry and the request as Windows servers read file names ("/secret.",
    // "/secret%20", "/secret::$DATA" are "/secret" to IIS, and an entry "/Ltd./accounts" is
    // "/Ltd/accounts": audit of ways round the filter and its review, 2026-12-06). Only when
    // a reading can differ: most paths pay one scan and no allocation.
    const bool parameters = request_path.find(';') != std::string_view::npos;
    const auto eq = t.path.find('?');
    const std::string_view entry_path = std::string_view(t.path).substr(0, eq);
    const bool windows_entry = windows_reads_differently(entry_path);
    if (!parameters && !windows_entry && !windows_reads_differently(request_path)) return false;
    std::string resolved =
        path_as_windows_reads_it(parameters ? path_resolved_without_parameters(request_path) : std::string(request_path));
    if (q != std::string_view::npos) resolved.append(path->substr(q));
    if (!windows_entry) return path_prefix_matches(t.path, resolved, true);
    std::string entry = path_as_windows_reads_it(entry_path);
    if (eq != std::string::npos) entry.append(std::string_view(t.path).substr(eq));
    return path_prefix_matches(entry, resolved, true);
  }
  if (for_block) return same_page(t.path, *path);
  if (*path == t.path) return true;
  // A page exception opens exactly its URL, but one written without path parameters opens the
  // page with them too ("/x/y" opens "/x;jsessionid=1/y"): the request form stores a page
  // without them (session tokens, as a query is left out with access_log.keep_query off), and
  // the headteacher approves what the form stored. The query still compares exactly.
  const std::string_view entry_path = std::string_view(t.path).substr(0, t.path.find('?'));
  const auto q = path->find('?');
  const std::string_view request_path = path->substr(0, q);
  if (entry_path.find(';') != std::string_view::npos || request_path.find(';') == std::string_view::npos) return false;
  const std::string_view entry_query = std::string_view(t.path).substr(entry_path.size());
  const std::string_view request_query = q == std::string_view::npos ? std::string_view{} : path->substr(q);
  return entry_query == request_query && path_without_parameters(request_path) == entry_path;
}

bool exception_index::scope_matches(const exception_entry& e, const verdict& v, const request_facts& f) const {
  if (v.chosen_role) {
    for (const auto& r : e.roles) {
      if (r == v.chosen_role->name) return true;
    }
  }
  // User names compare as the directory compares them (ASCII case ignored), so an exception
  // typed "Sam" opens the site for the user the directory calls "sam".
  if (!e.user.empty() && policy::group_name_equal{}(e.user, f.user)) return true;
  if (e.client && f.client && e.client->contains(*f.client)) return true;
  if (!e.group.empty()) {
    for (const auto& g : f.groups) {
      if (policy::group_name_equal{}(g, e.group)) return true;
    }
  }
  if (e.device && device_matches(*e.device, f)) return true;
  return false;
}

void exception_index::apply(verdict& v, const request_facts& f) const {
  if (v.by == decided_by::locked_category || v.by == decided_by::unchecked) return;
  if (by_host_.empty() || v.host.text.empty()) return;
  // Walk the host and its parent domains; collect candidates.
  const local_entry* block = nullptr;
  const local_entry* allow = nullptr;
  const exception_entry* exception = nullptr;
  std::size_t block_i = 0, allow_i = 0, exception_i = 0;
  std::string_view h = v.host.text;
  const bool exact_only = v.host.kind != host_kind::name;
  // The request's path in canonical form, as the entries' paths are (once, not per entry).
  std::string canonical;
  std::optional<std::string_view> path = f.path;
  if (f.path && normalize_path(*f.path, canonical)) path = canonical;
  const bool later = f.path_seen_later && !f.path;
  bool first = true;
  while (true) {
    if (auto it = by_host_.find(h); it != by_host_.end()) {
      for (std::int64_t code : it->second) {
        if (code >= 0) {
          const auto& e = exceptions_[static_cast<std::size_t>(code)];
          // Only a domain exception covers subdomains; the others name one host.
          if (!first && e.target.kind != target_kind::domain) continue;
          if (f.time < e.from || f.time >= e.until) continue;
          if (!scope_matches(e, v, f) || !target_matches(e.target, path, false, later, f.path_parameters_dropped)) {
            continue;
          }
          if (!exception) {
            exception = &e;
            exception_i = static_cast<std::size_t>(code);
          }
        } else {
          const auto i = static_cast<std::size_t>(-1 - code);
          const auto& e = entries_[i];
          if (!first && e.target.kind != target_kind::domain) continue;
          if (!target_matches(e.target, path, e.block, later, f.path_parameters_dropped)) continue;
          if (e.block && !block) {
            block = &e;
            block_i = i;
          } else if (!e.block && !allow) {
            allow = &e;
            allow_i = i;
          }
        }
      }
    }
    if (exact_only) break;
    auto dot = h.find('.');
    if (dot == std::string_view::npos) break;
    h.remove_prefix(dot + 1);
    first = false;
  }
  if (block) {
    v.act = action::block;
    v.by = decided_by::rule;
    v.matched_rule = nullptr;
    v.matched_category = nullptr;
    v.rule_id = ids_[exceptions_.size() + block_i];
    v.reason = block->reason;
    v.clause = "000 7.3";
    return;
  }
  if (v.act != action::block) return;
  if (exception) {
    v.act = action::allow;
    v.exception_id = std::to_string(exception->id);
    v.rule_id = ids_[exception_i];
    v.reason = exception->reason;
    v.clause = "000 7.5";
    return;
  }
  if (allow) {
    v.act = action::allow;
    v.by = decided_by::rule;
    v.matched_rule = nullptr;
    v.rule_id = ids_[exceptions_.size() + allow_i];
    v.reason = allow->reason;
  }
}

std::string_view exception_index::path_entry_for(const verdict& v, const request_facts& f) const {
  if (v.host.text.empty()) return {};
  const auto it = by_host_.find(v.host.text);  // entries with a path name one host exactly
  if (it == by_host_.end()) return {};
  for (std::int64_t code : it->second) {
    if (code >= 0) {
      const auto& e = exceptions_[static_cast<std::size_t>(code)];
      if (e.target.kind == target_kind::domain || f.time < e.from || f.time >= e.until) continue;
      if (!scope_matches(e, v, f)) continue;
      return ids_[static_cast<std::size_t>(code)];
    }
    const auto i = static_cast<std::size_t>(-1 - code);
    if (entries_[i].target.kind == target_kind::domain) continue;
    return ids_[exceptions_.size() + i];
  }
  return {};
}

const ban_entry* exception_index::ban_for(const request_facts& f) const {
  const ban_entry* found = nullptr;
  for (const auto& b : bans_) {
    if (f.time < b.from || f.time >= b.until) continue;
    bool matches = false;
    if (!b.device) {
      matches = !f.user.empty() && policy::group_name_equal{}(f.user, b.subject);  // as scope_matches
    } else {
      matches = device_matches(b.device_id, f);
    }
    if (matches && (!found || b.until > found->until)) found = &b;
  }
  return found;
}

std::size_t exception_index::active_bans(std::chrono::sys_seconds now) const {
  std::size_t n = 0;
  for (const auto& b : bans_) n += now >= b.from && now < b.until;
  return n;
}

std::size_t exception_index::active_exceptions(std::chrono::sys_seconds now) const {
  std::size_t n = 0;
  for (const auto& e : exceptions_) n += now >= e.from && now < e.until;
  return n;
}

}  // namespace hallpass::rules
