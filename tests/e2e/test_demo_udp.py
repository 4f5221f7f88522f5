#!/usr/bin/env python3
"""E2E: the built netloop-demo serves UDP echo (--udp-echo) to real clients: whole
datagrams up to 65,507 bytes, concurrent clients, IPv6, TCP and UDP on one port number,
--udp-max-datagram, the counters it logs at SIGTERM, and bad UDP options.
Usage: test_demo_udp.py PATH/TO/netloop-demo"""

import random
import re
import select
import signal
import socket
import sys
import threading
import time
import os

from e2e_util import (Demo, Failure, check, check_echo, family_of, ipv6_loopback_works, main,
                      run_demo, spec)

UDP_BANNER = "udp-echo listening on"
TCP_BANNER = "tcp-echo listening on"
MAX_IPV4_PAYLOAD = 65507


def full_stderr(demo):
    demo.err_file.seek(0)
    return demo.err_file.read().decode(errors="replace")


def wait_lines(demo, needle, count=1, timeout=5.0):
    """Reads the demo's stdout until `count` lines containing `needle` show up; returns
    them. Fails if the demo exits first or the time runs out."""
    deadline = time.monotonic() + timeout
    fd = demo.proc.stdout.fileno()
    while True:
        lines = [l for l in demo.out.decode(errors="replace").splitlines() if needle in l]
        if len(lines) >= count:
            return lines
        left = deadline - time.monotonic()
        if left <= 0:
            raise Failure("%s: fewer than %d '%s' lines on stdout within %.0f s; stdout %r, stderr %r"
                          % (demo.describe(), count, needle, timeout,
                             demo.out.decode(errors="replace"), demo.stderr_text()))
        ready, _, _ = select.select([fd], [], [], min(left, 0.2))
        if ready:
            chunk = os.read(fd, 4096)
            if chunk:
                demo.out += chunk
                continue
            code = demo.proc.wait(timeout=5)
            raise Failure("%s exited with code %s before its banner; stderr: %r"
                          % (demo.describe(), code, demo.stderr_text()))


