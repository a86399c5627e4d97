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
  const std::atomic<bool>* hold = nullptr;  // when set, the deleter waits (at most 2 s) for it
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
        for (int i = 0; i < 200 && w.hold && !*w.hold; ++i)
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
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

// One thread frees them all, made before any loop runs: creating a thread per release would be
// a thread creation on the event loop, and a burst of reloads a burst of threads.
TEST_CASE("configurations dropped on event loop threads are freed one after another on one thread") {
  std::atomic<bool> second_dropped{false};
  destroyed_where first, second;
  first.hold = &second_dropped;  // still being freed when the second is dropped
  auto a = config_recording(first);
  auto b = config_recording(second);
  const auto drop_on_a_loop = [](std::shared_ptr<const hallpass::configuration> c) {
    std::thread loop([&c] {
      hallpass::mark_event_loop_thread();
      c.reset();
    });
    loop.join();
  };
  drop_on_a_loop(std::move(a));
  drop_on_a_loop(std::move(b));
  second_dropped = true;
  REQUIRE(wait_done(first));
  REQUIRE(wait_done(second));
  CHECK(first.on == second.on);
  hallpass::wait_for_released_configurations(std::chrono::seconds{5});
}

TEST_CASE("elsewhere a configuration is destroyed where its last reference is dropped") {
  destroyed_where w;
  auto cfg = config_recording(w);
  cfg.reset();
  REQUIRE(w.done);
  CHECK(w.on == std::this_thread::get_id());
}
