#!/usr/bin/env python3
"""E2E: the built netloop-demo serves TCP echo to real clients and stops cleanly on
SIGTERM and SIGINT. Usage: test_demo_serve.py PATH/TO/netloop-demo"""

import random
import re
import signal
import sys

from e2e_util import (Demo, Failure, check, check_echo, concurrent_echo, connect, exchange,
                      free_port, ipv6_loopback_works, main, run_demo, spec, start_echo,
                      wait_closed)


def default_backend(exe):
    code, out, err = run_demo(exe, ["--list-pollers"])
    check(code == 0, "--list-pollers exited %d: %r" % (code, err))
    for line in out.splitlines():
        if "(default)" in line:
            return line.split()[0]
    raise Failure("--list-pollers names no default backend: %r" % out)


def serve(exe, host, extra=(), expect_backend=None, signo=signal.SIGTERM):
    demo, port, banner = start_echo(exe, host, extra)
    with demo:
        check(spec(host, port) in banner,
              "banner does not name %s: %r" % (spec(host, port), banner))
        m = re.search(r"\(poller (\w+)\)", banner)
        check(m, "banner does not name the poller: %r" % banner)
        if expect_backend:
            check(m.group(1) == expect_backend,
                  "banner says poller %s, expected %s: %r" % (m.group(1), expect_backend, banner))

        # Small messages, one connection, several round trips.
        with connect(host, port) as s:
            for msg in (b"x", b"hello, netloop\n", bytes(range(256)) * 4):
                got = exchange(s, msg)
                check(got == msg, "echo of %d bytes differs" % len(msg))
        # 1 MiB round trip.
        check_echo(host, port, random.Random(1).randbytes(1024 * 1024), seed=1)
        # Several connections at once.
        concurrent_echo(host, port, clients=16, size=128 * 1024)

        # An idle client stays connected across the stop; it must see the end.
        idle = connect(host, port)
        check(exchange(idle, b"still here") == b"still here", "idle client echo differs")
        code = demo.stop(signo, timeout=5)
        check(code == 0, "exit code %d after %s (expected 0); stderr: %r"
              % (code, signal.Signals(signo).name, demo.stderr_text()))
        check(wait_closed(idle), "a connected client was not closed when the demo exited")
        idle.close()
        return "%s, poller %s" % (spec(host, port), m.group(1))


def test_ipv4_sigterm(exe):
    return serve(exe, "127.0.0.1", expect_backend=default_backend(exe))


def test_ipv4_sigint(exe):
    return serve(exe, "127.0.0.1", signo=signal.SIGINT)


def test_ipv6_sigterm(exe):
    if not ipv6_loopback_works():
        return "SKIP ::1 is not configured on this machine"
    return serve(exe, "::1")


def test_poller_poll(exe):
    return serve(exe, "127.0.0.1", extra=["--poller", "poll"], expect_backend="poll")


def test_two_listeners(exe):
    """Two --tcp-echo listeners in one process both serve."""
    for _ in range(5):
        p1, p2 = free_port(), free_port()
        if p1 == p2:
            continue
        with Demo(exe, ["--tcp-echo", "127.0.0.1:%d" % p1, "--tcp-echo", "127.0.0.1:%d" % p2]) as d:
            try:
                d.wait_banner(count=2)
            except Failure:
                if d.proc.poll() == 2 and "in use" in d.stderr_text():
                    continue
                raise
            check_echo("127.0.0.1", p1, b"first" * 1000)
            check_echo("127.0.0.1", p2, b"second" * 1000)
            code = d.stop()
            check(code == 0, "exit code %d after SIGTERM" % code)
            return None
    raise Failure("no free pair of ports found")


TESTS = [
    ("ipv4 echo, 1 MiB, concurrent, SIGTERM", test_ipv4_sigterm),
    ("ipv4 echo, SIGINT", test_ipv4_sigint),
    ("ipv6 echo, SIGTERM", test_ipv6_sigterm),
    ("--poller poll serves", test_poller_poll),
    ("two listeners", test_two_listeners),
]

if __name__ == "__main__":
    sys.exit(main(TESTS, sys.argv))
