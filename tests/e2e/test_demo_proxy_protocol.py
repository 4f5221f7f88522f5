#!/usr/bin/env python3
"""E2E: netloop-demo --proxy-protocol: PROXY v1 and v2 headers before HTTP requests, the
header's client address in the access log, hostile headers (and no header at all) closed
without an access-log line, untrusted peers closed, the counters in --metrics, accepts that wait for the header (and
--defer-accept), and bad --proxy-trusted values refused at start. The client addresses (192.0.2.x, TEST-NET-1) are
only text inside the headers: every byte goes over loopback.

Usage: test_demo_proxy_protocol.py PATH/TO/netloop-demo"""

import re
import socket
import struct
import sys
import time

from e2e_util import (Demo, Failure, check, main, read_metrics, read_to_end, run_demo, wait_banner,
                      wait_ended)

SIG = b"\r\n\r\n\x00\r\nQUIT\n"
REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def v2(ver_cmd, fam, body, length=None):
    return SIG + bytes([ver_cmd, fam]) + struct.pack("!H", len(body) if length is None else length) + body


def inet4(src, sport, dst="198.51.100.1", dport=80):
    return socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)


def tlv(kind, value):
    return bytes([kind]) + struct.pack("!H", len(value)) + value


GOOD_V2 = v2(0x21, 0x11, inet4("192.0.2.8", 40002) + tlv(0x02, b"example.test"))
BAD_SIG = bytearray(GOOD_V2)
BAD_SIG[7] ^= 0xFF

HOSTILE = [
    ("bad signature", bytes(BAD_SIG) + REQUEST),
    ("version 3", v2(0x31, 0x11, inet4("192.0.2.66", 1)) + REQUEST),
    ("length past the cap", v2(0x21, 0x11, inet4("192.0.2.66", 1), length=0xFFFF) + b"x" * 300),
    ("address block too short", v2(0x21, 0x11, inet4("192.0.2.66", 1)[:8]) + REQUEST),
    ("TLV longer than the header", v2(0x21, 0x11, inet4("192.0.2.66", 1) + tlv(0x02, b"example.test")[:6])
     + REQUEST),
    ("v1 without CRLF", b"PROXY TCP4 192.0.2.66 198.51.100.1 1 80\n" + REQUEST),
    ("v1 with a bad address", b"PROXY TCP4 999.1.1.1 198.51.100.1 1 80\r\n" + REQUEST),
    ("no header", REQUEST),
]


