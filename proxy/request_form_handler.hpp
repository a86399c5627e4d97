// The handlers of http://hallpass.invalid/request, the block page's access request form,
// and of http://hallpass.invalid/blocked, the page that links to it on plain HTTP. The form:
// checks the form's signed token, the rate limits and the answers, files the request on the
// store thread (admin_server) and answers with a page saying what happened.
//
// Runs on the session's worker thread; the filing itself runs on the store thread.
#pragma once

#include "proxy/exchange.hpp"
#include "proxy/net.hpp"
#include "proxy/request_parser.hpp"

namespace hallpass {

class worker;
struct client_connection;

// Answers a request to form_host (access_request_form.hpp), reading its body (at most 16 KiB).
// Sets ex (action allow, note, status); the connection closes afterwards.
net::awaitable<void> answer_form(worker& w, client_connection& c, exchange& ex, request_parser& rp);

// Answers http://hallpass.invalid/blocked?url=U (details_path, access_request_form.hpp): the
// person's block page for U, with who signed in, the device and the form, on the proxy's own
// address, for the explicit proxy's plain-HTTP block pages that leave them out. Sets ex (action
// allow, note, status; the decision of U is not logged again); the connection closes afterwards.
net::awaitable<void> answer_block_details(worker& w, client_connection& c, exchange& ex, request_parser& rp);

}  // namespace hallpass
