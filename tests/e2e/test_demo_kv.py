#!/usr/bin/env python3
"""E2E: the built netloop-demo serves the key-value example (--kv) to real clients: a raw
Python RESP client (SET/GET/DEL/PING, pipelining, binary and large values, inline
commands, protocol errors, QUIT, a client that does not read), and redis-cli and
redis-benchmark when they are installed (Debian's redis-tools).
Usage: test_demo_kv.py PATH/TO/netloop-demo"""

import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

from e2e_util import Closing, DemoService, Failure, check, clip, main, wait_banner, wait_closed

APT_HINT = "apt-get install redis-tools"


# ---------------------------------------------------------------------------------------
# The demo

def wait_kv_banner(demo, timeout=5.0):
    """Reads the demo's stdout until "kv listening on HOST:PORT"; returns (host, port)."""
    host, port, _ = wait_banner(demo, "kv", timeout)
    return host, port


class KvDemo(DemoService):
    """netloop-demo --kv 127.0.0.1:0 (the kernel picks the port)."""

    def __init__(self, exe, extra=()):
        super().__init__(exe, ["--kv", "127.0.0.1:0", "--log-level", "warn"] + list(extra),
                         wait_kv_banner)
        self.host, self.port = self.started()
        check(self.host == "127.0.0.1" and self.port != 0, "banner: %r" % self.demo.out)

    def client(self, timeout=10.0):
        return Resp(socket.create_connection((self.host, self.port), timeout=timeout))


# ---------------------------------------------------------------------------------------
# A raw RESP2 client

class Error(str):
    """An error reply (-ERR ...), as its text."""


