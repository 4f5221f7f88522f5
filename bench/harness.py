"""harness: what the bench/compare-* scripts share.

Each compare script says which servers it runs, which load it drives them with and which
table it prints; everything else is here: the common flags (build_args / finish_args),
pinning with taskset, the descriptor limit, CPU time from /proc, servers started in their
own session on a free port (banner parsing, readiness probe, SIGTERM then SIGKILL to the
whole process group), the measured window (server CPU, load CPU, idle servers,
background CPU), the background-load retry, medians, paired ratios with a bootstrap
interval, wrk's and netloop-load's reports, JSON, CSV and PNG output, and the script
entry point (signals, one-line failures, exit statuses).

Python 3 standard library only; imported from the scripts' own directory.
"""

import argparse
import csv
import datetime
import json
import os
import random
import re
import resource
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLK_TCK = os.sysconf("SC_CLK_TCK")
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
PROG = "compare"  # set by main() to the running script's name, for warnings


class Failure(Exception):
    """An error worth one line on stderr and exit status 1."""


class Unavailable(Exception):
    """A server that cannot run here (not installed, did not start): left out, not fatal."""


def warn(text):
    print(f"{PROG}: warning: {text}", file=sys.stderr)


# ---------------------------------------------------------------------------------------
# Flags


def int_list(text):
    """A comma-separated list of positive integers (an argparse type)."""
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected numbers separated by commas, e.g. 1,16")
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: every number must be at least 1")
    return values


def name_list(choices, what, ordered=False):
    """An argparse type: a comma-separated subset of `choices`, in the order given (or,
    `ordered`, in the order of `choices`)."""
    def parse(text):
        names = [x.strip() for x in text.split(",") if x.strip()]
        bad = [n for n in names if n not in choices]
        if bad or not names:
            raise argparse.ArgumentTypeError(
                f"unknown {what} {', '.join(bad) or repr(text)} (choose from {', '.join(choices)})")
        return [c for c in choices if c in names] if ordered else list(dict.fromkeys(names))
    return parse


def build_args(prog, description):
    """An ArgumentParser with --build-dir; finish with common_args() after the script's own."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--build-dir", default=None,
                   help="Meson build directory holding the binaries (default: build, in the repository)")
    return p


def common_args(p, load="the load generator", taskset=True, what="round", outputs="the JSON and CSV"):
    """--taskset, --max-background, --retries, --out-dir: the same in every script."""
    if taskset:
        p.add_argument("--taskset", nargs="?", const="auto", default=None, metavar="SERVER_CPU,LOAD_CPU",
                       help=f"pin the servers and {load} to different CPUs with taskset "
                            "(default: the first two CPUs this process may use)")
    p.add_argument("--max-background", type=float, default=None, metavar="PCT",
                   help=f"repeat a {what} (up to --retries times) when other processes used more "
                        "than PCT%% of all CPUs during it; for shared machines (default: off)")
    p.add_argument("--retries", type=int, default=3,
                   help=f"repeats allowed per {what} with --max-background (default 3)")
    p.add_argument("--out-dir", default=None,
                   help=f"where to write {outputs} (default: BUILD_DIR/bench-results)")


def echo_load_args(p, duration, per="round", connections="client connections"):
    """netloop-load tcp-echo's flags: --duration, --warmup, --connections, --size, --pipeline."""
    p.add_argument("--duration", type=float, default=duration,
                   help=f"measured seconds per {per} (default {duration:g})")
    p.add_argument("--warmup", type=float, default=1.0,
                   help="seconds of load before each measured window (default 1)")
    p.add_argument("--connections", type=int, default=64, help=f"{connections} (default 64)")
    p.add_argument("--size", type=int, default=64, help="message size in bytes (default 64)")
    p.add_argument("--pipeline", type=int, default=1, help="messages in flight per connection (default 1)")


