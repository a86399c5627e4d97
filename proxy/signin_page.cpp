#include "proxy/signin_page.hpp"

#include "proxy/block_page.hpp"
#include "proxy/request_target.hpp"
#include "proxy/daemon_config.hpp"
#include "proxy/request_checks.hpp"
#include "rules/exception_index.hpp"

namespace hallpass {
namespace {

void hidden(std::string& out, std::string_view name, std::string_view value) {
  out += "<input type=\"hidden\" name=\"";
  out += name;
  out += "\" value=\"";
  append_html_escaped(out, value);
  out += "\">\n";
}


}  // namespace

signin_address signin_address_of(bool same_site, std::string_view host, std::string_view path) {
  if (same_site) {
    if (path == site_signin_path) return signin_address::signin;
    if (path == site_signout_path) return signin_address::signout;
    return signin_address::none;
  }
  if (!ascii_iequals(host, form_host)) return signin_address::none;
  if (path == signin_path) return signin_address::signin;
  if (path == signout_path) return signin_address::signout;
  return signin_address::none;
}

bool url_on_host(std::string_view url, std::string_view host) {
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos || host.empty()) return false;
  const std::string_view rest = url.substr(scheme_end + 3);
  if (rest.size() < host.size() || !ascii_iequals(rest.substr(0, host.size()), host)) return false;
  return rest.size() == host.size() || std::string_view(":/?#").find(rest[host.size()]) != std::string_view::npos;
}

std::string signout_link(bool transparent, std::string_view host) {
  if (!transparent || host.empty()) return "http://hallpass.invalid" + std::string(signout_path);
  return url_of("http", host, 80, site_signout_path);  // an IPv6 host in brackets
}

std::string render_signin_page(const form_keys& keys, const signin_page_info& info) {
  const std::string nonce = form_keys::random_nonce();
  const std::string token = keys.token(token_purpose::signin, info.client, info.url, info.now, nonce);
  // The form's look is in block_page.cpp's shared style (.signin, .problem), in the page's head.
  std::string form;
  if (!info.problem.empty()) {
    form += "<p class=\"problem\" role=\"alert\">";
    append_html_escaped(form, info.problem);
    form += "</p>\n";
  }
  form += "<form class=\"signin\" method=\"post\" action=\"";
  form += info.same_site ? std::string(site_signin_path) : "http://hallpass.invalid" + std::string(signin_path);
  form += "\">\n";
  hidden(form, "url", info.url);
  hidden(form, "issued", std::to_string(info.now));
  hidden(form, "nonce", nonce);
  hidden(form, "token", token);
  form +=
      "<p><label for=\"user\">User name</label><input type=\"text\" id=\"user\" name=\"user\" required "
      "maxlength=\"200\" autocomplete=\"username\" autocapitalize=\"none\" spellcheck=\"false\" value=\"";
  append_html_escaped(form, info.user);
  form +=
      "\"></p>\n<p><label for=\"password\">Password</label><input type=\"password\" id=\"password\" "
      "name=\"password\" required maxlength=\"1000\" autocomplete=\"current-password\"></p>\n"
      "<p><button type=\"submit\">Sign in</button></p>\n</form>\n";
  if (!info.url.empty()) {
    form += "<p class=\"note\">After you sign in, this device goes back to <span class=\"code\">";
    std::string_view shown = info.url.substr(0, 600);
    append_html_escaped(form, shown);
    if (shown.size() < info.url.size()) form += "\u2026";
    form += "</span>.</p>\n";
  }
  form +=
      "<p class=\"note\">Everything this device does on the internet is then recorded under your name until you "
      "sign out (";
  append_html_escaped(form, info.signout);
  form +=
      "), or after a while without use. On a shared device, sign out when you finish. The school filters and "
      "monitors internet use to keep everyone safe.</p>\n";
  return render_notice_page("Sign in to the school internet",
                            "Use your school user name and password to use the internet on this device.",
                            info.school_name, form);
}

std::string render_signout_page(const form_keys& keys, std::string_view school_name, std::string_view client,
                                std::string_view user, bool same_site, std::int64_t now, std::string_view problem) {
  const std::string nonce = form_keys::random_nonce();
  const std::string token = keys.token(token_purpose::signout, client, "", now, nonce);
  // The form's look is in block_page.cpp's shared style (.signin, .problem), in the page's head.
  std::string form;
  if (!problem.empty()) {
    form += "<p class=\"problem\" role=\"alert\">";
    append_html_escaped(form, problem);
    form += "</p>\n";
  }
  form += "<form class=\"signin\" method=\"post\" action=\"";
  form += same_site ? std::string(site_signout_path) : "http://hallpass.invalid" + std::string(signout_path);
  form += "\">\n";
  hidden(form, "issued", std::to_string(now));
  hidden(form, "nonce", nonce);
  hidden(form, "token", token);
  form += "<p><button type=\"submit\">Sign out</button></p>\n</form>\n";
  std::string text = "This device is not signed in to the school internet.";
  if (!user.empty()) {
    text = "This device is signed in to the school internet as " + std::string(user) +
           ". Sign out when you finish, on a shared device.";
  }
  return render_notice_page("Sign out of the school internet", text, school_name, form);
}

std::string signin_check_summary(const daemon_config& d) {
  const auto& l = d.logins;
  std::string nets;
  for (const auto& e : l.networks) {
    if (e.mode != login_mode::page) continue;
    for (const auto& n : e.networks) nets += (nets.empty() ? "" : ", ") + n.text;
  }
  if (l.default_mode == login_mode::page) nets += std::string(nets.empty() ? "" : ", ") + "every unlisted address";
  if (nets.empty()) return {};
  std::string out = "Sign-in page (login: page): " + nets + "; signed out after " +
                    rules::duration_text(std::chrono::duration_cast<std::chrono::seconds>(l.page.idle)) +
                    " idle or " +
                    rules::duration_text(std::chrono::duration_cast<std::chrono::seconds>(l.page.lifetime)) + ".\n";
  if (d.tls.ca_dir.empty()) {
    out +=
        "  No school CA (tls.ca_dir): a device not signed in gets the page for plain http:// addresses only; its\n"
        "  HTTPS connections are refused (the browser shows its own error) until it signs in on an http:// page.\n";
  } else {
    out += "  HTTPS: the page is shown inside the handshake with the school CA (devices must trust it).\n";
  }
  return out;
}

}  // namespace hallpass
