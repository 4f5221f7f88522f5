#!/usr/bin/env python3
"""E2E: HAProxy in front of two netloop-demo instances with send-proxy-v2: a client bound
to 127.0.0.2 makes HTTP requests through HAProxy (round robin), and both instances'
access logs name 127.0.0.2, the client, rather than HAProxy's own 127.0.0.1. Exits 77
(meson: SKIP) when haproxy is not installed (Debian: apt-get install haproxy).

Usage: test_demo_haproxy.py PATH/TO/netloop-demo"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from e2e_util import Demo, Failure, check, free_port, main, read_to_end, wait_banner

SKIP_EXIT = 77
REQUESTS = 8


def haproxy_path():
    path = shutil.which("haproxy")
    if path is None:
        for d in ("/usr/sbin", "/usr/local/sbin", "/sbin"):
            if os.access(os.path.join(d, "haproxy"), os.X_OK):
                return os.path.join(d, "haproxy")
    return path


class HAProxy:
    """haproxy in the foreground with a generated config: a TCP frontend on
    127.0.0.1:<free port>, round robin over `backends` (ports) with send-proxy-v2."""

    def __init__(self, exe, backends):
        self.dir = tempfile.TemporaryDirectory(prefix="netloop-e2e-haproxy-")
        self.port = free_port()
        servers = "".join("    server s%d 127.0.0.1:%d send-proxy-v2\n" % (i, p)
                          for i, p in enumerate(backends))
        self.conf = os.path.join(self.dir.name, "haproxy.cfg")
        with open(self.conf, "w") as f:
            f.write("""global
    maxconn 256
defaults
    mode tcp
    timeout connect 5s
    timeout client 10s
    timeout server 10s
frontend fe
    bind 127.0.0.1:%d
    default_backend be
backend be
    balance roundrobin
%s""" % (self.port, servers))
        checked = subprocess.run([exe, "-c", "-f", self.conf], capture_output=True, timeout=10)
        check(checked.returncode == 0, "haproxy -c rejects the config: %r"
              % checked.stderr.decode(errors="replace")[:800])
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([exe, "-db", "-f", self.conf], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self.err,
                                     start_new_session=True)
        deadline = time.monotonic() + 10
        while True:  # running for real: its frontend accepts
            check(self.proc.poll() is None, "haproxy exited with %s: %r"
                  % (self.proc.returncode, self.stderr_text()))
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                check(time.monotonic() < deadline, "haproxy does not listen on 127.0.0.1:%d"
                      % self.port)
                time.sleep(0.05)

    def stderr_text(self):
        self.err.seek(0)
        return self.err.read().decode(errors="replace")[-1500:]

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.err.close()
        self.dir.cleanup()


def start_instance(exe):
    demo = Demo(exe, ["--http", "127.0.0.1:0", "--proxy-protocol", "--access-log",
                      "--log-level", "info"])
    try:
        _, port, _ = wait_banner(demo, "http")
    except BaseException:
        demo.close()
        raise
    return demo, port


def log_of(demo):
    demo.err_file.seek(0)
    return demo.err_file.read().decode(errors="replace")


def access_lines(demo):
    return [l for l in log_of(demo).splitlines() if '"GET /' in l]


def get_from(port, source, path):
    """One request through HAProxy from `source` (an address of this host); the status line."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.bind((source, 0))
        s.connect(("127.0.0.1", port))
        s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = read_to_end(s)
    return data.split(b"\r\n", 1)[0]


def test_client_address_through_haproxy(netloop_demo):
    exe = haproxy_path()
    if exe is None:
        return "SKIP haproxy is not installed (apt-get install haproxy)"
    a, port_a = start_instance(netloop_demo)
    b = None
    haproxy = None
    try:
        b, port_b = start_instance(netloop_demo)
        haproxy = HAProxy(exe, [port_a, port_b])
        for i in range(REQUESTS):
            status = get_from(haproxy.port, "127.0.0.2", "/?n=%d" % i)
            check(status.startswith(b"HTTP/1.1 200"), "request %d through haproxy: %r; haproxy: %r"
                  % (i, status, haproxy.stderr_text()))
        check(haproxy.proc.poll() is None, "haproxy exited during the test")
        deadline = time.monotonic() + 5
        while len(access_lines(a)) + len(access_lines(b)) < REQUESTS and time.monotonic() < deadline:
            time.sleep(0.05)
        lines_a, lines_b = access_lines(a), access_lines(b)
        check(len(lines_a) + len(lines_b) == REQUESTS, "%d access-log lines for %d requests: %r %r"
              % (len(lines_a) + len(lines_b), REQUESTS, lines_a, lines_b))
        check(lines_a and lines_b, "round robin did not reach both instances: %r / %r"
              % (lines_a, lines_b))
        for name, lines in (("first", lines_a), ("second", lines_b)):
            for line in lines:
                check("127.0.0.2:" in line, "the %s instance logged another client: %r" % (name, line))
        for demo in (a, b):
            check(demo.proc.poll() is None, "a demo exited: %r" % log_of(demo)[-800:])
        return "%d + %d requests, all from 127.0.0.2" % (len(lines_a), len(lines_b))
    finally:
        if haproxy:
            haproxy.close()
        for demo in (a, b):
            if demo:
                demo.close()


TESTS = [("HAProxy send-proxy-v2: both instances log the real client",
          test_client_address_through_haproxy)]

if __name__ == "__main__":
    if haproxy_path() is None:
        print("SKIP: haproxy is not installed (apt-get install haproxy)")
        sys.exit(SKIP_EXIT)
    sys.exit(main(TESTS, sys.argv))