def finish_args(p, a, at_least_one=("rounds",), positive=("duration",)):
    """Checks the common bounds and fills in --build-dir and --out-dir."""
    for name in at_least_one:
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    for name in positive:
        if getattr(a, name) <= 0:
            p.error(f"--{name} must be more than 0 seconds")
    if getattr(a, "warmup", 0) < 0:
        p.error("--warmup cannot be negative")
    if a.retries < 0:
        p.error("--retries cannot be negative")
    a.build_dir = os.path.abspath(a.build_dir or os.path.join(REPO, "build"))
    if a.out_dir is None:
        a.out_dir = os.path.join(a.build_dir, "bench-results")
    return a


def binaries(build_dir, *paths):
    """Absolute paths of built programs; Failure if one is missing."""
    out = []
    for rel in paths:
        path = rel if os.path.isabs(rel) else os.path.join(build_dir, rel)
        if not os.access(path, os.X_OK):
            raise Failure(f"{path} not found: build first (ninja -C {build_dir})")
        out.append(path)
    return out


# ---------------------------------------------------------------------------------------
# Processes, CPU time, ports


def pinning(spec, load="netloop-load"):
    """(server_prefix, load_prefix, description) for --taskset [SERVER_CPU,LOAD_CPU]."""
    if spec is None:
        return [], [], "none"
    tool = shutil.which("taskset")
    if tool is None:
        warn("--taskset given but taskset is not installed; running unpinned")
        return [], [], "none (taskset missing)"
    allowed = os.sched_getaffinity(0)
    if spec == "auto":
        if len(allowed) < 2:
            warn("only one CPU available; running unpinned")
            return [], [], "none (one CPU)"
        server_cpu, load_cpu = sorted(allowed)[:2]
    else:
        m = re.fullmatch(r"(\d+),(\d+)", spec)
        if not m:
            raise Failure(f"--taskset {spec}: expected SERVER_CPU,LOAD_CPU, e.g. 0,1")
        server_cpu, load_cpu = int(m.group(1)), int(m.group(2))
        for cpu in (server_cpu, load_cpu):
            if cpu not in allowed:
                raise Failure(f"--taskset: CPU {cpu} is not available (allowed: {sorted(allowed)})")
    return ([tool, "-c", str(server_cpu)], [tool, "-c", str(load_cpu)],
            f"servers on CPU {server_cpu}, {load} on CPU {load_cpu}")


def raise_nofile_limit():
    """Raises the soft RLIMIT_NOFILE to the hard limit (the servers inherit it); returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        for want in ((hard,) if hard != resource.RLIM_INFINITY else (1 << 20, 1 << 16)):
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
                break
            except (ValueError, OSError):
                continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def read_stat(path):
    """(pgrp, utime + stime in seconds) from a /proc stat file, or None if it is gone."""
    try:
        with open(path) as f:
            stat = f.read()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: fields start after the last ')'.
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[2]), (int(fields[11]) + int(fields[12])) / CLK_TCK  # stat(5) fields 5, 14, 15


def cpu_seconds(pid, error=Failure):
    """utime + stime of a process (all its threads), in seconds."""
    st = read_stat(f"/proc/{pid}/stat")
    if st is None:
        raise error(f"cannot read /proc/{pid}/stat: the process is gone")
    return st[1]


def group_cpu_seconds(pgid):
    """utime + stime summed over every process (all threads) in process group `pgid`.

    Each server is started as the leader of its own session, so its group holds it and
    every process it forks (nginx's worker, h2o's helper, redis's save children) and
    nothing else. This kernel may lack /proc/PID/task/TID/children, hence the scan."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = read_stat(f"/proc/{entry}/stat")
            if st is not None and st[0] == pgid:
                total += st[1]
    return total


def system_busy_seconds():
    """CPU time all CPUs spent busy (not idle or iowait), in CPU-seconds, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:9]]  # user..steal
    return (sum(fields) - fields[3] - fields[4]) / CLK_TCK


def children_cpu_seconds():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


_ports_given = set()


def free_port():
    """A loopback port nobody listens on now (and not handed out before in this run)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _ports_given:
            _ports_given.add(port)
            return port
    raise Failure("cannot find a free loopback port")


def find_tool(name):
    """A program on the PATH, or in /usr/sbin and the like (not on every user's PATH)."""
    path = shutil.which(name)
    if path is None:
        for d in ("/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/local/bin"):
            cand = os.path.join(d, name)
            if os.access(cand, os.X_OK):
                return cand
    return path


def tool_version(name, argv):
    try:
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL, timeout=10)
        return r.stdout.decode(errors="replace").strip().splitlines()[0]
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return f"{name}: version unknown"


