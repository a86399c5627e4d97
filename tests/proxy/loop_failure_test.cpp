// stop_daemon_on_failure on a real io_context: a loop that throws is reported and stops the
// daemon (SIGTERM to the process, exit code 70); a loop that returns is not reported.
#include <doctest/doctest.h>
#include <signal.h>

#include <csignal>
#include <iostream>
#include <sstream>
#include <stdexcept>

#include "proxy/net.hpp"
#include "proxy/server.hpp"

namespace {

volatile std::sig_atomic_t sigterm_seen = 0;
void on_sigterm(int) {
  sigterm_seen = 1;
}

// While alive: SIGTERM sets sigterm_seen instead of ending the test run, and std::cerr is
// captured.
struct sigterm_catcher {
  struct sigaction old {};
  std::ostringstream err;
  std::streambuf* old_err;
  sigterm_catcher() : old_err(std::cerr.rdbuf(err.rdbuf())) {
    struct sigaction sa {};
    sa.sa_handler = on_sigterm;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGTERM, &sa, &old);
    sigterm_seen = 0;
  }
  ~sigterm_catcher() {
    ::sigaction(SIGTERM, &old, nullptr);
    std::cerr.rdbuf(old_err);
  }
};

hallpass::net::awaitable<void> failing_loop() {
  throw std::runtime_error("disk on fire");
  co_return;
}

hallpass::net::awaitable<void> finishing_loop() {
  co_return;
}

}  // namespace

TEST_CASE("loops: a loop that returns is not a failure") {
  sigterm_catcher catcher;
  hallpass::net::io_context ioc;
  hallpass::net::co_spawn(ioc, finishing_loop(), hallpass::stop_daemon_on_failure{"test loop"});
  ioc.run();
  CHECK(sigterm_seen == 0);
  CHECK(catcher.err.str().empty());
  CHECK(hallpass::daemon_exit_code() == 0);
}

TEST_CASE("loops: a loop that throws is reported and stops the daemon with exit code 70") {
  sigterm_catcher catcher;
  hallpass::net::io_context ioc;
  hallpass::net::co_spawn(ioc, failing_loop(), hallpass::stop_daemon_on_failure{"test loop"});
  ioc.run();
  CHECK(sigterm_seen == 1);
  CHECK(hallpass::daemon_exit_code() == hallpass::loop_failure_exit_code);
  CHECK(hallpass::loop_failure_exit_code == 70);
  const std::string err = catcher.err.str();
  INFO(err);
  CHECK(err.find("test loop failed: disk on fire") != std::string::npos);
  CHECK(err.find("stopping the daemon") != std::string::npos);
}
