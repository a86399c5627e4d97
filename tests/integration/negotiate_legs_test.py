"""Multi-leg Negotiate (SPNEGO continuation, RFC 4178 and RFC 4559 5) through the real proxy
(issue 12): curl's Kerberos token is accepted in one leg, so here a client built on MIT's
GSS-API (Debian's python3-gssapi) makes the krb5 tokens and the test encodes SPNEGO around them
in DER, leg by leg, on one kept-open socket:

- leg 1 a NegTokenInit that lists the mechanisms but carries no optimistic token, so MIT's
  SPNEGO acceptor answers accept-incomplete (GSS_S_CONTINUE_NEEDED): a 407 with
  `Proxy-Authenticate: Negotiate <NegTokenResp>`;
- leg 2 a NegTokenResp with the Kerberos AP-REQ (and, when the acceptor asked for one because
  krb5 was not the client's first choice, a third leg with the client's mechListMIC).

The realm, keytab, directory and proxy are negotiate_test.py's (NegotiateFixture). Also: the
second leg on a new connection is refused (the context is the connection's), legs beyond the
bound are refused, and no token ever reaches the access log or standard error. Every socket
read has a timeout and every loop a count."""
import base64
import re
import socket
import sys
import unittest

from harness import wait_for
from negotiate_test import PROXY_HOST, NegotiateFixture

try:
    import gssapi
except ImportError:
    # Debian's python3-gssapi lives in the system interpreter's dist-packages; a same-version
    # interpreter of another install (pyenv) can load it from there.
    sys.path.append("/usr/lib/python3/dist-packages")
    try:
        import gssapi
    except ImportError:
        gssapi = None

KRB5 = "1.2.840.113554.1.2.2"
SPNEGO = "1.3.6.1.5.5.2"
NTLMSSP = "1.3.6.1.4.1.311.2.2.10"  # a mechanism the proxy does not offer: the client's first choice
ACCEPT_INCOMPLETE, REQUEST_MIC = 1, 3  # NegTokenResp negState (RFC 4178 4.2.2)
MAX_LEGS = 4  # negotiate_acceptor::max_legs


# DER, just what SPNEGO's two tokens need (X.690 definite lengths).
def der(tag, body):
    n = len(body)
    if n < 0x80:
        length = bytes([n])
    else:
        b = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(b)]) + b
    return bytes([tag]) + length + body


