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

}  // namespace hallpass
