#!/usr/bin/env python3
"""E2E: the built netloop-load drives real servers on loopback and its --json numbers are
checked: `http` against netloop-demo's HTTP server (200s, a 404 path, pipelining, a host
name, a refused port, bad URLs) and against small Python servers that frame responses
in every way (chunked, close-delimited, "Connection: close" then a new connection) or
send garbage; `resp` against netloop-demo --kv (PING, SET, GET, pipelined) and a Python
server answering errors; `tcp-echo` against the demo's echo.

Usage:
  test_load_generator.py PATH/TO/netloop-demo PATH/TO/netloop-load
  test_load_generator.py PATH/TO/netloop-demo PATH/TO/netloop-load redis
The second form drives redis-server instead (started here on a free port, persistence
off) and exits 77 (meson: SKIP) when redis-server is not installed."""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

from e2e_util import (Closing, Demo, DemoService, Failure, check, clip, free_port, start_echo,
                      wait_banner)

SKIP_EXIT = 77
RUN_TIMEOUT_S = 30


# ---------------------------------------------------------------------------------------
# Running netloop-load

class Run:
    def __init__(self, argv, proc):
        self.argv = argv
        self.code = proc.returncode
        self.out = proc.stdout.decode(errors="replace")
        self.err = proc.stderr.decode(errors="replace")
        self.json = None
        if self.out.strip().startswith("{"):
            try:
                self.json = json.loads(self.out)
            except ValueError as e:
                raise Failure("netloop-load printed broken JSON (%s): %r" % (e, self.out[:300]))

    def describe(self):
        return "netloop-load %s: exit %d, stdout %r, stderr %r" % (
            " ".join(self.argv), self.code, clip(self.out, 600), clip(self.err, 600))


