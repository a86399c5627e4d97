// Boost.JSON compiled once for the daemon (header-only mode: this is its one translation unit).
#include <boost/json/src.hpp>