def free_udp_port(host="127.0.0.1"):
    with socket.socket(family_of(host), socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def free_tcp_and_udp_port(host="127.0.0.1", attempts=20):
    """A port number free for both TCP and UDP on `host` right now."""
    for _ in range(attempts):
        with socket.socket(family_of(host), socket.SOCK_STREAM) as t:
            t.bind((host, 0))
            port = t.getsockname()[1]
            try:
                with socket.socket(family_of(host), socket.SOCK_DGRAM) as u:
                    u.bind((host, port))
            except OSError:
                continue
            return port
    raise Failure("no port free for both TCP and UDP in %d attempts" % attempts)


def start_demo(exe, make_args, banners, port_fn, attempts=5):
    """Starts the demo with make_args(port) for a port from port_fn(); `banners` is a list of
    (needle, count) it must print. A port someone else took between our probe and the
    demo's bind is retried with another one. Returns (demo, port, stdout lines)."""
    last = ""
    for _ in range(attempts):
        port = port_fn()
        demo = Demo(exe, make_args(port))
        try:
            lines = []
            for needle, count in banners:
                lines += wait_lines(demo, needle, count)
            return demo, port, lines
        except Failure as e:
            code = demo.proc.poll()
            err = demo.stderr_text()
            demo.close()
            if code == 2 and "in use" in err:
                last = str(e)
                continue
            raise
    raise Failure("could not find a free port in %d attempts: %s" % (attempts, last))


def start_udp(exe, host, extra=()):
    return start_demo(exe, lambda p: ["--udp-echo", spec(host, p)] + list(extra),
                      [(UDP_BANNER, 1)], lambda: free_udp_port(host))


def udp_socket(host, timeout=5.0):
    s = socket.socket(family_of(host), socket.SOCK_DGRAM)
    s.settimeout(timeout)
    s.bind((host, 0))
    return s


def same_addr(a, b):
    return a[0] == b[0] and a[1] == b[1]


def udp_round_trip(sock, host, port, data, timeout=5.0):
    """Sends one datagram; returns the one that comes back (None on timeout). Fails if it
    comes from anywhere but the server."""
    sock.settimeout(timeout)
    sock.sendto(data, (host, port))
    try:
        got, src = sock.recvfrom(70000)
    except socket.timeout:
        return None
    check(same_addr(src, (host, port)), "the reply came from %r, not the server %s"
          % (src, spec(host, port)))
    return got


def check_udp_echo(sock, host, port, data):
    got = udp_round_trip(sock, host, port, data)
    check(got is not None, "no echo of a %d-byte datagram within 5 s" % len(data))
    if got != data:
        i = next((k for k in range(min(len(got), len(data))) if got[k] != data[k]),
                 min(len(got), len(data)))
        raise Failure("echo of a %d-byte datagram came back as %d bytes (first difference at %d)"
                      % (len(data), len(got), i))


def nothing_arrives(sock, quiet=0.3):
    """True when no datagram arrives within `quiet` seconds (a negative check: a slow
    machine can only make a broken demo pass, never a correct one fail)."""
    r, _, _ = select.select([sock], [], [], quiet)
    return not r


def concurrent_udp(host, port, clients=20, each=10):
    """`clients` sockets at once, each sending `each` datagrams of its own, one at a time,
    and checking every one comes back exactly, to it."""
    errors = []
    barrier = threading.Barrier(clients, timeout=10)

    def one(i):
        try:
            rng = random.Random(1000 + i)
            with udp_socket(host) as s:
                barrier.wait()  # every socket exists before any datagram moves
                for k in range(each):
                    data = b"client %d seq %d|" % (i, k) + rng.randbytes(rng.randint(1, 1400))
                    got = udp_round_trip(s, host, port, data)
                    if got != data:
                        errors.append("client %d datagram %d: %s" % (
                            i, k, "timed out" if got is None else "%d bytes came back" % len(got)))
                        return
                if not nothing_arrives(s, 0.1):
                    errors.append("client %d: an extra datagram arrived" % i)
        except Exception as e:  # noqa: BLE001 - collected and reported below
            errors.append("client %d: %s: %s" % (i, type(e).__name__, e))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    check(not any(t.is_alive() for t in threads), "concurrent UDP clients did not finish within 30 s")
    check(not errors, "concurrent UDP echo failed: " + "; ".join(errors[:5]))
    return clients * each


def stats_line(demo, host, port):
    """The 'udp-echo HOST:PORT: ...' counters line the demo logs at exit."""
    err = full_stderr(demo)
    lines = [l for l in err.splitlines() if "udp-echo %s:" % spec(host, port) in l]
    check(len(lines) == 1, "expected one udp-echo counters line for %s on stderr, got %r"
          % (spec(host, port), err[-1500:]))
    return lines[0]


def counters(line):
    m = re.search(r"(\d+) datagrams in, (\d+) out, dropped: (\d+) truncated, (\d+) send buffer "
                  r"full, (\d+) too large, (\d+) send errors; (\d+) peer errors", line)
    check(m, "the counters line does not have the expected shape: %r" % line)
    keys = ("in", "out", "truncated", "send_full", "too_large", "send_errors", "peer_errors")
    return dict(zip(keys, (int(g) for g in m.groups())))


def serve_udp(exe, host):
    demo, port, lines = start_udp(exe, host)
    with demo:
        banner = lines[0]
        check(spec(host, port) in banner, "banner does not name %s: %r" % (spec(host, port), banner))
        check(re.search(r"\(poller \w+\)", banner), "banner does not name the poller: %r" % banner)
        check(TCP_BANNER not in demo.out.decode(errors="replace"),
              "only --udp-echo was given, yet a TCP listener started: %r" % demo.out)

        count = 0
        with udp_socket(host) as s:
            for size in (1, 1400, MAX_IPV4_PAYLOAD, 0):
                check_udp_echo(s, host, port, random.Random(size).randbytes(size))
                count += 1
            # NULs and every byte value survive.
            check_udp_echo(s, host, port, bytes(range(256)) + b"\0\0")
            count += 1
            check(nothing_arrives(s), "an extra datagram arrived after the echoes")
        count += concurrent_udp(host, port, clients=20, each=10)

        code = demo.stop(signal.SIGTERM, timeout=5)
        check(code == 0, "exit code %d after SIGTERM (expected 0); stderr: %r"
              % (code, demo.stderr_text()))
        c = counters(stats_line(demo, host, port))
        check(c["in"] == count and c["out"] == count,
              "the demo counted %d in / %d out, the clients sent and got %d" % (c["in"], c["out"], count))
        check(c["truncated"] == 0 and c["send_full"] == 0 and c["too_large"] == 0,
              "unexpected drops: %r" % c)
        return "%s, %d datagrams" % (spec(host, port), count)


def test_ipv4(exe):
    return serve_udp(exe, "127.0.0.1")


def test_ipv6(exe):
    if not ipv6_loopback_works():
        return "SKIP ::1 is not configured on this machine"
    return serve_udp(exe, "::1")


def test_tcp_and_udp_same_port(exe):
    host = "127.0.0.1"
    demo, port, lines = start_demo(
        exe, lambda p: ["--tcp-echo", spec(host, p), "--udp-echo", spec(host, p)],
        [(TCP_BANNER, 1), (UDP_BANNER, 1)], lambda: free_tcp_and_udp_port(host))
    with demo:
        for l in lines:
            check(spec(host, port) in l, "banner does not name %s: %r" % (spec(host, port), l))
        check_echo(host, port, b"over tcp " * 1000)
        with udp_socket(host) as s:
            check_udp_echo(s, host, port, b"over udp")
            check_udp_echo(s, host, port, random.Random(7).randbytes(MAX_IPV4_PAYLOAD))
        check_echo(host, port, b"tcp again")
        code = demo.stop()
        check(code == 0, "exit code %d after SIGTERM; stderr %r" % (code, demo.stderr_text()))
        c = counters(stats_line(demo, host, port))
        check(c["in"] == 2 and c["out"] == 2, "UDP counters %r, expected 2 in and 2 out" % c)
    return spec(host, port)


def test_max_datagram(exe):
    host = "127.0.0.1"
    demo, port, _ = start_udp(exe, host, ["--udp-max-datagram", "1000"])
    with demo:
        with udp_socket(host) as s:
            got = udp_round_trip(s, host, port, b"B" * 2000, timeout=1.0)
            check(got is None, "a 2000-byte datagram above --udp-max-datagram 1000 came back "
                  "(%d bytes)" % len(got or b""))
            at_limit = random.Random(3).randbytes(1000)
            check_udp_echo(s, host, port, at_limit)
            check(nothing_arrives(s), "something else arrived after the 1000-byte echo")
        code = demo.stop(signal.SIGTERM, timeout=5)
        check(code == 0, "exit code %d after SIGTERM; stderr %r" % (code, demo.stderr_text()))
        line = stats_line(demo, host, port)
        check("1 truncated" in line, "the counters line does not report '1 truncated': %r" % line)
        c = counters(line)
        check(c["truncated"] == 1 and c["in"] == 1 and c["out"] == 1,
              "counters %r, expected 1 in, 1 out, 1 truncated" % c)
    return None


def test_udp_batch_one(exe):
    """--udp-batch 1 (one datagram per call) still serves everything."""
    host = "127.0.0.1"
    demo, port, _ = start_udp(exe, host, ["--udp-batch", "1"])
    with demo:
        concurrent_udp(host, port, clients=8, each=5)
        code = demo.stop(signal.SIGINT, timeout=5)
        check(code == 0, "exit code %d after SIGINT; stderr %r" % (code, demo.stderr_text()))
        c = counters(stats_line(demo, host, port))
        check(c["in"] == 40 and c["out"] == 40, "counters %r, expected 40 in and 40 out" % c)
    return None


def nonempty_lines(text):
    return [l for l in text.splitlines() if l.strip()]


def test_bad_udp_echo(exe):
    bad = ["127.0.0.1", "999.0.0.1:53", "127.0.0.1:70000", "::1:7007", "[::1]", "example.com:53", ""]
    for a in bad:
        code, out, err = run_demo(exe, ["--udp-echo", a])
        check(code == 2, "--udp-echo %r exited %d (expected 2); stderr %r" % (a, code, err))
        lines = nonempty_lines(err)
        check(len(lines) == 1 and "--udp-echo" in lines[0],
              "--udp-echo %r: expected a one-line message naming --udp-echo, got %r" % (a, err))
        check("listening" not in out, "--udp-echo %r: started anyway: %r" % (a, out))
    code, out, err = run_demo(exe, ["--udp-echo"])
    check(code == 2 and "--udp-echo" in err, "--udp-echo without a value: exit %d, %r" % (code, err))


def test_bad_udp_limits(exe):
    cases = [(["--udp-batch", v], "--udp-batch") for v in ("0", "1025", "1k", "abc")]
    cases += [(["--udp-max-datagram", v], "--udp-max-datagram") for v in ("0", "65536", "x")]
    for args, needle in cases:
        # Port 0: should the option be ignored by mistake, nothing well known gets bound.
        code, out, err = run_demo(exe, args + ["--udp-echo", "127.0.0.1:0"])
        check(code == 2, "%s exited %d (expected 2); stderr %r" % (" ".join(args), code, err))
        check(needle in err and args[1] in err,
              "%s: the message does not name the option and value: %r" % (" ".join(args), err))
        check("listening" not in out, "%s: started anyway" % " ".join(args))


def test_udp_port_in_use(exe):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        code, out, err = run_demo(exe, ["--udp-echo", "127.0.0.1:%d" % port])
    check(code == 2, "a UDP port in use gave exit code %d (expected 2); stderr %r" % (code, err))
    lines = nonempty_lines(err)
    check(len(lines) == 1, "expected a one-line error on stderr, got %r" % err)
    check("in use" in lines[0].lower(), "the error does not say the address is in use: %r" % lines[0])
    check("127.0.0.1:%d" % port in lines[0], "the error does not name the address: %r" % lines[0])
    check("udp" in lines[0], "the error does not say it was the UDP listener: %r" % lines[0])


TESTS = [
    ("ipv4 udp echo: 1/1400/65507 bytes, 20 clients, SIGTERM counters", test_ipv4),
    ("ipv6 udp echo", test_ipv6),
    ("--tcp-echo and --udp-echo on one port number", test_tcp_and_udp_same_port),
    ("--udp-max-datagram 1000 drops 2000 bytes, counts it", test_max_datagram),
    ("--udp-batch 1 serves", test_udp_batch_one),
    ("bad --udp-echo addresses", test_bad_udp_echo),
    ("bad --udp-batch / --udp-max-datagram", test_bad_udp_limits),
    ("udp port already in use", test_udp_port_in_use),
]

if __name__ == "__main__":
    sys.exit(main(TESTS, sys.argv))
