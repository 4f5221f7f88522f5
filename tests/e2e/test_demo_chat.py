#!/usr/bin/env python3
"""E2E: the built netloop-demo runs the chat-room example (--chat) for real TCP clients:
greetings, broadcast, /nick, /who, /quit, a client resetting its connection, a long line,
a slow reader disconnected past the backlog limit while the others keep up, SIGTERM.
Usage: test_demo_chat.py PATH/TO/netloop-demo"""

import signal
import socket
import struct
import subprocess
import sys
import threading
import time

from e2e_util import DemoService, Failure, check, main, wait_banner



def wait_chat_banner(demo, timeout=5.0):
    """Reads the demo's stdout until "chat listening on 127.0.0.1:PORT"; returns the port."""
    host, port, line = wait_banner(demo, "chat", timeout)
    check(host == "127.0.0.1", "banner names host %s: %r" % (host, line))
    check(port != 0, "banner names port 0: %r" % line)
    return port


class ChatDemo(DemoService):
    """netloop-demo --chat 127.0.0.1:0 (the kernel picks the port)."""

    def __init__(self, exe):
        super().__init__(exe, ["--chat", "127.0.0.1:0"], wait_chat_banner)
        self.port = self.started()

    def client(self, name, rcvbuf=None):
        return Client(self.port, name, rcvbuf)

    def stop(self, clients=()):
        """SIGTERM: the demo drains; each client still connected is told and closed (it
        closes its side once it sees the end, as the server lingers for that), and the
        demo exits 0."""
        self.demo.proc.send_signal(signal.SIGTERM)
        for c in clients:
            c.expect("* server shutting down")
            c.expect_closed()
            c.close()
        try:
            code = self.demo.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            raise Failure("%s did not exit within 5 s of SIGTERM; stderr: %r"
                          % (self.demo.describe(), self.demo.stderr_text()))
        self.check_exit(code)


