#!/usr/bin/env python3
"""E2E: netloop-demo --handover PATH restarts without loss. A new instance started with the
same PATH takes the running one's listening sockets; the old one drains and exits 0.

  test_demo_handover.py PATH/TO/netloop-demo        Python clients: connections opened
                                                   before a swap send their requests after
                                                   it, new ones reach the new instance; a
                                                   file at PATH, a stale socket
  test_demo_handover.py PATH/TO/netloop-demo wrk    two swaps (A -> B -> C) under
                                                   wrk -c50: no socket error, no non-2xx;
                                                   exits 77 (meson: SKIP) without wrk"""

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from e2e_util import Demo, Failure, check, clip, free_port, main, wait_banner

SKIP_EXIT = 77


def start(exe, port, path, threads=2):
    d = Demo(exe, ["--threads", str(threads), "--http", "127.0.0.1:%d" % port,
                   "--handover", path, "--drain-timeout", "5"])
    wait_banner(d, "http")
    return d


def wait_log(demo, text, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in demo.stderr_text():
            return True
        time.sleep(0.02)
    return False


def wait_exit(demo, timeout=10.0):
    try:
        return demo.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Failure("%s did not exit within %.0f s of the handover; stderr: %s"
                      % (demo.describe(), timeout, demo.stderr_text()))


def get(sock):
    """Sends one GET; returns (status, whether the server said Connection: close)."""
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        check(chunk, "the connection ended before a response: %r" % data[:200])
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?im)^content-length:\s*(\d+)", head).group(1))
    while len(body) < length:
        chunk = sock.recv(65536)
        check(chunk, "the connection ended inside a response body")
        body += chunk
    status = int(head.split(b" ", 2)[1])
    return status, re.search(rb"(?im)^connection:\s*close", head) is not None


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.settimeout(5)
    return s


def handover_exchange(exe):
    with tempfile.TemporaryDirectory(prefix="netloop-e2e-handover-") as tmp:
        path = os.path.join(tmp, "h.sock")
        port = free_port()
        a = start(exe, port, path)
        b = None
        try:
            check(os.path.exists(path), "no socket at %s" % path)
            early = [connect(port) for _ in range(8)]
            status, _ = get(early[0])  # one served before the swap too
            check(status == 200, "before the swap: status %d" % status)
            b = start(exe, port, path, threads=3)
            check(wait_log(b, "the old instance drains"), "B did not take over: %s" % b.stderr_text())
            # Opened before the swap, asking after it: answered (by A, in its grace, with
            # Connection: close), never cut.
            for i, s in enumerate(early):
                status, close = get(s)
                check(status == 200, "early connection %d: status %d" % (i, status))
                check(close, "early connection %d: A kept it open while draining" % i)
                s.close()
            code = wait_exit(a)
            check(code == 0, "A exited %d: %s" % (code, a.stderr_text()))
            check("passing 2 listening socket(s)" in a.stderr_text(), "A: %s" % a.stderr_text())
            # After: B alone, on the same port.
            for i in range(20):
                with connect(port) as s:
                    status, _ = get(s)
                    check(status == 200, "after the swap: status %d" % status)
            check(os.path.exists(path), "B did not take %s over" % path)
            code = b.stop()
            check(code == 0, "B exited %d: %s" % (code, b.stderr_text()))
            check(not os.path.exists(path), "B left %s behind" % path)
        finally:
            a.close()
            if b:
                b.close()


