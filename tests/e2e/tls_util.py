"""Helpers for the TLS end-to-end tests: a test CA and leaf certificates made at test time
with the openssl CLI (never committed), the demo with TLS listeners, TLS clients from
Python's ssl module, and the checks that a build or a machine can run them at all.

Keys live in a temporary directory that is removed when the test ends."""

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

from e2e_util import Demo, Failure, check, read_metrics, run_demo, wait_banner

SKIP_EXIT = 77


def tool(name):
    """The path of `name` on PATH (or in an sbin), or None."""
    path = shutil.which(name)
    if path is None:
        for d in ("/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/local/bin"):
            if os.access(os.path.join(d, name), os.X_OK):
                return os.path.join(d, name)
    return path


def tls_missing(exe, tools=("openssl",)):
    """Why these TLS tests cannot run here (a reason for SKIP), or None: a tool missing,
    or a netloop-demo built without TLS (-Dtls=disabled, no OpenSSL)."""
    missing = [t for t in tools if tool(t) is None]
    if missing:
        return "%s not installed (apt-get install %s)" % (
            " and ".join(missing), " ".join("testssl.sh" if t == "testssl" else t for t in missing))
    code, out, err = run_demo(exe, ["--version"])
    if code != 0:
        raise Failure("netloop-demo --version exited %d: %r" % (code, err))
    if "TLS: none" in out or "TLS:" not in out:
        return "this netloop-demo was built without TLS (%s)" % out.strip().replace("\n", "; ")
    return None


def skip_unless_ready(argv, tools, what):
    """Exits 77 (meson: SKIP) with a SKIP line when `tools` or TLS are missing."""
    if len(argv) != 2:
        return
    why = tls_missing(os.path.abspath(argv[1]), tools)
    if why:
        print("SKIP %s: %s" % (what, why))
        raise SystemExit(SKIP_EXIT)


def openssl(*args, cwd=None, timeout=30):
    p = subprocess.run([tool("openssl")] + list(args), cwd=cwd, stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=timeout)
    if p.returncode != 0:
        raise Failure("openssl %s failed (%d): %s" % (" ".join(args), p.returncode,
                                                      p.stderr.decode(errors="replace")[:500]))
    return p.stdout


class Pki:
    """A test CA and ECDSA P-256 leaves it signs, in a temporary directory.

    leaf(name, sans): (cert path, key path) for a leaf whose subject CN is `name`."""

    def __init__(self, ca_name="netloop e2e test CA"):
        self.tmp = tempfile.TemporaryDirectory(prefix="netloop-e2e-tls-")
        self.dir = self.tmp.name
        self.ca_key = self.path("ca.key")
        self.ca = self.path("ca.pem")
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", self.ca_key, "-out", self.ca, "-days", "3", "-subj", "/CN=" + ca_name,
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        self.serial = int.from_bytes(os.urandom(8), "big") | 1

    def path(self, name):
        return os.path.join(self.dir, name)

    def leaf(self, stem, cn="localhost", sans=("DNS:localhost", "IP:127.0.0.1", "IP:::1"), days=3,
             more_ext=""):
        key, csr, cert, ext = (self.path(stem + s) for s in (".key", ".csr", ".pem", ".ext"))
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", key, "-out", csr, "-subj", "/CN=" + cn)
        with open(ext, "w") as f:
            f.write("subjectAltName=%s\nbasicConstraints=critical,CA:FALSE\n"
                    "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n%s"
                    % (",".join(sans), more_ext))
        self.serial += 1
        openssl("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key,
                "-set_serial", str(self.serial), "-days", str(days), "-out", cert, "-extfile", ext)
        return cert, key

    def close(self):
        self.tmp.cleanup()


def client_context(ca, alpn=None, versions=None):
    """A verifying client context trusting `ca` only."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    if versions:
        ctx.minimum_version, ctx.maximum_version = versions
    return ctx


def tls_connect(ctx, host, port, server_name="localhost", timeout=10.0):
    raw = socket.create_connection((host, port), timeout=timeout)
    try:
        return ctx.wrap_socket(raw, server_hostname=server_name)
    except BaseException:
        raw.close()
        raise


def recv_exactly(sock, n, timeout=20.0):
    sock.settimeout(timeout)
    got = bytearray()
    while len(got) < n:
        chunk = sock.recv(min(n - len(got), 1 << 20))
        check(chunk, "the stream ended after %d of %d bytes" % (len(got), n))
        got += chunk
    return bytes(got)


def tls_echo(sock, data, step=64 * 1024):
    """Echoes `data` in lock-step pieces (each sent whole, then read back whole), so
    neither side's buffers can fill; fails unless every byte comes back intact."""
    for off in range(0, len(data), step):
        piece = data[off:off + step]
        sock.sendall(piece)
        back = recv_exactly(sock, len(piece))
        if back != piece:
            i = next(k for k in range(len(piece)) if back[k] != piece[k])
            raise Failure("echo of %d bytes differs at byte %d" % (len(data), off + i))


class TlsDemo:
    """netloop-demo with TLS listeners: `listeners` is a list of (flag, value) such as
    ("--tls-echo", "127.0.0.1:0"); certificates a list of (cert, key). `port(name)` is the
    port its banner gave for protocol `name`; `metrics()` reads --metrics."""

    def __init__(self, exe, listeners, certificates, extra=(), metrics=True):
        args = []
        for flag, value in listeners:
            args += [flag, value]
        for cert, key in certificates:
            args += ["--tls-cert", cert, "--tls-key", key]
        if metrics:
            args += ["--metrics", "127.0.0.1:0"]
        args += list(extra)
        self.demo = Demo(exe, args)
        self.ports = {}
        self.banners = {}
        try:
            for flag, _ in listeners:
                name = flag[2:]
                if name not in self.ports:
                    _, self.ports[name], self.banners[name] = wait_banner(self.demo, name)
            if metrics:
                _, self.metrics_port, _ = wait_banner(self.demo, "metrics")
        except BaseException:
            self.demo.close()
            raise
        self.pid = self.demo.proc.pid

    def port(self, name):
        return self.ports[name]

    def alive(self):
        return self.demo.proc.poll() is None

    def stderr_all(self):
        self.demo.err_file.seek(0)
        return self.demo.err_file.read().decode(errors="replace")

    def wait_log(self, pattern, timeout=5.0, start=0):
        """Waits for a stderr line matching `pattern` (a regex) after offset `start`."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.stderr_all()[start:]
            m = re.search(pattern, text)
            if m:
                return m
            if time.monotonic() > deadline:
                raise Failure("no log line matching %r within %.0f s; stderr after it: %r"
                              % (pattern, timeout, text[-1500:]))
            time.sleep(0.05)

    def metrics(self):
        return read_metrics(self.metrics_port)

    def tls_metric(self, name, context):
        key = 'netloop_tls_%s_total{context="%s"}' % (name, context)
        m = self.metrics()
        check(key in m, "no %s in /metrics: %r" % (key, sorted(k for k in m if "tls" in k)))
        return int(m[key])

    def fd_count(self):
        return len(os.listdir("/proc/%d/fd" % self.pid))

    def rss_kib(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise Failure("no VmRSS in /proc/%d/status" % self.pid)

    def stop(self):
        code = self.demo.stop(signal.SIGTERM, timeout=15)
        check(code == 0, "exit code %d after SIGTERM; stderr: %r" % (code, self.stderr_all()[-1500:]))

    def close(self):
        self.demo.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
