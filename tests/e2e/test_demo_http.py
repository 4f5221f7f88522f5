#!/usr/bin/env python3
"""E2E: the built netloop-demo serves HTTP (--http, --root) to real clients: curl, Python's
http.client, raw sockets (pipelining, slowloris, traversal, limits), and wrk / ab when they
are installed. Usage: test_demo_http.py PATH/TO/netloop-demo"""

import http.client
import os
import random
import re
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from e2e_util import (DemoService, Failure, check, clip, ipv6_loopback_works, main, run_demo, spec,
                      wait_banner, wait_closed)



# ---------------------------------------------------------------------------------------
# The site served, and the demo

def small_content(i):
    return ("file %d: %s\n" % (i, chr(ord("a") + i) * (10 + 13 * i))).encode()


INDEX = b"<!DOCTYPE html><title>e2e index</title>\n"
SUB_INDEX = b"<!DOCTYPE html><title>e2e sub</title>\n"
BIG = random.Random(7).randbytes(2 * 1024 * 1024 + 3)


class Site:
    """A served root (f0..f9.txt, index.html, sub/, noindex/, big.bin, a symlink escaping
    the root) and a directory outside it; both removed on exit."""

    def __enter__(self):
        self._root = tempfile.TemporaryDirectory(prefix="netloop-e2e-root-")
        self._outside = tempfile.TemporaryDirectory(prefix="netloop-e2e-outside-")
        self.root = self._root.name
        self.outside = self._outside.name
        for i in range(10):
            self.write("f%d.txt" % i, small_content(i))
        self.write("index.html", INDEX)
        self.write("sub/index.html", SUB_INDEX)
        self.write("noindex/file.txt", b"no index here\n")
        self.write("big.bin", BIG)
        with open(os.path.join(self.outside, "secret.txt"), "wb") as f:
            f.write(b"SECRET outside the root\n")
        os.symlink(os.path.join(self.outside, "secret.txt"), os.path.join(self.root, "escape.txt"))
        os.symlink(self.outside, os.path.join(self.root, "escape_dir"))
        return self

    def write(self, rel, data):
        path = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)

    def __exit__(self, *exc):
        self._root.cleanup()
        self._outside.cleanup()
        return False


def wait_http_banner(demo, timeout=5.0):
    """Reads the demo's stdout until "http listening on HOST:PORT"; returns (host, port, line)."""
    return wait_banner(demo, "http", timeout)


class HttpDemo(DemoService):
    """netloop-demo serving HTTP on host:0 (the kernel picks the port)."""

    def __init__(self, exe, root=None, extra=(), host="127.0.0.1"):
        args = ["--http", spec(host, 0), "--log-level", "warn"]
        if root:
            args += ["--root", root]
        super().__init__(exe, args + list(extra), wait_http_banner)
        self.host, self.port, self.banner = self.started()
        check(self.host == host, "banner names host %s, expected %s: %r" % (self.host, host, self.banner))
        check(self.port != 0, "banner names port 0: %r" % self.banner)

    def url(self, path):
        return "http://%s%s" % (spec(self.host, self.port), path)

    def connect(self, timeout=5.0):
        s = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect((self.host, self.port))
        return s


# ---------------------------------------------------------------------------------------
# A raw HTTP/1.1 response reader

