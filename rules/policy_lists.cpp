// List entries: a line of a list file read as a domain or a URL prefix (and the public
// classify_list_line and list_entry that ask the same), list files, the inline lists a category
// or a rule writes in the policy, the sets and tables the entries go to, and the URL patterns,
// compiled once all are read.
#include "rules/loader.hpp"

#include <algorithm>
#include <memory>

#include <re2/re2.h>

namespace hallpass::rules::loading {

constexpr std::size_t max_warnings_per_file = 10;

bool is_plain_domain(std::string_view s) {
  // Fast path for list files: already lower-case ASCII, well formed, not ending in a digit
  // (which might make it an IPv4 address under WHATWG rules).
  if (s.empty() || s.size() > 253 || s.front() == '.' || s.back() == '.' || s.front() == '-')
    return false;
  if (s.back() >= '0' && s.back() <= '9') return false;
  std::size_t label = 0;
  for (char c : s) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
      continue;
    }
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_')) return false;
    if (++label > 63) return false;
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

// "*.example.com" and ".example.com" mean the same as "example.com" here.
std::string_view strip_wildcard(std::string_view s) {
  if (s.starts_with("*."))
    s.remove_prefix(2);
  else if (s.starts_with("."))
    s.remove_prefix(1);
  return s;
}

// A line of a `lines` feed is a URL prefix when a '/' follows its host (after any scheme).
bool is_url_line(std::string_view line) {
  if (const auto scheme = line.find("://"); scheme != std::string_view::npos)
    line.remove_prefix(scheme + 3);
  return line.find('/') != std::string_view::npos;
}

// Returns the normalized domain or nullopt with err.
std::optional<std::string> list_domain(std::string_view raw, std::string* err) {
  raw = strip_wildcard(trim(raw));
  if (is_plain_domain(raw)) return std::string(raw);
  auto h = normalize_host(raw, err);
  if (!h) return std::nullopt;
  // An IPv6 spelling of an IPv4 address (::ffff:1.2.3.4, NAT64) is that IPv4 address, which
  // is what a request to it is decided as: kept as written, it matched nothing (policy audit,
  // 2026-12-05).
  if (h->kind == host_kind::ipv6) {
    if (const auto a = ip_address::parse(h->text)) {
      if (const auto v4 = ipv4_reached_by(*a)) return v4->to_string();
    }
  }
  return std::move(h->text);
}

// Parses "host/path" (UT1 urls format; a scheme is tolerated) into host and path prefix.
std::optional<std::pair<std::string, std::string>> list_url(std::string_view raw,
                                                            std::string* err) {
  raw = trim(raw);
  if (auto s = raw.find("://"); s != std::string_view::npos) raw.remove_prefix(s + 3);
  raw = raw.substr(0, raw.find('#'));             // a fragment never reaches a server
  if (raw.ends_with("/?")) raw.remove_suffix(1);  // an empty query: the site itself
  const auto slash = raw.find('/');
  std::string_view host = raw.substr(0, slash);
  // In the canonical form requests are compared in ("/%7Euser" is "/~user", "/a/./b" is "/a/b").
  std::string path =
      slash == std::string_view::npos ? "/" : canonical_entry_path(raw.substr(slash));
  if (auto colon = host.rfind(':'); colon != std::string_view::npos &&
                                    host.find(']') == std::string_view::npos &&
                                    host.find(':') == colon) {
    host = host.substr(0, colon);  // a port in a list entry does not change the match
  }
  auto d = list_domain(host, err);
  if (!d) return std::nullopt;
  // "192.0.2.0/24" is an address range, not the page /24 of 192.0.2.0: it blocked neither the
  // range nor anything else (outside-in audit of the feeds, 2026-12-06, L4). Only a range as
  // one is written, though: a prefix the family can have and no address bits after it. UT1's
  // malware and phishing `urls` list pages such as "107.172.238.16/42" and
  // "107.172.238.16/8", which were dropped as ranges and so allowed (explain audit, 2026-12-07,
  // F8): they are that address's pages.
  if (ip_address::parse(*d) && slash != std::string_view::npos && raw.size() - slash >= 2 &&
      raw.size() - slash <= 4 &&
      std::all_of(raw.begin() + static_cast<std::ptrdiff_t>(slash) + 1, raw.end(),
                  [](char c) { return c >= '0' && c <= '9'; }) &&
      ip_network::parse(std::string(*d) + std::string(raw.substr(slash)))) {
    if (err) *err = "an address range (" + std::string(raw) + "): lists name addresses one by one, not ranges";
    return std::nullopt;
  }
  return std::make_pair(std::move(*d), std::move(path));
}

}  // namespace hallpass::rules::loading