def handover_path_errors(exe):
    with tempfile.TemporaryDirectory(prefix="netloop-e2e-handover-") as tmp:
        path = os.path.join(tmp, "h.sock")
        # A file: neither used nor replaced; exit 2.
        with open(path, "w") as f:
            f.write("precious")
        p = subprocess.run([exe, "--http", "127.0.0.1:%d" % free_port(), "--handover", path],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
        err = p.stderr.decode(errors="replace")
        check(p.returncode == 2, "a file at the path: exit %d, stderr %s" % (p.returncode, clip(err)))
        check("not a socket" in err, "a file at the path: %s" % clip(err))
        with open(path) as f:
            check(f.read() == "precious", "the file was replaced")
        os.unlink(path)
        # A stale socket (its instance died): replaced, and the demo starts fresh.
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        s.close()
        port = free_port()
        d = start(exe, port, path, threads=1)
        try:
            with connect(port) as c:
                check(get(c)[0] == 200, "fresh start after a stale socket")
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            probe.settimeout(5)
            probe.connect(path)  # someone answers now
            probe.close()
            check(d.stop() == 0, "exit code")
        finally:
            d.close()
        # Garbage from something answering at the path: a clear error, exit non-zero.
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(path)
        srv.listen(1)
        proc = subprocess.Popen([exe, "--http", "127.0.0.1:%d" % free_port(), "--handover", path],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        srv.settimeout(5)
        conn, _ = srv.accept()
        conn.sendall(b"HTTP/1.1 200 OK\r\n\r\n")
        out, err = proc.communicate(timeout=15)
        conn.close()
        srv.close()
        err = err.decode(errors="replace")
        check(proc.returncode == 2, "garbage at the path: exit %d, %s" % (proc.returncode, clip(err)))
        check("protocol error" in err, "garbage at the path: %s" % clip(err))


def old_gone_after_sending(exe):
    """A fake old instance passes its listener, then closes without acknowledging "taken"
    (as one that got SIGTERM then): the new one must serve on, not drain as well."""
    with tempfile.TemporaryDirectory(prefix="netloop-e2e-handover-") as tmp:
        path = os.path.join(tmp, "h.sock")
        port = free_port()
        lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lst.bind(("127.0.0.1", port))
        lst.listen(16)
        queued = connect(port)  # waits in the backlog for whoever accepts
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(path)
        srv.listen(1)
        srv.settimeout(5)
        d = Demo(exe, ["--threads", "1", "--http", "127.0.0.1:%d" % port, "--handover", path])
        try:
            conn, _ = srv.accept()
            conn.settimeout(5)
            check(conn.recv(64).startswith(b"netloop-handover"), "no request")
            socket.send_fds(conn, [b"socket stream 0 127.0.0.1:%d http\n" % port], [lst.fileno()])
            conn.sendall(b"end 1\n")
            lst.close()
            check(conn.recv(64).startswith(b"taken"), "no confirmation")
            conn.close()
            srv.close()
            check(wait_log(d, "serving on"), "no word of serving on: %s" % d.stderr_text())
            status, _ = get(queued)
            check(status == 200, "the queued connection: status %d" % status)
            queued.close()
            for _ in range(5):
                with connect(port) as c:
                    check(get(c)[0] == 200, "after: not served")
            check(d.proc.poll() is None, "the new instance exited: %s" % d.stderr_text())
            check(os.path.exists(path), "it does not listen at %s for the next one" % path)
            code = d.stop()
            check(code == 0, "exit %d: %s" % (code, d.stderr_text()))
        finally:
            d.close()


def path_deleted(exe):
    """PATH deleted under a running instance: a new one refuses to start beside it (its
    PATH.lock is held), exit 2, rather than bind alongside it for good."""
    with tempfile.TemporaryDirectory(prefix="netloop-e2e-handover-") as tmp:
        path = os.path.join(tmp, "h.sock")
        port = free_port()
        a = start(exe, port, path, threads=1)
        try:
            os.unlink(path)
            p = subprocess.run([exe, "--http", "127.0.0.1:%d" % port, "--handover", path],
                               stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
            err = p.stderr.decode(errors="replace")
            check(p.returncode == 2, "exit %d, stderr %s" % (p.returncode, clip(err)))
            check("holds" in err and ".lock" in err, "unclear message: %s" % clip(err))
            check(a.stop() == 0, "A's exit code")
            b = start(exe, port, path, threads=1)  # A gone: a fresh start works again
            with connect(port) as c:
                check(get(c)[0] == 200, "B does not serve")
            code = b.stop()
            text = b.stderr_text()
            b.close()
            check(code == 0, "B's exit code %s: %s" % (code, clip(text)))
        finally:
            a.close()


def wrk_swaps(exe):
    wrk = shutil.which("wrk")
    if not wrk:
        return "SKIP wrk is not installed"
    with tempfile.TemporaryDirectory(prefix="netloop-e2e-handover-") as tmp:
        path = os.path.join(tmp, "h.sock")
        port = free_port()
        demos = [start(exe, port, path)]
        load = None
        try:
            load = subprocess.Popen([wrk, "-t2", "-c50", "-d4s", "http://127.0.0.1:%d/" % port],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE)
            for threads in (3, 1):  # A (2 loops) -> B (3), then B -> C (1: serves all 3 sockets)
                time.sleep(1.2)
                old = demos[-1]
                demos.append(start(exe, port, path, threads=threads))
                code = wait_exit(old)
                check(code == 0, "%s exited %d: %s" % (old.describe(), code, old.stderr_text()))
                check("draining" in old.stderr_text(), "no handover: %s" % old.stderr_text())
            try:
                out, err = load.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                raise Failure("wrk did not finish within 30 s")
            out = out.decode(errors="replace")
            check(load.returncode == 0, "wrk exited %d: %s %s" % (load.returncode, out, clip(err.decode())))
            m = re.search(r"(\d+) requests in", out)
            check(m and int(m.group(1)) > 0, "wrk made no requests: %s" % out)
            check("Socket errors" not in out, "wrk reports socket errors: %s" % out)
            check("Non-2xx" not in out, "wrk reports non-2xx responses: %s" % out)
            last = demos[-1]
            with connect(port) as s:
                check(get(s)[0] == 200, "C does not serve after the swaps")
            check(last.stop() == 0, "C's exit code")
            return "%s requests over two swaps" % m.group(1)
        finally:
            if load and load.poll() is None:
                load.kill()
                load.wait()
            for d in demos:
                d.close()


TESTS = [
    ("connections opened before a swap, asking after it; new ones reach the new instance",
     handover_exchange),
    ("a file at the path (exit 2, kept), a stale socket (fresh start), garbage (exit 2)",
     handover_path_errors),
    ("the old instance gone after sending its sockets: the new one serves on",
     old_gone_after_sending),
    ("PATH deleted under a running instance: a new one refuses (exit 2)", path_deleted),
]

WRK_TESTS = [
    ("wrk -c50 through two swaps: no socket error, no non-2xx, the old ones exit 0", wrk_swaps),
]

if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[2] == "wrk":
        if not shutil.which("wrk"):
            print("SKIP wrk is not installed")
            sys.exit(SKIP_EXIT)
        sys.exit(main(WRK_TESTS, sys.argv[:2]))
    sys.exit(main(TESTS, sys.argv))
