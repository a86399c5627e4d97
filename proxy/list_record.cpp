#include "proxy/list_record.hpp"

#include <boost/json.hpp>

#include <filesystem>
#include <map>

#include "rules/file_io.hpp"
#include "rules/policy_loader.hpp"

namespace hallpass {
namespace json = boost::json;

std::string list_record_path(const std::string& state_dir) {
  return (std::filesystem::path(state_dir) / "list-sources.json").string();
}

std::vector<std::string> emptied_since_last_run(const std::string& state_dir, const rules::policy& p,
                                                std::vector<std::string>& warnings) {
  const std::string path = list_record_path(state_dir);
  // Read as root before privileges are dropped, in the daemon user's directory: never through
  // a link, never a FIFO that would hang the start, at most 16 MiB.
  const auto unreadable = [&](const std::string& why) {
    warnings.push_back(path + " " + why + ": a list emptied while hallpass was stopped cannot be told from one "
                                          "emptied on purpose");
  };
  std::string why;
  const auto text = rules::read_regular_file(path, &why, false, std::size_t{16} << 20);
  if (!text) {
    if (why != "does not exist") unreadable(why);  // the first run, or a state_dir without one: nothing
    return {};
  }
  boost::system::error_code ec;
  const json::value v = json::parse(*text, ec);
  rules::source_counts before;
  const json::object* categories = nullptr;
  if (!ec && v.is_object()) {
    if (const json::value* c = v.as_object().if_contains("categories")) categories = c->if_object();
  }
  if (!categories) {
    unreadable("cannot be read (" + (ec ? ec.message() : std::string("not the expected object")) + ")");
    return {};
  }
  for (const auto& [category, sources] : *categories) {
    const json::object* o = sources.if_object();
    if (!o) continue;
    auto& counts = before[std::string(category)];
    for (const auto& [source, entries] : *o) {
      if (entries.is_int64() && entries.as_int64() >= 0) counts[std::string(source)] = static_cast<std::size_t>(entries.as_int64());
      if (entries.is_uint64()) counts[std::string(source)] = static_cast<std::size_t>(entries.as_uint64());
    }
  }
  // Each feed's fetched_at when the record was written: a feed list `feeds update` replaced
  // since is its guard's, not this one's.
  std::map<std::string, std::int64_t> fetched;
  if (const json::value* f = v.as_object().if_contains("feeds"); f && f->is_object()) {
    for (const auto& [name, at] : f->as_object()) {
      if (at.is_int64()) fetched[std::string(name)] = at.as_int64();
    }
  }
  const std::string before_was = "when hallpass last ran (" + path + ")";
  const std::string refused = "hallpass does not start (to start without this comparison, remove " + path + ")";
  auto out = rules::emptied_sources(before, p, before_was, refused);
  auto halved = rules::shrunk_sources(before, fetched, p, before_was, refused);
  out.insert(out.end(), std::make_move_iterator(halved.begin()), std::make_move_iterator(halved.end()));
  return out;
}

std::string write_list_record(const std::string& state_dir, const rules::policy& p) {
  json::object categories;
  for (const auto& [category, sources] : rules::count_sources(p)) {
    json::object o;
    for (const auto& [source, entries] : sources) o[source] = entries;
    categories[category] = std::move(o);
  }
  json::object feeds;
  for (const auto& f : p.feeds) {
    if (f.fetched_at) feeds[f.name] = *f.fetched_at;
  }
  const std::string text =
      json::serialize(json::object{{"categories", std::move(categories)}, {"feeds", std::move(feeds)}}) + "\n";
  return rules::replace_file_durably(list_record_path(state_dir), text, 0640);
}

}  // namespace hallpass
