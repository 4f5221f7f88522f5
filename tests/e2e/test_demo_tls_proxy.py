#!/usr/bin/env python3
"""E2E: the TCP proxy's two TLS modes (stunnel's). --upstream-tls in front of a real
nginx serving HTTPS with a certificate made at test time: curl through the proxy gets the
file with the right --upstream-ca (by address, and by name with --upstream-sni), and with
a CA that did not sign nginx's certificate the client is closed and the failure counted.
--tls-proxy terminates TLS in front of a plain netloop echo; and both at once (TLS in,
TLS out) in front of nginx.

Exits 77 (meson: SKIP) when nginx, curl or the openssl CLI is missing or the build has
no TLS.

Usage: test_demo_tls_proxy.py PATH/TO/netloop-demo"""

import grp
import hashlib
import os
import pwd
import socket
import subprocess
import sys
import tempfile
import time

from e2e_util import Failure, ProxyDemo, check, free_port, main, start_echo
from tls_util import Pki, TlsDemo, client_context, skip_unless_ready, tls_connect, tls_echo, tool

PKI = None
WRONG = None  # another CA, which signed nothing nginx has
BIG = os.urandom(2 * 1024 * 1024 + 3)


class TlsNginx:
    """nginx (one worker, no daemon) serving HTTPS on 127.0.0.1:<free port> with the test
    leaf certificate, from a root holding small.txt and big.bin."""

    def __init__(self):
        self.dir = tempfile.TemporaryDirectory(prefix="netloop-e2e-nginx-tls-")
        tmp = self.dir.name
        os.mkdir(os.path.join(tmp, "www"))
        with open(os.path.join(tmp, "www", "small.txt"), "wb") as f:
            f.write(b"hello from nginx over TLS\n")
        with open(os.path.join(tmp, "www", "big.bin"), "wb") as f:
            f.write(BIG)
        self.port = free_port()
        cert, key = PKI.main
        user = ""
        if os.geteuid() == 0:
            user = "user %s %s;\n" % (pwd.getpwuid(os.geteuid()).pw_name, grp.getgrgid(os.getegid()).gr_name)
        conf = os.path.join(tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write("""daemon off;
master_process on;
worker_processes 1;
%serror_log %s/error.log warn;
pid %s/nginx.pid;
events { worker_connections 256; }
http {
    access_log off;
    default_type application/octet-stream;
    client_body_temp_path %s/body;
    proxy_temp_path %s/proxy;
    fastcgi_temp_path %s/fastcgi;
    uwsgi_temp_path %s/uwsgi;
    scgi_temp_path %s/scgi;
    server {
        listen 127.0.0.1:%d ssl;
        ssl_certificate %s;
        ssl_certificate_key %s;
        root %s/www;
    }
}
""" % (user, tmp, tmp, tmp, tmp, tmp, tmp, tmp, self.port, cert, key, tmp))
        self.proc = subprocess.Popen([tool("nginx"), "-c", conf, "-p", tmp], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     start_new_session=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    err = self.proc.stderr.read().decode(errors="replace") if self.proc.poll() is not None else ""
                    self.close()
                    raise Failure("nginx did not start on port %d: %s" % (self.port, err[-500:]))
                time.sleep(0.05)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, 15)
                self.proc.wait(5)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                os.killpg(self.proc.pid, 9)
                self.proc.wait()
        self.proc.stderr.close()
        self.dir.cleanup()


def curl(*args, timeout=30):
    argv = [tool("curl"), "--silent", "--show-error", "--noproxy", "*", "--max-time", "20"] + list(args)
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Failure("curl %s did not finish within %d s" % (" ".join(args), timeout))
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def metric(proxy, key):
    return int(proxy.metrics().get(key, -1))


def test_upstream_tls_right_ca(exe):
    with TlsNginx() as nginx:
        # Upstream by address (checked against the certificate's IP), then by name with SNI.
        for upstream, extra in (("127.0.0.1:%d" % nginx.port, []),
                                ("127.0.0.1:%d" % nginx.port, ["--upstream-sni", "localhost"]),
                                ("localhost:%d" % nginx.port, [])):
            with ProxyDemo(exe, [upstream], ["--upstream-tls", "--upstream-ca", PKI.ca] + extra) as proxy:
                check("over TLS" in proxy.banner, "banner: %r" % proxy.banner)
                base = "http://127.0.0.1:%d" % proxy.port
                rc, body, err = curl(base + "/small.txt", base + "/big.bin")
                check(rc == 0, "%s %s: curl exit %d: %s" % (upstream, extra, rc, err))
                check(body[:26] == b"hello from nginx over TLS\n" and
                      hashlib.sha256(body[26:]).digest() == hashlib.sha256(BIG).digest(),
                      "%s: the files came back different (%d bytes)" % (upstream, len(body)))
                check(proxy.upstream_metric("connects", upstream) >= 1, "connects not counted")
                check(metric(proxy, 'netloop_tls_handshakes_total{context="upstream"}') >= 1,
                      "upstream handshakes not counted")
                proxy.stop()


def test_upstream_tls_wrong_ca(exe):
    with TlsNginx() as nginx:
        upstream = "127.0.0.1:%d" % nginx.port
        for extra in (["--upstream-ca", WRONG.ca], ["--upstream-ca", PKI.ca, "--upstream-sni", "wrong.test"],
                      []):  # the system store does not know the test CA either
            with ProxyDemo(exe, [upstream], ["--upstream-tls"] + extra) as proxy:
                rc, body, err = curl("http://127.0.0.1:%d/small.txt" % proxy.port)
                check(rc != 0 and b"hello" not in body,
                      "%s: the request went through (curl exit %d)" % (extra, rc))
                check(rc in (52, 56), "%s: curl exit %d (expected 52, empty reply: the client closed): %s"
                      % (extra, rc, err))
                check(proxy.upstream_metric("failures", upstream) >= 1, "%s: failure not counted" % extra)
                check(metric(proxy, 'netloop_proxy_no_upstream_total{listener="127.0.0.1:%d"}' % proxy.port) >= 1,
                      "%s: no_upstream not counted" % extra)
                check(metric(proxy, 'netloop_tls_handshake_failures_total{context="upstream"}') >= 1,
                      "%s: TLS failure not counted" % extra)
                check(proxy.alive(), "the proxy died")
                proxy.stop()


def test_upstream_ca_bad_file(exe):
    from e2e_util import run_demo
    code, _, err = run_demo(exe, ["--tcp-proxy", "127.0.0.1:0=127.0.0.1:1", "--upstream-tls",
                                  "--upstream-ca", PKI.path("nope.pem")])
    check(code == 2 and len(err.strip().splitlines()) == 1 and "--upstream-ca" in err,
          "a missing CA file: exit %d, %r" % (code, err))


def test_tls_proxy_to_plain_echo(exe):
    echo, port, _ = start_echo(exe, "127.0.0.1", ["--log-level", "warn"])
    try:
        with TlsDemo(exe, [("--tls-proxy", "127.0.0.1:0=127.0.0.1:%d" % port)], [PKI.main],
                     ["--log-level", "warn"]) as proxy:
            ctx = client_context(PKI.ca)
            for size in (1, 16385, 1024 * 1024):
                with tls_connect(ctx, "127.0.0.1", proxy.port("tls-proxy")) as s:
                    tls_echo(s, os.urandom(size))
            # A plain client on the TLS port gets nowhere near the echo.
            with socket.create_connection(("127.0.0.1", proxy.port("tls-proxy")), timeout=5) as s:
                s.sendall(b"plain text\r\n\r\n")
                s.settimeout(5)
                try:
                    data = s.recv(100)
                except ConnectionResetError:
                    data = b""
                check(b"plain text" not in data, "plain bytes were echoed through a TLS listener")
            check(proxy.tls_metric("handshakes", "tls-proxy") >= 3, "handshakes not counted")
            proxy.stop()
    finally:
        echo.close()


def test_tls_in_tls_out(exe):
    with TlsNginx() as nginx:
        with TlsDemo(exe, [("--tls-proxy", "127.0.0.1:0=127.0.0.1:%d" % nginx.port)], [PKI.main],
                     ["--upstream-tls", "--upstream-ca", PKI.ca, "--log-level", "warn"]) as proxy:
            port = proxy.port("tls-proxy")
            rc, body, err = curl("--cacert", PKI.ca, "--resolve", "localhost:%d:127.0.0.1" % port,
                                 "https://localhost:%d/big.bin" % port)
            check(rc == 0 and hashlib.sha256(body).digest() == hashlib.sha256(BIG).digest(),
                  "TLS in and out: curl exit %d, %d bytes: %s" % (rc, len(body), err))
            proxy.stop()


TESTS = [
    ("--upstream-tls to nginx with the right CA", test_upstream_tls_right_ca),
    ("--upstream-tls with a wrong CA or name: closed, counted", test_upstream_tls_wrong_ca),
    ("--upstream-ca that cannot be read: exit 2", test_upstream_ca_bad_file),
    ("--tls-proxy terminates TLS in front of plain echo", test_tls_proxy_to_plain_echo),
    ("--tls-proxy with --upstream-tls: TLS in, TLS out", test_tls_in_tls_out),
]

if __name__ == "__main__":
    skip_unless_ready(sys.argv, ("openssl", "curl", "nginx"), "TLS proxy e2e")
    if len(sys.argv) == 2:
        PKI = Pki()
        PKI.main = PKI.leaf("main")
        WRONG = Pki("another CA")
    try:
        code = main(TESTS, sys.argv)
    finally:
        for p in (PKI, WRONG):
            if p:
                p.close()
    sys.exit(code)
