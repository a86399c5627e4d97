#include "proxy/block_page.hpp"

#include "rules/category_words.hpp"

namespace hallpass {

namespace {

// Shared by every page, the request form's (.rq) and the sign-in form's (.signin) looks
// included, so that no <style> stands in the body (audit of the pages, 2026-12-06). Contrast (WCAG 2.1): body text 16:1, labels and notes at least 6.9:1,
// in light and dark schemes. Sizes in rem and a single column below 36em, so the page reflows
// at 200% zoom without sideways scrolling; long URLs wrap anywhere.
constexpr std::string_view style = R"css(
:root{color-scheme:light dark;--bg:#eef1f4;--card:#fff;--text:#1a1d21;--muted:#4a5260;--rule:#d5dae1;--accent:#b42318;--band:#1f2a44;--ask:#eef4fb;--askline:#1d4f91}
@media (prefers-color-scheme:dark){:root{--bg:#111418;--card:#1b1f26;--text:#e8eaed;--muted:#b4bcc8;--rule:#3a414c;--accent:#f97066;--band:#0b1222;--ask:#18263a;--askline:#84adf0}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--text);font:1rem/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",Arial,sans-serif}
.band{background:var(--band);color:#fff;padding:.75rem 1.25rem;font-weight:600}
.band span{font-weight:400;opacity:.9}
main{width:min(44rem,100% - 1.5rem);margin:2rem auto;padding:1.75rem 1.5rem;background:var(--card);border-top:.4rem solid var(--accent);border-radius:.5rem;box-shadow:0 1px 3px rgba(0,0,0,.12)}
h1{margin:0 0 .5rem;font-size:1.75rem;line-height:1.2}
h2{margin:0 0 .5rem;font-size:1.2rem}
p{margin:0 0 1rem;overflow-wrap:anywhere}
.lead{font-size:1.1rem}
dl{margin:1.5rem 0;border-top:1px solid var(--rule)}
dl div{padding:.6rem 0;border-bottom:1px solid var(--rule)}
dt{font-weight:600;color:var(--muted)}
dd{margin:0;overflow-wrap:anywhere}
@media (min-width:36em){dl div{display:grid;grid-template-columns:10rem 1fr;gap:1rem}}
.ask{background:var(--ask);border-left:.3rem solid var(--askline);padding:1rem 1.25rem;border-radius:.25rem;margin:1.5rem 0}
.ask p:last-child{margin-bottom:0}
.askbtn{display:inline-block;font-weight:600;padding:.55rem 1.1rem;border-radius:.3rem;background:var(--askline);color:var(--card);text-decoration:none}
.hint{color:var(--muted);font-size:.95rem}
.note{color:var(--muted);font-size:.95rem;margin:0}
details{margin:1.5rem 0}
summary{cursor:pointer;font-weight:600;color:var(--muted)}
.code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.95em}
.rq label{display:block;font-weight:600;margin:.75rem 0 .25rem}
.rq input[type=text],.rq textarea{width:100%;font:inherit;padding:.45rem;border:1px solid var(--muted);border-radius:.25rem;background:var(--card);color:var(--text)}
.rq textarea{min-height:3.5rem}
.rq button{margin-top:1rem;font:inherit;font-weight:600;padding:.55rem 1.1rem;border:0;border-radius:.3rem;background:var(--askline);color:var(--card);cursor:pointer}
.rq .hint{font-weight:400;color:var(--muted);font-size:.95rem}
.signin label{display:block;font-weight:600;margin:0 0 .25rem}
.signin input[type=text],.signin input[type=password]{width:100%;max-width:24rem;font:inherit;padding:.5rem;border:1px solid var(--muted);border-radius:.25rem;background:var(--card);color:var(--text)}
.signin button{font:inherit;font-weight:600;padding:.55rem 1.4rem;border:0;border-radius:.25rem;background:var(--askline);color:var(--card);cursor:pointer}
.problem{border-left:.3rem solid var(--accent);padding:.5rem 1rem;font-weight:600}
)css";

// Values longer than this are cut (at a UTF-8 boundary) with an ellipsis: a page with a huge
// URL stays small, and the whole URL is in the access log anyway.
constexpr std::size_t max_url_bytes = 600;
constexpr std::size_t max_field_bytes = 300;

std::string_view shorten(std::string_view s, std::size_t limit, bool& cut) {
  cut = s.size() > limit;
  if (!cut) return s;
  std::size_t n = limit;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xc0) == 0x80) --n;
  return s.substr(0, n);
}

void append_value(std::string& out, std::string_view s, std::size_t limit = max_field_bytes) {
  bool cut = false;
  append_html_escaped(out, shorten(s, limit, cut));
  if (cut) out += "\u2026";
}

void begin_document(std::string& out, std::string_view title, std::string_view school) {
  out +=
      "<!doctype html>\n<html lang=\"en-GB\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
      "<meta name=\"robots\" content=\"noindex, nofollow\">\n<title>";
  append_value(out, title);
  out += " \u2013 ";
  append_value(out, school);
  out += "</title>\n<style>";
  out += style;
  out += "</style>\n</head>\n<body>\n<header class=\"band\">";
  append_value(out, school);
  out += " <span>\u00b7 internet filter</span></header>\n<main>\n";
}

void end_document(std::string& out) {
  out += "</main>\n</body>\n</html>\n";
}

void row(std::string& out, std::string_view label, std::string_view value,
         std::size_t limit = max_field_bytes, bool code = false) {
  if (value.empty()) return;
  out += "<div><dt>";
  out += label;
  out += "</dt><dd";
  if (code) out += " class=\"code\"";
  out += '>';
  append_value(out, value, limit);
  out += "</dd></div>\n";
}

std::string_view school_or_default(std::string_view s) {
  return s.empty() ? "School" : s;
}

}  // namespace

void append_html_escaped(std::string& out, std::string_view s) {
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        if ((static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n') || c == 0x7f) {
          out += "\ufffd";
        } else {
          out += c;
        }
    }
  }
}

