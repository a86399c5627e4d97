// Runs an io_context on the calling thread until it is stopped. An exception that escapes a
// handler (a bug) is reported and the loop goes on: one bad session must not take the
// school offline.
#pragma once

#include <iostream>
#include <string_view>

#include "proxy/net.hpp"

namespace hallpass {

inline void run_until_stopped(net::io_context& ioc, std::string_view who) {
  for (;;) {
    try {
      ioc.run();
      return;
    } catch (const std::exception& e) {
      std::cerr << "hallpass: " << who << ": unexpected error: " << e.what() << "\n";
    }
  }
}

}  // namespace hallpass