def load(exe, *args):
    argv = [str(a) for a in args]
    try:
        p = subprocess.run([exe] + argv, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise Failure("netloop-load %s did not exit within %d s" % (" ".join(argv), RUN_TIMEOUT_S))
    return Run(argv, p)


def clean_json(run, scenario):
    """The JSON of a run that must have succeeded, with the checks every clean run passes."""
    check(run.code == 0, run.describe())
    j = run.json
    check(j is not None, "no JSON: " + run.describe())
    check(j["scenario"] == scenario, "scenario %r: %s" % (j["scenario"], run.describe()))
    check(j["errors"] == 0, "errors: " + run.describe())
    check(j["interrupted"] is False, "interrupted: " + run.describe())
    check(j["requests"] > 0 and j["total_requests"] >= j["requests"], "no requests: " + run.describe())
    check(j["requests_per_s"] > 0, "requests_per_s: " + run.describe())
    check(abs(j["requests_per_s"] * j["measured_s"] - j["requests"]) <= 1 + j["requests"] * 1e-6,
          "requests_per_s is not requests / measured_s: " + run.describe())
    check(j["measured_s"] >= j["duration_s"] * 0.9, "measured only %.3f s: %s" % (j["measured_s"], run.describe()))
    lat = j["latency_us"]
    check(0 < lat["min"] <= lat["p50"] <= lat["p99"] <= lat["p999"] <= lat["max"],
          "latency percentiles out of order: " + run.describe())
    if not j.get("reconnects"):  # a connection being made again is not live
        check(j["live_connections"] == j["connections"], "connections lost: " + run.describe())
    return j


# ---------------------------------------------------------------------------------------
# Servers

class HttpDemo(DemoService):
    def __init__(self, exe, root=None):
        args = ["--http", "127.0.0.1:0", "--log-level", "warn"] + (["--root", root] if root else [])
        super().__init__(exe, args, lambda d: wait_banner(d, "http"))
        self.host, self.port, _ = self.started()

    def url(self, path="/"):
        return "http://127.0.0.1:%d%s" % (self.port, path)


class KvDemo(DemoService):
    def __init__(self, exe):
        super().__init__(exe, ["--kv", "127.0.0.1:0", "--log-level", "warn"], lambda d: wait_banner(d, "kv"))
        self.host, self.port, _ = self.started()


class ScriptedServer(Closing):
    """A loopback TCP server in a thread: each connection runs serve(sock, stats)."""

    def __init__(self, serve):
        self.serve = serve
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.port = self.listener.getsockname()[1]
        self.stats = {"connections": 0, "requests": 0, "max_requests_per_read": 0}
        self.lock = threading.Lock()
        self.stopping = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopping:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.stats["connections"] += 1
            threading.Thread(target=self._one, args=(sock,), daemon=True).start()

    def _one(self, sock):
        try:
            self.serve(self, sock)
        except OSError:
            pass
        finally:
            sock.close()

    def count(self, requests):
        with self.lock:
            self.stats["requests"] += requests
            self.stats["max_requests_per_read"] = max(self.stats["max_requests_per_read"], requests)

    def close(self):
        self.stopping = True
        self.listener.close()


def http_requests(sock, buf):
    """Reads once; returns (complete requests, leftover) or None at EOF."""
    chunk = sock.recv(65536)
    if not chunk:
        return None
    buf += chunk
    reqs = []
    while b"\r\n\r\n" in buf:
        head, buf = buf.split(b"\r\n\r\n", 1)
        reqs.append(head)
    return reqs, buf


# ---------------------------------------------------------------------------------------
# http against netloop-demo

def test_http_200(demo_exe, load_exe):
    with HttpDemo(demo_exe) as d:
        r = load(load_exe, "http", d.url("/"), "--connections", 4, "--duration", 1, "--json")
        j = clean_json(r, "http")
        check(j["status"] == {"200": j["requests"]}, "status counts: " + r.describe())
        check(j["mb_per_s"] > 0, "mb_per_s: " + r.describe())
        # Pipeline 1: one write per request (and those still unanswered at the end).
        check(j["total_requests"] <= j["writes"] <= j["total_requests"] + 4, "writes: " + r.describe())
        check(j["path"] == "/" and j["port"] == d.port, "target fields: " + r.describe())
        d.stop()
        return "%.0f requests/s" % j["requests_per_s"]


def test_http_404(demo_exe, load_exe):
    with HttpDemo(demo_exe) as d:
        r = load(load_exe, "http", d.url("/no-such-file.html"), "--connections", 2, "--duration", 0.5,
                 "--warmup", 0.2, "--json")
        j = clean_json(r, "http")
        check(j["status"] == {"404": j["requests"]}, "status counts: " + r.describe())
        d.stop()


def test_http_pipeline(demo_exe, load_exe):
    with HttpDemo(demo_exe) as d:
        r = load(load_exe, "http", d.url("/"), "--connections", 2, "--duration", 0.5, "--pipeline", 16,
                 "--json")
        j = clean_json(r, "http")
        check(j["pipeline"] == 16, "pipeline: " + r.describe())
        # Several requests in one write: the refill after each read sends all it may at once.
        check(j["total_requests"] >= 4 * j["writes"], "fewer than 4 requests per write: " + r.describe())
        check(j["status"] == {"200": j["requests"]}, "status counts: " + r.describe())
        d.stop()
        return "%.0f requests/s" % j["requests_per_s"]


def test_http_host_name(demo_exe, load_exe):
    """"localhost" is resolved by the Connector (it may try ::1 first: nothing listens there)."""
    with HttpDemo(demo_exe) as d:
        r = load(load_exe, "http", "http://localhost:%d/" % d.port, "--connections", 2,
                 "--duration", 0.3, "--json")
        j = clean_json(r, "http")
        check(j["host"] == "localhost", "host: " + r.describe())
        check(j["status"] == {"200": j["requests"]}, "status counts: " + r.describe())
        d.stop()


def test_http_table(demo_exe, load_exe):
    with HttpDemo(demo_exe) as d:
        r = load(load_exe, "http", d.url("/"), "--connections", 1, "--duration", 0.2)
        check(r.code == 0, r.describe())
        for want in ("requests/s", "latency (us)", "status         200: ", "errors         0"):
            check(want in r.out, "the table has no %r: %s" % (want, r.describe()))
        d.stop()


def test_http_refused(demo_exe, load_exe):
    port = free_port()  # nothing listens there
    r = load(load_exe, "http", "http://127.0.0.1:%d/" % port, "--connections", 3, "--duration", 1, "--json")
    check(r.code == 1, "exit code (expected 1): " + r.describe())
    check(r.json is None, "JSON printed for a run that never started: " + r.describe())
    check("refused" in r.err and "127.0.0.1:%d" % port in r.err,
          "stderr does not say the connection was refused: " + r.describe())
    check("3 of 3 connections" in r.err, "stderr does not count the failures: " + r.describe())


def test_bad_urls(demo_exe, load_exe):
    for url, want in (("ftp://127.0.0.1:8443/", "unsupported scheme 'ftp'"),
                      ("http://[::1/", "']'"), ("127.0.0.1:80", "not an http:// URL")):
        r = load(load_exe, "http", url, "--connections", 1, "--duration", 1)
        check(r.code == 2, "exit code (expected 2 for a bad URL): " + r.describe())
        check(want in r.err, "stderr lacks %r: %s" % (want, r.describe()))


# ---------------------------------------------------------------------------------------
# http against scripted servers: framing, reconnecting, garbage

BODY = b"0123456789"
CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\n012\r\n7\r\n3456789\r\n0\r\nT: 1\r\n\r\n"
LENGTH = b"HTTP/1.1 201 Created\r\nContent-Length: 10\r\n\r\n" + BODY
NO_CONTENT = b"HTTP/1.1 204 No Content\r\n\r\n"


def serve_mixed(server, sock):
    """Answers in turn with chunked, Content-Length and 204 responses; after 25 responses
    on a connection the last says "Connection: close" and the connection ends."""
    buf = b""
    answered = 0
    while True:
        got = http_requests(sock, buf)
        if got is None:
            return
        reqs, buf = got
        server.count(len(reqs))
        out = b""
        for _ in reqs:
            answered += 1
            if answered == 25:
                out += b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 10\r\n\r\n" + BODY
                sock.sendall(out)
                return
            out += (CHUNKED, LENGTH, NO_CONTENT)[answered % 3]
        sock.sendall(out)


def test_http_framing_and_reconnect(demo_exe, load_exe):
    with ScriptedServer(serve_mixed) as s:
        r = load(load_exe, "http", "http://127.0.0.1:%d/p" % s.port, "--connections", 2, "--duration", 0.5,
                 "--pipeline", 4, "--json")
        j = clean_json(r, "http")
        st = j["status"]
        check(set(st) <= {"200", "201", "204"} and len(st) == 3, "status counts: " + r.describe())
        check(sum(st.values()) == j["requests"], "status counts do not add up: " + r.describe())
        check(j["reconnects"] > 0 and s.stats["connections"] > 2,
              "no new connection after Connection: close: %s; server saw %r" % (r.describe(), s.stats))
        check(s.stats["max_requests_per_read"] > 1,
              "the pipelined requests never arrived together: %r" % s.stats)
        return "%d reconnects, up to %d requests per read" % (j["reconnects"], s.stats["max_requests_per_read"])


def serve_until_close(server, sock):
    """HTTP/1.0 style: no length, the body ends with the connection."""
    got = http_requests(sock, b"")
    if got:
        server.count(len(got[0]))
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + BODY * 5)


