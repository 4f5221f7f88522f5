#!/usr/bin/env python3
"""E2E: a real browser against netloop-demo. Headless Chromium loads a page that links a
stylesheet, a script (with a precompressed .gz sibling) and a PNG from the demo, served
with --cache-control no-cache; a second Chromium run on the same profile loads it again
and must revalidate every resource. The demo's access log must show 200s on the first
load and 304s on the second, and the DOM Chromium dumps must show the script ran, the
stylesheet applied and the image decoded, both times.

Chromium gets a fresh profile in a temporary directory and no way off the machine: every
request not to 127.0.0.1 goes to a proxy port on loopback that refuses connections, host
names do not resolve, and its background services are switched off.

Exits 77 (meson's SKIP) when Chromium is not installed. Usage:
test_demo_browser.py PATH/TO/netloop-demo"""

import gzip
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import zlib

from e2e_util import Failure, check, clip, main
from test_demo_http import HttpDemo

SKIP_EXIT = 77
PNG_SIZE = (7, 5)
CSS_COLOR = "rgb(1, 2, 3)"


def png(width, height, rgb):
    """A truecolour PNG of one colour, made with zlib."""
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


PAGE = b"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>netloop browser e2e</title>
<link rel="stylesheet" href="/style.css">
<link rel="icon" href="data:,">
</head><body>
<p id="styled">styled by /style.css</p>
<img id="img" src="/pixel.png" alt="pixel">
<div id="result">the script did not run</div>
<script src="/app.js"></script>
</body></html>
"""
CSS = b"#styled { color: %s; font-weight: bold }\n" % CSS_COLOR.encode()
JS = b"""// Reports, once everything has loaded, what the browser made of the page.
function report() {
  var p = document.getElementById('styled');
  var img = document.getElementById('img');
  var out = document.getElementById('result');
  out.textContent = 'js-ran color=' + getComputedStyle(p).color + ' img=' + img.naturalWidth + 'x' +
      img.naturalHeight + ' complete=' + img.complete;
  out.setAttribute('data-done', '1');
}
if (document.readyState === 'complete') report(); else window.addEventListener('load', report);
""" + b"".join(b"// padding line %d so that the gzip sibling is worth having\n" % i for i in range(40))
RESOURCES = ("/", "/style.css", "/app.js", "/pixel.png")


def find_chromium():
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Site:
    def __enter__(self):
        self._dir = tempfile.TemporaryDirectory(prefix="netloop-e2e-browser-")
        self.root = os.path.join(self._dir.name, "root")
        self.tmp = self._dir.name
        os.makedirs(self.root)
        t = int(time.time()) - 3600
        for name, data in (("index.html", PAGE), ("style.css", CSS), ("app.js", JS),
                           ("app.js.gz", gzip.compress(JS, mtime=0)), ("pixel.png", png(*PNG_SIZE, (200, 30, 40)))):
            path = os.path.join(self.root, name)
            with open(path, "wb") as f:
                f.write(data)
            os.utime(path, (t, t))
        return self

    def __exit__(self, *exc):
        self._dir.cleanup()
        return False


class DeadPort:
    """A loopback port that is bound but not listening: connections to it are refused.
    Chromium's proxy, so that nothing can leave the machine."""

    def __enter__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        return self

    def __exit__(self, *exc):
        self.sock.close()
        return False


def chromium_args(exe, profile, proxy_port, url):
    return [
        exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--no-default-browser-check", "--user-data-dir=" + profile,
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-default-apps", "--disable-extensions", "--disable-domain-reliability",
        "--disable-client-side-phishing-detection", "--disable-breakpad", "--no-pings",
        "--disable-dev-shm-usage", "--password-store=basic", "--use-mock-keychain",
        "--metrics-recording-only", "--disable-features=Translate,OptimizationHints,MediaRouter,"
        "DialMediaRouteProvider,AutofillServerCommunication,CertificateTransparencyComponentUpdater,"
        "InterestFeedContentSuggestions,NetworkTimeServiceQuerying,PrivacySandboxSettings4",
        # Everything but loopback goes to a port that refuses; no name resolves.
        "--proxy-server=http://127.0.0.1:%d" % proxy_port, "--proxy-bypass-list=127.0.0.1;[::1]",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--dump-dom", url,
    ]


def read_text(path):
    with open(path, errors="replace") as f:
        return f.read()


