// Boost.JSON, compiled once for hallpassctl (header-only use: no Boost library is linked).
#include <boost/json/src.hpp>