def test_http_body_until_close(demo_exe, load_exe):
    with ScriptedServer(serve_until_close) as s:
        r = load(load_exe, "http", "http://127.0.0.1:%d/" % s.port, "--connections", 1, "--duration", 0.3,
                 "--json")
        j = clean_json(r, "http")
        check(j["status"] == {"200": j["requests"]}, "status counts: " + r.describe())
        check(j["reconnects"] >= j["requests"] - 1, "one connection per response expected: " + r.describe())


def serve_garbage(server, sock):
    got = http_requests(sock, b"")
    if got:
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokJUNK\r\n\r\n")
        time.sleep(0.5)


def test_http_malformed(demo_exe, load_exe):
    with ScriptedServer(serve_garbage) as s:
        r = load(load_exe, "http", "http://127.0.0.1:%d/" % s.port, "--connections", 1, "--duration", 0.3,
                 "--json")
        check(r.code == 1, "exit code (expected 1): " + r.describe())
        check(r.json is not None and r.json["errors"] > 0, "errors not counted: " + r.describe())
        check("malformed response: malformed status line" in r.err, "stderr: " + r.describe())


def serve_hang_up(server, sock):
    got = http_requests(sock, b"")
    if got:
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part of it")


def test_http_cut_short(demo_exe, load_exe):
    with ScriptedServer(serve_hang_up) as s:
        r = load(load_exe, "http", "http://127.0.0.1:%d/" % s.port, "--connections", 1, "--duration", 0.3,
                 "--json")
        check(r.code == 1, "exit code (expected 1): " + r.describe())
        check(r.json["errors"] > 0 and r.json["requests"] == 0, "counts: " + r.describe())
        check("in the middle of a response" in r.err, "stderr: " + r.describe())


