#!/usr/bin/env python3
"""E2E: hostile clients against netloop-demo --tls-echo and --https: plain HTTP and random
bytes sent to the TLS port, a ClientHello that stops half way (closed at the handshake
timeout), 300 connections that never finish a handshake while a real client is served
(all closed at the timeout, counted), and 1,000 connect/abort cycles (no descriptor left,
RSS bounded). Certificates are made at test time.

Exits 77 (meson: SKIP) when the openssl CLI is missing or the build has no TLS.

Usage: test_demo_tls_hostile.py PATH/TO/netloop-demo"""

import os
import select
import socket
import ssl
import struct
import sys
import time

from e2e_util import Failure, check, main
from tls_util import Pki, TlsDemo, client_context, skip_unless_ready, tls_connect, tls_echo

PKI = None
TIMEOUT = 1.0  # --tls-handshake-timeout for these tests, in seconds


def demo(exe, listeners=(("--tls-echo", "127.0.0.1:0"),)):
    return TlsDemo(exe, list(listeners), [PKI.main],
                   ["--tls-handshake-timeout", "%gs" % TIMEOUT, "--log-level", "warn"])


def client_hello(server_name="localhost"):
    """The bytes of a real ClientHello from Python's ssl (never sent anywhere)."""
    ctx = client_context(PKI.ca)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    data = outgoing.read()
    check(len(data) > 100 and data[0] == 0x16, "no ClientHello record made: %r" % data[:16])
    return data


