#!/usr/bin/env python3
"""E2E: netloop-demo --tcp-proxy in front of another netloop-demo's TCP echo: bytes
intact both ways (up to 4 MiB, 50 clients at once, IPv6), the half-close carried, the
per-upstream counters in --metrics, a reset carried, the idle timeout, an upstream that
refuses (the client is closed at once, the proxy stays up), one of two upstreams down,
the proxy's RSS bounded while a slow reader lags on either side, no descriptor left after
2,000 connect/abort cycles, and bad flags.

Usage: test_demo_proxy.py PATH/TO/netloop-demo"""

import os
import socket
import struct
import sys
import threading
import time

from e2e_util import (ProxyDemo, check, check_echo, closed_port, concurrent_echo, connect,
                      exchange, ipv6_loopback_works, main, run_demo, start_echo, wait_ended)

MiB = 1024 * 1024


class Echo:
    """A netloop-demo serving TCP echo: the upstream."""

    def __init__(self, exe, host="127.0.0.1"):
        self.demo, self.port, _ = start_echo(exe, host, ["--log-level", "warn"])
        self.host = host
        self.spec = ("[%s]:%d" if ":" in host else "%s:%d") % (host, self.port)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.demo.close()
        return False


def reset_close(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_bytes_intact(exe):
    with Echo(exe) as echo, ProxyDemo(exe, [echo.spec]) as proxy:
        sizes = [1, 1000, 65537, MiB + 3, 4 * MiB]
        for i, size in enumerate(sizes):
            check_echo("127.0.0.1", proxy.port, os.urandom(size), seed=i)
        concurrent_echo("127.0.0.1", proxy.port, clients=50, size=256 * 1024)
        total = sum(sizes) + 50 * 256 * 1024
        out = proxy.upstream_metric("bytes", echo.spec, direction="out")
        got = proxy.upstream_metric("bytes", echo.spec, direction="in")
        check(out == total and got == total, "bytes counted out=%d in=%d, expected %d each" % (out, got, total))
        connects = proxy.upstream_metric("connects", echo.spec)
        check(connects == len(sizes) + 50, "connects %d, expected %d" % (connects, len(sizes) + 50))
        proxy.stop()
    return "%d pairs, %d bytes each way" % (len(sizes) + 50, total)


def test_ipv6(exe):
    if not ipv6_loopback_works():
        return "SKIP no IPv6 loopback here"
    with Echo(exe, "::1") as echo, ProxyDemo(exe, [echo.spec], listen="[::1]:0") as proxy:
        check(proxy.host == "::1", "banner: %r" % proxy.banner)
        check_echo("::1", proxy.port, os.urandom(300000))
        proxy.stop()


def test_half_close(exe):
    """Our end of stream goes through to the echo, which ends its own once it has echoed
    everything: we get every byte, then EOF."""
    with Echo(exe) as echo, ProxyDemo(exe, [echo.spec]) as proxy:
        data = os.urandom(2 * MiB)
        with connect("127.0.0.1", proxy.port) as s:
            sender = threading.Thread(target=lambda: (s.sendall(data), s.shutdown(socket.SHUT_WR)))
            sender.start()
            got = bytearray()
            s.settimeout(10)
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
            sender.join(10)
        check(bytes(got) == data, "got %d bytes back before EOF, sent %d" % (len(got), len(data)))
        proxy.stop()


def test_upstream_refused(exe):
    dead = "127.0.0.1:%d" % closed_port()
    with ProxyDemo(exe, [dead]) as proxy:
        for i in range(3):
            with connect("127.0.0.1", proxy.port) as s:
                t0 = time.monotonic()
                how = wait_ended(s, 3.0)
                took = time.monotonic() - t0
                check(how in ("eof", "reset"), "client %d: the stream %s instead of ending" % (i, how))
                check(took < 1.0, "client %d closed only after %.2f s" % (i, took))
        check(proxy.alive(), "the proxy exited")
        failures = proxy.upstream_metric("failures", dead)
        check(failures == 3, "failures %d, expected 3" % failures)
        no_up = [v for k, v in proxy.metrics().items() if k.startswith("netloop_proxy_no_upstream_total")]
        check(no_up == [3], "netloop_proxy_no_upstream_total %r, expected [3]" % no_up)
        proxy.stop()


def test_one_upstream_down(exe):
    dead = "127.0.0.1:%d" % closed_port()
    with Echo(exe) as echo, ProxyDemo(exe, [dead, echo.spec]) as proxy:
        for i in range(20):
            check_echo("127.0.0.1", proxy.port, os.urandom(5000), seed=i)
        check(proxy.upstream_metric("connects", echo.spec) == 20, "not every client reached the echo")
        failures = proxy.upstream_metric("failures", dead)
        check(failures == 1, "the dead upstream failed %d times; expected once, then passed over" % failures)
        proxy.stop()


def watch_rss(proxy, seconds, stop):
    """The largest VmRSS (KiB) seen over `seconds` (or until `stop` is set)."""
    peak = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not stop.is_set():
        peak = max(peak, proxy.rss_kib())
        time.sleep(0.05)
    return peak


def blast(sock, stop, counter):
    """Sends the same 1 MiB block until `stop` (or the connection fails)."""
    block = os.urandom(MiB)
    try:
        while not stop.is_set():
            counter[0] += sock.send(block)
    except OSError:
        pass


# Per pair the proxy holds at most a high-water mark (256 KiB) and one read (64 KiB) each
# way; the allowance covers the allocator, nothing like the hundreds of MiB a proxy without
# backpressure would take in these few seconds.
RSS_ALLOWANCE_KIB = 24 * 1024


class Upstream:
    """A Python upstream on 127.0.0.1: accepts one connection and runs serve(conn, stop)
    on a thread of its own."""

    def __init__(self, serve):
        self.lst = socket.socket()
        self.lst.bind(("127.0.0.1", 0))
        self.lst.listen(4)
        self.spec = "127.0.0.1:%d" % self.lst.getsockname()[1]
        self.stop = threading.Event()
        self.result = {}

        def run():
            conn, _ = self.lst.accept()
            with conn:
                serve(conn, self.stop, self.result)

        self.thread = threading.Thread(target=run)
        self.thread.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop.set()
        try:  # unblock accept() if no one came
            socket.create_connection(self.lst.getsockname(), timeout=1).close()
        except OSError:
            pass
        self.thread.join(10)
        self.lst.close()
        return False


def test_rss_slow_client(exe):
    """The upstream sends as fast as it can, the client reads slowly: what the client has
    not read must wait in the kernel and the upstream, not in the proxy."""
    def source(conn, stop, result):
        result["sent"] = 0
        blast(conn, stop, [0])

    with Upstream(source) as up, ProxyDemo(exe, [up.spec]) as proxy:
        base = proxy.rss_kib()
        got = 0
        peak = base
        with connect("127.0.0.1", proxy.port) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            deadline = time.monotonic() + 4
            while time.monotonic() < deadline:
                s.settimeout(5)
                got += len(s.recv(16384))  # a slow reader: 16 KiB every 20 ms
                time.sleep(0.02)
                peak = max(peak, proxy.rss_kib())
            up.stop.set()
        grew = peak - base
        check(grew < RSS_ALLOWANCE_KIB, "the proxy's RSS grew by %d KiB (from %d) while a slow client "
              "read %d KiB" % (grew, base, got // 1024))
        check(got > 256 * 1024, "the client read only %d bytes" % got)
        proxy.stop()
    return "client read %d KiB, RSS +%d KiB" % (got // 1024, grew)


def test_reset_carried(exe):
    """The client resets: the upstream sees a reset, not an end of stream."""
    def record(conn, stop, result):
        conn.settimeout(5)
        try:
            result["first"] = conn.recv(10)
            result["then"] = conn.recv(10)
        except ConnectionResetError:
            result["then"] = "reset"
        except socket.timeout:
            result["then"] = "timeout"

    with Upstream(record) as up, ProxyDemo(exe, [up.spec]) as proxy:
        s = connect("127.0.0.1", proxy.port)
        s.sendall(b"hello")
        time.sleep(0.3)
        reset_close(s)
        up.thread.join(6)
        check(up.result.get("first") == b"hello", "the upstream got %r" % up.result.get("first"))
        check(up.result.get("then") == "reset", "after the client's reset the upstream saw %r, not a reset"
              % up.result.get("then"))
        proxy.stop()


def test_idle_timeout(exe):
    with Echo(exe) as echo, ProxyDemo(exe, [echo.spec], ["--proxy-idle-timeout", "0.3"]) as proxy:
        with connect("127.0.0.1", proxy.port) as s:
            for _ in range(5):  # busy longer than the timeout: left alone
                check(exchange(s, b"tick") == b"tick", "echo through the proxy")
                time.sleep(0.1)
            t0 = time.monotonic()
            how = wait_ended(s, 3.0)
            took = time.monotonic() - t0
        check(how == "eof", "an idle pair: the stream %s" % how)
        check(0.2 < took < 2.0, "closed %.2f s after the last byte, with --proxy-idle-timeout 0.3" % took)
        idle = [v for k, v in proxy.metrics().items() if k.startswith("netloop_proxy_idle_closed_total")]
        check(idle == [1], "netloop_proxy_idle_closed_total %r, expected [1]" % idle)
        proxy.stop()


def test_rss_slow_upstream(exe):
    """The upstream reads slowly: what the client sends must wait in the kernel and the
    client, not in the proxy."""
    def slow_reader(conn, stop, result):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        conn.settimeout(0.5)
        result["read"] = 0
        while not stop.is_set():
            try:
                chunk = conn.recv(16384)
            except socket.timeout:
                continue
            if not chunk:
                break
            result["read"] += len(chunk)
            time.sleep(0.02)

    with Upstream(slow_reader) as up, ProxyDemo(exe, [up.spec]) as proxy:
        base = proxy.rss_kib()
        stop = threading.Event()
        sent = [0]
        with connect("127.0.0.1", proxy.port) as s:
            t = threading.Thread(target=blast, args=(s, stop, sent))
            t.start()
            peak = watch_rss(proxy, 4, threading.Event())
            stop.set()
            s.shutdown(socket.SHUT_RDWR)
            t.join(10)
            up.stop.set()  # the upstream stops reading and goes: the pair ends
        read = up.result.get("read", 0)
        grew = peak - base
        check(grew < RSS_ALLOWANCE_KIB, "the proxy's RSS grew by %d KiB (from %d) while a slow upstream "
              "lagged %d MiB behind" % (grew, base, (sent[0] - read) // MiB))
        check(sent[0] > 4 * MiB, "the sender sent only %d bytes" % sent[0])
        proxy.stop()
    return "sent %d MiB, upstream read %d KiB, RSS +%d KiB" % (sent[0] // MiB, read // 1024, grew)


def test_no_descriptor_leak(exe):
    with Echo(exe) as echo, ProxyDemo(exe, [echo.spec]) as proxy:
        check_echo("127.0.0.1", proxy.port, b"warm-up")
        time.sleep(0.2)
        before = proxy.fd_count()
        for i in range(2000):
            s = connect("127.0.0.1", proxy.port)
            if i % 3 == 0:
                reset_close(s)              # at once: often before its upstream is connected
            elif i % 3 == 1:
                s.sendall(b"x")
                s.close()                   # an orderly close with bytes in flight
            else:
                exchange(s, b"ping", seed=i)
                reset_close(s)              # a reset once the pair is joined
        deadline = time.monotonic() + 10
        while proxy.fd_count() > before and time.monotonic() < deadline:
            time.sleep(0.1)
        after = proxy.fd_count()
        check(after == before, "the proxy had %d descriptors before 2,000 connect/abort cycles and %d "
              "after" % (before, after))
        check(proxy.alive(), "the proxy exited")
        proxy.stop()
    return "%d descriptors before and after" % before


def test_bad_flags(exe):
    """A bad --tcp-proxy value: exit 2 and one line naming the flag and what is wrong."""
    cases = [
        (["--tcp-proxy", "127.0.0.1:6380"], "LISTEN=UPSTREAM"),
        (["--tcp-proxy", "127.0.0.1:6380=127.0.0.1:0"], "port '0'"),
        (["--tcp-proxy", "127.0.0.1:6380=::1:80"], "brackets"),
        (["--tcp-proxy"], "needs LISTEN=UPSTREAM"),
        (["--proxy-idle-timeout", "5"], "add --tcp-proxy"),
        (["--tcp-proxy", "127.0.0.1:0=127.0.0.1:1", "--proxy-connect-timeout", "-1"], "--proxy-connect-timeout"),
    ]
    for args, says in cases:
        code, out, err = run_demo(exe, args)
        check(code == 2, "%s: exit %d, expected 2" % (" ".join(args), code))
        check(says in err and err.startswith("netloop-demo: ") and err.count("\n") == 1,
              "%s: stderr %r should say %r on one line" % (" ".join(args), err, says))
        check(out == "", "%s wrote to stdout: %r" % (" ".join(args), out))
    code, out, _ = run_demo(exe, ["--help"])
    check("--tcp-proxy LISTEN=UPSTREAM[,UPSTREAM...]" in out and "--proxy-idle-timeout" in out,
          "--help does not show the proxy's flags")


TESTS = [
    ("bad --tcp-proxy values exit 2 with one clear line", test_bad_flags),
    ("random bytes up to 4 MiB and 50 clients at once through the proxy", test_bytes_intact),
    ("IPv6 listener to an IPv6 upstream", test_ipv6),
    ("the half-close is carried: every byte, then EOF", test_half_close),
    ("an upstream that refuses: the client is closed at once, the proxy stays up", test_upstream_refused),
    ("one of two upstreams down: every client served, the dead one passed over", test_one_upstream_down),
    ("a reset from the client reaches the upstream as a reset", test_reset_carried),
    ("--proxy-idle-timeout closes a pair with nothing moving", test_idle_timeout),
    ("a slow client keeps the proxy's RSS bounded", test_rss_slow_client),
    ("a slow upstream keeps the proxy's RSS bounded", test_rss_slow_upstream),
    ("2,000 connect/abort cycles leave no descriptor", test_no_descriptor_leak),
]

if __name__ == "__main__":
    sys.exit(main(TESTS, sys.argv))
