// The HTML pages hallpass serves itself: the block page (403) and the error pages (400, 502,
// 504). Self-contained documents: inline CSS, no scripts, no external resources, so they work
// when everything else is blocked. Accessible (one <h1>, a <main> landmark, a definition list,
// WCAG AA contrast, readable at 200% zoom) and written in plain words a pupil understands. Every
// value is HTML-escaped; long values are shortened, so a page stays under about 8 KiB.
//
// Pure functions of their arguments (the caller formats the time); thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace hallpass {

// What the block page shows. Empty fields leave their line out (a rule without a policy
// clause, an unknown category). The views need only live for the call.
struct block_page_info {
  std::string_view school_name;  // from the config; "" shows "School"
  std::string_view url;          // the full URL that was asked for
  std::string_view host;
  std::string_view role;       // "pupils"
  std::string_view rule;       // "pupils rule 1 (social media)"
  std::string_view category;   // "social_media"
  std::string_view reason;     // the rule's reason, in the school's words
  std::string_view clause;     // "000 6.9; 003 s6"
  std::string_view period;     // "Lesson 2 (lesson)"
  std::string_view time_text;  // school-local time, "Monday 23 November 2026, 11:00"
  std::string_view client;     // the device's address
  std::string_view device_name;  // its name from the DHCP leases ("pupil-laptop-07"); "" leaves it out
  std::string_view hardware_address;  // its hardware address from them ("3c:22:fb:12:9a:01"); "" leaves it out
  std::string_view user;       // who signed in to the proxy (logins); "" : nobody
  std::string_view signout_url;  // signed in through the sign-in page: its sign-out address; "" : no link
  // Trusted HTML inserted as is in the "how to ask for access" section (the access request
  // form, from the exceptions issue). Empty: the section says whom to ask, in words.
  std::string_view request_form_html;
  // Where the person finds the form and their own details when this page leaves them out (a
  // plain-HTTP site's page, which the site's scripts can read): a link to the proxy's own
  // address (block_details_url, access_request_form.hpp), shown in the "how to ask" section.
  std::string_view ask_url;
  // The same link where no exception could help (a locked category, a ban): the page's details,
  // and who is signed in on the device with the sign-out link, on the proxy's own page.
  std::string_view details_url;
  // Set when a ban decided (rules/ban.hpp): when it ends, school-local ("Thursday 3 December
  // 2026, 16:30"). The page then says the device or user is on supervised use until then, in
  // the school's neutral words (reason: bans.message), names no attempt and offers no form.
  std::string_view ban_until;
  // The same as a child says it, from the page's time: "6:47 this evening" (rules::spoken_time);
  // the lead sentence uses it, the details keep ban_until. "" uses ban_until in both.
  std::string_view ban_until_spoken;
  // Set when the block is by a circumvention category and the policy bans after attempts
  // (bans.threshold): the page says, in plain words, that trying to get round the filter can
  // limit the internet for a while (audit of the pages, 2026-12-06: a pupil was banned with no
  // word of warning). The duration in words ("a day"); "" says nothing.
  std::string_view circumvention_warning;
  // The category's help (categories.<name>.support): shown at the top, above the way to ask.
  std::string_view support;
  // The reader is an adult (the role's `audience: adults`): the page says "your work" and
  // "the headteacher decides", not "your school work" and "ask your teacher".
  bool adults = false;
};

std::string render_block_page(const block_page_info& info);

// The texts of the error and form-answer pages are written for a child ("ask your teacher");
// for an adult reader (read_by_adult, exchange.hpp) their phrases are swapped for an adult's
// ("ask the ICT technician", "the headteacher will look at it"). A text without them is
// returned unchanged.
std::string adult_wording(std::string_view text);

// Whether a block page goes to the person at the browser, or may be read by the blocked site's
// own scripts: on an inspected or transparent origin, and on any plain-HTTP site, the page is
// served as the site, so a script of the site that fetches a blocked address reads the page as
// its own. Only the person's page names them (who signed in, the device, its addresses) and
// carries the request form; a script's gets the reason alone. Told by the Fetch Metadata every
// current browser sends to HTTPS sites (headers a script cannot set): the person's when
// `Sec-Fetch-Dest` is `document`, the top-level page; not a fetch, an image or a script, nor
// any frame (a frame of the site's own origin can be read by the site however it was framed:
// through another site's frame `Sec-Fetch-Site` says cross-site; review, 2026-12-05). A
// browser that sends the mode but no destination (Chrome 76-79): `navigate`. Without Fetch
// Metadata (plain HTTP, where browsers send none; an older browser; curl) nothing tells a
// script from a navigation (`Upgrade-Insecure-Requests` can be set by a script), so the page
// is the person's; except that on the explicit proxy's plain HTTP, where browsers never send
// Fetch Metadata, the page never is: it links to the person's page at the proxy's own address
// instead (http_session.cpp, block_details_url). On a transparent listener's plain HTTP that
// address cannot be reached, and the site's scripts can still read the page (README, "Known
// gaps"). The values as the request has them ("" when absent).
bool block_page_for_the_person(std::string_view fetch_mode, std::string_view fetch_dest);

// For 400, 502, 504 and the like: the status, a short title ("The website did not answer"),
// one or two sentences of explanation, and what to do next.
// `transient`: the problem may go away by itself (a site not answering), so the page says to try
// again in a minute; false for one that will not (a certificate that cannot be trusted).
// `technical`: for the technician, after the explanation, in a smaller paragraph of its own
// (a child reads the explanation; the certificate's reason is the technician's). `adults`: the
// reader is an adult (adult_wording).
std::string render_error_page(int status, std::string_view title, std::string_view explanation,
                              std::string_view school_name, bool transient = true, std::string_view technical = {},
                              bool adults = false);

// Appends `s` with & < > " ' escaped; control characters become U+FFFD.
// A page that tells the user something went well (the access request was sent).
// `trusted_html` (the sign-in page's form) is inserted as is after the text.
std::string render_notice_page(std::string_view title, std::string_view text, std::string_view school_name,
                               std::string_view trusted_html = {});

void append_html_escaped(std::string& out, std::string_view s);
std::string html_escape(std::string_view s);

}  // namespace hallpass