# ---------------------------------------------------------------------------------------
# resp

def resp_run(load_exe, port, command, *extra):
    r = load(load_exe, "resp", "127.0.0.1:%d" % port, "--connections", 4, "--duration", 0.5,
             "--command", command, "--json", *extra)
    return r, clean_json(r, "resp")


def check_resp_server(load_exe, port):
    """PING, SET and GET; each GET reads a key nothing set before, so its bulk replies show
    that every connection set the key first."""
    notes = []
    fresh = "e2e:%d:%%d" % os.getpid()
    for command, kind, extra in (("ping", "simple", ()), ("set", "simple", ("--size", 100)),
                                 ("get", "bulk", ("--size", 100, "--key", fresh % 1)),
                                 ("get", "bulk", ("--pipeline", 16, "--key", fresh % 2))):
        r, j = resp_run(load_exe, port, command, *extra)
        replies = j["replies"]
        check(replies[kind] == j["requests"] and sum(replies.values()) == j["requests"],
              "%s: reply types %r: %s" % (command, replies, r.describe()))
        check(j["error_replies"] == 0, "error replies: " + r.describe())
        notes.append("%s%s %.0f/s" % (command, " -P16" if "--pipeline" in extra else "", j["requests_per_s"]))
    return ", ".join(notes)


def test_resp_demo_kv(demo_exe, load_exe):
    with KvDemo(demo_exe) as d:
        note = check_resp_server(load_exe, d.port)
        d.stop()
        return note


def serve_resp_errors(server, sock):
    buf = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return
        buf += chunk
        n = buf.count(b"PING\r\n")
        buf = buf[buf.rfind(b"PING\r\n") + 6:] if n else buf
        server.count(n)
        sock.sendall(b"-ERR nope, not today\r\n" * n)


def test_resp_error_replies(demo_exe, load_exe):
    with ScriptedServer(serve_resp_errors) as s:
        r, j = resp_run(load_exe, s.port, "ping", "--pipeline", 3)
        check(j["replies"]["error"] == j["requests"] == j["error_replies"], "error counts: " + r.describe())
        check("error reply: ERR nope, not today" in r.err, "the first error reply is not shown: " + r.describe())