std::string html_escape(std::string_view s) {
  std::string out;
  append_html_escaped(out, s);
  return out;
}

namespace {

// The link to the person's own page where this one leaves them out and no exception could help
// (block_page_info::details_url): who is signed in, the device, the sign-out link.
void append_details_link(std::string& out, const block_page_info& info) {
  if (info.details_url.empty()) return;
  out += "<p class=\"note\"><a href=\"";
  append_html_escaped(out, info.details_url);
  out += "\">Who is signed in on this device, and the details</a> (on the school filter\u2019s own page)</p>\n";
}

// Who is signed in through the sign-in page, and the link to sign out (a shared device).
void append_signout_note(std::string& out, const block_page_info& info) {
  if (info.signout_url.empty() || info.user.empty()) return;
  out += "<p class=\"note\">This device is signed in as ";
  append_value(out, info.user);
  out += ". <a href=\"";
  append_html_escaped(out, info.signout_url);
  out += "\">Sign out</a> when you finish, on a shared device.</p>\n";
}

std::string_view details_summary(const block_page_info& info) {
  return info.adults ? "<details>\n<summary>Details for the ICT technician</summary>\n<dl>\n"
                     : "<details>\n<summary>Details for your teacher or the ICT technician</summary>\n<dl>\n";
}

// A ban's page (000 7.2; 002). Child-first: a screen others may see says only that use is
// limited for now and until when, in the school's own neutral words, never why or what was
// tried; the adult details (which ban, its reason) are in hallpassctl bans and the access log.
std::string render_ban_page(const block_page_info& info, std::string_view school) {
  std::string out;
  out.reserve(4 * 1024);
  begin_document(out, "Only some websites are open for now", school);
  out += "<h1>Only some websites are open for now</h1>\n<p class=\"lead\">";
  append_value(out, info.reason, 2 * max_field_bytes);
  out += "</p>\n<p>This lasts until <strong>";
  append_value(out, info.ban_until_spoken.empty() ? info.ban_until : info.ban_until_spoken);
  out += "</strong>. After that the internet works as it did before, with nothing for you to do.</p>\n";
  if (info.adults) {
    out +=
        "<section class=\"ask\" aria-labelledby=\"ask\">\n<h2 id=\"ask\">Need a website for your work?</h2>\n"
        "<p>Speak to the designated safeguarding lead or the headteacher.</p>\n</section>\n";
  } else {
    out +=
        "<section class=\"ask\" aria-labelledby=\"ask\">\n<h2 id=\"ask\">Need a website for your "
        "school work?</h2>\n<p>Ask your teacher: they can help you use it with them, or find another way "
        "to do the work.</p>\n</section>\n";
  }
  out += details_summary(info);
  row(out, "Page", info.url, max_url_bytes, true);
  row(out, "Rule", info.rule);
  row(out, "Until", info.ban_until);
  row(out, "School policy", info.clause);
  row(out, "Signed in as", info.user);
  row(out, "Your device", info.client);
  out += "</dl>\n</details>\n";
  append_details_link(out, info);
  append_signout_note(out, info);
  end_document(out);
  return out;
}

}  // namespace