class ProxiedHttp:
    """The demo serving HTTP with --proxy-protocol (and the access log) and --metrics."""

    def __init__(self, exe, extra=()):
        self.demo = Demo(exe, ["--http", "127.0.0.1:0", "--metrics", "127.0.0.1:0", "--access-log",
                               "--proxy-protocol", "--log-level", "info"] + list(extra))
        try:
            _, self.port, _ = wait_banner(self.demo, "http")
            _, self.metrics_port, _ = wait_banner(self.demo, "metrics")
        except BaseException:
            self.demo.close()
            raise

    def request(self, header):
        """Sends header + GET / in one segment; returns the whole response."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(header + REQUEST)
            return read_to_end(s)

    def log(self):
        self.demo.err_file.seek(0)
        return self.demo.err_file.read().decode(errors="replace")

    def access_lines(self):
        return [l for l in self.log().splitlines() if '"GET ' in l]

    def metric(self, name):
        return int(read_metrics(self.metrics_port).get(name, -1))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.demo.close()
        return False


def wait_for(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_good_headers_logged_with_their_client(exe):
    with ProxiedHttp(exe) as srv:
        r1 = srv.request(b"PROXY TCP4 192.0.2.7 198.51.100.1 40001 80\r\n")
        check(r1.startswith(b"HTTP/1.1 200"), "v1 request: %r" % r1[:80])
        r2 = srv.request(GOOD_V2)
        check(r2.startswith(b"HTTP/1.1 200"), "v2 request: %r" % r2[:80])
        check(wait_for(lambda: len(srv.access_lines()) == 2), "access log: %r" % srv.access_lines())
        lines = srv.access_lines()
        check("192.0.2.7:40001 " in lines[0],
              "v1 access-log line does not name 192.0.2.7:40001: %r" % lines[0])
        check("192.0.2.8:40002 " in lines[1], "v2 access-log line does not name 192.0.2.8:40002: %r"
              % lines[1])
        check(srv.metric("netloop_proxy_protocol_accepted_total") == 2, "accepted counter")


def test_every_loop_reads_headers(exe):
    with ProxiedHttp(exe, ["--threads", "2"]) as srv:
        for i in range(8):
            r = srv.request(b"PROXY TCP4 192.0.2.%d 198.51.100.1 %d 80\r\n" % (10 + i, 41000 + i))
            check(r.startswith(b"HTTP/1.1 200"), "request %d: %r" % (i, r[:80]))
        check(wait_for(lambda: len(srv.access_lines()) == 8), "access log: %r" % srv.access_lines())
        logged = sorted(l.split()[2] for l in srv.access_lines())
        want = sorted("192.0.2.%d:%d" % (10 + i, 41000 + i) for i in range(8))
        check(logged == want, "access log clients %r, want %r" % (logged, want))
        check(srv.metric("netloop_proxy_protocol_accepted_total") == 8, "accepted counter")


def test_hostile_headers_closed_unlogged(exe):
    with ProxiedHttp(exe) as srv:
        for name, data in HOSTILE:
            with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
                try:
                    s.sendall(data)
                except OSError:
                    pass  # the server may have closed already
                how = wait_ended(s, 5.0)
                check(how in ("eof", "reset"), "%s: the connection was not closed (%s)" % (name, how))
        check(wait_for(lambda: srv.metric('netloop_proxy_protocol_rejected_total{reason="invalid"}')
                       == len(HOSTILE)),
              "invalid counter %d, want %d" % (
                  srv.metric('netloop_proxy_protocol_rejected_total{reason="invalid"}'), len(HOSTILE)))
        check(srv.access_lines() == [], "hostile connections logged as requests: %r" % srv.access_lines())
        log = srv.log()
        check("192.0.2.66" not in log, "an address from a hostile header reached the log: %r"
              % [l for l in log.splitlines() if "192.0.2.66" in l])
        check("999.1.1.1" not in log, "999.1.1.1 logged as an address")
        # Unharmed: a good request is still answered, and logged with its header's client.
        r = srv.request(b"PROXY TCP4 192.0.2.7 198.51.100.1 40001 80\r\n")
        check(r.startswith(b"HTTP/1.1 200"), "good request after the hostile ones: %r" % r[:80])
        check(wait_for(lambda: len(srv.access_lines()) == 1), "access log: %r" % srv.access_lines())
        check("192.0.2.7:40001 " in srv.access_lines()[0], "access log: %r" % srv.access_lines())
        check(srv.demo.proc.poll() is None, "the demo exited")
        # A drain does not wait for a connection still in its header: it is closed unopened.
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as waiting:
            waiting.sendall(GOOD_V2[:10])
            time.sleep(0.1)
            code = srv.demo.stop()
            check(code == 0, "exit %d after SIGTERM (want 0); stderr: %r" % (code, srv.demo.stderr_text()))
            check(wait_ended(waiting, 5.0) in ("eof", "reset"), "the waiting connection stayed open")


def test_untrusted_peer_closed(exe):
    with ProxiedHttp(exe, ["--proxy-trusted", "10.0.0.0/8,fd00::/8"]) as srv:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
            try:
                s.sendall(b"PROXY TCP4 192.0.2.7 198.51.100.1 40001 80\r\n" + REQUEST)
            except OSError:
                pass
            how = wait_ended(s, 5.0)
            check(how in ("eof", "reset"), "untrusted peer: the connection was not closed (%s)" % how)
        check(wait_for(lambda: srv.metric('netloop_proxy_protocol_rejected_total{reason="untrusted"}') == 1),
              "untrusted counter")
        check(srv.access_lines() == [], "an untrusted peer's request was served: %r" % srv.access_lines())
        check("192.0.2.7" not in srv.log(), "the untrusted header's address reached the log")


def test_header_before_tls(exe):
    """--https --proxy-protocol: the header first, then the handshake on what follows."""
    import tls_util  # only here: the other checks need no openssl
    why = tls_util.tls_missing(exe)
    if why:
        return "SKIP " + why
    pki = tls_util.Pki()
    try:
        cert, key = pki.leaf("leaf")
        demo = Demo(exe, ["--https", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key,
                          "--access-log", "--proxy-protocol", "--log-level", "info"])
        try:
            _, port, _ = wait_banner(demo, "https")
            raw = socket.create_connection(("127.0.0.1", port), timeout=5)
            raw.sendall(b"PROXY TCP4 192.0.2.9 198.51.100.1 40009 443\r\n")
            ctx = tls_util.client_context(pki.ca)
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(REQUEST)
                data = read_to_end(s)
            check(data.startswith(b"HTTP/1.1 200"), "GET over TLS after the header: %r" % data[:80])
            def lines():
                demo.err_file.seek(0)
                return [l for l in demo.err_file.read().decode(errors="replace").splitlines()
                        if '"GET ' in l]
            check(wait_for(lambda: len(lines()) == 1), "access log: %r" % lines())
            check("192.0.2.9:40009 " in lines()[0], "access log: %r" % lines())
        finally:
            demo.close()
    finally:
        pki.close()


def accepted_while_silent(port, metrics_port, payload):
    """Connects to 127.0.0.1:port and says nothing for 0.3 s, then sends `payload`: how
    many connections the demo had accepted meanwhile, besides the metrics scrapes (each
    scrape is a connection accepted, counted before it is answered), and the answer."""
    def accepted():
        return int(read_metrics(metrics_port).get("netloop_connections_accepted_total", -1))
    before = accepted()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        time.sleep(0.3)
        silent = accepted() - before - 1
        s.sendall(payload)
        return silent, read_to_end(s)


def test_accept_waits_for_first_bytes(exe):
    if not sys.platform.startswith("linux"):
        return "SKIP TCP_DEFER_ACCEPT is Linux's"
    # A listener expecting headers defers its accepts (for the header timeout) by default.
    with ProxiedHttp(exe) as srv:
        silent, answer = accepted_while_silent(srv.port, srv.metrics_port, GOOD_V2 + REQUEST)
        check(silent == 0, "a silent peer was accepted before its header (%d)" % silent)
        check(answer.startswith(b"HTTP/1.1 200"), "after the header: %r" % answer[:80])
    # --defer-accept does the same for any listener; without it the silent one is accepted.
    for extra, want in ((["--defer-accept", "30s"], 0), ([], 1)):
        demo = Demo(exe, ["--http", "127.0.0.1:0", "--metrics", "127.0.0.1:0", "--log-level", "warn"] + extra)
        try:
            _, port, _ = wait_banner(demo, "http")
            _, metrics_port, _ = wait_banner(demo, "metrics")
            silent, answer = accepted_while_silent(port, metrics_port, REQUEST)
        finally:
            demo.close()
        check(silent == want, "%s: %d silent connection(s) accepted, want %d" % (extra or "no flag", silent, want))
        check(answer.startswith(b"HTTP/1.1 200"), "%s: %r" % (extra, answer[:80]))


def test_bad_options_refused(exe):
    for args, words in [
        (["--proxy-protocol", "--proxy-trusted", "10.0.0.1/8"], "10.0.0.1/8"),
        (["--proxy-protocol", "--proxy-trusted", "10.0.0.0/33"], "10.0.0.0/33"),
        (["--proxy-protocol", "--proxy-trusted", "10.0.0.0/8,,::1"], "--proxy-trusted"),
        (["--proxy-protocol", "--proxy-trusted", "example.com/8"], "example.com"),
        (["--proxy-trusted", "10.0.0.0/8"], "--proxy-protocol"),
    ]:
        code, out, err = run_demo(exe, args + ["--http", "127.0.0.1:0"])
        check(code == 2, "%s: exit %d (want 2); stderr %r" % (" ".join(args), code, err))
        lines = err.strip().splitlines()
        check(len(lines) == 1 and words in lines[0], "%s: stderr %r" % (" ".join(args), err))


TESTS = [
    ("good v1 and v2 headers: the header's client in the access log",
     test_good_headers_logged_with_their_client),
    ("--threads 2: every loop reads the headers", test_every_loop_reads_headers),
    ("hostile headers closed, never logged, server unharmed", test_hostile_headers_closed_unlogged),
    ("an untrusted peer is closed", test_untrusted_peer_closed),
    ("--https: the header, then the TLS handshake", test_header_before_tls),
    ("the accept waits for the header; --defer-accept, for any first bytes",
     test_accept_waits_for_first_bytes),
    ("bad --proxy-trusted values exit 2 with one line", test_bad_options_refused),
]

if __name__ == "__main__":
    sys.exit(main(TESTS, sys.argv))