def test_tcp_echo(demo_exe, load_exe):
    demo, port, _ = start_echo(demo_exe, "127.0.0.1")
    with demo:
        r = load(load_exe, "tcp-echo", "localhost:%d" % port, "--connections", 3, "--size", 100,
                 "--pipeline", 4, "--duration", 0.3, "--json")
        check(r.code == 0, r.describe())
        j = r.json
        check(j["messages"] > 0 and j["errors"] == 0 and j["mismatches"] == 0, r.describe())
        check(j["live_connections"] == 3, r.describe())


# ---------------------------------------------------------------------------------------
# resp against redis-server

def test_resp_redis(demo_exe, load_exe):
    redis = shutil.which("redis-server") or ("/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK) else None)
    if redis is None:
        return "SKIP redis-server is not installed (apt-get install redis-server)"
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="load-redis-") as tmp:
        proc = subprocess.Popen([redis, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                 "--appendonly", "no", "--daemonize", "no", "--dir", tmp,
                                 "--loglevel", "warning"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1) as c:
                        c.sendall(b"PING\r\n")
                        if c.recv(16).startswith(b"+PONG"):
                            break
                except OSError:
                    pass
                check(proc.poll() is None, "redis-server exited at start (status %s)" % proc.returncode)
                check(time.monotonic() < deadline, "redis-server did not answer PING within 10 s")
                time.sleep(0.05)
            return check_resp_server(load_exe, port)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


TESTS = [
    ("http: 200s from netloop-demo's built-in page, --json numbers", test_http_200),
    ("http: a 404 path counts 404s", test_http_404),
    ("http: --pipeline 16", test_http_pipeline),
    ("http: a host name (localhost) through the Connector", test_http_host_name),
    ("http: the table", test_http_table),
    ("http: a refused port is a clear error, exit 1", test_http_refused),
    ("http: https and bad URLs are usage errors, exit 2", test_bad_urls),
    ("http: chunked, Content-Length, 204, Connection: close and a new connection", test_http_framing_and_reconnect),
    ("http: a body delimited by the close", test_http_body_until_close),
    ("http: garbage after a response is an error", test_http_malformed),
    ("http: a response cut short is an error", test_http_cut_short),
    ("resp: PING, SET, GET and pipelined GET against netloop-demo --kv", test_resp_demo_kv),
    ("resp: error replies are counted and the first shown", test_resp_error_replies),
    ("tcp-echo: through the Connector, to a host name", test_tcp_echo),
]

REDIS_TESTS = [("resp: PING, SET, GET and pipelined GET against redis-server", test_resp_redis)]


def main(argv):
    if len(argv) not in (3, 4) or (len(argv) == 4 and argv[3] != "redis"):
        print(__doc__, file=sys.stderr)
        return 2
    demo_exe, load_exe = os.path.abspath(argv[1]), os.path.abspath(argv[2])
    for exe in (demo_exe, load_exe):
        if not os.access(exe, os.X_OK):
            print("FAIL: %s is not an executable" % exe)
            return 1
    tests = REDIS_TESTS if len(argv) == 4 else TESTS
    failed = skipped = 0
    for name, fn in tests:
        t0 = time.monotonic()
        try:
            note = fn(demo_exe, load_exe)
            if note and note.startswith("SKIP"):
                skipped += 1
                print("SKIP %s: %s" % (name, note[5:]))
            else:
                print("PASS %s (%.2f s)%s" % (name, time.monotonic() - t0, (": " + note) if note else ""))
        except Failure as e:
            failed += 1
            print("FAIL %s: %s" % (name, e))
        except Exception as e:  # noqa: BLE001 - any surprise is a failure too
            failed += 1
            print("FAIL %s: unexpected %s: %s" % (name, type(e).__name__, e))
        sys.stdout.flush()
    if failed:
        print("%d of %d checks failed" % (failed, len(tests)))
        return 1
    if skipped == len(tests):
        return SKIP_EXIT
    print("all %d checks passed" % (len(tests) - skipped))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