std::string render_block_page(const block_page_info& info) {
  const auto school = school_or_default(info.school_name);
  if (!info.ban_until.empty()) return render_ban_page(info, school);
  std::string out;
  out.reserve(6 * 1024);
  std::string title = "Blocked";
  if (!info.host.empty()) {
    bool cut = false;
    title = "Blocked: ";
    title += shorten(info.host, 100, cut);
  }
  begin_document(out, title, school);

  // A child reads the top of the page: what happened, in the school's own words, and how to
  // ask. The details a teacher or the technician needs are folded below.
  out += "<h1>This page is blocked</h1>\n<p class=\"lead\">";
  if (!info.reason.empty()) {
    append_value(out, info.reason);
  } else {
    out += "The school has decided this page should not be used here.";
  }
  out += "</p>\n";
  if (!info.support.empty()) {
    out += "<section class=\"ask\" aria-labelledby=\"help\">\n<h2 id=\"help\">Need to talk to someone?</h2>\n<p>";
    append_value(out, info.support, 600);
    out += "</p>\n</section>\n";
  }
  if (!info.circumvention_warning.empty()) {
    out += "<p><strong>Trying to get round the school\u2019s internet filter can stop your internet at school for ";
    append_value(out, info.circumvention_warning, 100);
    out += ".</strong></p>\n";
  }
  // The site, in one short sentence. The group and the category ("pupils", "unlocked search")
  // are the policy's words, for the adults: they are in the details (audit of the pages,
  // 2026-12-06: the top read at about age 13 with them).
  if (!info.host.empty()) {
    out += "<p>The school\u2019s internet filter stopped this page on <strong>";
    append_value(out, info.host, 100);
    out += "</strong>.</p>\n";
  }
  // "social_media" reads as "social media"; the rule in the details names it exactly.
  const std::string category = rules::category_words(info.category);

  out += info.adults ? "<section class=\"ask\" aria-labelledby=\"ask\">\n<h2 id=\"ask\">Need this page for your work?</h2>\n"
                     : "<section class=\"ask\" aria-labelledby=\"ask\">\n<h2 id=\"ask\">Need this page for your "
                       "school work?</h2>\n";
  if (!info.request_form_html.empty()) {
    out += info.request_form_html;
    out += '\n';
  } else if (!info.ask_url.empty()) {
    // The form is on the proxy's own page, which this site's scripts cannot read.
    out += "<p><a class=\"askbtn\" href=\"";
    append_html_escaped(out, info.ask_url);
    out += "\">Ask for this page</a></p>\n<p class=\"hint\">The form opens on the internet filter\u2019s own page. ";
    out += info.adults ? "The headteacher decides (000 7.5).</p>\n" : "A teacher will look at what you send.</p>\n";
  } else if (info.adults) {
    out +=
        "<p>Ask the headteacher, who can open it for a while, on the school\u2019s blocked content access request "
        "form (000 7.5).</p>\n";
  } else {
    out +=
        "<p>Ask your teacher. They can ask for the page to be opened for a while (the headteacher decides, on the "
        "school\u2019s blocked content access request form, 000 7.5).</p>\n";
  }
  out += "</section>\n";

  out += details_summary(info);
  row(out, "Page", info.url, max_url_bytes, true);
  row(out, "Website", info.host);
  row(out, "Your group", info.role);
  row(out, "Why", info.reason);
  row(out, "Rule", info.rule);
  row(out, "Category", category);
  std::string when(info.time_text);
  if (!info.period.empty()) {
    if (!when.empty()) when += " \u00b7 ";
    when += info.period;
  }
  row(out, "When", when);
  row(out, "School policy", info.clause);
  row(out, "Signed in as", info.user);
  row(out, "Your device", info.client);
  row(out, "Device name", info.device_name);
  row(out, "Hardware address", info.hardware_address);
  // The process, for the adults (moved out of the child's part: audit of the pages, 2026-12-06).
  if (!info.request_form_html.empty() || !info.ask_url.empty()) {
    row(out, "Asking for access",
        info.adults ? "The request goes on the school\u2019s blocked content access request form, with the group and "
                      "the device it came from; the ICT technician adds the risks and the controls, and the headteacher "
                      "decides (000 7.5)."
                    : "The teacher or the ICT technician puts the request on the school\u2019s blocked content access "
                      "request form, with the group and the device it came from, and the headteacher decides (000 7.5).");
  }
  out += "</dl>\n</details>\n";
  append_details_link(out, info);
  append_signout_note(out, info);
  // Monitoring is said (004 8.1, 8.2: users are told), in words that do not frighten a child.
  out += "<p class=\"note\">The school checks how its internet is used, to keep everyone safe. If you think "
         "this page was blocked by mistake, tell ";
  out += info.adults ? "the ICT technician.</p>\n" : "your teacher.</p>\n";
  end_document(out);
  return out;
}

