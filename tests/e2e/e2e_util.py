"""Helpers for the end-to-end tests: run the built netloop-demo, talk to it with plain
Python sockets (stdlib only), and report failures clearly.

Every wait is bounded; the demo is killed on any failure so nothing is left running.
"""

import os
import random
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

BANNER = "tcp-echo listening on"


class Failure(Exception):
    """A check failed; the message says what and why."""


def clip(text, limit=1200):
    """Keeps failure messages readable. A sanitizer report is cut down to its error line
    and the first frames in this project's sources; anything else to its start."""
    if "Sanitizer" in text or "runtime error" in text:
        lines = text.splitlines()
        keep = [l.strip() for l in lines if "ERROR:" in l or "runtime error" in l][:2]
        keep += [l.strip() for l in lines if l.strip().startswith("#") and "../" in l
                 and "sanitizer_common" not in l and "/usr/include" not in l][:4]
        if keep:
            return " | ".join(keep)
    return text if len(text) <= limit else text[:limit] + "... [%d more chars]" % (len(text) - limit)


def check(cond, message):
    if not cond:
        raise Failure(message)


def ipv6_loopback_works():
    """True when a socket can bind [::1]:0 here."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def free_port(family=socket.AF_INET, host="127.0.0.1"):
    """A port the kernel just handed out (and took back): free unless someone races us."""
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def spec(host, port):
    return "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)


def family_of(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


class Closing:
    """A with-block closes it: for anything with a close()."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class Demo(Closing):
    """One netloop-demo process: stdout is a pipe (for the banner), stderr a file."""

    def __init__(self, exe, args):
        self.exe = exe
        self.args = list(args)
        self.err_file = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([exe] + self.args, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=self.err_file)
        self.out = b""

    def stderr_text(self):
        self.err_file.seek(0)
        return clip(self.err_file.read().decode(errors="replace"))

    def describe(self):
        return "netloop-demo %s (pid %d)" % (" ".join(self.args), self.proc.pid)

    def wait_banner(self, timeout=5.0, count=1):
        """Reads stdout until `count` banner lines show up; returns the first one."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while True:
            banners = [l for l in self.out.decode(errors="replace").splitlines() if BANNER in l]
            if len(banners) >= count:
                return banners[0]
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failure("%s: no '%s' line on stdout within %.0f s; stdout %r, stderr %r"
                              % (self.describe(), BANNER, timeout, self.out.decode(errors="replace"),
                                 self.stderr_text()))
            ready, _, _ = select.select([fd], [], [], min(left, 0.2))
            if ready:
                chunk = os.read(fd, 4096)
                if chunk:
                    self.out += chunk
                    continue
                # stdout closed: the process is exiting
                code = self.proc.wait(timeout=5)
                raise Failure("%s exited with code %s before its banner; stderr: %r"
                              % (self.describe(), code, self.stderr_text()))

    def stop(self, signo=signal.SIGTERM, timeout=5.0):
        """Sends `signo`; returns the exit code, or fails if it takes longer than `timeout`."""
        self.proc.send_signal(signo)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise Failure("%s did not exit within %.0f s of %s"
                          % (self.describe(), timeout, signal.Signals(signo).name))

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def close(self):
        self.kill()
        if self.proc.stdout:
            self.proc.stdout.close()
        self.err_file.close()


class DemoService:
    """The base of the tests' per-protocol wrappers (chat, HTTP, kv): owns a Demo started
    with `args`, whose banner `wait(demo)` reads (its result is returned by started());
    closes the demo if that fails and when a with-block ends; stop() expects exit 0."""

    def __init__(self, exe, args, wait):
        self.demo = Demo(exe, args)
        try:
            self._started = wait(self.demo)
        except BaseException:
            self.demo.close()
            raise

    def started(self):
        return self._started

    def check_exit(self, code):
        check(code == 0, "exit code %d after SIGTERM (expected 0); stderr: %r"
              % (code, self.demo.stderr_text()))

    def stop(self):
        """SIGTERM: the demo must exit 0."""
        self.check_exit(self.demo.stop(signal.SIGTERM, timeout=5))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.demo.close()
        return False


def start_echo(exe, host, extra=(), attempts=5):
    """Starts the demo serving TCP echo on host:<free port>. A port taken by someone else
    between our probe and the demo's bind is retried with another port.
    Returns (demo, port, banner line)."""
    last = ""
    for _ in range(attempts):
        port = free_port(family_of(host), host)
        demo = Demo(exe, ["--tcp-echo", spec(host, port)] + list(extra))
        try:
            banner = demo.wait_banner()
            return demo, port, banner
        except Failure as e:
            code = demo.proc.poll()
            err = demo.stderr_text()
            demo.close()
            if code == 2 and "in use" in err:
                last = str(e)
                continue
            raise
    raise Failure("could not find a free port in %d attempts: %s" % (attempts, last))


def run_demo(exe, args, timeout=5.0):
    """Runs the demo to completion (for options that exit at once); returns
    (exit code, stdout, stderr)."""
    try:
        p = subprocess.run([exe] + list(args), stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Failure("netloop-demo %s did not exit within %.0f s" % (" ".join(args), timeout))
    return (p.returncode, clip(p.stdout.decode(errors="replace"), 20000),
            clip(p.stderr.decode(errors="replace")))


def connect(host, port, timeout=10.0):
    s = socket.socket(family_of(host), socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect((host, port))
    return s


def exchange(sock, data, seed=0, timeout=20.0, max_chunk=16384):
    """Sends `data` in random-sized chunks while reading the echo back (so neither side
    can deadlock on full buffers); returns the bytes received once len(data) arrived.
    Fails on EOF, error or timeout."""
    rng = random.Random(seed)
    sock.setblocking(False)
    sent = 0
    got = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while len(got) < len(data):
            left = deadline - time.monotonic()
            check(left > 0, "echo timed out: sent %d of %d, received %d"
                  % (sent, len(data), len(got)))
            wlist = [sock] if sent < len(data) else []
            r, w, _ = select.select([sock], wlist, [], min(left, 0.5))
            if w:
                n = min(len(data) - sent, rng.randint(1, max_chunk))
                try:
                    sent += sock.send(data[sent:sent + n])
                except BlockingIOError:
                    pass
            if r:
                try:
                    chunk = sock.recv(rng.randint(1, 65536))
                except BlockingIOError:
                    continue
                check(chunk, "connection closed after %d of %d echoed bytes" % (len(got), len(data)))
                got += chunk
    finally:
        sock.setblocking(True)
    return bytes(got)


def check_echo(host, port, data, seed=0):
    with connect(host, port) as s:
        got = exchange(s, data, seed)
        if got != data:
            i = next((k for k in range(min(len(got), len(data))) if got[k] != data[k]),
                     min(len(got), len(data)))
            raise Failure("echo of %d bytes came back different (first difference at %d)"
                          % (len(data), i))


def concurrent_echo(host, port, clients=16, size=128 * 1024):
    """`clients` connections at once, each echoing `size` random bytes."""
    errors = []
    barrier = threading.Barrier(clients, timeout=10)

    def one(i):
        try:
            data = random.Random(i).randbytes(size)
            with connect(host, port) as s:
                barrier.wait()  # all connected before any byte moves
                got = exchange(s, data, seed=i)
                if got != data:
                    errors.append("client %d: echo differs" % i)
        except Exception as e:  # noqa: BLE001 - collected and reported below
            errors.append("client %d: %s: %s" % (i, type(e).__name__, e))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    check(not any(t.is_alive() for t in threads), "concurrent clients did not finish within 30 s")
    check(not errors, "concurrent echo failed: " + "; ".join(errors[:5]))


def wait_closed(sock, timeout=5.0):
    """True when the peer ends the stream (EOF or reset) within `timeout`."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def wait_banner(demo, service, timeout=5.0):
    """Reads the demo's stdout until "SERVICE listening on HOST:PORT (" appears; returns
    (host without brackets, port, the line). Fails when the demo exits first or the line
    does not come within `timeout` seconds."""
    pattern = re.compile(re.escape(service) + r" listening on (\S+):(\d+) \(")
    deadline = time.monotonic() + timeout
    fd = demo.proc.stdout.fileno()
    while True:
        for line in demo.out.decode(errors="replace").splitlines():
            m = pattern.search(line)
            if m:
                host = m.group(1)
                if host.startswith("["):
                    host = host[1:-1]
                return host, int(m.group(2)), line
        left = deadline - time.monotonic()
        if left <= 0:
            raise Failure("%s: no '%s listening on' line within %.0f s; stdout %r, stderr %r"
                          % (demo.describe(), service, timeout, demo.out.decode(errors="replace"),
                             demo.stderr_text()))
        ready, _, _ = select.select([fd], [], [], min(left, 0.2))
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                code = demo.proc.wait(timeout=5)
                raise Failure("%s exited with code %s before its banner; stderr: %r"
                              % (demo.describe(), code, demo.stderr_text()))
            demo.out += chunk


