#!/usr/bin/env python3
"""Runs one bench/compare-* script end to end in its smallest setting and checks its JSON.

usage: run_compare.py SCRIPT BUILD_DIR

One round, a fraction of a second (or the one second wrk takes) per run, the fewest
servers and clients, 127.0.0.1 only; the results go to a temporary directory. The test
passes when the script exits 0 and wrote a JSON file that parses, has the expected keys
and holds at least one round. A part whose external tool is missing (wrk, nginx, h2o,
redis-benchmark, redis-server, haproxy, nginx) is reported as SKIP on stdout; when nothing at all could
run the exit status is 77 (meson: SKIP), never a silent pass.
"""

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

SKIP = 77


def tool(name):
    path = shutil.which(name)
    if path is None:
        for d in ("/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/local/bin"):
            if os.access(os.path.join(d, name), os.X_OK):
                return os.path.join(d, name)
    return path


def plan(name):
    """(extra arguments, JSON keys expected, parts skipped) for compare-NAME, or None to skip."""
    quick = ["--rounds", "1", "--warmup", "0"]
    skipped = []
    if name == "echo":
        return quick + ["--duration", "0.3", "--connections", "2"], ["config", "rounds", "medians", "ratios"], skipped
    if name == "udp":
        return (quick + ["--duration", "0.3", "--clients", "1"], ["config", "rounds", "results"], skipped)
    if name == "pollers":
        return (quick + ["--duration", "0.3", "--idle", "0,16", "--connections", "2"],
                ["config", "rounds", "medians", "paired"], skipped)
    if name == "threads":
        args = quick + ["--duration", "1", "--http-connections", "2", "--echo-connections", "2"]
        if tool("wrk") is None:
            skipped.append("http workload (wrk not installed)")
            args += ["--workloads", "echo"]
        return args, ["config", "servers", "rounds", "medians", "scaling"], skipped
    if name == "http":
        if tool("wrk") is None:
            return None, [], ["every case (wrk not installed)"]
        skipped += [f"{s} (not installed)" for s in ("nginx",) if tool(s) is None]
        # h2o is left out here: one peer is enough to prove the script works (CI time).
        return (quick + ["--duration", "1", "--connections", "2", "--pipeline", "1,4",
                         "--servers", "netloop,nginx"],
                ["config", "servers", "unavailable", "died", "left_out", "rounds", "medians",
                 "ratios_netloop_over"], skipped)
    if name == "kv":
        if tool("redis-benchmark") is None:
            return None, [], ["every test (redis-benchmark not installed)"]
        if tool("redis-server") is None:
            skipped.append("redis (redis-server not installed)")
        return (["--rounds", "1", "--requests", "2000", "--pipelined-requests", "20000", "--clients", "2",
                 "--tests", "ping_inline,get"],
                ["config", "servers", "unavailable", "died", "rounds", "medians", "ratios_netloop_over_redis"],
                skipped)
    if name == "proxy":
        if tool("haproxy") is None:
            skipped.append("haproxy (not installed): netloop measured alone")
        return (quick + ["--duration", "0.3", "--echo-connections", "2", "--bulk-connections", "1"],
                ["config", "servers", "unavailable", "died", "rounds", "medians", "ratios_netloop_over_haproxy"],
                skipped)
    if name == "load":
        cases = []
        for case, needs in (("http", "wrk"), ("resp", "redis-benchmark")):
            if tool(needs) is None:
                skipped.append(f"{case} ({needs} not installed)")
            else:
                cases.append(case)
        if not cases:
            return None, [], skipped
        skipped += [f"{s} (not installed)" for s in ("nginx", "redis-server") if tool(s) is None]
        return (quick + ["--duration", "1", "--connections", "2", "--pipeline", "1", "--commands", "ping",
                         "--cases", ",".join(cases)],
                ["config", "skipped", "died", "rounds", "medians", "ratios_netloop_load_over"], skipped)
    if name == "tls":
        if tool("openssl") is None:
            return None, [], ["every case (the openssl CLI is not installed)"]
        if tool("wrk") is None:
            skipped.append("keepalive and wrk-close (wrk not installed)")
        if tool("nginx") is None:
            skipped.append("nginx (not installed)")
        return (["--quick", "--idle", "50"],
                ["config", "servers", "unavailable", "died", "skipped", "rounds", "medians", "ratios"], skipped)
    if name == "lb":
        missing = [t for t in ("wrk", "haproxy") if tool(t) is None]
        if missing:
            return None, [], [f"every case ({', '.join(missing)} not installed)"]
        return (["--rounds", "1", "--warmup", "0", "--duration", "1", "--connections", "4"],
                ["config", "rounds", "medians", "ratios_proxyv2_over_plain"], skipped)
    raise SystemExit(f"run_compare.py: no plan for compare-{name}")


def main():
    script, build_dir = sys.argv[1], os.path.abspath(sys.argv[2])
    name = os.path.basename(script)[len("compare-"):]
    args, keys, skipped = plan(name)
    for part in skipped:
        print(f"SKIP compare-{name}: {part}")
    if args is None:
        return SKIP
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as out:
        cmd = [sys.executable, script, "--build-dir", build_dir, "--out-dir", out] + args
        print("running:", " ".join(cmd), flush=True)
        t0 = time.monotonic()
        done = subprocess.run(cmd, stdin=subprocess.DEVNULL, timeout=170)
        print(f"compare-{name} exited {done.returncode} after {time.monotonic() - t0:.1f} s")
        if done.returncode != 0:
            return 1
        found = glob.glob(os.path.join(out, f"compare-{name}-*.json"))
        if len(found) != 1:
            print(f"FAIL: expected one compare-{name}-*.json in the output directory, found {found}")
            return 1
        with open(found[0]) as f:
            doc = json.load(f)
        missing = [k for k in keys if k not in doc]
        if missing:
            print(f"FAIL: {found[0]} lacks {missing}")
            return 1
        if not doc["rounds"]:
            print(f"FAIL: {found[0]} holds no rounds")
            return 1
        if not glob.glob(os.path.join(out, f"compare-{name}-*.csv")):
            print(f"FAIL: compare-{name} wrote no CSV")
            return 1
        print(f"ok: {os.path.basename(found[0])}: {len(doc['rounds'])} rounds, keys {sorted(doc)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
