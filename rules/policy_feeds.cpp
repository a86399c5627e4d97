// The policy's feeds section (lists `hallpass feeds update` downloads into the state directory),
// and the feed lists a category uses, read from each feed's current version on disk.
#include "rules/loader.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <set>
#include <system_error>

namespace hallpass::rules::loading {

namespace {

// The Unix time in a feed's feed.info (`fetched_at: SECONDS`), or nothing when it has none.
// Not through a symbolic link, as the feed's lists are not (read_file): the feed's directory
// belongs to the daemon's user, and the start reads it as root.
std::optional<std::int64_t> read_fetched_at(const fs::path& info) {
  std::string err;
  const auto text = read_file(info, &err, false);
  if (!text) return std::nullopt;
  std::string_view rest = *text;
  while (!rest.empty()) {
    const auto nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
    if (!line.starts_with("fetched_at:")) continue;
    line = trim(line.substr(11));
    std::int64_t v = 0;
    const auto r = std::from_chars(line.data(), line.data() + line.size(), v);
    if (r.ec == std::errc() && r.ptr == line.data() + line.size()) return v;
  }
  return std::nullopt;
}

bool valid_feed_name(std::string_view s) {
  return !s.empty() && s.size() <= 64 && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
  });
}

}  // namespace

void loader::load_feeds(const YAML::Node& feeds) {
  if (!feeds.IsMap()) {
    error(feeds,
          "feeds must be a mapping from feed names to their settings (url, format, ...), and "
          "'required'");
    return;
  }
  std::set<std::string> seen;
  for (const auto& kv : feeds) {
    const std::string name = kv.first.Scalar();
    if (name == "required") {
      if (auto b = boolean(kv.second, "feeds.required")) p_->feeds_required = *b;
      continue;
    }
    if (!seen.insert(name).second) {
      error(kv.first, "feed " + quote(name) + " is defined twice");
      continue;
    }
    if (!valid_feed_name(name)) {
      error(kv.first,
            quote(name) +
                " is not a feed name: letters, digits, '-' and '_' only (it names a folder)");
      continue;
    }
    const std::string what = "feed " + quote(name);
    const YAML::Node& n = kv.second;
    feed f;
    f.name = name;
    if (check_map(n, what,
                  {"url", "format", "credentials_file", "ca_file", "min_entries", "locked",
                   "connect_timeout", "timeout", "max_mib"})) {
      if (n["connect_timeout"]) {
        if (auto d = duration(n["connect_timeout"], what + " connect_timeout")) {
          f.connect_timeout =
              std::max(std::chrono::seconds{1}, std::chrono::ceil<std::chrono::seconds>(*d));
        }
      }
      if (n["timeout"]) {
        if (auto d = duration(n["timeout"], what + " timeout")) {
          f.timeout =
              std::max(std::chrono::seconds{1}, std::chrono::ceil<std::chrono::seconds>(*d));
        }
      }
      if (n["max_mib"]) {
        if (auto m = integer(n["max_mib"], what + " max_mib", 1, 65536))
          f.max_bytes = static_cast<std::uint64_t>(*m) << 20;
      }
      if (!n["url"]) {
        error(kv.first, what + " has no url: where `hallpass feeds update` downloads it from");
      } else if (auto u = scalar(n["url"], what + " url")) {
        if (u->starts_with("https://")) {
          f.url = *u;
        } else if (u->starts_with("http://")) {
          f.url = *u;
          const auto mark = n["url"].Mark();
          warnings_.push_back({file_, mark.line + 1, mark.column + 1,
                               what + " url is plain http: nothing proves the lists come from "
                                      "their publisher; use https where the publisher offers it"});
        } else {
          error(n["url"], what + " url must be an https:// (or http://) URL, not " + quote(*u));
        }
        // A user name or password in the URL is sent, but printed and stored nowhere
        // (feeds::url_without_credentials); the policy file itself is often readable by more
        // people than the credentials should be (outside-in audit of the feeds, 2026-12-06, M3).
        const auto start = u->find("://");
        const auto end = start == std::string::npos ? std::string::npos : u->find_first_of("/?#", start + 3);
        if (start != std::string::npos && u->substr(start + 3, end - (start + 3)).find('@') != std::string::npos) {
          const auto mark = n["url"].Mark();
          warnings_.push_back({file_, mark.line + 1, mark.column + 1,
                               what + " url holds a user name or password: put them in credentials_file "
                                      "(a file only root and the daemon's user can read), not in the policy"});
        }
      }
      if (!n["format"]) {
        error(kv.first,
              what +
                  " has no format: 'ut1' (a UT1 tarball, blacklists/<category>/{domains,urls}) or "
                  "'lines' (one domain or URL per line)");
      } else if (auto fm = scalar(n["format"], what + " format")) {
        if (*fm == "ut1")
          f.format = feed_format::ut1;
        else if (*fm == "lines")
          f.format = feed_format::lines;
        else
          error(n["format"], what + " format must be 'ut1' or 'lines', not " + quote(*fm) +
                                 did_you_mean(*fm, {"ut1", "lines"}));
      }
      if (n["credentials_file"]) {
        if (auto c = scalar(n["credentials_file"], what + " credentials_file"))
          f.credentials_file = resolve(*c).string();
      }
      if (n["ca_file"]) {
        // Read by `feeds update` (libcurl), not here: a missing file is its clear error then.
        if (auto c = scalar(n["ca_file"], what + " ca_file")) f.ca_file = resolve(*c).string();
      }
      if (n["min_entries"]) {
        if (auto m = integer(n["min_entries"], what + " min_entries", 0, 1'000'000'000)) {
          f.min_entries = static_cast<std::size_t>(*m);
        }
      }
      if (n["locked"]) {
        if (auto b = boolean(n["locked"], what + " locked")) f.locked = *b;
      }
    }
    if (!opt_.feeds_dir.empty()) {
      f.dir = (fs::path(opt_.feeds_dir) / name / "current").string();
      std::error_code ec;
      f.present = fs::is_directory(f.dir, ec);
      // Missing is a warning (report_missing_feeds); unreadable is an error: read as missing,
      // every category of the feed, a locked one too, blocked nothing while `feeds status`
      // and root's `explain` said they block (outside-in audit of the feeds, 2026-12-06, H1).
      if (ec && ec != std::errc::no_such_file_or_directory && ec != std::errc::not_a_directory) {
        error(kv.first, "feed " + quote(name) + ": " + f.dir + " cannot be read: " + ec.message() +
                            ". The daemon's user must be able to read the feeds: run `hallpass feeds update` once as "
                            "root (it gives what it writes to the state directory's owner), or chown -R the feeds "
                            "directory to that user");
      }
      if (f.present) {
        // `current` is a link that `feeds update` may switch while this load reads: resolve
        // it once, so that every list of the feed comes from the same version.
        if (auto real = fs::canonical(f.dir, ec); !ec) f.dir = real.string();
        f.fetched_at = read_fetched_at(fs::path(f.dir) / "feed.info");
      }
    }
    p_->feeds.push_back(std::move(f));
    feed_nodes_.push_back(kv.first);
    feed_users_.emplace_back();
  }
}

// A category's `feed:` key: one FEED/LIST or a list of them.
std::vector<loader::feed_list> loader::feed_lists(const YAML::Node& n, const std::string& what) {
  std::vector<feed_list> out;
  std::vector<std::string> names;
  for (const auto& f : p_->feeds) names.push_back(f.name);
  for (const auto& e : items(n, what + " feed")) {
    auto s = scalar(e, what + " feed");
    if (!s) continue;
    const auto slash = s->find('/');
    if (slash == std::string::npos || slash == 0 || slash + 1 == s->size() ||
        s->find('/', slash + 1) != std::string::npos || s->find("..") != std::string::npos) {
      error(e, what + " feed " + quote(*s) +
                   " must be FEED/LIST, like ut1/gambling (or iwf/list for a 'lines' feed)");
      continue;
    }
    const std::string name = s->substr(0, slash), list = s->substr(slash + 1);
    const auto it = std::find(names.begin(), names.end(), name);
    if (it == names.end()) {
      error(e, what + " names feed " + quote(name) + ", which the feeds section does not define" +
                   did_you_mean(name, names));
      continue;
    }
    const auto index = static_cast<std::size_t>(it - names.begin());
    if (p_->feeds[index].format == feed_format::lines && list != "list") {
      error(e,
            "feed " + quote(name) + " is a 'lines' feed: its one list is " + quote(name + "/list"));
      continue;
    }
    out.push_back({index, list, e});
  }
  return out;
}

// Loads one feed list into category c, from the feed's current version on disk.
void loader::load_feed_list(const feed_list& fl, category& c) {
  auto& f = p_->feeds[fl.feed];
  auto& users = feed_users_[fl.feed];
  if (std::find(users.begin(), users.end(), c.name) == users.end()) users.push_back(c.name);
  c.sources.push_back({"feed:" + f.name + "/" + fl.list, 0});  // its entries once read, below
  // Each list once in f.lists (check, feeds status and the metrics' series), however many
  // categories use it; each category still gets its own copy of the entries.
  const bool recorded = std::any_of(f.lists.begin(), f.lists.end(),
                                    [&](const auto& l) { return l.first == fl.list; });
  if (!f.present) {
    if (!recorded)
      f.lists.emplace_back(fl.list, 0);  // reported once per feed, by report_missing_feeds
    return;
  }
  const fs::path cur(f.dir);
  std::vector<std::pair<fs::path, list_kind>> files;
  if (f.format == feed_format::lines) {
    files.emplace_back(cur / "list", list_kind::mixed);
  } else {
    files.emplace_back(cur / "blacklists" / fl.list / "domains", list_kind::domains);
    files.emplace_back(cur / "blacklists" / fl.list / "urls", list_kind::urls);
  }
  std::size_t added = 0;
  bool any = false;
  for (const auto& [path, kind] : files) {
    std::error_code ec;
    if (!fs::exists(path, ec)) {
      if (ec && ec != std::errc::no_such_file_or_directory && ec != std::errc::not_a_directory) {
        error(fl.where, "feed list " + f.name + "/" + fl.list + ": " + path.string() + " cannot be read: " +
                            ec.message() + ". The daemon's user must be able to read the feeds: run `hallpass "
                            "feeds update` once as root (it gives what it writes to the state directory's owner), or "
                            "chown -R the feeds directory to that user");
        any = true;  // said once, here, not again as "not in the feed"
      }
      continue;
    }
    any = true;
    reading_feed_ = true;
    const auto n = load_list_file(path, kind, c.set, fl.where, true, nullptr, nullptr, false);
    reading_feed_ = false;
    c.url_count += n.new_urls;
    c.domain_count += n.new_domains;
    added += n.entries;
  }
  if (!recorded) f.lists.emplace_back(fl.list, added);
  c.sources.back().entries = added;
  const std::string shown = "feed list " + f.name + "/" + fl.list;
  if (!any) {
    // The feed is there but not this list: renamed upstream, or a typo in the policy.
    const std::string msg =
        "category " + quote(c.name) + ": " + shown + " is not in the feed (" +
        (f.format == feed_format::lines
             ? (cur / "list").string()
             : (cur / "blacklists" / fl.list).string() + " has neither a domains nor a urls file") +
        ")";
    if (c.locked) {
      error(fl.where, msg + "; the category is locked, so it must not block nothing");
    } else {
      const auto mark = fl.where.Mark();
      warnings_.push_back(
          {file_, mark.line + 1, mark.column + 1, msg + ": it blocks nothing from it"});
    }
    return;
  }
  if (added == 0) empty_list(fl.where, c, shown + " in " + f.dir);
}

// Once per feed that has never been fetched: a warning (the policy serves without it), or
// with feeds.required an error (the policy does not load).
void loader::report_missing_feeds() {
  for (std::size_t i = 0; i < p_->feeds.size(); ++i) {
    const auto& f = p_->feeds[i];
    if (f.present) continue;
    std::string users;
    for (const auto& u : feed_users_[i]) users += (users.empty() ? "" : ", ") + u;
    const std::string msg =
        "feed " + quote(f.name) + " is missing (" +
        (f.dir.empty() ? std::string("no state directory was given") : f.dir + " does not exist") +
        "): " +
        (users.empty() ? std::string("no category uses it")
                       : "categories " + users + " block nothing from it") +
        " until `" + p_->feeds_update_command + " --feed " + f.name + "` fetches it";
    const auto mark = feed_nodes_[i].Mark();
    if (p_->feeds_required && !opt_.feeds_may_be_missing) {
      error_at(mark,
               msg + " (feeds.required is true: the policy does not load without every feed)");
    } else {
      warnings_.push_back({file_, mark.line + 1, mark.column + 1, msg});
    }
  }
}

}  // namespace hallpass::rules::loading
