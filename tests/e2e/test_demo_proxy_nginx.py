#!/usr/bin/env python3
"""E2E: netloop-demo --tcp-proxy in front of a real nginx, driven by curl: small and 8 MiB
files intact, several requests on one kept-alive connection, an 8 MiB PUT upstream, and a
slow download that keeps the proxy's RSS bounded. Exits 77 (meson: SKIP) when nginx or curl
is missing.

Usage: test_demo_proxy_nginx.py PATH/TO/netloop-demo"""

import grp
import hashlib
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from e2e_util import Failure, ProxyDemo, check, free_port, main

SKIP_EXIT = 77
APT_HINT = "apt-get install nginx curl"
BIG = os.urandom(8 * 1024 * 1024 + 5)


def tool(name):
    path = shutil.which(name)
    if path is None:
        for d in ("/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/local/bin"):
            if os.access(os.path.join(d, name), os.X_OK):
                return os.path.join(d, name)
    return path


class Nginx:
    """nginx (one worker, no daemon) on 127.0.0.1:<free port> serving a temporary root
    with small.txt and big.bin; PUT /upload/NAME stores a file (WebDAV)."""

    def __init__(self):
        self.dir = tempfile.TemporaryDirectory(prefix="netloop-e2e-nginx-")
        tmp = self.dir.name
        with open(os.path.join(tmp, "small.txt"), "wb") as f:
            f.write(b"hello through the proxy\n")
        with open(os.path.join(tmp, "big.bin"), "wb") as f:
            f.write(BIG)
        self.port = free_port()
        user = ""
        if os.geteuid() == 0:  # as root, nginx's worker would become nobody, who may not read tmp
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
    client_max_body_size 16m;
    server {
        listen 127.0.0.1:%d;
        root %s;
        location /upload/ { dav_methods PUT; create_full_put_path on; }
    }
}
""" % (user, tmp, tmp, tmp, tmp, tmp, tmp, tmp, self.port, tmp))
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
    argv = [tool("curl"), "--silent", "--show-error", "--noproxy", "*"] + list(args)
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Failure("curl %s did not finish within %d s" % (" ".join(args), timeout))
    check(p.returncode == 0, "curl %s exited %d: %r" % (" ".join(args), p.returncode, p.stderr[:300]))
    return p


def test_curl_files(exe):
    with Nginx() as nginx, ProxyDemo(exe, ["127.0.0.1:%d" % nginx.port]) as proxy:
        base = "http://127.0.0.1:%d" % proxy.port
        check(curl(base + "/small.txt").stdout == b"hello through the proxy\n", "small.txt")
        got = curl(base + "/big.bin").stdout
        check(hashlib.sha256(got).digest() == hashlib.sha256(BIG).digest(),
              "big.bin came back different (%d bytes of %d)" % (len(got), len(BIG)))
        # Three requests on one kept-alive connection: curl says how many it opened.
        p = curl("--write-out", "%{num_connects}\n", base + "/small.txt", base + "/small.txt",
                 base + "/big.bin", "-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null")
        check(p.stdout.split() == [b"1", b"0", b"0"], "connections opened per request: %r" % p.stdout)
        up = "127.0.0.1:%d" % nginx.port
        check(proxy.upstream_metric("connects", up) == 3, "upstream connects: expected 3")
        check(proxy.upstream_metric("bytes", up, direction="in") > 2 * len(BIG), "bytes in not counted")
        proxy.stop()


def test_curl_put(exe):
    with Nginx() as nginx, ProxyDemo(exe, ["127.0.0.1:%d" % nginx.port]) as proxy:
        with tempfile.NamedTemporaryFile() as body:
            body.write(BIG)
            body.flush()
            p = curl("--upload-file", body.name, "--write-out", "%{http_code}",
                     "http://127.0.0.1:%d/upload/x.bin" % proxy.port)
        check(p.stdout.endswith(b"201"), "PUT of 8 MiB: %r" % p.stdout[-100:])
        with open(os.path.join(nginx.dir.name, "upload", "x.bin"), "rb") as f:
            stored = f.read()
        check(stored == BIG, "nginx stored %d bytes, not the %d sent" % (len(stored), len(BIG)))
        up = "127.0.0.1:%d" % nginx.port
        check(proxy.upstream_metric("bytes", up, direction="out") > len(BIG), "bytes out not counted")
        proxy.stop()


def test_slow_download(exe):
    """curl reading at 1 MB/s: the proxy must not take nginx's 8 MiB in meanwhile."""
    with Nginx() as nginx, ProxyDemo(exe, ["127.0.0.1:%d" % nginx.port]) as proxy:
        base = proxy.rss_kib()
        out = tempfile.NamedTemporaryFile()
        c = subprocess.Popen([tool("curl"), "--silent", "--noproxy", "*", "--limit-rate", "1M",
                              "-o", out.name, "http://127.0.0.1:%d/big.bin" % proxy.port],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        peak = base
        try:
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline and c.poll() is None:
                peak = max(peak, proxy.rss_kib())
                time.sleep(0.05)
        finally:
            c.kill()
            c.wait()
            out.close()
        grew = peak - base
        check(grew < 4096, "the proxy's RSS grew by %d KiB during a slow 8 MiB download" % grew)
        proxy.stop()
        return "RSS +%d KiB" % grew


TESTS = [
    ("curl through the proxy: small and 8 MiB files, keep-alive", test_curl_files),
    ("curl PUTs 8 MiB through the proxy", test_curl_put),
    ("a slow download keeps the proxy's RSS bounded", test_slow_download),
]

if __name__ == "__main__":
    missing = [t for t in ("nginx", "curl") if tool(t) is None]
    if len(sys.argv) == 2 and missing:
        print("SKIP proxy in front of nginx: %s not installed (%s)" % (" and ".join(missing), APT_HINT))
        sys.exit(SKIP_EXIT)
    sys.exit(main(TESTS, sys.argv))
