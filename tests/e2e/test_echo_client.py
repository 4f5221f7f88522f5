#!/usr/bin/env python3
"""E2E: the echo-client example (docs/examples/echo_client) against the built
netloop-demo's TCP echo server on 127.0.0.1: it echoes stdin's lines and generated
messages, by address and by name; it rides out a server killed and restarted on the same
port, resending the message that was lost; a port nobody listens on, or a server that never
answers, gives one clear line and exit 1 after --timeout; bad arguments give a usage
error and exit 2.
Usage: test_echo_client.py PATH/TO/netloop-demo PATH/TO/echo-client"""

import os
import re
import select
import signal
import socket
import subprocess
import sys
import time

from e2e_util import Demo, Failure, check, clip, free_port, main, start_echo

CLIENT = None  # the echo-client executable, from the command line

SUMMARY = re.compile(r"echo-client: (\d+) messages echoed intact; round trip min [\d.]+ ms, "
                     r"avg [\d.]+ ms, max [\d.]+ ms; (\d+) connections, (\d+) messages resent")


def run_client(args, stdin=b"", timeout=30.0):
    """Runs echo-client to its end; returns (exit code, stdout, stderr)."""
    try:
        p = subprocess.run([CLIENT] + args, input=stdin, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Failure("echo-client %s did not exit within %.0f s" % (" ".join(args), timeout))
    return p.returncode, p.stdout.decode(errors="replace"), clip(p.stderr.decode(errors="replace"))


def summary(code, out, err):
    """(echoed, connections, resent) from a successful run's last line."""
    check(code == 0, "echo-client exited %d (expected 0); stdout %r, stderr %r" % (code, out, err))
    m = SUMMARY.search(out)
    check(m, "no summary line on stdout: %r" % out)
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def test_stdin_lines(exe):
    demo, port, _ = start_echo(exe, "127.0.0.1")
    with demo:
        # Lines up to a few KiB: their echoes come back in pieces.
        lines = b"".join(b"line %d %s\n" % (i, b"x" * (i * 37 % 3000)) for i in range(500))
        echoed, conns, resent = summary(*run_client(["127.0.0.1:%d" % port], stdin=lines))
        check((echoed, conns, resent) == (500, 1, 0),
              "expected 500 echoed on 1 connection, 0 resent; got %d, %d, %d"
              % (echoed, conns, resent))


def test_name_and_port(exe):
    """HOST PORT, with a name the Connector resolves (localhost, from /etc/hosts)."""
    demo, port, _ = start_echo(exe, "127.0.0.1")
    with demo:
        code, out, err = run_client(["--count", "20", "localhost", str(port)])
        echoed, _, _ = summary(code, out, err)
        check(echoed == 20, "expected 20 echoed, got %d" % echoed)
        check("connected to 127.0.0.1:%d" % port in err, "no 'connected to' line: %r" % err)


def read_until(proc, text, timeout):
    """Reads proc's stderr until `text` shows up; returns what was read."""
    got = b""
    deadline = time.monotonic() + timeout
    fd = proc.stderr.fileno()
    while text.encode() not in got:
        left = deadline - time.monotonic()
        check(left > 0, "echo-client printed no %r within %.0f s; stderr %r" % (text, timeout, got))
        ready, _, _ = select.select([fd], [], [], min(left, 0.2))
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                raise Failure("echo-client exited (code %s) before %r; stderr %r"
                              % (proc.wait(timeout=5), text, got))
            got += chunk
    return got


def test_server_restart(exe):
    """The server stops (SIGSTOP) with a message in flight, is killed, and comes back on
    the same port: the client reconnects, resends that message, and finishes."""
    demo, port, _ = start_echo(exe, "127.0.0.1")
    client = subprocess.Popen([CLIENT, "--count", "40", "--interval", "50", "--timeout", "10",
                               "127.0.0.1:%d" % port],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    restarted = None
    try:
        with demo:
            err = read_until(client, "connected to", 10)
            time.sleep(0.4)  # some echoes
            demo.proc.send_signal(signal.SIGSTOP)
            time.sleep(0.3)  # past the 50 ms pause: the next message waits, unechoed
            demo.kill()      # its connection goes with it (reset: unread data)
        time.sleep(0.5)      # the client retries meanwhile, refused
        check(client.poll() is None, "echo-client exited (code %s) while the server was away"
              % client.poll())
        restarted = Demo(exe, ["--tcp-echo", "127.0.0.1:%d" % port])
        restarted.wait_banner()
        out, rest = client.communicate(timeout=30)
        err = clip((err + rest).decode(errors="replace"))
        echoed, conns, resent = summary(client.returncode, out.decode(errors="replace"), err)
        check(echoed == 40, "expected 40 echoed, got %d" % echoed)
        check(conns == 2, "expected 2 connections, got %d; stderr %r" % (conns, err))
        check(resent == 1, "expected the message in flight resent, got %d resent" % resent)
        check("connection lost" in err, "no 'connection lost' line: %r" % err)
        check(err.count("connected to 127.0.0.1:%d" % port) == 2,
              "expected two 'connected to' lines: %r" % err)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait(timeout=5)
        if restarted:
            restarted.close()


def test_refused(exe):
    port = free_port()  # nothing listens there
    t0 = time.monotonic()
    code, out, err = run_client(["--timeout", "1", "--count", "3", "127.0.0.1:%d" % port])
    took = time.monotonic() - t0
    check(code == 1, "exit code %d for a refused port (expected 1); stderr %r" % (code, err))
    want = "echo-client: no connection to 127.0.0.1:%d for 1 s: connect to 127.0.0.1:%d: " \
           "Connection refused\n" % (port, port)
    check(err == want, "stderr %r, expected the one line %r" % (err, want))
    check(out == "", "nothing on stdout expected: %r" % out)
    check(0.9 <= took < 5, "gave up after %.2f s (--timeout 1)" % took)


def test_no_answer(exe):
    """A listener that never accepts, its backlog full: the connect gets no answer, and the
    client gives up at --timeout, not at the connect's own deadline."""
    hole = socket.socket()
    fillers = []
    try:
        hole.bind(("127.0.0.1", 0))
        hole.listen(0)
        port = hole.getsockname()[1]
        for _ in range(3):  # backlog 0 holds one; a few more make sure the queue is full
            f = socket.socket()
            f.setblocking(False)
            f.connect_ex(("127.0.0.1", port))
            fillers.append(f)
        time.sleep(0.05)
        code, out, err = run_client(["--timeout", "1", "--count", "1", "127.0.0.1:%d" % port])
        want = "echo-client: no connection to 127.0.0.1:%d for 1 s: the server did not answer\n" \
               % port
        check(code == 1 and err == want, "exit code %d, stderr %r; expected 1 and %r"
              % (code, err, want))
    finally:
        for f in fillers:
            f.close()
        hole.close()


def test_bad_arguments(exe):
    for args in ([], ["127.0.0.1"], ["127.0.0.1:0"], ["127.0.0.1:70000"], ["::1:7007"],
                 ["--count", "x", "127.0.0.1:7"], ["--timeout", "0", "127.0.0.1:7"],
                 ["--bogus", "127.0.0.1:7"], ["127.0.0.1", "7", "8"], ["--count"]):
        code, out, err = run_client(args, timeout=5)
        check(code == 2, "%r: exit code %d (expected 2); stderr %r" % (args, code, err))
        check(err.startswith("echo-client: ") and "usage: echo-client" in err,
              "%r: expected an error line and the usage on stderr, got %r" % (args, err))
    code, out, _ = run_client(["--help"], timeout=5)
    check(code == 0 and out.startswith("usage: echo-client"), "--help: %d %r" % (code, out))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__.splitlines()[-1], file=sys.stderr)
        sys.exit(2)
    CLIENT = os.path.abspath(sys.argv[2])
    sys.exit(main([("stdin lines", test_stdin_lines),
                   ("HOST PORT, by name", test_name_and_port),
                   ("server killed and restarted", test_server_restart),
                   ("refused port", test_refused),
                   ("no answer", test_no_answer),
                   ("bad arguments", test_bad_arguments)], sys.argv[:2]))