namespace hallpass::rules {

list_line classify_list_line(std::string_view raw, list_file_kind kind) {
  if (const auto hash = raw.find('#'); hash != std::string_view::npos) raw = raw.substr(0, hash);
  const std::string_view text = loading::trim(raw);
  if (text.empty()) return {};
  const bool url =
      kind == list_file_kind::urls || (kind == list_file_kind::mixed && loading::is_url_line(text));
  return {url ? list_line_kind::url : list_line_kind::domain, text};
}

// As load_list_file keeps the line: add_url makes a URL of a whole site a domain entry.
std::optional<std::string> list_entry(const list_line& line) {
  std::string why;
  switch (line.kind) {
    case list_line_kind::blank:
      return std::nullopt;
    case list_line_kind::url: {
      auto u = loading::list_url(line.text, &why);
      if (!u) return std::nullopt;
      if (u->second == "/") return std::move(u->first);
      return u->first + u->second;
    }
    case list_line_kind::domain:
      return loading::list_domain(line.text, &why);
  }
  return std::nullopt;
}

}  // namespace hallpass::rules

namespace hallpass::rules::loading {

std::optional<set_id> loader::new_set(std::string name, std::size_t category_index, bool locked,
                                      const YAML::Node& where) {
  if (p_->set_names.size() >= 65535) {
    error(where, "the policy has more than 65,535 categories and rule lists");
    return std::nullopt;
  }
  const auto id = static_cast<set_id>(p_->set_names.size());
  p_->set_names.push_back(std::move(name));
  p_->set_is_locked.push_back(locked);
  p_->set_has_patterns.push_back(false);
  p_->set_category.push_back(category_index);
  return id;
}

domain_table::add_result loader::add_domain(std::string_view d, set_id set) {
  const auto r = p_->domains.add(d, set);
  if (r == domain_table::add_result::full && !membership_overflow_reported_) {
    error_at_file("too many different combinations of categories share domains (limit 65,535)");
    membership_overflow_reported_ = true;
  }
  return r;
}

bool loader::add_url(std::string host, std::string path, set_id set) {
  // A URL of a whole site (`https://site.example/`): every path of the host and its
  // subdomains, which is what a domain entry matches, and a domain entry is decided on
  // relayed HTTPS too, where no path is seen. As a URL prefix it blocked http:// only
  // (outside-in audit I, 2026-12-05).
  if (path == "/") return add_domain(host, set) == domain_table::add_result::added;
  // Once per set, host and path, like a domain: repeated lines in a feed took memory and were
  // compared on every request to the host. The key cannot be spelled two ways: a host has no
  // space, and the set is its number.
  if (!url_keys_.insert(std::to_string(set) + ' ' + host + path).second) return false;
  // Marked in the domain table too, so the engine reads url_prefixes only for such hosts.
  add_domain(host, domain_table::url_prefix_marker);
  p_->url_prefixes[std::move(host)].add(url_prefix{std::move(path), set});
  return true;
}

// Reads a list file of domains (or URL prefixes). Unreadable lines are warnings, not errors:
// a feed with one odd line must not take the whole policy down.
// *read: whether the file was read (so that 0 entries means an empty list, not an error).
// `into`: a table other than the policy's domain table (the never-inspect list), domains only.
// Reads a list file into `set` (list_counts: what it read, and what was new).
loader::list_counts loader::load_list_file(const fs::path& path, list_kind kind, set_id set,
                                           const YAML::Node& where, bool required, bool* read,
                                           domain_table* into, bool follow_links) {
  list_counts counts;
  std::string err;
  auto text = read_file(path, &err, follow_links);
  if (!text) {
    if (required) error(where, path.string() + " " + err);
    return counts;
  }
  if (read) *read = true;
  std::size_t bad = 0, line_no = 0;
  std::string_view rest = *text;
  if (kind != list_kind::urls) {
    // Room for every line at once, so a large list does not make the table rehash as it grows.
    const auto lines = static_cast<std::size_t>(std::count(rest.begin(), rest.end(), '\n')) + 1;
    (into ? *into : p_->domains)
        .reserve(lines, rest.size());  // a record is a length byte and the name
  }
  const std::string shown = path.string();
  std::size_t suffixes = 0;  // entries left out of an allow: top-level domains, public suffixes
  std::size_t feed_suffixes = 0;  // a feed's entries left out: top-level domains, registry suffixes
  // A feed's entry for a whole top-level domain or registry suffix (load_options::is_registry_suffix).
  auto feed_refuses = [&](std::string_view host) {
    if (!reading_feed_ || !feed_entry_is_registry_suffix(host, opt_.is_registry_suffix)) return false;
    if (++feed_suffixes <= max_warnings_per_file) {
      warnings_.push_back({shown, static_cast<int>(line_no), 1,
                           "left out: " + quote(host) +
                               " is a top-level domain or a registry's suffix (like co.uk), and a feed's entry "
                               "would block every site under it; the school's own lists may name one"});
    }
    return true;
  };
  // The set an entry on `host` goes to: a public suffix in a list an allow rule uses goes to
  // the category's block-only set (block_only_set), with a warning at its line.
  auto set_for = [&](std::string_view host) {
    if (checking_ == nullptr || !opens_a_suffix(host)) return std::optional<set_id>(set);
    if (++suffixes <= max_warnings_per_file) {
      warnings_.push_back({shown, static_cast<int>(line_no), 1, suffix_refused(host)});
    }
    return block_only_set();
  };
  while (!rest.empty()) {
    ++line_no;
    auto nl = rest.find('\n');
    const auto [line_kind, line] = classify_list_line(rest.substr(0, nl), kind);
    rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
    if (line_kind == list_line_kind::blank) continue;
    std::string why;
    if (line_kind == list_line_kind::url) {
      auto u = list_url(line, &why);
      if (u && u->second.size() <= 1 && feed_refuses(u->first)) continue;
      if (u) {
        ++counts.entries;
        const auto to = set_for(u->first);
        if (to && add_url(std::move(u->first), std::move(u->second), *to)) ++counts.new_urls;
        continue;
      }
    } else {
      // Most lines are already normalized: those are added without a copy.
      const bool plain = is_plain_domain(line);
      const auto normalized = plain ? std::optional<std::string>() : list_domain(line, &why);
      if (plain || normalized) {
        const std::string_view d = plain ? line : std::string_view(*normalized);
        if (feed_refuses(d)) continue;
        ++counts.entries;
        const auto to = set_for(d);
        if (!to) continue;
        const auto r = into ? into->add(d, *to) : add_domain(d, *to);
        if (r == domain_table::add_result::full) return counts;
        if (r == domain_table::add_result::added) ++counts.new_domains;
        continue;
      }
    }
    if (++bad <= max_warnings_per_file) {
      warnings_.push_back({shown, static_cast<int>(line_no), 1, "skipped: " + why});
    }
  }
  if (bad > max_warnings_per_file) {
    warnings_.push_back({shown, 0, 0,
                         "skipped " + std::to_string(bad) + " unreadable lines in all (" +
                             std::to_string(bad - max_warnings_per_file) + " not shown)"});
  }
  if (feed_suffixes > max_warnings_per_file) {
    warnings_.push_back({shown, 0, 0,
                         "left " + std::to_string(feed_suffixes) + " top-level domains or registry suffixes in all out (" +
                             std::to_string(feed_suffixes - max_warnings_per_file) + " not shown)"});
  }
  if (suffixes > max_warnings_per_file) {
    warnings_.push_back({shown, 0, 0,
                         "left " + std::to_string(suffixes) +
                             " top-level domains or public suffixes in all out of an allow (" +
                             checking_->allowed_by + "; " +
                             std::to_string(suffixes - max_warnings_per_file) + " not shown)"});
  }
  return counts;
}

void loader::add_pattern(const YAML::Node& n, const std::string& text, set_id set) {
  pending_patterns_.push_back({text, set, n.Mark()});
  p_->set_has_patterns[set] = true;
}

// Inline lists shared by categories and rules. Returns counts via the category (if any).
void loader::load_inline_lists(const YAML::Node& n, const std::string& what, set_id set,
                               category* c) {
  if (n["domains"]) {
    each_domain(n["domains"], what, [&](const std::string& dom, const YAML::Node& d) {
      const auto to = inline_set(dom, set, d, false);
      if (!to) return;
      if (add_domain(dom, *to) == domain_table::add_result::added && c) ++c->domain_count;
    });
  }
  if (n["urls"]) {
    for (const auto& u : items(n["urls"], what + " urls")) {
      auto s = scalar(u, what + " url");
      if (!s) continue;
      std::string err;
      auto parsed = list_url(*s, &err);
      if (!parsed) {
        error(u, what + ": " + err);
        continue;
      }
      const auto to = inline_set(parsed->first, set, u, true);
      if (!to) continue;
      if (add_url(std::move(parsed->first), std::move(parsed->second), *to) && c) ++c->url_count;
    }
  }
  if (n["patterns"]) {
    for (const auto& pat : items(n["patterns"], what + " patterns")) {
      auto s = scalar(pat, what + " pattern");
      if (!s) continue;
      // An empty pattern matches every URL: in an allow, an unfiltered role by a stray ''
      // (policy audit, 2026-12-05). Whoever means every URL writes '.*'.
      if (s->empty()) {
        error(pat, what + ": an empty pattern matches every URL; write '.*' if that is meant");
        continue;
      }
      // Nor one that matches the empty text: it matches every URL too. A stray '|' at the end
      // of an allow ('^https?://ourschool\.sch\.uk/|') opened every site for a role while
      // check said OK (explain audit, 2026-12-06, H2); so do '()', 'x*' and '(|x)'.
      if (*s != ".*") {
        RE2::Options o;
        o.set_log_errors(false);
        const RE2 re(*s, o);
        if (re.ok() && RE2::PartialMatch("", re) && RE2::PartialMatch("http://no-such-site.invalid/", re)) {
          error(pat, what + ": the pattern " + quote(*s) +
                         " matches every URL (it matches an empty text: a stray '|', '*', '?' or '()'?); write '.*' "
                         "if that is meant");
          continue;
        }
      }
      add_pattern(pat, *s, set);
      if (c) ++c->pattern_count;
    }
  }
}

void loader::finish_patterns() {
  if (pending_patterns_.empty()) return;
  RE2::Options o;
  o.set_max_mem(256 << 20);
  o.set_log_errors(false);
  auto set = std::make_unique<RE2::Set>(o, RE2::UNANCHORED);
  bool ok = true;
  for (const auto& pp : pending_patterns_) {
    std::string err;
    if (set->Add(pp.text, &err) < 0) {
      error_at(pp.mark,
               "URL pattern " + quote(pp.text) + " is not a valid RE2 regular expression: " + err);
      ok = false;
      continue;
    }
    p_->pattern_set.push_back(pp.set);
    if (p_->set_is_locked[pp.set]) p_->locked_has_patterns = true;
  }
  if (!ok) return;
  if (!set->Compile()) {
    error_at_file("the URL patterns together are too large to compile");
    return;
  }
  p_->patterns = std::move(set);
  const auto& ps = p_->pattern_set;
  if (std::all_of(ps.begin(), ps.end(), [&](set_id s) { return s == ps.front(); })) {
    p_->patterns_one_set = ps.front();
  }
}

}  // namespace hallpass::rules::loading
