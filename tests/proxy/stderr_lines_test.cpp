#include "proxy/stderr_lines.hpp"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

namespace {

// Everything the pipe holds now (non-blocking reads until it is empty).
std::string drain(int fd) {
  std::string out;
  char buf[65536];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) return out;
    out.append(buf, static_cast<std::size_t>(n));
  }
}

}  // namespace

TEST_CASE("stderr lines: written in order by their own thread, and a stalled reader drops and counts, never blocks") {
  int p[2];
  REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
  REQUIRE(::fcntl(p[0], F_SETFL, O_NONBLOCK) == 0);
  {
    hallpass::stderr_lines lines(p[1]);
    lines.say("hallpass: one");
    lines.say("hallpass: two\n");
    lines.flush_for_tests();
    CHECK(drain(p[0]) == "hallpass: one\nhallpass: two\n");

    // Nobody reads: the pipe fills (64 KiB), the writer thread blocks in write(2), and say()
    // still returns at once; past max_waiting lines are dropped and counted.
    const std::string big(4000, 'x');
    const auto began = std::chrono::steady_clock::now();
    for (int i = 0; i < 1000; ++i) lines.say("hallpass: " + big);
    CHECK(std::chrono::steady_clock::now() - began < std::chrono::seconds(2));
    CHECK(lines.dropped() > 0);
    CHECK(lines.dropped() < 1000);
    const auto dropped = lines.dropped();

    // The reader comes back: what waited is written, with a line saying how many went.
    const std::string said = "hallpass: " + std::to_string(dropped) + " lines were not written here";
    std::string all;
    for (int i = 0; i < 2000 && all.find(said) == std::string::npos; ++i) {
      all += drain(p[0]);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    CHECK(all.find(said) != std::string::npos);
    lines.flush_for_tests();
    drain(p[0]);
    lines.say("hallpass: after");
    lines.flush_for_tests();
    CHECK(drain(p[0]) == "hallpass: after\n");
    CHECK(lines.dropped() == dropped);
  }
  ::close(p[0]);
  ::close(p[1]);
}
