#include "proxy/access_record.hpp"

#include "rules/explain.hpp"
#include "rules/json_writer.hpp"

namespace hallpass {

namespace {

// iso8601_local's "YYYY-MM-DDTHH:MM:SS+HH:MM" with ".mmm" inserted before the offset.
std::string time_text(std::chrono::system_clock::time_point t, const rules::time_zone& zone) {
  using namespace std::chrono;
  const auto seconds = floor<std::chrono::seconds>(t);
  const auto ms = duration_cast<milliseconds>(t - seconds).count();  // 0..999 (floor above)
  // The local time of the second, formatted once per second per thread: a busy proxy logs
  // thousands of lines in the same second, and snprintf costs more than the rest of the line.
  // The text depends only on the second and the zone's offset then (a reload may change zone).
  thread_local struct {
    sys_seconds second{};
    std::chrono::seconds offset{};
    std::string text;
  } cache;
  const sys_seconds second{seconds.time_since_epoch()};
  const auto offset = zone.offset_at(second);
  if (cache.second != second || cache.offset != offset || cache.text.empty()) {
    cache.text = rules::iso8601_local(zone, second);
    cache.second = second;
    cache.offset = offset;
  }
  std::string s = cache.text;
  const char frac[4] = {static_cast<char>('0' + ms / 100), static_cast<char>('0' + ms / 10 % 10),
                        static_cast<char>('0' + ms % 10), '\0'};
  constexpr std::size_t offset_at = 19;  // after "YYYY-MM-DDTHH:MM:SS"
  if (s.size() > offset_at) s.insert(offset_at, std::string(".") + frac);
  return s;
}

void str_or_null(rules::json_object& o, std::string_view key, std::string_view value) {
  if (value.empty()) {
    o.null(key);
  } else {
    o.str(key, value);
  }
}

}  // namespace

std::string format_access_record(const access_record& r, const rules::time_zone& zone,
                                 bool keep_query) {
  rules::json_object o;
  o.str("time", time_text(r.start, zone)).str("client", r.client);
  str_or_null(o, "user", r.user);
  if (!r.device_name.empty()) o.str("device", r.device_name);
  if (!r.hardware_address.empty()) o.str("mac", r.hardware_address);
  o.str("role", r.role)
      .str("method", r.method)
      .str("scheme", r.scheme)
      .str("host", r.host)
      .num("port", r.port);
  if (keep_query && !r.query.empty()) {
    std::string path;
    path.reserve(r.path.size() + 1 + r.query.size());
    path.append(r.path).append(1, '?').append(r.query);
    o.str("path", path);
  } else if (r.path.find(';') != std::string::npos) {
    o.str("path", rules::path_without_parameters(r.path));
  } else {
    o.str("path", r.path);
  }
  o.num("status", r.status).str("action", r.action).str("rule", r.rule);
  str_or_null(o, "category", r.category);
  o.str("reason", r.reason)
      .raw("bytes_in", std::to_string(r.bytes_from_client))
      .raw("bytes_out", std::to_string(r.bytes_to_client))
      .num("duration_ms", r.duration_ms)
      .boolean("circumvention", r.circumvention);
  if (r.ban != 0) o.raw("ban", std::to_string(r.ban));
  if (!r.tls.empty()) o.str("tls", r.tls);
  if (!r.search.empty()) o.str("search", r.search);
  if (!r.note.empty()) o.str("note", r.note);
  if (!r.original_dst.empty()) o.str("original_dst", r.original_dst);
  std::string line = o.done();
  line += '\n';
  return line;
}

}  // namespace hallpass
