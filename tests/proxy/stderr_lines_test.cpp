#include "proxy/stderr_lines.hpp"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <regex>
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

    // The reader comes back (a thread of its own, reading until told to stop, so the writer is
    // never left blocked on a full pipe): what waited is written, with lines saying how many
    // went (one or more: the drops may fall either side of a batch), together all of them.
    std::mutex m;
    std::string all;
    std::atomic<bool> stop{false};
    std::thread reader([&] {
      while (!stop) {
        std::string got = drain(p[0]);
        if (!got.empty()) {
          std::lock_guard lock(m);
          all += got;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    });
    lines.flush_for_tests();  // all that waited, written
    lines.say("hallpass: after");
    lines.flush_for_tests();
    stop = true;
    reader.join();
    all += drain(p[0]);
    CHECK(all.find("hallpass: after\n") != std::string::npos);
    std::uint64_t said = 0;
    const std::regex counted("hallpass: ([0-9]+) lines? w(as|ere) not written here");
    for (auto it = std::sregex_iterator(all.begin(), all.end(), counted); it != std::sregex_iterator(); ++it) {
      said += std::stoull((*it)[1].str());
    }
    CHECK(said == dropped);
    CHECK(lines.dropped() == dropped);
  }
  ::close(p[0]);
  ::close(p[1]);
}
