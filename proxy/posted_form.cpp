#include "proxy/posted_form.hpp"

#include <openssl/crypto.h>

#include "proxy/worker.hpp"

namespace hallpass {

net::awaitable<posted_read> read_posted_form(client_connection& c, request_parser& rp, std::size_t max,
                                             std::string& body, std::chrono::seconds within) {
  body.clear();
  if (rp.content_length() && *rp.content_length() > max) co_return posted_read::too_large;
  char buf[4096];
  c.stream.expires_after(within);
  auto result = posted_read::whole;
  while (!rp.is_done()) {
    rp.get().body().data = buf;
    rp.get().body().size = sizeof buf;
    auto [ec, n] = co_await http::async_read(c.io, c.buffer, rp, nothrow);
    if (ec == http::error::need_buffer) ec = {};
    if (ec) {
      result = posted_read::gone;
      break;
    }
    body.append(buf, sizeof buf - rp.get().body().size);
    if (body.size() > max) {
      result = posted_read::too_large;
      break;
    }
  }
  OPENSSL_cleanse(buf, sizeof buf);
  if (result != posted_read::whole) {
    OPENSSL_cleanse(body.data(), body.size());
    body.clear();
  }
  co_return result;
}

}  // namespace hallpass