def run_chromium(args, tmp, label, timeout=45):
    """Runs Chromium to completion in its own process group (killed whole on a timeout or
    a failure); returns (the DOM it dumped, its stderr)."""

    def kill_group():
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    err_path = os.path.join(tmp, "chromium-%s.err" % label)
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                                start_new_session=True)
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group()
            proc.communicate(timeout=10)
            raise Failure("chromium (%s load) did not finish within %d s; stderr: %s"
                          % (label, timeout, clip(read_text(err_path), 2000)))
        finally:
            if proc.poll() is None:
                kill_group()
                proc.wait(timeout=10)
        kill_group()  # helpers left behind, if any
    err_text = read_text(err_path)
    check(proc.returncode == 0,
          "chromium (%s load) exited %d; stderr: %s" % (label, proc.returncode, clip(err_text, 2000)))
    return out.decode(errors="replace"), err_text


ACCESS = re.compile(r'INFO 127\.0\.0\.1:\d+ "(\S+) (\S+) HTTP/1\.1" (\d{3}) (\d+)$')


def access_lines(d):
    d.demo.err_file.seek(0)
    text = d.demo.err_file.read().decode(errors="replace")
    return [(m.group(1), m.group(2), int(m.group(3)), int(m.group(4)))
            for m in (ACCESS.search(l) for l in text.splitlines()) if m]


def check_dom(dom, label):
    m = re.search(r'<div id="result"[^>]*>([^<]*)</div>', dom)
    check(m, "%s load: no result element in the dumped DOM: %s" % (label, clip(dom, 1500)))
    text = m.group(1)
    check(text.startswith("js-ran "), "%s load: /app.js did not run: %r" % (label, text))
    check("color=%s " % CSS_COLOR in text,
          "%s load: /style.css not applied (want color %s): %r" % (label, CSS_COLOR, text))
    check(" img=%dx%d " % PNG_SIZE in text and text.endswith("complete=true"),
          "%s load: /pixel.png not decoded (want %dx%d): %r" % (label, PNG_SIZE[0], PNG_SIZE[1], text))
    return text


def statuses(lines, path):
    return [s for method, target, s, _ in lines if target == path and method == "GET"]


def test_browser_revalidates(exe):
    chromium = find_chromium()
    if not chromium:
        return "SKIP chromium is not installed"
    with Site() as site, DeadPort() as proxy, \
            HttpDemo(exe, site.root, ["--cache-control", "no-cache", "--access-log", "--log-level", "info"]) as d:
        profile = os.path.join(site.tmp, "profile")
        url = d.url("/")
        # First load: a fresh profile, everything fetched whole.
        dom, err = run_chromium(chromium_args(chromium, profile, proxy.port, url), site.tmp, "first")
        check_dom(dom, "first")
        first = access_lines(d)
        for path in RESOURCES:
            got = statuses(first, path)
            check(got and got[0] == 200 and 304 not in got,
                  "first load: GET %s got %r (want 200); access log: %r" % (path, got, first))
        # Chromium asks for gzip: /app.js went out as app.js.gz (fewer bytes, head included,
        # than the script alone), and the script ran all the same.
        sent = [n for method, target, s, n in first if target == "/app.js" and s == 200]
        check(sent and sent[0] < len(JS), "first load: /app.js sent %r bytes, the script alone is %d: not the "
              ".gz sibling; access log: %r" % (sent, len(JS), first))
        # Second load, same profile: no-cache makes Chromium revalidate what it stored.
        dom, err = run_chromium(chromium_args(chromium, profile, proxy.port, url), site.tmp, "second")
        check_dom(dom, "second")
        second = access_lines(d)[len(first):]
        for path in RESOURCES:
            got = statuses(second, path)
            check(got == [304],
                  "reload: GET %s got %r (want one 304); access log of the reload: %r" % (path, got, second))
        d.stop()
        return "%d requests, then %d" % (len(first), len(second))


TESTS = [
    ("headless Chromium: 200s, then 304s on the reload (no-cache), JS, CSS and PNG work", test_browser_revalidates),
]

if __name__ == "__main__":
    if len(sys.argv) == 2 and not find_chromium():
        print("SKIP headless Chromium: chromium is not installed (apt-get install chromium)")
        sys.exit(SKIP_EXIT)
    sys.exit(main(TESTS, sys.argv))
