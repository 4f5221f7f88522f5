#!/usr/bin/env python3
"""E2E: netloop-demo on the select backend past FD_SETSIZE: connections whose descriptor
select() cannot hold are refused with a log line naming the backends to use instead, the
server neither crashes nor spins, and connections it holds keep working.
Usage: test_demo_select_limit.py PATH/TO/netloop-demo"""

import resource
import socket
import sys
import time

from e2e_util import check, connect, exchange, main, start_echo, wait_closed

FD_SETSIZE = 1024


def test_select_refuses_descriptors_past_fd_setsize(exe):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 1400
    if soft < want:
        if hard != resource.RLIM_INFINITY and hard < want:
            return "SKIP descriptor limit %d is below %d" % (hard, want)
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    demo, port, banner = start_echo(exe, "127.0.0.1", ["--poller", "select"])
    with demo:
        check("poller select" in banner, "banner does not name select: %r" % banner)
        early = connect("127.0.0.1", port)
        exchange(early, b"before the crowd", seed=1)
        clients = []
        try:
            # Enough connections to push the server's descriptors past FD_SETSIZE.
            for _ in range(FD_SETSIZE + 60):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.settimeout(5)
                s.connect(("127.0.0.1", port))
                clients.append(s)
            # The last ones are refused: the server closes them at once.
            closed = wait_closed(clients[-1], timeout=10)
            check(closed, "a connection past FD_SETSIZE was not closed by the server")
            t0 = time.monotonic()
            err = ""
            while time.monotonic() - t0 < 10:
                err = demo.stderr_text()
                if "FD_SETSIZE" in err:
                    break
                time.sleep(0.1)
            check("FD_SETSIZE" in err and "use the epoll" in err,
                  "no log line naming FD_SETSIZE and the backend to use: %r" % err)
            check(err.count("FD_SETSIZE") <= 3, "the refusal is logged per connection: %r" % err)
            # A connection the server holds still works, and the server did not spin.
            exchange(early, b"after the crowd", seed=2)
            cpu = open("/proc/%d/stat" % demo.proc.pid).read().split(")")[1].split()
            before = int(cpu[11]) + int(cpu[12])
            time.sleep(1.0)
            cpu = open("/proc/%d/stat" % demo.proc.pid).read().split(")")[1].split()
            after = int(cpu[11]) + int(cpu[12])
            check(after - before < 50, "the demo burned %d ticks in 1 s while idle" % (after - before))
        finally:
            for s in clients:
                s.close()
            early.close()
        code = demo.stop()
        check(code == 0, "demo exited %d after SIGTERM" % code)


if __name__ == "__main__":
    sys.exit(main([("select refuses descriptors past FD_SETSIZE",
                    test_select_refuses_descriptors_past_fd_setsize)], sys.argv))