class Client:
    """One chat client: a blocking socket with a timeout, read line by line."""

    def __init__(self, port, name, rcvbuf=None):
        self.name = name
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(5.0)
        self.sock.connect(("127.0.0.1", port))
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def line(self, timeout=5.0):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failure("%s: no complete line within %.0f s (have %r)"
                              % (self.name, timeout, self.buf[:200]))
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                raise Failure("%s: connection reset while waiting for a line (have %r)"
                              % (self.name, self.buf[:200]))
            if not chunk:
                raise Failure("%s: connection closed while waiting for a line (have %r)"
                              % (self.name, self.buf[:200]))
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode(errors="replace")

    def expect(self, text):
        got = self.line()
        check(got == text, "%s: expected %r, got %r" % (self.name, text, got))

    def expect_closed(self, timeout=5.0):
        """The server ends the stream (EOF or reset) within `timeout`, with nothing unread
        before it."""
        check(not self.buf, "%s: unread %r before the close" % (self.name, self.buf[:200]))
        self.sock.settimeout(timeout)
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            return
        except socket.timeout:
            raise Failure("%s: still open %.0f s after it should have been closed"
                          % (self.name, timeout))
        check(chunk == b"", "%s: got %r instead of the end of the stream" % (self.name, chunk))

    def reset(self):
        """Abrupt disconnect: SO_LINGER 0 makes close() send a reset."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def close(self):
        self.sock.close()


def test_room(exe):
    with ChatDemo(exe) as d:
        a = d.client("A")
        a.expect("* welcome, you are guest-1")
        b = d.client("B")
        b.expect("* welcome, you are guest-2")
        a.expect("* guest-2 joined")
        c = d.client("C")
        c.expect("* welcome, you are guest-3")
        a.expect("* guest-3 joined")
        b.expect("* guest-3 joined")

        a.send("/nick alice\n")
        a.expect("* you are now alice")
        b.expect("* guest-1 is now alice")
        c.expect("* guest-1 is now alice")
        b.send("/nick Alice\n")
        b.expect("* name taken")
        b.send("/nick bad name\n")
        b.expect("* invalid name: 1 to 32 characters of A-Z a-z 0-9 _ -")
        b.send("/nick bob\n")
        b.expect("* you are now bob")
        a.expect("* guest-2 is now bob")
        c.expect("* guest-2 is now bob")

        # Broadcast to the others, not to the sender: its next line is the /who answer.
        b.send("hello from bob\r\n")
        a.expect("bob: hello from bob")
        c.expect("bob: hello from bob")
        b.send("/who\n")
        b.expect("* 3 here: alice, bob, guest-3")

        # A line in pieces, and several lines in one segment.
        for piece in (b"sp", b"lit li", b"ne\r", b"\n"):
            c.send(piece)
            time.sleep(0.02)
        c.send(b"one\ntwo\n")
        for who in (a, b):
            who.expect("guest-3: split line")
            who.expect("guest-3: one")
            who.expect("guest-3: two")

        # An abrupt disconnect: the room is told, and goes on without it.
        b.reset()
        a.expect("* bob left")
        c.expect("* bob left")
        a.send("after bob\n")
        c.expect("alice: after bob")
        c.send("/who\n")
        c.expect("* 2 here: alice, guest-3")

        # A line too long (max_line 4096): an error, then the server closes.
        e = d.client("E")
        e.expect("* welcome, you are guest-4")
        a.expect("* guest-4 joined")
        c.expect("* guest-4 joined")
        e.send(b"x" * 5000 + b"\n")
        e.expect("* line too long")
        e.expect_closed()
        e.close()
        a.expect("* guest-4 left")
        c.expect("* guest-4 left")

        # /quit: a bye, the end of the stream, and the others are told.
        c.send("/quit\n")
        c.expect("* bye")
        c.expect_closed()
        c.close()
        a.expect("* guest-3 left")
        a.send("/who\n")
        a.expect("* 1 here: alice")

        d.stop([a])  # with alice still connected


def test_slow_reader(exe):
    """A client that never reads is disconnected once its backlog passes max_backlog
    (1 MiB past what the kernel buffers); a fast reader receives every line meanwhile."""
    with ChatDemo(exe) as d:
        talker = d.client("talker")
        talker.expect("* welcome, you are guest-1")
        fast = d.client("fast")
        fast.expect("* welcome, you are guest-2")
        talker.expect("* guest-2 joined")
        slow = d.client("slow", rcvbuf=4096)  # small window: the server's output backs up
        slow.expect("* welcome, you are guest-3")
        talker.expect("* guest-3 joined")
        fast.expect("* guest-3 joined")

        line = b"m" * 4000 + b"\n"
        expected = b"guest-1: " + line
        received = [0]  # bytes of chat lines the fast reader got
        left_seen = threading.Event()
        errors = []

        def read_fast():
            buf = b""
            try:
                fast.sock.settimeout(20)
                while not left_seen.is_set():
                    chunk = fast.sock.recv(262144)
                    if not chunk:
                        errors.append("fast reader: connection closed")
                        return
                    buf += chunk
                    while b"\n" in buf:
                        l, _, buf = buf.partition(b"\n")
                        if l + b"\n" == expected:
                            received[0] += len(expected)
                        elif l == b"* guest-3 left":
                            left_seen.set()
                        else:
                            errors.append("fast reader: unexpected line %r" % l[:80])
                            return
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append("fast reader: %s: %s" % (type(e).__name__, e))
            finally:
                fast.buf = buf  # a partial line read after the eviction: fast.line() goes on

        reader = threading.Thread(target=read_fast)
        reader.start()
        sent = 0
        try:
            deadline = time.monotonic() + 60
            while not left_seen.is_set() and not errors and sent < 64 * len(expected) * 1024:
                check(time.monotonic() < deadline, "slow reader not disconnected within 60 s "
                      "(%d lines sent)" % (sent // len(expected)))
                talker.send(line)
                sent += len(expected)
                # Keep the fast reader within 256 KiB: it must never look slow itself.
                while (sent - received[0] > 256 * 1024 and not errors
                       and not left_seen.is_set()):
                    check(time.monotonic() < deadline, "the fast reader stalled at %d of %d bytes"
                          % (received[0], sent))
                    time.sleep(0.001)
        finally:
            left_seen.wait(10)
            reader.join(timeout=10)
        check(not errors, "; ".join(errors))
        check(left_seen.is_set(), "no '* guest-3 left' after %d bytes" % sent)
        check(received[0] >= 1024 * 1024, "the slow reader was dropped after only %d bytes"
              % received[0])
        talker.expect("* guest-3 left")

        # The slow client sees its connection end (after whatever the kernel held).
        slow.sock.settimeout(5)
        try:
            while slow.sock.recv(1 << 20):
                pass
        except ConnectionResetError:
            pass
        except socket.timeout:
            raise Failure("the slow reader's connection is still open")
        slow.close()

        # The room goes on without it.
        talker.send("/who\n")
        talker.expect("* 2 here: guest-1, guest-2")
        # fast still holds lines sent after the eviction: read up to a marker.
        talker.send("/nick talker\n")
        talker.expect("* you are now talker")
        for _ in range(10000):
            got = fast.line()
            if got == "* guest-1 is now talker":
                break
            check(got == expected[:-1].decode(), "fast: unexpected line %r" % got[:80])
        d.stop([talker, fast])
        err = d.demo.stderr_text()
        check("disconnecting guest-3" in err and "max_backlog" in err,
              "no log line about the slow reader; stderr: %r" % err)


TESTS = [
    ("3 clients: greetings, /nick, broadcast, /who, reset, long line, /quit, SIGTERM",
     test_room),
    ("a slow reader past max_backlog is disconnected; a fast one keeps up", test_slow_reader),
]

if __name__ == "__main__":
    sys.exit(main(TESTS, sys.argv))
