#!/usr/bin/env python3
"""E2E: netloop-demo's per-client limits. --max-connections-per-ip 2: the third
connection from 127.0.0.1 gets a 503 while one from 127.0.0.2 gets a 200; --rate-limit
5/s --rate-burst 5: the sixth immediate request gets a 429 with Retry-After on a
connection that stays usable, 127.0.0.2 unaffected; the metrics count each by reason;
bad values are a one-line error and exit 2; --help documents the flags.
Usage: test_demo_client_limits.py PATH/TO/netloop-demo"""

import socket
import sys
import time

from e2e_util import Demo, check, main, read_metrics, run_demo, wait_banner, wait_closed

GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def start(exe, extra):
    demo = Demo(exe, ["--http", "127.0.0.1:0", "--metrics", "127.0.0.1:0"] + extra)
    try:
        _, http_port, _ = wait_banner(demo, "http")
        _, metrics_port, _ = wait_banner(demo, "metrics")
    except BaseException:
        demo.close()
        raise
    return demo, http_port, metrics_port


def client(port, source="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def read_responses(sock, count, timeout=5.0):
    """Reads until `count` whole responses (heads and Content-Length bodies) arrived;
    returns their heads as strings."""
    data = b""
    heads = []
    deadline = time.monotonic() + timeout
    while len(heads) < count:
        while True:  # take the complete responses in `data`
            head, sep, rest = data.partition(b"\r\n\r\n")
            if not sep:
                break
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(rest) < length:
                break
            heads.append(head.decode(errors="replace"))
            data = rest[length:]
        if len(heads) >= count:
            break
        left = deadline - time.monotonic()
        check(left > 0, "only %d of %d responses within %.0f s: %r" % (len(heads), count, timeout, heads))
        sock.settimeout(left)
        chunk = sock.recv(65536)
        check(chunk, "connection closed after %d of %d responses: %r" % (len(heads), count, heads))
        data += chunk
    return heads


def status(head):
    return int(head.split(" ", 2)[1])


def metric(values, name):
    check(name in values, "no %s in the metrics: %r" % (name, sorted(values)[:40]))
    return values[name]


def test_per_ip_limit(exe):
    demo, port, mport = start(exe, ["--max-connections-per-ip", "2", "--threads", "2"])
    with demo:
        held = []
        for _ in range(2):
            s = client(port)
            s.sendall(GET)
            check(status(read_responses(s, 1)[0]) == 200, "one of the first two got no 200")
            held.append(s)
        third = client(port)
        heads = read_responses(third, 1)
        check(status(heads[0]) == 503, "the third connection from 127.0.0.1 got %r" % heads[0][:60])
        check(wait_closed(third), "the refused connection stayed open")
        third.close()
        other = client(port, "127.0.0.2")
        other.sendall(GET)
        check(status(read_responses(other, 1)[0]) == 200, "127.0.0.2 was held back by 127.0.0.1's count")
        # Still usable: the held ones answer again.
        held[0].sendall(GET)
        check(status(read_responses(held[0], 1)[0]) == 200, "a held connection stopped answering")
        values = read_metrics(mport)  # the metrics listener is outside the limits
        check(metric(values, 'netloop_refused_total{reason="per_client"}') == 1,
              "per_client refusals: %r" % values.get('netloop_refused_total{reason="per_client"}'))
        check(metric(values, 'netloop_refused_total{reason="max_connections"}') == 0,
              "max_connections refusals counted for a per-client refusal")
        check(metric(values, "netloop_connections_refused_total") == 1, "refused_total (all reasons)")
        # One of 127.0.0.1's closes: a new connection is taken once the server has seen it.
        held.pop().close()
        deadline = time.monotonic() + 5
        while True:
            s = client(port)
            s.sendall(GET)
            got = status(read_responses(s, 1)[0])
            s.close()
            if got == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        check(got == 200, "after a close, 127.0.0.1 still refused (%d)" % got)
        for s in held + [other]:
            s.close()
        code = demo.stop()
        check(code == 0, "exit code %d after SIGTERM" % code)


def test_rate_limit(exe):
    demo, port, mport = start(exe, ["--rate-limit", "5/s", "--rate-burst", "5", "--threads", "2"])
    with demo:
        s = client(port)
        # Six requests in one write: handled at one instant, so the rate cannot refill a
        # token between them however slow the machine.
        s.sendall(GET * 6)
        heads = read_responses(s, 6)
        codes = [status(h) for h in heads]
        check(codes == [200] * 5 + [429], "statuses %r (want five 200 then a 429)" % codes)
        check("\r\nRetry-After: 1\r" in heads[5] + "\r", "no Retry-After: 1 in %r" % heads[5])
        other = client(port, "127.0.0.2")
        other.sendall(GET)
        check(status(read_responses(other, 1)[0]) == 200, "127.0.0.2 was limited by 127.0.0.1's rate")
        # The connection stays usable: after the Retry-After, a 200 on the same one.
        time.sleep(1.05)
        s.sendall(GET)
        check(status(read_responses(s, 1)[0]) == 200, "no 200 after waiting Retry-After")
        values = read_metrics(mport)
        check(metric(values, "netloop_http_rate_limited_total") == 1,
              "rate_limited_total %r" % values.get("netloop_http_rate_limited_total"))
        check(metric(values, 'netloop_refused_total{reason="per_client"}') == 0, "per_client refusals")
        s.close()
        other.close()
        code = demo.stop()
        check(code == 0, "exit code %d after SIGTERM" % code)


def test_bad_values(exe):
    for args, word in [(["--rate-limit", "0/s"], "--rate-limit"),
                       (["--rate-limit", "abc"], "--rate-limit"),
                       (["--rate-limit", "5/h"], "--rate-limit"),
                       (["--client-ipv6-prefix", "200"], "--client-ipv6-prefix"),
                       (["--client-ipv6-prefix", "16"], "--client-ipv6-prefix"),
                       (["--max-connections-per-ip", "abc"], "--max-connections-per-ip"),
                       (["--max-connections-per-ip", "-1"], "--max-connections-per-ip"),
                       (["--rate-burst", "0", "--rate-limit", "5/s"], "--rate-burst"),
                       (["--rate-burst", "5"], "--rate-burst"),
                       (["--rate-limit-clients", "0"], "--rate-limit-clients")]:
        code, out, err = run_demo(exe, args)
        check(code == 2, "%s: exit code %d (want 2); stderr %r" % (" ".join(args), code, err))
        lines = err.strip().splitlines()
        check(len(lines) == 1 and word in lines[0],
              "%s: want one line naming %s, got %r" % (" ".join(args), word, err))
    code, out, err = run_demo(exe, ["--help"])
    check(code == 0, "--help exit code %d" % code)
    for flag in ("--max-connections-per-ip", "--client-ipv6-prefix", "--rate-limit ",
                 "--rate-burst", "--rate-limit-clients"):
        check(flag in out, "--help does not mention %s" % flag)


TESTS = [
    ("--max-connections-per-ip 2: the 3rd from 127.0.0.1 gets 503, 127.0.0.2 gets 200",
     test_per_ip_limit),
    ("--rate-limit 5/s --rate-burst 5: the 6th request gets 429 with Retry-After", test_rate_limit),
    ("bad per-client limit values: one line, exit 2; --help documents them", test_bad_values),
]

if __name__ == "__main__":
    sys.exit(main(TESTS, sys.argv))
