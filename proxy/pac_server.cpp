#include "proxy/pac_server.hpp"

#include <chrono>
#include <iostream>

#include "proxy/accept_next.hpp"
#include "proxy/configuration.hpp"
#include "proxy/metrics.hpp"
#include "proxy/pac_script.hpp"
#include "proxy/run_loop.hpp"
#include "proxy/server.hpp"

namespace hallpass {

namespace {

constexpr auto nothrow = net::as_tuple(net::use_awaitable);
constexpr std::size_t max_connections = 256;
constexpr std::uint32_t max_head_bytes = 8 * 1024;
constexpr auto head_timeout = std::chrono::seconds(5);
constexpr auto write_timeout = std::chrono::seconds(5);

std::string response(std::string_view status, std::string_view type, std::string_view body,
                     bool head_only, std::string_view extra = {}) {
  std::string out;
  out.reserve(256 + body.size());
  out.append("HTTP/1.1 ").append(status).append("\r\n");
  out.append("Content-Type: ").append(type).append("\r\n");
  out.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
  // Fetched again at each use: a policy change (a new network, a new proxy address) reaches
  // devices at their next fetch rather than after a cache lifetime.
  out.append("Cache-Control: no-cache\r\n");
  out.append("X-Content-Type-Options: nosniff\r\n");
  out.append(extra);
  out.append("Connection: close\r\n\r\n");
  if (!head_only) out.append(body);
  return out;
}

}  // namespace

std::string pac_http_response(std::string_view method, std::string_view target,
                              const std::string* script) {
  const bool head = method == "HEAD";
  if (method != "GET" && !head) {
    return response("405 Method Not Allowed", "text/plain; charset=utf-8",
                    "Only GET and HEAD are served here.\n", false, "Allow: GET, HEAD\r\n");
  }
  const std::string_view path = target.substr(0, target.find('?'));
  if (path != "/proxy.pac" && path != "/wpad.dat") {
    return response("404 Not Found", "text/plain; charset=utf-8",
                    "Not found. The proxy configuration is at /proxy.pac (or /wpad.dat).\n", head);
  }
  if (!script) {
    return response(
        "503 Service Unavailable", "text/plain; charset=utf-8",
        "No proxy address to name for this network: set pac.proxy in the configuration.\n", head);
  }
  return response("200 OK", "application/x-ns-proxy-autoconfig", *script, head);
}

pac_server::pac_server(config_store& configs, metrics& m) : configs_(configs), metrics_(m) {}

pac_server::~pac_server() {
  stop();
}

std::string pac_server::bind(const std::string& listen) {
  const auto a = parse_listen_address(listen);
  if (!a) return "pac.listen " + listen + " must be ADDRESS:PORT";
  error_code ec;
  const auto address = net::ip::make_address(a->host, ec);
  if (ec) return "pac.listen " + listen + ": " + ec.message();
  const tcp::endpoint ep(address, a->port);
  auto acceptor = std::make_unique<tcp::acceptor>(ioc_);
  acceptor->open(ep.protocol(), ec);
  if (!ec) acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec && ep.address().is_v6()) acceptor->set_option(net::ip::v6_only(true), ec);
  if (!ec) acceptor->bind(ep, ec);
  if (!ec) acceptor->listen(net::socket_base::max_listen_connections, ec);
  if (ec) return "cannot serve the PAC file on pac.listen " + listen + ": " + ec.message();
  acceptor_ = std::move(acceptor);
  return {};
}

std::optional<tcp::endpoint> pac_server::endpoint() const {
  if (!acceptor_) return std::nullopt;
  error_code ec;
  auto ep = acceptor_->local_endpoint(ec);
  if (ec) return std::nullopt;
  return ep;
}

void pac_server::start() {
  if (!acceptor_ || thread_.joinable()) return;
  net::co_spawn(ioc_, accept_loop(), stop_daemon_on_failure{"PAC endpoint accept loop"});
  thread_ = std::thread([this] { run_until_stopped(ioc_, "PAC endpoint"); });
}

void pac_server::stop() {
  if (!thread_.joinable()) return;
  net::post(ioc_, [this] {
    error_code ignored;
    if (acceptor_) acceptor_->close(ignored);
    ioc_.stop();
  });
  thread_.join();
}

net::awaitable<void> pac_server::accept_loop() {
  for (;;) {
    auto socket = co_await accept_next(*acceptor_);
    if (!socket) co_return;  // stop()
    if (live_ >= max_connections) {
      metrics_.pac_refused.Increment();
      continue;  // closing the socket is the answer
    }
    ++live_;
    net::co_spawn(ioc_, serve(std::move(*socket)), net::detached);
  }
}

std::shared_ptr<const std::string> pac_server::script_for(const net::ip::address& local) {
  const auto cfg = configs_.current();
  const std::string key = local.to_string();
  for (const auto& c : cache_) {
    if (c.script && c.generation == cfg->generation && c.local == key) return c.script;
  }
  std::optional<rules::ip_address> here = rules::ip_address::parse(key);
  if (here && local.is_v6() && local.to_v6().is_v4_mapped()) {
    here = rules::ip_address::parse(
        net::ip::make_address_v4(net::ip::v4_mapped, local.to_v6()).to_string());
  }
  const auto inputs = pac_inputs_for(cfg->daemon, *cfg->policy, here);
  if (inputs.proxies.empty()) return nullptr;
  auto script = std::make_shared<const std::string>(make_pac_script(inputs));
  cache_[next_slot_] = {cfg->generation, key, script};
  next_slot_ = (next_slot_ + 1) % std::size(cache_);
  return script;
}

net::awaitable<void> pac_server::serve(tcp::socket socket) {
  struct release {
    std::size_t& live;
    ~release() { --live; }
  } counted{live_};
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer(max_head_bytes);
  http::request_parser<http::empty_body> parser;
  parser.header_limit(max_head_bytes);
  parser.body_limit(0);
  stream.expires_after(head_timeout);
  auto [ec, n] = co_await http::async_read(stream, buffer, parser, nothrow);
  std::string reply;
  if (ec == http::error::end_of_stream || ec == net::error::eof ||
      ec == net::error::connection_reset || ec == beast::error::timeout) {
    metrics_.pac_refused.Increment();
    co_return;  // nothing (or not enough) was asked in time: nothing to answer
  }
  if (ec) {
    // Malformed, too large, or a body: one plain answer and the connection closes.
    metrics_.pac_refused.Increment();
    reply = response("400 Bad Request", "text/plain; charset=utf-8", "Bad request\n", false);
  } else {
    const auto& req = parser.get();
    error_code lec;
    const auto local = stream.socket().local_endpoint(lec);
    std::shared_ptr<const std::string> script;
    if (!lec) script = script_for(local.address());
    reply =
        pac_http_response(std::string_view(req.method_string().data(), req.method_string().size()),
                          std::string_view(req.target().data(), req.target().size()), script.get());
    (reply.starts_with("HTTP/1.1 200") ? metrics_.pac_served : metrics_.pac_refused).Increment();
  }
  stream.expires_after(write_timeout);
  auto [wec, wn] = co_await net::async_write(stream, net::buffer(reply), nothrow);
  if (!wec) {
    error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  }
}

}  // namespace hallpass
