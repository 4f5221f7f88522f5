#!/usr/bin/env python3
"""E2E: curl against netloop-demo --https (a root directory, certificates made at test
time): a file of each size class intact (in memory, sendfile), several requests on one
kept-alive connection (one handshake), ALPN http/1.1, curl offering h2 still gets HTTP/1.1,
and curl without the test CA refuses the certificate.

Exits 77 (meson: SKIP) when curl or the openssl CLI is missing or the build has no TLS.

Usage: test_demo_tls_curl.py PATH/TO/netloop-demo"""

import hashlib
import os
import subprocess
import sys
import tempfile

from e2e_util import Failure, check, main
from tls_util import Pki, TlsDemo, skip_unless_ready, tool

PKI = None
FILES = {"small.txt": b"hello over TLS\n", "mid.bin": os.urandom(60 * 1024 + 7),
         "big.bin": os.urandom(3 * 1024 * 1024 + 11)}


def curl(*args, timeout=30):
    cmd = [tool("curl"), "--silent", "--show-error", "--noproxy", "*", "--max-time", "20"] + list(args)
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Failure("curl %s did not finish within %d s" % (" ".join(args), timeout))
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


class Site:
    def __init__(self, exe):
        self.root = tempfile.TemporaryDirectory(prefix="netloop-e2e-https-")
        for name, data in FILES.items():
            with open(os.path.join(self.root.name, name), "wb") as f:
                f.write(data)
        self.demo = TlsDemo(exe, [("--https", "127.0.0.1:0")], [PKI.main],
                            ["--root", self.root.name, "--log-level", "warn"])
        self.port = self.demo.port("https")

    def url(self, path, host="localhost"):
        return "https://%s:%d/%s" % (host, self.port, path)

    def resolve(self):
        return ["--resolve", "localhost:%d:127.0.0.1" % self.port]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.demo.close()
        self.root.cleanup()
        return False


def test_get_files(exe):
    with Site(exe) as site:
        for name, data in FILES.items():
            for host in ("localhost", "127.0.0.1"):
                rc, body, err = curl("--cacert", PKI.ca, *site.resolve(), site.url(name, host))
                check(rc == 0, "GET %s via %s: curl exit %d: %s" % (name, host, rc, err))
                check(hashlib.sha256(body).digest() == hashlib.sha256(data).digest(),
                      "GET %s: %d bytes, expected %d, or different" % (name, len(body), len(data)))
        rc, body, err = curl("--cacert", PKI.ca, *site.resolve(), "-I", site.url("big.bin"))
        check(rc == 0 and b"HTTP/1.1 200" in body and b"Content-Length: %d" % len(FILES["big.bin"]) in body,
              "HEAD: %d %r %s" % (rc, body[:300], err))
        rc, body, err = curl("--cacert", PKI.ca, *site.resolve(), "-o", os.devnull, "-w", "%{http_code}",
                             site.url("missing"))
        check(body == b"404", "a missing file: %r" % body)
        site.demo.stop()


def test_keepalive_reuse(exe):
    with Site(exe) as site:
        before = site.demo.tls_metric("handshakes", "https")
        urls = [site.url(n) for n in ("small.txt", "mid.bin", "big.bin", "small.txt")]
        rc, body, err = curl("--cacert", PKI.ca, *site.resolve(), "-v", *urls)
        check(rc == 0, "curl exit %d: %s" % (rc, err[-800:]))
        expect = FILES["small.txt"] + FILES["mid.bin"] + FILES["big.bin"] + FILES["small.txt"]
        check(body == expect, "four responses on one connection: %d bytes, expected %d" % (len(body), len(expect)))
        reused = err.count("Re-using existing connection")
        check(reused == 3, "curl re-used the connection %d times of 3: %s" % (reused, err[-800:]))
        after = site.demo.tls_metric("handshakes", "https")
        check(after - before == 1, "%d handshakes for one kept-alive connection" % (after - before))
        site.demo.stop()


def test_alpn(exe):
    with Site(exe) as site:
        for flag in ("--http1.1", "--http2"):
            rc, body, err = curl("--cacert", PKI.ca, *site.resolve(), flag, "-v", "-w", "\n%{http_version}",
                                 site.url("small.txt"))
            check(rc == 0, "%s: curl exit %d: %s" % (flag, rc, err[-800:]))
            check("ALPN: server accepted http/1.1" in err or "ALPN, server accepted to use http/1.1" in err,
                  "%s: ALPN http/1.1 not agreed: %s" % (flag, err[-1200:]))
            check("h2" not in err.split("ALPN: server accepted", 1)[-1].splitlines()[0],
                  "%s: the server accepted h2: %s" % (flag, err[-800:]))
            check(body.endswith(b"\n1.1"), "%s: HTTP version %r (expected 1.1)" % (flag, body[-10:]))
        site.demo.stop()


def test_untrusted_refused(exe):
    with Site(exe) as site:
        rc, _, err = curl(*site.resolve(), site.url("small.txt"))  # the system store: no test CA
        check(rc == 60, "curl without --cacert: exit %d (expected 60, certificate problem): %s" % (rc, err))
        rc, _, err = curl("--cacert", PKI.ca, "--resolve", "wrong.test:%d:127.0.0.1" % site.port,
                          "https://wrong.test:%d/small.txt" % site.port)
        check(rc in (51, 60), "a wrong host name: exit %d (expected 60): %s" % (rc, err))
        check(site.demo.alive(), "the server died")
        site.demo.stop()


TESTS = [
    ("curl --cacert: files intact over HTTPS", test_get_files),
    ("curl: keep-alive reuses one TLS connection", test_keepalive_reuse),
    ("curl: ALPN http/1.1, h2 offered but never taken", test_alpn),
    ("curl: an untrusted or misnamed certificate is refused", test_untrusted_refused),
]

if __name__ == "__main__":
    skip_unless_ready(sys.argv, ("openssl", "curl"), "TLS curl e2e")
    if len(sys.argv) == 2:
        PKI = Pki()
        PKI.main = PKI.leaf("main")
    try:
        code = main(TESTS, sys.argv)
    finally:
        if PKI:
            PKI.close()
    sys.exit(code)