class Raw:
    """A socket and the bytes read from it but not yet parsed."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self):
        chunk = self.sock.recv(256 * 1024)
        if not chunk:
            raise Failure("connection closed with %d unparsed bytes: %r" % (len(self.buf), self.buf[:200]))
        self.buf += chunk

    def send(self, data):
        self.sock.sendall(data)

    def read(self, head=False):
        """One response: (status, {lower-case name: value}, body)."""
        while b"\r\n\r\n" not in self.buf:
            check(len(self.buf) < 65536, "no end of the response head in 64 KiB")
            self._fill()
        head_bytes, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head_bytes.decode("latin-1").split("\r\n")
        m = re.match(r"HTTP/1\.1 (\d{3}) ", lines[0])
        check(m, "malformed status line %r" % lines[0])
        status = int(m.group(1))
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = b""
        if not head:
            check("content-length" in headers, "response without Content-Length: %r" % lines)
            length = int(headers["content-length"])
            while len(self.buf) < length:
                self._fill()
            body, self.buf = self.buf[:length], self.buf[length:]
        return status, headers, body

    def ends(self, timeout=3.0):
        """True when the server closes (EOF or reset) within `timeout` with nothing more."""
        check(not self.buf, "unexpected bytes after the last response: %r" % self.buf[:200])
        return wait_closed(self.sock, timeout)


def get(path, extra=""):
    return ("GET %s HTTP/1.1\r\nHost: e2e\r\n%s\r\n" % (path, extra)).encode()


def one_request(d, request, timeout=5.0):
    """Sends `request` on a fresh connection; returns (status, headers, body)."""
    with d.connect(timeout) as s:
        r = Raw(s)
        r.send(request)
        return r.read(head=request.startswith(b"HEAD "))


def curl(args, timeout=20):
    """Runs curl; returns (exit code, stdout bytes, stderr text)."""
    try:
        p = subprocess.run(["curl", "--noproxy", "*", "--silent", "--show-error", "--max-time", "10"] + list(args),
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Failure("curl %s did not finish within %d s" % (" ".join(args), timeout))
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def header_of(dump, name):
    """A header's value from curl's -D/-I output (the last response in it), or None."""
    value = None
    for line in dump.decode(errors="replace").splitlines():
        if line.lower().startswith(name.lower() + ":"):
            value = line.split(":", 1)[1].strip()
    return value


def status_of(dump):
    codes = re.findall(r"^HTTP/1\.[01] (\d{3})", dump.decode(errors="replace"), re.M)
    return int(codes[-1]) if codes else None


# ---------------------------------------------------------------------------------------
# Tests

def test_curl(exe):
    if not shutil.which("curl"):
        raise Failure("curl is required (the README's setup installs it)")
    with Site() as site, HttpDemo(exe, site.root) as d:
        # Two URLs in one command: the second re-uses the connection.
        code, out, err = curl(["-v", d.url("/f1.txt"), d.url("/f2.txt")])
        check(code == 0, "curl exited %d: %s" % (code, clip(err)))
        check(out == small_content(1) + small_content(2), "bodies differ: %r" % out[:200])
        check(re.search(r"re-?using existing", err, re.I),
              "curl did not re-use the connection for the second URL: %s" % clip(err, 3000))
        check(len(re.findall(r"^\* +Trying ", err, re.M)) <= 1,
              "curl connected more than once: %s" % clip(err, 3000))

        # HEAD (-I): the length of the large file, no body.
        code, out, err = curl(["-I", d.url("/big.bin")])
        check(code == 0, "curl -I exited %d: %s" % (code, err))
        check(status_of(out) == 200, "curl -I: %r" % out)
        check(header_of(out, "Content-Length") == str(len(BIG)), "curl -I: %r" % out)
        check(header_of(out, "Content-Type") == "application/octet-stream", "curl -I: %r" % out)
        check(out.endswith(b"\r\n\r\n"), "curl -I printed more than headers: %r" % out[-100:])

        # The large file itself (sendfile), whole.
        code, out, err = curl([d.url("/big.bin")])
        check(code == 0 and out == BIG, "big.bin: curl %d, %d bytes (want %d)" % (code, len(out), len(BIG)))

        # HTTP/1.0: Connection: close, and curl sees the server close.
        code, out, err = curl(["--http1.0", "-v", "-D", "-", d.url("/f3.txt")])
        check(code == 0, "curl --http1.0 exited %d: %s" % (code, err))
        check(status_of(out) == 200 and out.endswith(small_content(3)), "--http1.0: %r" % out)
        check((header_of(out, "Connection") or "").lower() == "close", "--http1.0: %r" % out)

        # A Range header: 206 with the first five bytes (test_demo_static.py has the rest).
        code, out, err = curl(["-D", "-", "-H", "Range: bytes=0-4", d.url("/f4.txt")])
        check(code == 0, "curl with Range exited %d: %s" % (code, err))
        check(status_of(out) == 206, "Range: status %r (want 206): %r" % (status_of(out), out[:300]))
        check(out.endswith(b"\r\n\r\n" + small_content(4)[:5]), "Range: body not the 5 bytes: %r" % out[-200:])
        check(header_of(out, "Content-Range") == "bytes 0-4/%d" % len(small_content(4)),
              "Range: Content-Range %r (want bytes 0-4/%d): %r"
              % (header_of(out, "Content-Range"), len(small_content(4)), out))

        # Directory without a trailing slash: 301 to it; curl -L follows.
        code, out, err = curl(["-D", "-", d.url("/sub")])
        check(status_of(out) == 301 and header_of(out, "Location") == "/sub/", "/sub: %r" % out)
        code, out, err = curl(["-L", d.url("/sub")])
        check(code == 0 and out == SUB_INDEX, "curl -L /sub: %d %r" % (code, out[:200]))

        # A traversal attempt, sent as is.
        code, out, err = curl(["--path-as-is", "-D", "-", d.url("/../../etc/passwd")])
        check(status_of(out) == 400 and b"root:" not in out, "--path-as-is /../../etc/passwd: %r" % out[:300])
        d.stop()


def test_http_client(exe):
    with Site() as site, HttpDemo(exe, site.root) as d:
        conn = http.client.HTTPConnection(d.host, d.port, timeout=5)
        try:
            sockets = set()
            for i in range(10):
                conn.request("GET", "/f%d.txt" % i)
                resp = conn.getresponse()
                body = resp.read()
                check(resp.status == 200, "GET /f%d.txt: %d" % (i, resp.status))
                check(body == small_content(i), "GET /f%d.txt: body %r" % (i, body[:100]))
                check(resp.getheader("Content-Type") == "text/plain; charset=utf-8",
                      "Content-Type %r" % resp.getheader("Content-Type"))
                check(resp.getheader("Date") and resp.getheader("Last-Modified"), "no Date/Last-Modified")
                sockets.add(id(conn.sock))
            check(len(sockets) == 1, "http.client opened %d connections for 10 requests" % len(sockets))

            conn.request("HEAD", "/big.bin")
            resp = conn.getresponse()
            check(resp.status == 200 and resp.read() == b"", "HEAD: %d" % resp.status)
            check(resp.getheader("Content-Length") == str(len(BIG)), "HEAD Content-Length %r"
                  % resp.getheader("Content-Length"))

            conn.request("GET", "/")
            resp = conn.getresponse()
            check(resp.status == 200 and resp.read() == INDEX, "GET /: %d" % resp.status)

            conn.request("GET", "/no/such/file.txt")
            resp = conn.getresponse()
            resp.read()
            check(resp.status == 404, "missing file: %d (want 404)" % resp.status)

            conn.request("POST", "/f1.txt", body=b"x" * 100)
            resp = conn.getresponse()
            resp.read()
            check(resp.status == 405, "POST: %d (want 405)" % resp.status)
            check(resp.getheader("Allow") == "GET, HEAD", "405 Allow: %r" % resp.getheader("Allow"))

            conn.request("BREW", "/f1.txt")
            resp = conn.getresponse()
            resp.read()
            check(resp.status == 501, "BREW: %d (want 501)" % resp.status)

            conn.request("GET", "/noindex/")
            resp = conn.getresponse()
            resp.read()
            check(resp.status == 403, "directory without an index: %d (want 403)" % resp.status)

            conn.request("GET", "/index.html?x=1&y=../../etc/passwd")
            resp = conn.getresponse()
            check(resp.status == 200 and resp.read() == INDEX, "query string: %d" % resp.status)

            # Errors did not cost the connection.
            conn.request("GET", "/f9.txt")
            resp = conn.getresponse()
            check(resp.read() == small_content(9), "after errors: body differs")
            check(len(sockets | {id(conn.sock)}) == 1, "the connection was not kept across errors")
        finally:
            conn.close()
        d.stop()


def test_pipelined(exe):
    with Site() as site, HttpDemo(exe, site.root) as d:
        with d.connect() as s:
            r = Raw(s)
            order = [(i * 7) % 10 for i in range(100)]
            r.send(b"".join(get("/f%d.txt" % i) for i in order))
            for n, i in enumerate(order):
                status, headers, body = r.read()
                check(status == 200 and body == small_content(i),
                      "pipelined response %d: status %d, body %r (want f%d)" % (n, status, body[:40], i))
            # Still open, and closing on request.
            r.send(get("/f1.txt", "Connection: close\r\n"))
            status, headers, body = r.read()
            check(body == small_content(1) and headers.get("connection") == "close",
                  "last response: %r %r" % (headers, body[:40]))
            check(r.ends(), "the server did not close after Connection: close")
        d.stop()


def test_slowloris(exe):
    with Site() as site, HttpDemo(exe, site.root, ["--header-timeout", "1"]) as d:
        with d.connect(timeout=5) as s:
            request = get("/f1.txt", "X-Slow: " + "s" * 100)[:-2]  # never ends
            t0 = time.monotonic()
            got = b""
            sent = 0
            # One byte every 100 ms; read whatever comes meanwhile.
            while time.monotonic() - t0 < 4 and sent < len(request):
                try:
                    s.send(request[sent:sent + 1])
                    sent += 1
                except OSError:
                    break
                r, _, _ = select.select([s], [], [], 0.1)
                if r:
                    try:
                        chunk = s.recv(4096)
                    except ConnectionResetError:
                        break
                    if not chunk:
                        break
                    got += chunk
                    if b"\r\n\r\n" in got:
                        break
            at = time.monotonic() - t0
            check(got.startswith(b"HTTP/1.1 408 "), "slowloris: got %r after %.2f s (want a 408)" % (got[:100], at))
            check(0.9 <= at <= 2.5, "408 after %.2f s (header timeout 1 s)" % at)
            check(b"Connection: close" in got, "408 without Connection: close: %r" % got)
            check(wait_closed(s, 3), "the server did not close after its 408")
        d.stop()


def test_traversal(exe):
    with Site() as site, HttpDemo(exe, site.root) as d:
        for path in ["/../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/%2e%2e/", "/%2f..", "/..%2f",
                     "/a/../../etc/passwd", "/%00", "/sub/../../etc/passwd"]:
            status, headers, body = one_request(d, get(path))
            check(status == 400, "%s: %d (want 400)" % (path, status))
            check(b"root:" not in body and b"SECRET" not in body, "%s leaked a file: %r" % (path, body))
        for path in ["/escape.txt", "/escape_dir/secret.txt", "/escape_dir/"]:
            status, headers, body = one_request(d, get(path))
            check(status == 403, "%s (symlink out of the root): %d (want 403)" % (path, status))
            check(b"SECRET" not in body, "%s leaked the file outside the root" % path)
        status, headers, body = one_request(d, get("/sub/../f2.txt"))
        check(status == 200 and body == small_content(2), "/sub/../f2.txt: %d" % status)
        d.stop()


def test_limits(exe):
    with Site() as site, HttpDemo(exe, site.root,
                                  ["--max-request-line", "1k", "--max-header-bytes", "2k"]) as d:
        # Request line: 1k fits, longer is 414.
        status, _, _ = one_request(d, get("/f1.txt?" + "q" * 900))
        check(status == 200, "a 930-byte request line: %d (want 200)" % status)
        with d.connect() as s:
            r = Raw(s)
            r.send(get("/" + "a" * 2000))
            status, headers, body = r.read()
            check(status == 414, "a 2000-byte request line: %d (want 414)" % status)
            check(headers.get("connection") == "close", "414 without Connection: close")
            check(r.ends(), "the server did not close after its 414")
        # Head: 2k fits (just under), more is 431.
        status, _, _ = one_request(d, get("/f1.txt", "X-Fill: %s\r\n" % ("f" * 1800)))
        check(status == 200, "a 1.9k head: %d (want 200)" % status)
        with d.connect() as s:
            r = Raw(s)
            r.send(get("/f1.txt", "".join("X-Fill-%d: %s\r\n" % (i, "f" * 500) for i in range(6))))
            status, headers, body = r.read()
            check(status == 431, "a 3k head: %d (want 431)" % status)
            check(r.ends(), "the server did not close after its 431")
        d.stop()


def test_builtin_page(exe):
    with HttpDemo(exe) as d:
        check("built-in page" in d.banner, "banner does not mention the built-in page: %r" % d.banner)
        status, headers, body = one_request(d, get("/"))
        check(status == 200, "GET / without --root: %d" % status)
        check(headers.get("content-type", "").startswith("text/html"), "Content-Type %r"
              % headers.get("content-type"))
        check(b"<html" in body and b"netloop" in body, "not the built-in page: %r" % body[:200])
        status, _, _ = one_request(d, get("/index.html"))
        check(status == 200, "GET /index.html without --root: %d" % status)
        status, _, _ = one_request(d, get("/etc/passwd"))
        check(status == 404, "GET /etc/passwd without --root: %d (want 404)" % status)
        d.stop()


def test_bad_root(exe):
    missing = [os.path.join(tempfile.gettempdir(), "netloop-e2e-no-such-dir-%d" % os.getpid())]
    if not os.path.exists("/nonexistent"):
        missing.append("/nonexistent")
    for path in missing:
        check(not os.path.exists(path), "%s exists" % path)
        code, out, err = run_demo(exe, ["--http", "127.0.0.1:0", "--root", path])
        check(code == 2, "--root %s: exit code %d (want 2); stderr %r" % (path, code, err))
        check(path in err, "the message does not name %s: %r" % (path, err))
        check("listening" not in out, "it started listening anyway: %r" % out)

    with Site() as site:
        # A file is not a directory.
        path = os.path.join(site.root, "f1.txt")
        code, out, err = run_demo(exe, ["--http", "127.0.0.1:0", "--root", path])
        check(code == 2 and path in err, "--root FILE: exit %d, stderr %r" % (code, err))
        # --root needs an HTTP listener.
        code, out, err = run_demo(exe, ["--tcp-echo", "127.0.0.1:0", "--root", site.root])
        check(code == 2, "--root without --http: exit code %d (want 2); stderr %r" % (code, err))
        check("--http" in err, "the message does not mention --http: %r" % err)
        check("listening" not in out, "it started listening anyway: %r" % out)
    for args in (["--http", "127.0.0.1:0", "--header-timeout", "0"],
                 ["--http", "127.0.0.1:0", "--max-request-line", "4k", "--max-header-bytes", "2k"]):
        code, out, err = run_demo(exe, args)
        check(code == 2 and err, "%s: exit %d, stderr %r" % (" ".join(args), code, err))


def test_ipv6(exe):
    if not ipv6_loopback_works():
        return "SKIP ::1 is not configured on this machine"
    with Site() as site, HttpDemo(exe, site.root, host="::1") as d:
        check("[::1]:" in d.banner, "banner: %r" % d.banner)
        status, headers, body = one_request(d, get("/f5.txt"))
        check(status == 200 and body == small_content(5), "GET over ::1: %d" % status)
        code, out, err = curl([d.url("/f6.txt")])
        check(code == 0 and out == small_content(6), "curl over ::1: %d %s" % (code, err))
        d.stop()
    return "[::1]"


def test_wrk(exe):
    wrk = shutil.which("wrk")
    if not wrk:
        return "SKIP wrk is not installed"
    with Site() as site, HttpDemo(exe, site.root) as d:
        try:
            p = subprocess.run([wrk, "-t2", "-c50", "-d2s", d.url("/f1.txt")], stdin=subprocess.DEVNULL,
                               capture_output=True, timeout=30)
        except subprocess.TimeoutExpired:
            raise Failure("wrk did not finish within 30 s")
        out = p.stdout.decode(errors="replace")
        check(p.returncode == 0, "wrk exited %d: %s %s" % (p.returncode, out, p.stderr.decode(errors="replace")))
        m = re.search(r"(\d+) requests in", out)
        check(m and int(m.group(1)) > 0, "wrk made no requests: %s" % out)
        check("Socket errors" not in out, "wrk reports socket errors: %s" % out)
        check("Non-2xx" not in out, "wrk reports non-2xx responses: %s" % out)
        # Still serving afterwards.
        status, _, body = one_request(d, get("/f2.txt"))
        check(status == 200 and body == small_content(2), "after wrk: %d" % status)
        d.stop()
        return "%s requests" % m.group(1)


def test_ab(exe):
    ab = shutil.which("ab")
    if not ab:
        return "SKIP ab is not installed"
    with Site() as site, HttpDemo(exe, site.root) as d:
        try:
            p = subprocess.run([ab, "-k", "-n", "2000", "-c", "20", d.url("/f1.txt")],
                               stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        except subprocess.TimeoutExpired:
            raise Failure("ab did not finish within 30 s")
        out = p.stdout.decode(errors="replace")
        check(p.returncode == 0, "ab exited %d: %s %s" % (p.returncode, clip(out), p.stderr.decode(errors="replace")))
        check(re.search(r"^Complete requests:\s+2000$", out, re.M), "ab: not 2000 complete requests: %s" % clip(out, 3000))
        check(re.search(r"^Failed requests:\s+0$", out, re.M), "ab: failed requests: %s" % clip(out, 3000))
        check("Non-2xx" not in out, "ab: non-2xx responses: %s" % clip(out, 3000))
        m = re.search(r"^Keep-Alive requests:\s+(\d+)$", out, re.M)
        check(m and int(m.group(1)) == 2000, "ab: not every request kept alive: %s" % clip(out, 3000))
        d.stop()


def test_sigterm(exe):
    # SIGTERM drains: the idle keep-alive client is closed after a short grace (1 s, as
    # long as the drain timeout here); the one mid-request is given until
    # --drain-timeout to finish it, and closed then.
    with Site() as site, HttpDemo(exe, site.root, extra=["--drain-timeout", "1"]) as d:
        idle = d.connect()
        r = Raw(idle)
        r.send(get("/f1.txt"))
        check(r.read()[2] == small_content(1), "idle client: body differs")
        partial = d.connect()
        partial.sendall(b"GET /f2.txt HTTP/1.1\r\n")
        time.sleep(0.1)
        d.stop()
        check(wait_closed(idle), "an idle client was not closed when the demo exited")
        check(wait_closed(partial), "a client mid-request was not closed when the demo exited")
        idle.close()
        partial.close()


TESTS = [
    ("curl: keep-alive reuse, -I, --http1.0, Range, redirect, traversal", test_curl),
    ("http.client: one connection, HEAD, 404, 405, 501, 403", test_http_client),
    ("100 pipelined requests in one write", test_pipelined),
    ("slowloris with --header-timeout 1: 408 and close", test_slowloris),
    ("traversal and symlinks out of the root", test_traversal),
    ("--max-request-line 1k (414), --max-header-bytes 2k (431)", test_limits),
    ("built-in page without --root", test_builtin_page),
    ("bad --root and option errors exit 2", test_bad_root),
    ("IPv6 [::1]:0", test_ipv6),
    ("wrk: 2 s, 50 connections, no errors", test_wrk),
    ("ab -k -n 2000 -c 20: no failures", test_ab),
    ("SIGTERM with open clients: exit 0", test_sigterm),
]

if __name__ == "__main__":
    sys.exit(main(TESTS, sys.argv))
