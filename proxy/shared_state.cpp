#include "proxy/shared_state.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <string>

namespace hallpass {

bool descriptors_exhausted() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0) {
    ::close(fd);
    return false;
  }
  return errno == EMFILE || errno == ENFILE;
}

void report_descriptor_shortage(shared_state& state, std::string_view what) {
  state.metrics.descriptor_shortages.Increment();
  const std::int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                               std::chrono::steady_clock::now().time_since_epoch()).count();
  std::int64_t said = state.descriptor_shortage_said.load(std::memory_order_relaxed);
  if (said != 0 && now - said < 60) return;
  if (!state.descriptor_shortage_said.compare_exchange_strong(said, now, std::memory_order_relaxed)) return;
  state.diagnostics.say("hallpass: warning: no file descriptor left for " + std::string(what) +
                        " (too many open files): devices are refused until connections close. Raise "
                        "LimitNOFILE in the unit (systemctl edit hallpass) or lower limits.connections "
                        "(hallpass_descriptor_shortages_total counts each; said at most once a minute)");
}

void report_refused_connection(shared_state& state, std::string_view client, shared_state::admission why,
                               std::size_t total_limit, std::size_t per_client_limit) {
  state.metrics.rejected(metrics::rejection::connection_limit).Increment();
  const std::int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                               std::chrono::steady_clock::now().time_since_epoch()).count();
  std::int64_t said = state.refused_connection_said.load(std::memory_order_relaxed);
  if ((said != 0 && now - said < 60) ||
      !state.refused_connection_said.compare_exchange_strong(said, now, std::memory_order_relaxed)) {
    state.refused_connections_unsaid.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const auto unsaid = state.refused_connections_unsaid.exchange(0, std::memory_order_relaxed);
  std::string line = "hallpass: warning: refused a connection from " + std::string(client) + ": ";
  switch (why) {
    case shared_state::admission::device_full:
      line += "that device is at limits.connections_per_client (" + std::to_string(per_client_limit) +
              " connections open at once); so many from one device is usually a program gone wrong or a flood, "
              "not a browser";
      break;
    case shared_state::admission::proxy_full:
      line += "the proxy has " + std::to_string(total_limit) + " connections open (limits.connections)";
      break;
    case shared_state::admission::reserve_kept:
      line += "the proxy is within a tenth of limits.connections (" + std::to_string(total_limit) +
              "), which is kept for devices holding fewer than " +
              std::to_string(shared_state::reserve_share(total_limit)) + " connections, and this one holds more";
      break;
    case shared_state::admission::admitted: return;
  }
  if (unsaid > 0) line += "; " + std::to_string(unsaid) + " more refused since the last such warning";
  line += " (closed unanswered, so no access-log line; said at most once a minute; "
          "hallpass_rejected_total{reason=\"connection_limit\"} counts each)";
  state.diagnostics.say(line);
}

}  // namespace hallpass
