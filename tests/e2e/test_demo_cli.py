#!/usr/bin/env python3
"""E2E: netloop-demo's command line: --help, --version, --list-pollers, bad options and
listeners that cannot bind. Usage: test_demo_cli.py PATH/TO/netloop-demo"""

import re
import socket
import sys

from e2e_util import check, clip, main, run_demo


def nonempty_lines(text):
    return [l for l in text.splitlines() if l.strip()]


def test_help(exe):
    code, out, err = run_demo(exe, ["--help"])
    check(code == 0, "--help exited %d; stderr %r" % (code, clip(err)))
    check("--tcp-echo" in out, "--help does not mention --tcp-echo: %r" % out[:300])
    check("--poller" in out and "--list-pollers" in out, "--help misses the poller options")
    check(err == "", "--help wrote to stderr: %r" % err)


def test_version(exe):
    code, out, err = run_demo(exe, ["--version"])
    check(code == 0, "--version exited %d; stderr %r" % (code, clip(err)))
    check(re.match(r"netloop-demo \d+\.\d+\.\d+", out.strip()),
          "--version printed %r, expected 'netloop-demo X.Y.Z'" % out)


def test_list_pollers(exe):
    code, out, err = run_demo(exe, ["--list-pollers"])
    check(code == 0, "--list-pollers exited %d; stderr %r" % (code, clip(err)))
    names = {l.split()[0]: l for l in nonempty_lines(out)}
    for b in ("epoll", "poll"):
        check(b in names, "--list-pollers does not list %s: %r" % (b, out))
    check("available" in names["poll"] and "unavailable" not in names["poll"],
          "poll is not listed as available: %r" % names["poll"])
    if sys.platform.startswith("linux"):
        check("unavailable" not in names["epoll"], "epoll unavailable on Linux: %r" % names["epoll"])
    defaults = [l for l in nonempty_lines(out) if "(default)" in l]
    check(len(defaults) == 1, "expected exactly one default backend: %r" % out)


def test_unknown_poller(exe):
    # Port 0: should the option be ignored by mistake, nothing well known gets bound.
    code, out, err = run_demo(exe, ["--poller", "nosuch", "--tcp-echo", "127.0.0.1:0"])
    check(code == 2, "--poller nosuch exited %d (expected 2); stderr %r" % (code, clip(err)))
    check("nosuch" in err, "the error does not name the bad backend: %r" % err)
    check("epoll" in err and "poll" in err, "the error does not list the available backends: %r" % err)
    check("listening" not in out, "it started serving anyway: %r" % out)


def test_port_in_use(exe):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(8)
        port = holder.getsockname()[1]
        code, out, err = run_demo(exe, ["--tcp-echo", "127.0.0.1:%d" % port])
    check(code == 2, "a port in use gave exit code %d (expected 2); stderr %r" % (code, clip(err)))
    lines = nonempty_lines(err)
    check(len(lines) == 1, "expected a one-line error on stderr, got %d lines: %r" % (len(lines), err))
    check("in use" in lines[0].lower(), "the error does not say the address is in use: %r" % lines[0])
    check("127.0.0.1:%d" % port in lines[0], "the error does not name the address: %r" % lines[0])
    check("listening" not in out, "stdout claims it is listening: %r" % out)


def test_bad_addresses(exe):
    bad = ["127.0.0.1", "999.0.0.1:80", "127.0.0.1:70000", "127.0.0.1:-1", "::1:7007",
           "[::1:7007", "[::1]", "localhost:http", "example.com:80", ""]
    for a in bad:
        code, out, err = run_demo(exe, ["--tcp-echo", a])
        check(code == 2, "--tcp-echo %r exited %d (expected 2); stderr %r" % (a, code, clip(err)))
        lines = nonempty_lines(err)
        check(len(lines) == 1 and "--tcp-echo" in lines[0],
              "--tcp-echo %r: expected a one-line message naming --tcp-echo, got %r" % (a, clip(err)))
        check("listening" not in out, "--tcp-echo %r: started anyway: %r" % (a, out))
    # A missing value is an error too.
    code, out, err = run_demo(exe, ["--tcp-echo"])
    check(code == 2 and "--tcp-echo" in err, "--tcp-echo without a value: exit %d, %r" % (code, clip(err)))


def test_bad_options(exe):
    cases = [
        (["--no-such-option"], "unknown option"),
        (["--high-water", "lots", "--tcp-echo", "127.0.0.1:0"], "--high-water"),
        (["--low-water", "1m", "--high-water", "64k", "--tcp-echo", "127.0.0.1:0"], "--low-water"),
        (["--log-level", "loud", "--tcp-echo", "127.0.0.1:0"], "--log-level"),
        (["--help=yes"], "--help"),
    ]
    for args, needle in cases:
        code, out, err = run_demo(exe, args)
        check(code == 2, "%s exited %d (expected 2); stderr %r" % (" ".join(args), code, clip(err)))
        check(needle in err, "%s: the message does not mention %r: %r" % (" ".join(args), needle, err))
        check("listening" not in out, "%s: started anyway" % " ".join(args))


TESTS = [
    ("--help", test_help),
    ("--version", test_version),
    ("--list-pollers", test_list_pollers),
    ("--poller nosuch", test_unknown_poller),
    ("port already in use", test_port_in_use),
    ("bad --tcp-echo addresses", test_bad_addresses),
    ("bad options", test_bad_options),
]

if __name__ == "__main__":
    sys.exit(main(TESTS, sys.argv))