def der_oid(dotted):
    arcs = [int(a) for a in dotted.split(".")]
    body = bytes([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        enc = [arc & 0x7F]
        arc >>= 7
        while arc:
            enc.insert(0, 0x80 | (arc & 0x7F))
            arc >>= 7
        body += bytes(enc)
    return der(0x06, body)


def der_items(data):
    """The (tag, value) pairs of a run of DER elements."""
    out, i = [], 0
    while i < len(data):
        tag, n = data[i], data[i + 1]
        i += 2
        if n & 0x80:
            k = n & 0x7F
            n = int.from_bytes(data[i:i + k], "big")
            i += k
        if i + n > len(data):
            raise ValueError("a DER element runs past its container")
        out.append((tag, data[i:i + n]))
        i += n
    return out


def neg_token_init(mechs):
    """InitialContextToken ([APPLICATION 0] SPNEGO OID, [0] NegTokenInit with mechTypes and no
    optimistic mechToken) and the DER of its mechTypes (what a mechListMIC signs)."""
    mech_types = der(0x30, b"".join(der_oid(m) for m in mechs))
    return der(0x60, der_oid(SPNEGO) + der(0xA0, der(0x30, der(0xA0, mech_types)))), mech_types


def neg_token_resp(response_token=None, mic=None):
    fields = b""
    if response_token is not None:
        fields += der(0xA2, der(0x04, response_token))
    if mic is not None:
        fields += der(0xA3, der(0x04, mic))
    return der(0xA1, der(0x30, fields))


def parse_neg_token_resp(data):
    """{negState, supportedMech (DER OID), responseToken, mechListMIC}, those present."""
    [(tag, body)] = der_items(data)
    if tag != 0xA1:
        raise ValueError(f"not a NegTokenResp (tag {tag:#x})")
    [(_, fields)] = der_items(body)
    out = {}
    for ftag, value in der_items(fields):
        [(inner_tag, inner)] = der_items(value)
        if ftag == 0xA0:
            out["negState"] = inner[0]
        elif ftag == 0xA1:
            out["supportedMech"] = der(inner_tag, inner)
        elif ftag == 0xA2:
            out["responseToken"] = inner
        elif ftag == 0xA3:
            out["mechListMIC"] = inner
    return out


class Connection:
    """One client connection to the proxy, kept open across requests (the legs must share it).
    Reads one response at a time (a Content-Length body; the proxy's own answers have one)."""

    def __init__(self, proxy, source, timeout=10):
        self.sock = socket.socket()
        self.sock.bind((source, 0))
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", proxy.port))
        self.file = self.sock.makefile("rb")

    def close(self):
        self.file.close()
        self.sock.close()

    def get(self, url, host, token=None):
        """(status, [(name, value)], body) for a GET with `Proxy-Authorization: Negotiate <token>`."""
        head = f"GET {url} HTTP/1.1\r\nHost: {host}\r\n"
        if token is not None:
            head += f"Proxy-Authorization: Negotiate {base64.b64encode(token).decode()}\r\n"
        self.sock.sendall((head + "\r\n").encode())
        status_line = self.file.readline(8192)
        m = re.match(rb"HTTP/1\.1 (\d{3}) ", status_line)
        if not m:
            raise AssertionError(f"no response on the connection: {status_line!r}")
        headers = []
        for _ in range(100):
            line = self.file.readline(65536)
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers.append((name.strip().lower(), value.strip()))
        length = int(dict(headers).get("content-length", "0"))
        body = self.file.read(length)
        return int(m.group(1)), headers, body


def negotiate_offers(headers):
    return [v for n, v in headers if n == "proxy-authenticate"]


def reply_token(testcase, headers):
    """The NegTokenResp of a continuing exchange: the 407's only offer, `Negotiate <token>`."""
    offers = negotiate_offers(headers)
    testcase.assertEqual(len(offers), 1, offers)
    scheme, _, token = offers[0].partition(" ")
    testcase.assertEqual(scheme, "Negotiate", offers)
    testcase.assertTrue(token, offers)
    return parse_neg_token_resp(base64.b64decode(token, validate=True))


@unittest.skipUnless(gssapi is not None, "python3-gssapi is not installed (deploy/install-deps.sh)")
class NegotiateLegsTest(NegotiateFixture):
    def setUp(self):
        self.kdc.kinit("dave", self.dave_keytab)  # a fresh ticket cache: only dave's TGT
        self.sent = []  # every token the test sent or got, base64: none may reach a log

    def tearDown(self):
        with open(self.proxy.access_log) as f:
            log = f.read()
        stderr = "".join(self.proxy.stderr_lines)
        for token in self.sent:
            # The start of a token is enough to find one (and the message stays short).
            self.assertFalse(token[:40] in log, f"a Negotiate token is in the access log: {token[:40]}")
            self.assertFalse(token[:40] in stderr, f"a Negotiate token is on standard error: {token[:40]}")

    def krb5_context(self, mutual):
        """dave's Kerberos initiator context for HTTP@<the proxy's host>, from the KDC's ticket cache."""
        creds = gssapi.Credentials(usage="initiate", store={"ccache": self.kdc.env["KRB5CCNAME"]})
        flags = gssapi.RequirementFlag.integrity
        if mutual:
            flags |= gssapi.RequirementFlag.mutual_authentication
        return gssapi.SecurityContext(name=gssapi.Name(f"HTTP@{PROXY_HOST}", gssapi.NameType.hostbased_service),
                                      mech=gssapi.OID.from_int_seq(KRB5), usage="initiate", creds=creds, flags=flags)

    def leg(self, conn, url, host, token):
        self.sent.append(base64.b64encode(token).decode())
        status, headers, body = conn.get(url, host, token)
        for offer in negotiate_offers(headers):
            if offer.startswith("Negotiate "):
                self.sent.append(offer[len("Negotiate "):])
        return status, headers, body

    def lines_of(self, client, count):
        """The access log lines from `client`, once there are `count` of them."""
        def read():
            lines = [l for l in self.proxy.log_lines() if l.get("client") == client]
            return lines if len(lines) >= count else None
        return wait_for(read, what=f"{count} access log lines from {client}")

    def test_two_legs_on_one_connection_sign_in(self):
        before = self.proxy.metric("hallpass_logins_total", {"result": "ok"})
        conn = Connection(self.proxy, "127.0.0.21")
        try:
            init, _ = neg_token_init([KRB5])
            status, headers, _ = self.leg(conn, self.url("origin.test", "/small?two1"), "origin.test", init)
            self.assertEqual(status, 407)
            reply = reply_token(self, headers)
            self.assertEqual(reply.get("negState"), ACCEPT_INCOMPLETE, reply)
            self.assertEqual(reply.get("supportedMech"), der_oid(KRB5), reply)
            # Leg 2, on the same connection: the AP-REQ the acceptor now waits for.
            ap_req = self.krb5_context(mutual=False).step()
            status, _, body = self.leg(conn, self.url("origin.test", "/small?two2"), "origin.test",
                                       neg_token_resp(response_token=ap_req))
            self.assertEqual(status, 200, body[:300])
            # The connection is dave's now: a later request needs no header.
            status, _, _ = conn.get(self.url("facebook.test", "/small?two3"), "facebook.test")
            self.assertEqual(status, 403)  # dave is in Year 6
        finally:
            conn.close()
        lines = self.lines_of("127.0.0.21", 3)
        self.assertEqual([l["status"] for l in lines], [407, 200, 403], lines)
        self.assertEqual(lines[0]["reason"], "login continues")
        self.assertIsNone(lines[0]["user"])
        self.assertEqual([l["user"] for l in lines[1:]], ["dave", "dave"])
        self.assertEqual(lines[2]["role"], "year6")
        self.assertEqual(self.proxy.metric("hallpass_logins_total", {"result": "ok"}), before + 1)


    def test_three_legs_with_the_mech_list_mic(self):
        # krb5 is not the client's first choice (NTLM is, which the proxy does not offer), so
        # RFC 4178 5 makes both sides sign the mechanism list: the acceptor asks for the MIC
        # (request-mic), answers the AP-REQ with its AP-REP and its own MIC, and completes only
        # on the client's MIC, in a third leg.
        conn = Connection(self.proxy, "127.0.0.24")
        try:
            init, mech_types = neg_token_init([NTLMSSP, KRB5])
            status, headers, _ = self.leg(conn, self.url("origin.test", "/small?mic1"), "origin.test", init)
            self.assertEqual(status, 407)
            reply = reply_token(self, headers)
            self.assertEqual(reply.get("negState"), REQUEST_MIC, reply)
            self.assertEqual(reply.get("supportedMech"), der_oid(KRB5), reply)
            krb5 = self.krb5_context(mutual=True)
            ap_req = krb5.step()
            status, headers, _ = self.leg(conn, self.url("origin.test", "/small?mic2"), "origin.test",
                                          neg_token_resp(response_token=ap_req))
            self.assertEqual(status, 407)
            reply = reply_token(self, headers)
            self.assertEqual(reply.get("negState"), ACCEPT_INCOMPLETE, reply)
            # The proxy's reply token is the acceptor's own: the client's context takes the AP-REP
            # (mutual authentication: this is the proxy's key) and checks the acceptor's MIC.
            self.assertIsNone(krb5.step(reply["responseToken"]))
            self.assertTrue(krb5.complete)
            krb5.verify_signature(mech_types, reply["mechListMIC"])
            status, _, body = self.leg(conn, self.url("origin.test", "/small?mic3"), "origin.test",
                                       neg_token_resp(mic=krb5.get_signature(mech_types)))
            self.assertEqual(status, 200, body[:300])
        finally:
            conn.close()
        lines = self.lines_of("127.0.0.24", 3)
        self.assertEqual([(l["status"], l["user"]) for l in lines], [(407, None), (407, None), (200, "dave")], lines)

    def test_a_continuation_on_a_new_connection_is_refused(self):
        # The acceptor context is the connection's: leg 2 on another connection (same address,
        # same user) has no context to continue, and is refused as a token that cannot start one.
        failed = self.proxy.metric("hallpass_logins_total", {"result": "bad_credentials"})
        first = Connection(self.proxy, "127.0.0.22")
        other = Connection(self.proxy, "127.0.0.22")
        try:
            init, _ = neg_token_init([KRB5])
            status, headers, _ = self.leg(first, self.url("origin.test", "/small?new1"), "origin.test", init)
            self.assertEqual(status, 407)
            self.assertEqual(reply_token(self, headers).get("negState"), ACCEPT_INCOMPLETE)
            leg2 = neg_token_resp(response_token=self.krb5_context(mutual=False).step())
            status, headers, _ = self.leg(other, self.url("origin.test", "/small?new2"), "origin.test", leg2)
            self.assertEqual(status, 407)
            offers = negotiate_offers(headers)
            self.assertEqual(offers[0], "Negotiate", offers)  # asked to start again, no reply token
            self.assertTrue(offers[1].startswith("Basic "), offers)
            self.assertEqual(self.proxy.metric("hallpass_logins_total", {"result": "bad_credentials"}), failed + 1)
            wait_for(lambda: any("Negotiate login failed from 127.0.0.22" in l for l in self.proxy.stderr_lines),
                     what="the refusal on standard error")
            # The first connection still has its context: the same leg 2 completes there.
            status, _, body = self.leg(first, self.url("origin.test", "/small?new3"), "origin.test", leg2)
            self.assertEqual(status, 200, body[:300])
        finally:
            first.close()
            other.close()
        lines = self.lines_of("127.0.0.22", 3)
        self.assertEqual([(l["status"], l["user"]) for l in lines], [(407, None), (407, None), (200, "dave")], lines)
        self.assertEqual(lines[1]["reason"], "login failed")

    def test_legs_beyond_the_bound_are_refused(self):
        # MIT's SPNEGO acceptor (1.20) answers a NegTokenResp that carries only a mechListMIC,
        # before any mechanism token, with accept-incomplete again each time (seven in a row
        # when tried by hand): a client could hold an acceptor context for ever. The proxy
        # stops at max_legs.
        failed = self.proxy.metric("hallpass_logins_total", {"result": "bad_credentials"})
        conn = Connection(self.proxy, "127.0.0.23")
        try:
            init, _ = neg_token_init([KRB5])
            stall = neg_token_resp(mic=b"not-a-MIC-" * 3)
            for leg in range(1, MAX_LEGS + 1):
                status, headers, _ = self.leg(conn, self.url("origin.test", f"/small?bound{leg}"), "origin.test",
                                              init if leg == 1 else stall)
                self.assertEqual(status, 407, leg)
                self.assertEqual(reply_token(self, headers).get("negState"), ACCEPT_INCOMPLETE, leg)
            status, headers, _ = self.leg(conn, self.url("origin.test", f"/small?bound{MAX_LEGS + 1}"), "origin.test",
                                          stall)
            self.assertEqual(status, 407)
            offers = negotiate_offers(headers)
            self.assertEqual(offers[0], "Negotiate", offers)  # refused: start again
            self.assertEqual(self.proxy.metric("hallpass_logins_total", {"result": "bad_credentials"}), failed + 1)
            wait_for(lambda: any(f"more than {MAX_LEGS} Negotiate legs on one connection" in l
                                 for l in self.proxy.stderr_lines), what="the refusal on standard error")
            # The refused context is gone: the connection can start a new exchange and finish it.
            status, headers, _ = self.leg(conn, self.url("origin.test", "/small?bound-again1"), "origin.test", init)
            self.assertEqual(status, 407)
            self.assertEqual(reply_token(self, headers).get("negState"), ACCEPT_INCOMPLETE)
            status, _, body = self.leg(conn, self.url("origin.test", "/small?bound-again2"), "origin.test",
                                       neg_token_resp(response_token=self.krb5_context(mutual=False).step()))
            self.assertEqual(status, 200, body[:300])
        finally:
            conn.close()
        lines = self.lines_of("127.0.0.23", MAX_LEGS + 3)
        self.assertEqual([l["status"] for l in lines], [407] * (MAX_LEGS + 2) + [200], lines)
        self.assertEqual(lines[MAX_LEGS]["reason"], "login failed")
        self.assertIn(f"more than {MAX_LEGS} Negotiate legs", lines[MAX_LEGS].get("note", ""))
        self.assertEqual(lines[-1]["user"], "dave")


if __name__ == "__main__":
    unittest.main()