std::string adult_wording(std::string_view text) {
  // Longest first: "your teacher or the ICT technician" before "your teacher".
  static constexpr std::pair<std::string_view, std::string_view> swaps[] = {
      {"tell your teacher or the ICT technician", "tell the ICT technician"},
      {"if your teacher does not hear of it", "if you do not hear of it"},
      {"A teacher will look at it", "The headteacher will look at it"},
      {"a teacher will look at it", "the headteacher will look at it"},
      {"Tell your teacher", "Tell the ICT technician"},
      {"ask your teacher", "ask the ICT technician"},
      {"tell your teacher", "tell the ICT technician"},
  };
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    bool swapped = false;
    for (const auto& [from, to] : swaps) {
      if (text.substr(i, from.size()) == from) {
        out += to;
        i += from.size();
        swapped = true;
        break;
      }
    }
    if (!swapped) out += text[i++];
  }
  return out;
}

bool block_page_for_the_person(std::string_view fetch_mode, std::string_view fetch_dest) {
  if (!fetch_dest.empty()) return fetch_dest == "document";
  return fetch_mode.empty() || fetch_mode == "navigate";
}

namespace {
// The head, the title and one lead paragraph; the caller adds the rest and ends the document.
std::string render_titled_page(std::string_view title, std::string_view text, std::string_view school_name) {
  const auto school = school_or_default(school_name);
  std::string out;
  out.reserve(4 * 1024);
  begin_document(out, title, school);
  out += "<h1>";
  append_value(out, title);
  out += "</h1>\n<p class=\"lead\">";
  append_value(out, text, 2 * max_field_bytes);
  out += "</p>\n";
  return out;
}
}  // namespace

std::string render_error_page(int status, std::string_view title, std::string_view explanation,
                              std::string_view school_name, bool transient, std::string_view technical, bool adults) {
  std::string out = render_titled_page(title, adults ? adult_wording(explanation) : std::string(explanation), school_name);
  if (!technical.empty()) {
    out += "<p class=\"note\">";
    append_value(out, technical, max_url_bytes + 4 * max_field_bytes);
    out += "</p>\n";
  }
  if (transient) {
    out += adults ? "<p>Try again in a minute. If it keeps happening, tell the ICT technician what you were "
                    "trying to open and when.</p>\n"
                  : "<p>Try again in a minute. If it keeps happening, tell your teacher or the ICT technician what you were "
                    "trying to open and when.</p>\n";
  }
  out += "<p class=\"note\">Error ";
  out += std::to_string(status);
  out += " \u00b7 reported by the school\u2019s internet filter, not by the website.</p>\n";
  end_document(out);
  return out;
}

std::string render_notice_page(std::string_view title, std::string_view text, std::string_view school_name,
                               std::string_view trusted_html) {
  std::string out = render_titled_page(title, text, school_name);
  out += trusted_html;
  end_document(out);
  return out;
}

}  // namespace hallpass
