#!/usr/bin/env python3
"""E2E: netloop-demo --tcp-proxy in front of a real redis-server, driven by redis-cli:
commands and replies, a 3 MiB value both ways, a pipeline of 10,000 commands, and the
per-upstream counters. Exits 77 (meson: SKIP) when redis-server or redis-cli is missing.

Usage: test_demo_proxy_redis.py PATH/TO/netloop-demo"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from e2e_util import Failure, ProxyDemo, check, free_port, main

SKIP_EXIT = 77
APT_HINT = "apt-get install redis-server redis-tools"


def tool(name):
    path = shutil.which(name)
    if path is None:
        for d in ("/usr/sbin", "/usr/local/sbin", "/usr/local/bin"):
            if os.access(os.path.join(d, name), os.X_OK):
                return os.path.join(d, name)
    return path


class Redis:
    """redis-server on 127.0.0.1:<free port>, no persistence, in a temporary directory."""

    def __init__(self):
        self.dir = tempfile.TemporaryDirectory(prefix="netloop-e2e-redis-")
        self.port = free_port()
        self.log = open(os.path.join(self.dir.name, "redis.log"), "wb")
        self.proc = subprocess.Popen(
            [tool("redis-server"), "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", self.dir.name, "--protected-mode", "no"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    raise Failure("redis-server did not start on port %d" % self.port)
                time.sleep(0.05)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        self.dir.cleanup()


def cli(port, *args, input_bytes=None, timeout=30):
    argv = [tool("redis-cli"), "-h", "127.0.0.1", "-p", str(port)] + list(args)
    try:
        p = subprocess.run(argv, input=input_bytes,
                           stdin=None if input_bytes is not None else subprocess.DEVNULL,
                           capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Failure("redis-cli %s did not finish within %d s" % (" ".join(args), timeout))
    check(p.returncode == 0, "redis-cli %s exited %d: %r" % (" ".join(args), p.returncode, p.stderr[:300]))
    return p.stdout


def test_redis_cli(exe):
    with Redis() as redis, ProxyDemo(exe, ["127.0.0.1:%d" % redis.port]) as proxy:
        check(cli(proxy.port, "ping") == b"PONG\n", "ping through the proxy")
        check(cli(proxy.port, "set", "greeting", "hello through the proxy") == b"OK\n", "set")
        check(cli(proxy.port, "get", "greeting") == b"hello through the proxy\n", "get")
        # The value as redis itself holds it, asked directly.
        check(cli(redis.port, "get", "greeting") == b"hello through the proxy\n", "get from redis directly")
        big = os.urandom(3 * 1024 * 1024).hex().encode()[:3 * 1024 * 1024]
        check(cli(proxy.port, "-x", "set", "big", input_bytes=big) == b"OK\n", "set a 3 MiB value")
        got = cli(proxy.port, "--raw", "get", "big")
        check(got == big + b"\n", "the 3 MiB value came back different (%d bytes)" % len(got))
        check(cli(proxy.port, "strlen", "big") == b"%d\n" % len(big), "strlen big")
        proxy.stop()


def test_redis_pipeline(exe):
    """10,000 commands in one stream (redis-cli --pipe): every reply back, none lost."""
    with Redis() as redis, ProxyDemo(exe, ["127.0.0.1:%d" % redis.port]) as proxy:
        n = 10000
        cmds = b"".join(b"*3\r\n$3\r\nSET\r\n$%d\r\nk%d\r\n$%d\r\nv%d\r\n"
                        % (len(b"k%d" % i), i, len(b"v%d" % i), i) for i in range(n))
        out = cli(proxy.port, "--pipe", input_bytes=cmds)
        check(b"errors: 0, replies: %d" % n in out, "redis-cli --pipe: %r" % out[-200:])
        check(cli(redis.port, "dbsize") == b"%d\n" % n, "redis holds another number of keys")
        check(cli(proxy.port, "get", "k9999") == b"v9999\n", "get k9999")
        up = "127.0.0.1:%d" % redis.port
        connects = proxy.upstream_metric("connects", up)
        check(connects == 2, "upstream connects %d, expected 2 (one per redis-cli through it)" % connects)
        check(proxy.upstream_metric("bytes", up, direction="out") > len(cmds), "bytes out not counted")
        proxy.stop()


TESTS = [
    ("redis-cli through the proxy: commands, a 3 MiB value both ways", test_redis_cli),
    ("redis-cli --pipe: 10,000 commands through the proxy", test_redis_pipeline),
]

if __name__ == "__main__":
    missing = [t for t in ("redis-server", "redis-cli") if tool(t) is None]
    if len(sys.argv) == 2 and missing:
        print("SKIP proxy in front of redis: %s not installed (%s)" % (" and ".join(missing), APT_HINT))
        sys.exit(SKIP_EXIT)
    sys.exit(main(TESTS, sys.argv))
