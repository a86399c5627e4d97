#include "proxy/small_http_server.hpp"

#include <chrono>

#include "proxy/accept_next.hpp"
#include "proxy/run_loop.hpp"
#include "proxy/server.hpp"

namespace hallpass {

namespace {

constexpr std::uint32_t max_head_bytes = 8 * 1024;
constexpr auto head_timeout = std::chrono::seconds(5);
constexpr auto write_timeout = std::chrono::seconds(5);

}  // namespace

std::string small_http_response(std::string_view status, std::string_view type, std::string_view body,
                                bool head_only, std::string_view extra) {
  std::string out;
  out.reserve(256 + body.size());
  out.append("HTTP/1.1 ").append(status).append("\r\n");
  out.append("Content-Type: ").append(type).append("\r\n");
  out.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
  // Fetched again at each use: a policy change (a new network, a new proxy address) reaches
  // devices at their next fetch rather than after a cache lifetime; a scrape is always fresh.
  out.append("Cache-Control: no-cache\r\n");
  out.append("X-Content-Type-Options: nosniff\r\n");
  out.append(extra);
  out.append("Connection: close\r\n\r\n");
  if (!head_only) out.append(body);
  return out;
}

small_http_server::small_http_server(options o, handler h) : options_(std::move(o)), handler_(std::move(h)) {}

small_http_server::~small_http_server() {
  stop();
}

error_code small_http_server::bind(const tcp::endpoint& ep) {
  error_code ec;
  auto acceptor = std::make_unique<tcp::acceptor>(ioc_);
  acceptor->open(ep.protocol(), ec);
  if (!ec) acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec && ep.address().is_v6()) acceptor->set_option(net::ip::v6_only(true), ec);
  if (!ec) acceptor->bind(ep, ec);
  if (!ec) acceptor->listen(net::socket_base::max_listen_connections, ec);
  if (ec) return ec;
  acceptor_ = std::move(acceptor);
  return {};
}

std::string listen_error_text(const error_code& ec) {
  return ec.message() + (ec == net::error::address_in_use ? "; is the port in use by another process?" : "");
}

std::optional<tcp::endpoint> small_http_server::endpoint() const {
  if (!acceptor_) return std::nullopt;
  error_code ec;
  auto ep = acceptor_->local_endpoint(ec);
  if (ec) return std::nullopt;
  return ep;
}

void small_http_server::start() {
  if (!acceptor_ || thread_.joinable()) return;
  net::co_spawn(ioc_, accept_loop(), stop_daemon_on_failure{options_.name});
  thread_ = std::thread([this] { run_until_stopped(ioc_, options_.name); });
}

void small_http_server::stop() {
  if (!thread_.joinable()) return;
  net::post(ioc_, [this] {
    error_code ignored;
    if (acceptor_) acceptor_->close(ignored);
    ioc_.stop();
  });
  thread_.join();
}

net::awaitable<void> small_http_server::accept_loop() {
  for (;;) {
    auto socket = co_await accept_next(*acceptor_);
    if (!socket) co_return;  // stop()
    error_code ec;
    const auto remote = socket->remote_endpoint(ec);
    if (ec) continue;  // gone already
    const auto client = remote.address();
    // The last quarter of the places is kept for clients holding fewer than two: 16 addresses
    // at their 16 filled all 256, and every scrape (or, on the PAC endpoint, every device's
    // fetch of wpad.dat) was refused (resource audit, 2026-12-06).
    const std::size_t held = per_client_[client];
    const bool reserved = live_ >= options_.max_connections - options_.max_connections / 4 && held >= 2;
    if (live_ >= options_.max_connections || held >= options_.max_per_client || reserved) {
      if (per_client_[client] == 0) per_client_.erase(client);
      if (options_.refused) options_.refused();
      continue;  // closing the socket is the answer
    }
    ++live_;
    ++per_client_[client];
    net::co_spawn(ioc_, serve(std::move(*socket), client), net::detached);
  }
}

net::awaitable<void> small_http_server::serve(tcp::socket socket, net::ip::address client) {
  struct release {
    std::size_t& live;
    std::map<net::ip::address, std::size_t>& per_client;
    net::ip::address client;
    ~release() {
      --live;
      if (const auto it = per_client.find(client); it != per_client.end() && --it->second == 0) per_client.erase(it);
    }
  } counted{live_, per_client_, client};
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer(max_head_bytes);
  http::request_parser<http::empty_body> parser;
  parser.header_limit(max_head_bytes);
  parser.body_limit(0);
  stream.expires_after(head_timeout);
  auto [ec, n] = co_await http::async_read(stream, buffer, parser, nothrow);
  std::string reply;
  if (ec == http::error::end_of_stream || ec == net::error::eof || ec == net::error::connection_reset ||
      ec == beast::error::timeout) {
    if (options_.refused) options_.refused();
    co_return;  // nothing (or not enough) was asked in time: nothing to answer
  }
  if (ec) {
    // Malformed, too large, or a body: one plain answer and the connection closes.
    if (options_.refused) options_.refused();
    reply = small_http_response("400 Bad Request", "text/plain; charset=utf-8", "Bad request\n", false);
  } else {
    const auto& req = parser.get();
    error_code lec;
    const auto local = stream.socket().local_endpoint(lec);
    reply = handler_(std::string_view(req.method_string().data(), req.method_string().size()),
                     std::string_view(req.target().data(), req.target().size()),
                     lec ? net::ip::address() : local.address());
  }
  stream.expires_after(write_timeout);
  auto [wec, wn] = co_await net::async_write(stream, net::buffer(reply), nothrow);
  if (!wec) {
    error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  }
}

}  // namespace hallpass