def encode(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Resp(Closing):
    """A socket and the bytes read from it: a bytearray and a read position, so reading
    many small replies out of a large buffer costs no copying of the rest."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()
        self.pos = 0

    def close(self):
        self.sock.close()


    def _fill(self):
        if self.pos > 65536 and self.pos * 2 > len(self.buf):
            del self.buf[:self.pos]
            self.pos = 0
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise Failure("connection closed with %d unparsed bytes: %r"
                          % (len(self.buf) - self.pos, bytes(self.buf[self.pos:self.pos + 200])))
        self.buf += chunk

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n", self.pos)
            if i >= 0:
                line = bytes(self.buf[self.pos:i])
                self.pos = i + 2
                return line
            self._fill()

    def read(self):
        """One reply: bytes (bulk), None (null bulk), int, str (simple), Error, or a list."""
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return Error(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) - self.pos < n + 2:
                self._fill()
            end = self.pos + n
            check(self.buf[end:end + 2] == b"\r\n", "bulk of %d bytes not followed by CRLF" % n)
            value = bytes(self.buf[self.pos:end])
            self.pos = end + 2
            return value
        if kind == b"*":
            return [self.read() for _ in range(int(rest))]
        raise Failure("malformed reply line %r" % line[:200])

    def call(self, *args):
        self.sock.sendall(encode(*args))
        return self.read()

    def ends(self, timeout=3.0):
        check(self.pos == len(self.buf), "unexpected bytes after the last reply: %r"
              % bytes(self.buf[self.pos:self.pos + 200]))
        return wait_closed(self.sock, timeout)


def expect(got, want, what):
    check(got == want, "%s: got %r, want %r" % (what, got if not isinstance(got, bytes) or len(got) < 200
                                                 else got[:200] + b"...", want))


# ---------------------------------------------------------------------------------------
# Tests

def test_raw_client(exe):
    with KvDemo(exe) as d:
        with d.client() as c:
            raw_client_checks(d, c)
        d.stop()


def raw_client_checks(d, c):
    expect(c.call("PING"), "PONG", "PING")
    expect(c.call("PING", "hello"), b"hello", "PING hello")
    expect(c.call("SET", "k", "v"), "OK", "SET")
    expect(c.call("GET", "k"), b"v", "GET")
    expect(c.call("GET", "missing"), None, "GET missing")
    binary = bytes(range(256)) + b"\r\n*1\r\n$3\r\n\x00"
    expect(c.call("SET", binary, binary * 3), "OK", "SET binary")
    expect(c.call("GET", binary), binary * 3, "GET binary")
    expect(c.call("EXISTS", "k", binary, "missing", "k"), 3, "EXISTS")
    expect(c.call("DBSIZE"), 2, "DBSIZE")
    expect(c.call("DEL", "k", "missing", binary), 2, "DEL")
    expect(c.call("GET", "k"), None, "GET after DEL")
    expect(c.call("DBSIZE"), 0, "DBSIZE after DEL")
    expect(c.call("SET", "t", "v", "PX", "100"), "OK", "SET PX")
    expect(c.call("GET", "t"), b"v", "GET before expiry")
    time.sleep(0.25)
    expect(c.call("GET", "t"), None, "GET after expiry")
    expect(c.call("ECHO", "x"), b"x", "ECHO")
    expect(c.call("CONFIG", "GET", "save"), [b"save", b""], "CONFIG GET save")
    expect(c.call("FLUSHALL"), "OK", "FLUSHALL")
    expect(c.call("NOPE", "a"), "ERR unknown command 'NOPE', with args beginning with: 'a' ", "NOPE")
    expect(c.call("GET"), "ERR wrong number of arguments for 'get' command", "GET arity")
    # Inline commands, as telnet sends them.
    c.sock.sendall(b"set greeting \"hello world\"\r\nget greeting\r\nPING\n")
    expect(c.read(), "OK", "inline SET")
    expect(c.read(), b"hello world", "inline GET")
    expect(c.read(), "PONG", "inline PING")
    # A value far larger than the connection's input limit (--max-input, 1 MiB).
    big = random.Random(5).randbytes(5 * 1024 * 1024 + 3)
    expect(c.call("SET", "big", big), "OK", "SET 5 MiB")
    got = c.call("GET", "big")
    check(got == big, "GET 5 MiB: %d bytes back, differ" % (len(got) if isinstance(got, bytes) else -1))
    # A second client sees the same store.
    with d.client() as c2:
        expect(c2.call("EXISTS", "big", "greeting"), 2, "EXISTS from a second client")


def test_pipelined(exe):
    with KvDemo(exe) as d:
        with d.client() as c:
            pipelined_checks(c)
        d.stop()


def pipelined_checks(c):
    n = 1000
    batch = []
    for i in range(n):
        batch.append(encode("SET", "key:%d" % i, "value %d\r\n" % i) if i % 2 == 0
                     else encode("GET", "key:%d" % (i - 1)))
    c.sock.sendall(b"".join(batch))  # one write
    for i in range(n):
        want = "OK" if i % 2 == 0 else ("value %d\r\n" % (i - 1)).encode()
        expect(c.read(), want, "pipelined reply %d" % i)
    # The same, pipelined with redis-benchmark's inline PING in between, sent in
    # random pieces.
    rng = random.Random(11)
    stream = b"".join(encode("GET", "key:%d" % (2 * i)) + b"PING\r\n" for i in range(200))
    pos = 0
    while pos < len(stream):
        k = rng.randint(1, 700)
        c.sock.sendall(stream[pos:pos + k])
        pos += k
    for i in range(200):
        expect(c.read(), ("value %d\r\n" % (2 * i)).encode(), "GET %d" % i)
        expect(c.read(), "PONG", "PING %d" % i)


def test_slow_reader(exe):
    """A client that pipelines far more than the server buffers, reading nothing until it
    has sent everything: the server stops reading and catches up; every reply arrives."""
    with KvDemo(exe) as d:
        with d.client(timeout=30) as c:
            slow_reader_checks(c)
        d.stop()


def slow_reader_checks(c):
    value = b"v" * 1000
    expect(c.call("SET", "k", value), "OK", "SET")
    n = 20000  # ~20 MB of replies
    errors = []

    def sender():
        try:
            c.sock.sendall(encode("GET", "k") * n + encode("PING"))
        except OSError as e:
            errors.append(repr(e))

    t = threading.Thread(target=sender)
    t.start()
    time.sleep(0.5)  # let the server's output back up
    for i in range(n):
        got = c.read()
        if got != value:
            raise Failure("reply %d of %d: %r" % (i, n, got if not isinstance(got, bytes) else got[:50]))
    expect(c.read(), "PONG", "the last reply")
    t.join(timeout=30)
    check(not t.is_alive() and not errors, "sender: %s" % errors)


def test_errors_close(exe):
    with KvDemo(exe) as d:
        with d.client() as c:
            c.sock.sendall(b"PING\r\n*1\r\n$-5\r\n" + encode("SET", "after", "error"))
            expect(c.read(), "PONG", "before the error")
            expect(c.read(), "ERR Protocol error: invalid bulk length", "protocol error")
            check(c.ends(), "the connection stayed open after a protocol error")
        with d.client() as c:
            c.sock.sendall(encode("PING") + encode("QUIT") + encode("SET", "after", "quit"))
            expect(c.read(), "PONG", "before QUIT")
            expect(c.read(), "OK", "QUIT")
            check(c.ends(), "the connection stayed open after QUIT")
        with d.client() as c:
            expect(c.call("EXISTS", "after"), 0, "nothing after the error or QUIT ran")
        d.stop()


def run(argv, timeout=60, input_bytes=None):
    try:
        p = subprocess.run(argv, input=input_bytes, stdin=None if input_bytes is not None else subprocess.DEVNULL,
                           capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Failure("%s did not finish within %d s" % (" ".join(argv), timeout))
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def test_redis_cli(exe):
    cli = shutil.which("redis-cli")
    if not cli:
        return "SKIP redis-cli is not installed (%s)" % APT_HINT
    with KvDemo(exe) as d:
        base = [cli, "-h", "127.0.0.1", "-p", str(d.port)]

        def cli_out(*args, **kw):
            code, out, err = run(base + list(args), timeout=20, **kw)
            check(code == 0, "redis-cli %s exited %d: %s %s" % (" ".join(args), code, out, err))
            return out

        expect(cli_out("ping"), "PONG\n", "redis-cli ping")
        expect(cli_out("set", "greeting", "hello world"), "OK\n", "redis-cli set")
        expect(cli_out("get", "greeting"), "hello world\n", "redis-cli get")
        expect(cli_out("--no-raw", "get", "greeting"), '"hello world"\n', "redis-cli --no-raw get")
        expect(cli_out("exists", "greeting", "nope"), "1\n", "redis-cli exists")
        expect(cli_out("del", "greeting"), "1\n", "redis-cli del")
        expect(cli_out("--no-raw", "get", "greeting"), "(nil)\n", "redis-cli get after del")
        expect(cli_out("-x", "set", "fromstdin", input_bytes=b"line one\nline two\n"), "OK\n", "redis-cli -x set")
        expect(cli_out("get", "fromstdin"), "line one\nline two\n\n", "redis-cli get -x value")
        out = cli_out("nosuchcommand", "arg")
        check("ERR unknown command 'nosuchcommand'" in out, "redis-cli unknown command: %r" % out)
        # Several commands through one connection, as a script would pipe them in.
        out = cli_out(input_bytes=b"SET a 1\nGET a\nDBSIZE\nPING\n")
        expect(out, "OK\n1\n2\nPONG\n", "redis-cli reading commands from stdin")
        d.stop()


def test_redis_benchmark(exe):
    bench = shutil.which("redis-benchmark")
    if not bench:
        return "SKIP redis-benchmark is not installed (%s)" % APT_HINT
    with KvDemo(exe) as d:
        notes = []
        for extra in ([], ["-P", "16"]):
            argv = [bench, "-h", "127.0.0.1", "-p", str(d.port), "-t", "ping,set,get",
                    "-n", "2000", "-c", "10", "-q"] + extra
            code, out, err = run(argv, timeout=60)
            text = out + err
            check(code == 0, "%s exited %d: %s" % (" ".join(argv), code, clip(text)))
            # Errors from the server are printed ("Error from server: ..."); a failed
            # CONFIG GET at start gives "WARNING: Could not fetch server CONFIG".
            check("rror" not in text and "WARNING" not in text,
                  "%s reports errors: %s" % (" ".join(argv[7:]), clip(text, 3000)))
            rates = {}
            for line in re.split(r"[\r\n]+", out):
                m = re.match(r"\s*(PING_INLINE|PING_MBULK|SET|GET): ([\d.]+) requests per second", line)
                if m:
                    rates[m.group(1)] = float(m.group(2))
            check(set(rates) == {"PING_INLINE", "PING_MBULK", "SET", "GET"} and all(rates.values()),
                  "redis-benchmark %s: tests missing from its report: %s" % (" ".join(extra), clip(out, 3000)))
            notes.append("%s%s" % ("-P 16 " if extra else "",
                                   " ".join("%s %.0f/s" % kv for kv in rates.items())))
        # Its SETs stored a 3-byte value (-d 3) under key:__rand_int__ (no -r: one key).
        with d.client() as c:
            got = c.call("GET", "key:__rand_int__")
            check(isinstance(got, bytes) and len(got) == 3, "the key redis-benchmark set: %r" % (got,))
            expect(c.call("DBSIZE"), 1, "keys after redis-benchmark")
        d.stop()
        return "; ".join(notes)


def test_sigterm(exe):
    with KvDemo(exe) as d:
        idle = d.client()
        expect(idle.call("PING"), "PONG", "PING")
        partial = d.client()
        partial.sock.sendall(b"*2\r\n$3\r\nGET\r\n")
        time.sleep(0.1)
        # The clients must see the end of the stream first: a server that drains its
        # connections gracefully may wait for them to close their side before it exits.
        d.demo.proc.send_signal(signal.SIGTERM)
        check(idle.ends(), "an idle client was not closed on SIGTERM")
        check(partial.ends(), "a client mid-command was not closed on SIGTERM")
        idle.close()
        partial.close()
        try:
            code = d.demo.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            raise Failure("%s did not exit within 15 s of SIGTERM" % d.demo.describe())
        check(code == 0, "exit code %d after SIGTERM (expected 0); stderr: %r" % (code, d.demo.stderr_text()))


TESTS = [
    ("raw RESP client: SET/GET/DEL/PING, binary and 5 MiB values, inline, TTL", test_raw_client),
    ("1000 pipelined commands in one write, 400 in random pieces", test_pipelined),
    ("a client that pipelines 20000 GETs before reading", test_slow_reader),
    ("protocol error and QUIT: answered, then closed", test_errors_close),
    ("redis-cli: ping, set, get, del, -x, stdin", test_redis_cli),
    ("redis-benchmark -t ping,set,get -n 2000 -c 10 (and -P 16): no errors", test_redis_benchmark),
    ("SIGTERM with open clients: exit 0", test_sigterm),
]

if __name__ == "__main__":
    sys.exit(main(TESTS, sys.argv))