def main(tests, argv):
    """Runs each (name, fn(exe)) in `tests`; prints PASS/FAIL/SKIP lines; exit code 1 on
    any failure."""
    if len(argv) != 2:
        print("usage: %s PATH/TO/netloop-demo" % argv[0], file=sys.stderr)
        return 2
    exe = os.path.abspath(argv[1])
    if not os.access(exe, os.X_OK):
        print("FAIL: %s is not an executable" % exe)
        return 1
    failed = 0
    for name, fn in tests:
        t0 = time.monotonic()
        try:
            note = fn(exe)
            if note and note.startswith("SKIP"):
                print("SKIP %s: %s" % (name, note[5:].strip()))
            else:
                print("PASS %s (%.2f s)%s" % (name, time.monotonic() - t0,
                                             (": " + note) if note else ""))
        except Failure as e:
            failed += 1
            print("FAIL %s: %s" % (name, e))
        except Exception as e:  # noqa: BLE001 - any surprise is a failure too
            failed += 1
            print("FAIL %s: unexpected %s: %s" % (name, type(e).__name__, e))
        sys.stdout.flush()
    print("%d of %d e2e checks failed" % (failed, len(tests)) if failed
          else "all %d e2e checks passed" % len(tests))
    return 1 if failed else 0


# ---------------------------------------------------------------------------------------
# The TCP proxy (--tcp-proxy): the tests of it against netloop's echo, redis and nginx