def demo_with(demo, build_dir, *flags):
    """Unavailable unless `demo` is built and its --help names every one of `flags`."""
    if not os.access(demo, os.X_OK):
        raise Unavailable(f"{demo} not built (ninja -C {build_dir})")
    try:
        helptext = subprocess.run([demo, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, timeout=10).stdout.decode(errors="replace")
    except subprocess.TimeoutExpired:
        raise Unavailable(f"{demo} --help did not finish")
    return all(re.search(rf"{f}\b", helptext) for f in flags)


def tcp_ready(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=1.0):
        return True


class Server:
    """One server process in its own session, listening on 127.0.0.1.

    With `banner` (a regular expression) set, a stdout line matching it must appear
    first; with `port` None the banner's first group is the port the kernel picked.
    Then the server is ready once `ready(server)` is true (default: a TCP connect
    succeeds; None: the banner is enough). `fail` is the exception raised when it does
    not start: Unavailable (left out) or Failure (fatal)."""

    def __init__(self, name, argv, port=None, banner=None, logs=(), ready=tcp_ready, fail=Unavailable,
                 preexec=None):
        self.name = name
        self.argv = argv
        self.port = port
        self.banner_re = banner
        self.logs = list(logs)  # files worth showing when it fails (error logs)
        self.ready = ready
        self.fail = fail
        self.preexec = preexec
        self.proc = None
        self.banner = ""
        self.errfile = None
        self.verified = {}
        self.checks = {}

    def start(self):
        # Its own session: a Ctrl-C on the terminal reaches us, and we stop its whole
        # process group. stderr goes to a file, not a pipe nobody reads.
        self.errfile = tempfile.TemporaryFile()
        out = subprocess.PIPE if self.banner_re else self.errfile
        self.proc = subprocess.Popen(self.argv, stdout=out, stderr=self.errfile, stdin=subprocess.DEVNULL,
                                     start_new_session=True, preexec_fn=self.preexec)
        deadline = time.monotonic() + START_TIMEOUT_S
        if self.banner_re:
            self._read_banner(deadline)
        while self.ready is not None:
            try:
                if self.ready(self):
                    return
            except (OSError, Failure):
                pass
            if self.proc.poll() is not None:
                self.stop()  # anything it forked before dying
                raise self.fail(f"{self.name} exited at start (status {self.proc.returncode})"
                                + self.diagnostics())
            if time.monotonic() > deadline:
                self.stop()
                raise self.fail(f"{self.name} was not ready on 127.0.0.1:{self.port} "
                                f"within {START_TIMEOUT_S:g} s" + self.diagnostics())
            time.sleep(0.05)

    def parse_banner(self, text):
        """True once the stdout so far holds the banner; sets banner (and port)."""
        for line in text.splitlines():
            m = re.search(self.banner_re, line)
            if m:
                self.banner = line.strip()
                if self.port is None:
                    self.port = int(m.group(1))
                return True
        return False

    def _read_banner(self, deadline):
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        text = ""
        found = False
        while not found:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                break
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                break
            text += chunk.decode(errors="replace")
            found = self.parse_banner(text)
        sel.close()
        if not found:
            self.stop()
            raise self.fail(f"{self.name} did not print its listening banner "
                            f"(wanted /{self.banner_re}/, got {text.strip()!r})" + self.diagnostics())
        # Nothing more is read from its stdout: keep the server from blocking on a full pipe.
        self.proc.stdout.close()

    def stderr_text(self):
        if self.errfile is None:
            return ""
        self.errfile.seek(0)
        return self.errfile.read().decode(errors="replace").strip()[-2000:]

    def diagnostics(self):
        parts = [self.stderr_text()[-1500:]]
        for path in self.logs:
            try:
                with open(path, errors="replace") as f:
                    text = f.read().strip()
            except OSError:
                continue
            if text:
                parts.append(f"{os.path.basename(path)}: {text[-1500:]}")
        parts = [p for p in parts if p]
        return ("; output: " + " | ".join(parts)) if parts else ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def cpu_seconds(self):
        return group_cpu_seconds(self.proc.pid)

    def stop(self):
        """SIGTERM to the process group, SIGKILL if it lingers; returns the exit status."""
        if self.proc is None:
            return None
        pgid = self.proc.pid  # the session leader: its pid is the group id
        if self.proc.poll() is None:
            try:
                os.killpg(pgid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(pgid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait()
        try:  # whatever of its group outlived the leader (a worker, a helper)
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.proc.stdout and not self.proc.stdout.closed:
            self.proc.stdout.close()
        return self.proc.returncode


def start_all(servers, failed=None):
    """Starts each server and prints its banner; with `failed` (a dict), a server raising
    Unavailable is left out with its reason there; returns the servers that run."""
    up = []
    for s in servers:
        try:
            s.start()
        except Unavailable as e:
            if failed is None:
                raise
            failed[s.name] = str(e)
            print(f"{PROG}: {s.name} left out: {e}", file=sys.stderr)
            continue
        up.append(s)
        print(f"{PROG}: {s.banner or s.name + ' on 127.0.0.1:' + str(s.port)}", flush=True)
    return up


def stop_all(servers):
    """Stops every server; warns of unclean exits."""
    for s in servers:
        code = s.stop()
        if code not in (0, None, -signal.SIGTERM):
            warn(f"{s.name} exited with status {code} on SIGTERM")


# ---------------------------------------------------------------------------------------
# One measured window, the retry, the rounds


class Window:
    """CPU accounting over one load run: the server's CPU, the load generator's (children
    reaped meanwhile), the idle servers' and everything else's (background)."""

    def __init__(self, server_cpu, others_cpu=lambda: 0.0):
        self.server_cpu, self.others_cpu = server_cpu, others_cpu

    def __enter__(self):
        self.children0 = children_cpu_seconds()
        self.busy0 = system_busy_seconds()
        self.others0 = self.others_cpu()
        self.cpu0 = self.server_cpu()
        self.t0 = time.monotonic()
        return self

    def __exit__(self, *exc):
        self.wall = time.monotonic() - self.t0
        self.server_s = self.server_cpu() - self.cpu0
        self.idle_s = self.others_cpu() - self.others0
        self.load_s = children_cpu_seconds() - self.children0
        self.busy = system_busy_seconds() - self.busy0

    def background(self, load_s=None):
        """What else ran meanwhile, as a share of all CPUs: contention that skews a round."""
        load_s = self.load_s if load_s is None else load_s
        return (max(0.0, self.busy - self.server_s - load_s - self.idle_s)
                / (self.wall * (os.cpu_count() or 1)))


def tcp_echo_cmd(args, load_bin, prefix, port):
    """netloop-load tcp-echo with the flags of echo_load_args, printing JSON."""
    return prefix + [load_bin, "tcp-echo", f"127.0.0.1:{port}", "--connections", str(args.connections),
                     "--size", str(args.size), "--duration", str(args.duration), "--warmup", str(args.warmup),
                     "--pipeline", str(args.pipeline), "--json"]


def load_json(done, server, what=""):
    """The JSON netloop-load printed (a CompletedProcess); Failure if it failed, printed
    none, or the server died meanwhile."""
    if done.returncode != 0:
        raise Failure(f"netloop-load against {server.name}{what} failed (exit {done.returncode}):\n"
                      + done.stderr.decode(errors="replace").strip())
    try:
        r = json.loads(done.stdout)
    except ValueError as e:
        raise Failure(f"netloop-load printed no JSON: {done.stdout[:200]!r}") from e
    if not server.alive():
        raise Failure(f"{server.name} exited during the round: {server.stderr_text()}")
    return r


def run_load(cmd):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)


def tcp_echo_row(r, w, idle_key):
    """The numbers of one netloop-load tcp-echo run (its JSON `r`) and its Window `w`."""
    total = r["total_messages"]
    return {
        "messages_per_s": r["messages_per_s"],
        "mb_per_s": r["mb_per_s"],
        "p50_us": r["latency_us"]["p50"],
        "p99_us": r["latency_us"]["p99"],
        "p999_us": r["latency_us"]["p999"],
        # CPU per message: the server's CPU over the whole load run (connect, warm-up,
        # measured window) divided by every round trip of that run.
        "server_cpu_s": w.server_s,
        "cpu_us_per_msg": w.server_s * 1e6 / total if total else float("nan"),
        "server_cpu_util": w.server_s / w.wall,
        "load_cpu_util": w.load_s / w.wall,
        idle_key: w.idle_s,  # the other servers, idle: should be 0
        "background_cpu": w.background(),
        "messages": r["messages"],
        "total_messages": total,
        "wall_s": w.wall,
        "measured_s": r["measured_s"],
    }


def with_retries(args, run, label):
    """run() once, again while its row's background_cpu is above --max-background (at most
    --retries times); returns the row with "attempts"."""
    for attempt in range(args.retries + 1):
        row = run()
        bg = row.get("background_cpu")
        if (args.max_background is None or attempt == args.retries or bg is None
                or not row.get("valid", True) or bg * 100 <= args.max_background):
            break
        print(f"  {label} repeated: other processes used {bg:.0%} of the CPUs", flush=True)
    row["attempts"] = attempt + 1
    return row


def rotated_round(args, rnd, in_set, everyone, died, run, label, show):
    """One round over `in_set`, the first server rotating round by round: run(server,
    others) (with the retry) for each server still alive, show(row, server); a server that
    dies is noted in `died` and left out from then on. Returns the rows."""
    rows = []
    k = (rnd - 1) % len(in_set)
    for s in in_set[k:] + in_set[:k]:
        if s.name in died:
            continue
        others = [o for o in everyone if o is not s and o.alive()]
        row = with_retries(args, lambda: run(s, others), f"{label} round {rnd} {s.name:<8}")
        row["round"] = rnd
        rows.append(row)
        show(row, s)
        if not s.alive():
            died[s.name] = f"exited during a run (status {s.proc.returncode})" + s.diagnostics()
            print(f"{PROG}: {s.name} {died[s.name]}; no more runs against it", file=sys.stderr, flush=True)
    return rows


def start_named(names, make, unavailable, apt_hint, servers):
    """make(name) and start each server of `names`, appending to `servers` and yielding
    each that runs; one that raises Unavailable goes into `unavailable` with the reason."""
    for name in names:
        try:
            s = make(name)
            s.start()
        except Unavailable as e:
            unavailable[name] = str(e)
            print(f"{PROG}: {name} unavailable, skipped: {e}", file=sys.stderr, flush=True)
            if apt_hint in str(e):
                print(f"{PROG}: to install it: {apt_hint}", file=sys.stderr)
            continue
        servers.append(s)
        yield s


def none_started(unavailable):
    return Failure("no server could be started: " + "; ".join(f"{k}: {v}" for k, v in unavailable.items()))


def stop_named(servers, args, tmp, died, clean=("netloop",)):
    """Stops the servers, removes (or with --keep-tmp keeps) `tmp`; warns when one of
    `clean` (which promise exit 0 on SIGTERM) did not exit cleanly."""
    stopped = {s.name: s.stop() for s in servers}
    if args.keep_tmp:
        print(f"{PROG}: kept {tmp}", file=sys.stderr)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    for name in clean:
        if stopped.get(name) not in (0, None) and name not in died:
            warn(f"{name} exited with status {stopped[name]} on SIGTERM")


def row_line(label, rnd, name, row, load_key, load_title, p50_key, p50_unit, p50_fmt, extra=""):
    """The one-line report of a request/response run (compare-http, compare-kv)."""
    return (f"  {label:<4} round {rnd} {extra}{name:<8}{fmt(row.get('requests_per_s'), '{:,.0f}', 12)} req/s"
            f"{fmt(row.get('cpu_us_per_req'), '{:.3f}', 9)} CPU us/req"
            f"  srv CPU {row['server_cpu_util']:.0%}  {load_title} CPU {row[load_key]:.0%}"
            f"  p50 {fmt(row.get(p50_key), p50_fmt)} {p50_unit}"
            + (f"  p99 {fmt(row.get('p99_us'), '{:.0f}')} us" if "p99_us" in row else "")
            + f"  other CPU {row['background_cpu']:.0%}"
            + (f"  INVALID: {row['problem']}" if not row["valid"] else ""))


def alternate(items, rnd):
    """`items` in order on odd rounds, reversed on even ones: who goes first alternates."""
    return list(items) if rnd % 2 else list(reversed(items))


# ---------------------------------------------------------------------------------------
# Statistics and tables


# Columns every table shows alike: (key, title, format).
REQ_S = ("requests_per_s", "req/s", "{:,.0f}")
CPU_REQ = ("cpu_us_per_req", "CPU us/req", "{:.3f}")
SRV_CPU = ("server_cpu_util", "srv CPU", "{:.0%}")
LOAD_CPU = ("load_cpu_util", "load CPU", "{:.0%}")
OTHER_CPU = ("background_cpu", "other CPU", "{:.0%}")


def median_or_none(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summary_of(rows, metrics, range_keys, valid=lambda r: r.get("valid", True)):
    """Medians of the valid rows for every metric, min and max of each of `range_keys`,
    and how many rounds there were (rounds) and were valid (rounds_valid)."""
    good = [r for r in rows if valid(r)]
    s = medians(good, [m[0] for m in metrics])
    for k in range_keys:
        s[k + "_min"] = min((r[k] for r in good if r.get(k) is not None), default=None)
        s[k + "_max"] = max((r[k] for r in good if r.get(k) is not None), default=None)
    s["rounds_valid"] = len(good)
    s["rounds"] = len(rows)
    return s


def ratio(a, b):
    return a / b if a is not None and b else None


def medians(rows, keys):
    return {k: median_or_none(r.get(k) for r in rows) for k in keys}


def pairs(rows, a, b, key=lambda r: r["round"], who=lambda r: r["server"]):
    """(row of a, row of b) for every round (or other `key`) in which both ran."""
    by = {}
    for r in rows:
        if who(r) in (a, b):
            by.setdefault(key(r), {})[who(r)] = r
    return [(d[a], d[b]) for d in by.values() if len(d) == 2]


def paired_ratios(me, them, pairs_, metrics):
    """For each (name, key): the ratio of the medians `me`/`them` as name, and the median
    of the per-round ratios as name_paired; for the first metric also its bootstrap interval."""
    out = {}
    for name, key in metrics:
        per_round = [ratio(a.get(key), b.get(key)) for a, b in pairs_]
        out[name] = ratio(me.get(key), them.get(key))
        out[name + "_paired"] = median_or_none(per_round)
    name, key = metrics[0]
    out[name + "_paired_interval"] = median_interval([ratio(a.get(key), b.get(key)) for a, b in pairs_])
    out["rounds_paired"] = len(pairs_)
    return out


def median_interval(values, level=0.90, resamples=4000, seed=1):
    """(low, high) of a `level` percentile bootstrap interval for the median of `values`,
    or None with fewer than 3 values (no interval worth the name).

    On a small shared machine single rounds vary by tens of percent; the rounds are
    resampled with replacement (seeded: a run's report is reproducible) and the median
    taken each time. Where the interval straddles a target, the rounds cannot decide it."""
    values = [v for v in values if v is not None]
    if len(values) < 3:
        return None
    rng = random.Random(seed)
    n = len(values)
    meds = sorted(statistics.median(rng.choices(values, k=n)) for _ in range(resamples))
    tail = (1.0 - level) / 2.0
    return meds[int(tail * (resamples - 1))], meds[int((1.0 - tail) * (resamples - 1))]


def format_interval(interval, spec="{:.3f}"):
    if interval is None:
        return "n/a"
    return "[" + spec.format(interval[0]) + ", " + spec.format(interval[1]) + "]"


def fmt(value, spec, width=0):
    text = "n/a" if value is None else spec.format(value)
    return f"{text:>{width}}"


def table(names, summary, metrics, min_width=10, first=14, indent="  ", head="server", tail=None,
          tail_head="", label=lambda n: n):
    """Prints one row per name of summary[name][key] under the metrics' titles; tail(name)
    adds cells at the end of a row (under tail_head)."""
    widths = [max(len(title), min_width) for _, title, _ in metrics]
    print(f"{indent}{head:<{first}}" + "".join(f"{t:>{w + 2}}" for (_, t, _), w in zip(metrics, widths))
          + tail_head)
    for name in names:
        s = summary[name]
        print(f"{indent}{label(name):<{first}}"
              + "".join(fmt(s.get(key), f, w + 2) for (key, _, f), w in zip(metrics, widths))
              + (tail(name) if tail else ""))


def valid_cell(s):
    return f"{s['rounds_valid']:>4}/{s['rounds']:<3}"


def settle(row, problems, server):
    """Marks a row invalid with its problems (a server that died during it is one)."""
    if not server.alive():
        problems.append(f"{server.name} exited (status {server.proc.returncode})")
    if problems:
        row["valid"] = False
        row["problem"] = "; ".join(problems)
    return row


def contention_notes(summaries, load="netloop-load", per="message", load_key="load_cpu_util"):
    if any((s.get("background_cpu") or 0) > 0.05 for s in summaries):
        print("  warning: other processes used more than 5% of the machine's CPUs during the "
              "rounds (column 'other CPU'); the numbers are skewed by contention.")
    if any((s.get(load_key) or 0) > 0.9 for s in summaries):
        print(f"  note: {load} ran at >90% of a CPU: throughput is bounded by the client; "
              f"CPU per {per} is the fairer comparison.")


# ---------------------------------------------------------------------------------------
# wrk


UNITS_US = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}


def parse_wrk(out):
    """The numbers of one wrk report; raises ValueError when it is not one."""
    r = {}
    m = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    if not m:
        raise ValueError("no Requests/sec line")
    r["requests_per_s"] = float(m.group(1))
    m = re.search(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h),", out, re.M)
    if not m:
        raise ValueError("no 'N requests in T' line")
    r["requests"] = int(m.group(1))
    r["wrk_duration_s"] = float(m.group(2)) * UNITS_US[m.group(3)] / 1e6
    for pct, key in (("50", "p50_us"), ("99", "p99_us")):
        m = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s|m|h)\s*$", out, re.M)
        v = float(m.group(1)) * UNITS_US[m.group(2)] if m else None
        # wrk prints 0 when it could not place the percentile (seen with pipelining).
        r[key] = v if v else None
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    r["non_2xx_3xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errs = [int(x) for x in m.groups()] if m else [0, 0, 0, 0]
    r.update(zip(("err_connect", "err_read", "err_write", "err_timeout"), errs))
    # bench/wrk/statuses.lua's line, after wrk's report: "statuses: 304=812345 200=3".
    m = re.search(r"^statuses:(( \d+=\d+)*)\s*$", out, re.M)
    if m:
        r["statuses"] = {int(k): int(v) for k, v in re.findall(r"(\d+)=(\d+)", m.group(1))}
    return r


# ---------------------------------------------------------------------------------------
# Output and the entry point


def result_base(args, name, tag):
    os.makedirs(args.out_dir, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return os.path.join(args.out_dir, f"{name}-{stamp}-{tag}")


def config_of(args, keys, **more):
    config = {k: getattr(args, k) for k in keys}
    config.update(more)
    config.setdefault("clk_tck", CLK_TCK)
    return config


def write_results(base, doc, rows, first=("round", "server"), csv_rows=None):
    """BASE.json (doc) and BASE.csv (rows, columns `first` then the rest in first-seen
    order); returns the paths written."""
    with open(base + ".json", "w") as f:
        json.dump(doc, f, indent=2, default=str)
        f.write("\n")
    paths = [base + ".json"]
    rows = rows if csv_rows is None else csv_rows
    if rows:
        cols = list(first)
        for r in rows:
            cols += [k for k in r if k not in cols]
        with open(base + ".csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=cols, restval="")
            w.writeheader()
            w.writerows(rows)
        paths.append(base + ".csv")
    return paths


SYSTEM_PYTHON = "/usr/bin/python3"  # where Debian's python3-matplotlib is importable


def chart(draw, json_path, png, script, apt_hint="apt-get install python3-matplotlib"):
    """draw(data, png) here, or `script --plot JSON PNG` with the system Python when only
    that one has matplotlib; True when the PNG was drawn."""
    try:
        import matplotlib  # noqa: F401
        have = True
    except ImportError:
        have = False
    if have:
        with open(json_path) as f:
            draw(json.load(f), png)
        return True
    # Debian's python3-matplotlib belongs to /usr/bin/python3; this script may run under
    # another interpreter (a pyenv or venv python3 first on PATH).
    here = os.path.realpath(sys.executable)
    if os.access(SYSTEM_PYTHON, os.X_OK) and os.path.realpath(SYSTEM_PYTHON) != here:
        probe = subprocess.run([SYSTEM_PYTHON, "-c", "import matplotlib"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        if probe.returncode == 0:
            done = subprocess.run([SYSTEM_PYTHON, script, "--plot", json_path, png], stdin=subprocess.DEVNULL)
            return done.returncode == 0
    print(f"{PROG}: matplotlib is not installed for {sys.executable}, so no chart was drawn "
          f"(the CSV and JSON are written).\n"
          f"  install it with:  sudo {apt_hint}\n"
          f"  then draw this run's chart with:  {SYSTEM_PYTHON} {script} --plot {json_path} {png}",
          file=sys.stderr)
    return False


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt  # unwinds through the finally that stops the servers


def main(prog, run, argv=None, what="servers stopped", signals=True):
    """The entry point of a compare script: exits with run(argv)'s status, 1 with one line
    on a Failure, 130 when interrupted (SIGINT, SIGTERM, SIGHUP) after stopping children."""
    global PROG
    PROG = prog
    argv = sys.argv[1:] if argv is None else argv
    if signals:
        signal.signal(signal.SIGTERM, _on_sigterm)
        signal.signal(signal.SIGHUP, _on_sigterm)
        signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    try:
        sys.exit(run(argv))
    except Failure as e:
        print(f"{prog}: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; {what}", file=sys.stderr)
        sys.exit(130)
