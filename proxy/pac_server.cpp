#include "proxy/pac_server.hpp"

#include "proxy/configuration.hpp"
#include "proxy/metrics.hpp"
#include "proxy/daemon_config.hpp"
#include "proxy/pac_script.hpp"

namespace hallpass {

std::string pac_http_response(std::string_view method, std::string_view target,
                              const std::string* script) {
  const bool head = method == "HEAD";
  if (method != "GET" && !head) {
    return small_http_response("405 Method Not Allowed", "text/plain; charset=utf-8",
                    "Only GET and HEAD are served here.\n", false, "Allow: GET, HEAD\r\n");
  }
  const std::string_view path = target.substr(0, target.find('?'));
  if (path != "/proxy.pac" && path != "/wpad.dat") {
    return small_http_response("404 Not Found", "text/plain; charset=utf-8",
                    "Not found. The proxy configuration is at /proxy.pac (or /wpad.dat).\n", head);
  }
  if (!script) {
    return small_http_response(
        "503 Service Unavailable", "text/plain; charset=utf-8",
        "No proxy address to name for this network: set pac.proxy in the configuration.\n", head);
  }
  return small_http_response("200 OK", "application/x-ns-proxy-autoconfig", *script, head);
}

pac_server::pac_server(config_store& configs, metrics& m)
    : configs_(configs),
      metrics_(m),
      server_({"PAC endpoint", 256, [&m] { m.pac_refused.Increment(); }},
              [this](std::string_view method, std::string_view target, const net::ip::address& local) {
                return answer(method, target, local);
              }) {}

pac_server::~pac_server() = default;

std::string pac_server::bind(const std::string& listen) {
  const auto a = parse_listen_address(listen);
  if (!a) return "pac.listen " + listen + " must be ADDRESS:PORT";
  error_code ec;
  const auto address = net::ip::make_address(a->host, ec);
  if (ec) return "pac.listen " + listen + ": " + ec.message();
  if (auto bind_ec = server_.bind(tcp::endpoint(address, a->port))) {
    return "cannot serve the PAC file on pac.listen " + listen + ": " + listen_error_text(bind_ec);
  }
  return {};
}

std::optional<tcp::endpoint> pac_server::endpoint() const {
  return server_.endpoint();
}

void pac_server::start() {
  server_.start();
}

void pac_server::stop() {
  server_.stop();
}

std::string pac_server::answer(std::string_view method, std::string_view target, const net::ip::address& local) {
  std::shared_ptr<const std::string> script;
  if (!local.is_unspecified()) script = script_for(local);
  std::string reply = pac_http_response(method, target, script.get());
  (reply.starts_with("HTTP/1.1 200") ? metrics_.pac_served : metrics_.pac_refused).Increment();
  return reply;
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

}  // namespace hallpass