def raw(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    return s


def ended_within(sock, timeout):
    """Reads (and drops) whatever comes until the peer ends the stream: the seconds it
    took, or None when it stayed open for `timeout`."""
    t0 = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - t0 < timeout:
        try:
            if sock.recv(65536) == b"":
                return time.monotonic() - t0
        except socket.timeout:
            continue
        except ConnectionResetError:
            return time.monotonic() - t0
    return None


def reset_close(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def check_serving(port, what):
    """A real client is served: an echo on tls-echo, a GET on https."""
    with tls_connect(client_context(PKI.ca), "127.0.0.1", port) as s:
        if what != "https":
            tls_echo(s, os.urandom(5000))
            return
        s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        s.settimeout(10)
        head = s.recv(12)
        check(head == b"HTTP/1.1 200", "GET / over TLS: %r" % head)


def test_plain_http_and_garbage(exe):
    with demo(exe, (("--tls-echo", "127.0.0.1:0"), ("--https", "127.0.0.1:0"))) as d:
        for name in ("tls-echo", "https"):
            port = d.port(name)
            for what, data in (("plain HTTP", b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"),
                               ("random bytes", os.urandom(65536)),
                               ("a TLS header with a huge length", b"\x16\x03\x01\xff\xff" + os.urandom(100)),
                               ("an SSLv2-style hello", b"\x80\x2e\x01\x00\x02" + os.urandom(45))):
                s = raw(port)
                try:
                    s.sendall(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                took = ended_within(s, TIMEOUT + 4)
                s.close()
                check(took is not None, "%s on %s: the connection stayed open" % (what, name))
            check(d.alive(), "the server died")
            check_serving(port, name)
        check(d.tls_metric("handshake_failures", "tls-echo") >= 2, "failures counted")
        d.stop()


def test_half_client_hello(exe):
    hello = client_hello()
    with demo(exe) as d:
        port = d.port("tls-echo")
        for cut in (len(hello) // 2, 3, 5, len(hello) - 1):
            s = raw(port)
            s.sendall(hello[:cut])
            t0 = time.monotonic()
            took = ended_within(s, TIMEOUT + 5)
            s.close()
            check(took is not None, "a ClientHello cut at %d bytes stayed open past the timeout" % cut)
            check(took >= TIMEOUT * 0.7, "cut at %d: closed after %.2f s, before the %.1f s timeout"
                  % (cut, took, TIMEOUT))
        check(d.tls_metric("handshake_timeouts", "tls-echo") >= 4, "timeouts counted")
        check_serving(port, "tls-echo")
        d.stop()


def test_300_stalled_handshakes(exe):
    hello = client_hello()
    with demo(exe) as d:
        port = d.port("tls-echo")
        before = d.tls_metric("handshake_timeouts", "tls-echo")
        stalled = []
        t0 = time.monotonic()
        for i in range(300):
            s = raw(port)
            if i % 3 == 1:
                s.sendall(hello[:len(hello) // 2])
            elif i % 3 == 2:
                s.sendall(b"\x16\x03\x01")
            stalled.append(s)
        opened = time.monotonic() - t0
        # Meanwhile a real client is served, more than once.
        for _ in range(3):
            check_serving(port, "tls-echo")
        # Every stalled one is closed at the timeout (allow for a loaded machine).
        deadline = time.monotonic() + TIMEOUT + 10 + opened
        open_ones = set(range(300))
        while open_ones and time.monotonic() < deadline:
            socks = [stalled[i] for i in open_ones]
            r, _, _ = select.select(socks, [], [], 0.5)
            for s in r:
                i = stalled.index(s)
                try:
                    data = s.recv(4096)
                except (ConnectionResetError, OSError):
                    data = b""
                if data == b"":
                    open_ones.discard(i)
        for s in stalled:
            s.close()
        check(not open_ones, "%d of 300 stalled handshakes still open %.0f s after the timeout"
              % (len(open_ones), TIMEOUT + 10 + opened))
        after = d.tls_metric("handshake_timeouts", "tls-echo")
        check(after - before >= 290, "only %d handshake timeouts counted for 300" % (after - before))
        check_serving(port, "tls-echo")
        d.stop()


def test_connect_abort_cycles(exe):
    hello = client_hello()
    ctx = client_context(PKI.ca)
    with demo(exe) as d:
        port = d.port("tls-echo")
        check_serving(port, "tls-echo")
        time.sleep(0.3)
        fds0, rss0 = d.fd_count(), d.rss_kib()
        for i in range(1000):
            kind = i % 4
            if kind == 0:  # a full handshake, then a reset
                s = tls_connect(ctx, "127.0.0.1", port)
                if i % 8 == 0:
                    s.sendall(b"x" * 100)
                reset_close(s)
            elif kind == 1:  # half a ClientHello, then a reset
                s = raw(port)
                s.sendall(hello[:len(hello) // 2])
                reset_close(s)
            elif kind == 2:  # a whole ClientHello, then a reset before the server's answer is read
                s = raw(port)
                s.sendall(hello)
                reset_close(s)
            else:  # connect and reset at once
                reset_close(raw(port))
        # Let the server see every reset (and any handshake timeout pass).
        deadline = time.monotonic() + TIMEOUT + 10
        while time.monotonic() < deadline and d.fd_count() > fds0:
            time.sleep(0.2)
        fds1, rss1 = d.fd_count(), d.rss_kib()
        check(fds1 <= fds0, "descriptors: %d before, %d after 1,000 connect/abort cycles" % (fds0, fds1))
        # Under AddressSanitizer freed memory sits in its quarantine (256 MiB by default),
        # so RSS says nothing there; LeakSanitizer checks the leaks when the demo exits.
        sanitized = built_with_asan(exe)
        if not sanitized:
            check(rss1 - rss0 < 32 * 1024, "RSS grew by %d KiB over 1,000 cycles (%d -> %d)"
                  % (rss1 - rss0, rss0, rss1))
        check_serving(port, "tls-echo")
        d.stop()
        return "fds %d -> %d, RSS %d -> %d KiB%s" % (
            fds0, fds1, rss0, rss1, " (ASan build: RSS not checked)" if sanitized else "")


def built_with_asan(exe):
    with open(exe, "rb") as f:
        return b"AddressSanitizer" in f.read()


TESTS = [
    ("plain HTTP, random bytes, bad records on the TLS port", test_plain_http_and_garbage),
    ("a ClientHello that stops half way: closed at the timeout", test_half_client_hello),
    ("300 stalled handshakes: served meanwhile, all closed", test_300_stalled_handshakes),
    ("1,000 connect/abort cycles: no descriptor leak, RSS bounded", test_connect_abort_cycles),
]

if __name__ == "__main__":
    skip_unless_ready(sys.argv, ("openssl",), "TLS hostile e2e")
    if len(sys.argv) == 2:
        PKI = Pki()
        PKI.main = PKI.leaf("main")
    try:
        code = main(TESTS, sys.argv)
    finally:
        if PKI:
            PKI.close()
    sys.exit(code)
