// Where a configuration is destroyed (configuration.hpp, mark_event_loop_thread): never on an
// event loop, where freeing a policy of millions of entries stalled every request of the loop.
#include "proxy/configuration.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace {

struct destroyed_where {
  std::atomic<bool> done{false};
  std::thread::id on;
};

// The shipped policy, loaded as the daemon loads it, with a policy whose deleter records the
// thread it runs on.
std::shared_ptr<const hallpass::configuration> config_recording(destroyed_where& w) {
  hallpass::overrides o;
  o.state_dir = "/nonexistent-hallpass-state";  // no feeds: they are reported missing, not read
  auto r = hallpass::load_configuration(HALLPASS_SOURCE_DIR "/rules/school.yaml", o, 1);
  REQUIRE(r.config);
  auto c = std::const_pointer_cast<hallpass::configuration>(r.config);
  c->policy = std::shared_ptr<const hallpass::rules::policy>(
      new hallpass::rules::policy, [&w](const hallpass::rules::policy* p) {
        w.on = std::this_thread::get_id();
        delete p;
        w.done = true;
      });
  return r.config;
}

bool wait_done(const destroyed_where& w) {
  for (int i = 0; i < 500 && !w.done; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  return w.done;
}

}  // namespace

TEST_CASE("a configuration dropped last on an event loop thread is destroyed on another thread") {
  destroyed_where w;
  auto cfg = config_recording(w);
  std::thread::id loop_id;
  std::thread loop([&, c = std::move(cfg)]() mutable {
    hallpass::mark_event_loop_thread();
    loop_id = std::this_thread::get_id();
    c.reset();  // the last reference, as a worker drops its cached configuration
  });
  loop.join();
  REQUIRE(wait_done(w));
  CHECK(w.on != loop_id);
  hallpass::wait_for_released_configurations(std::chrono::seconds{5});
}

TEST_CASE("elsewhere a configuration is destroyed where its last reference is dropped") {
  destroyed_where w;
  auto cfg = config_recording(w);
  cfg.reset();
  REQUIRE(w.done);
  CHECK(w.on == std::this_thread::get_id());
}