def read_to_end(sock):
    """Everything `sock` receives until the peer ends the stream."""
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def read_metrics(port):
    """{'name{labels}': value} from GET /metrics on 127.0.0.1:`port` (plain sockets, no
    proxy settings)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = read_to_end(s)
    head, _, body = data.partition(b"\r\n\r\n")
    check(head.startswith(b"HTTP/1.1 200"), "GET /metrics: %r" % head[:100])
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


class ProxyDemo(Closing):
    """netloop-demo proxying LISTEN (default 127.0.0.1:0) to `upstreams` ("HOST:PORT"
    strings), with a --metrics endpoint; `port` is the proxy's, `metrics_port` the
    endpoint's, `pid` the process to watch."""

    def __init__(self, exe, upstreams, extra=(), listen="127.0.0.1:0"):
        args = ["--tcp-proxy", listen + "=" + ",".join(upstreams), "--metrics", "127.0.0.1:0",
                "--log-level", "warn"] + list(extra)
        self.demo = Demo(exe, args)
        try:
            self.host, self.port, self.banner = wait_banner(self.demo, "tcp-proxy")
            _, self.metrics_port, _ = wait_banner(self.demo, "metrics")
        except BaseException:
            self.demo.close()
            raise
        self.pid = self.demo.proc.pid

    def alive(self):
        return self.demo.proc.poll() is None

    def metrics(self):
        return read_metrics(self.metrics_port)

    def upstream_metric(self, name, upstream, **labels):
        """One per-upstream proxy counter, e.g. upstream_metric("connects", "127.0.0.1:7007")."""
        extra = "".join(',%s="%s"' % kv for kv in labels.items())
        for key, value in self.metrics().items():
            if (key.startswith("netloop_proxy_upstream_%s_total{" % name)
                    and 'upstream="%s"' % upstream in key and key.endswith(extra + "}")):
                return int(value)
        raise Failure("no netloop_proxy_upstream_%s_total for %s in /metrics" % (name, upstream))

    def rss_kib(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise Failure("no VmRSS in /proc/%d/status" % self.pid)

    def fd_count(self):
        return len(os.listdir("/proc/%d/fd" % self.pid))

    def stop(self):
        code = self.demo.stop(signal.SIGTERM, timeout=15)
        check(code == 0, "the proxy exited %d after SIGTERM; stderr: %r" % (code, self.demo.stderr_text()))

    def close(self):
        self.demo.close()


def closed_port(host="127.0.0.1"):
    """A port nothing listens on (bound and released)."""
    return free_port(family_of(host), host)


def wait_ended(sock, timeout=5.0):
    """How the peer ended the stream within `timeout`: "eof", "reset", or "open"."""
    sock.settimeout(timeout)
    try:
        data = sock.recv(1)
        return "eof" if data == b"" else "data"
    except ConnectionResetError:
        return "reset"
    except socket.timeout:
        return "open"
