#!/usr/bin/env python3
"""E2E: netloop-demo's TLS listeners (--tls-echo, --https) with certificates made at test
time: Python's ssl module echoes 1 B, 16 KiB - 1, 16 KiB, 16 KiB + 1 and 1 MiB intact and
gets its close_notify answered; a FIN without close_notify does not hurt the server;
openssl s_client: TLS 1.2 and 1.3 work, 1.0 and 1.1 and CBC-only suites are refused,
ALPN, resumption (1.2 and 1.3), renegotiation refused, SNI picks the second certificate;
SIGHUP with the files replaced (new connections get the new certificate, an open one
keeps working, a broken file keeps the old one); bad certificate or key files and a
mismatched key exit 2 with one line; the TLS counters in --metrics.

Exits 77 (meson: SKIP) when the openssl CLI is missing or the build has no TLS.

Usage: test_demo_tls.py PATH/TO/netloop-demo"""

import hashlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time

from e2e_util import Failure, check, main, run_demo, wait_ended
from tls_util import (Pki, TlsDemo, client_context, recv_exactly, skip_unless_ready,
                      tls_connect, tls_echo, tool)

PKI = None  # made once, in __main__


def pki():
    return PKI


def certs():
    """The default certificate (localhost, 127.0.0.1, ::1) and the one for other.test."""
    return [PKI.main, PKI.other]


def echo_demo(exe, extra=()):
    return TlsDemo(exe, [("--tls-echo", "127.0.0.1:0")], certs(), extra)


def https_demo(exe, extra=()):
    return TlsDemo(exe, [("--https", "127.0.0.1:0")], certs(), extra)


# --- Python's ssl module -----------------------------------------------------------------

def test_echo_sizes(exe):
    ctx = client_context(PKI.ca)
    with echo_demo(exe) as d:
        port = d.port("tls-echo")
        for size in (1, 16383, 16384, 16385, 1024 * 1024):
            with tls_connect(ctx, "127.0.0.1", port) as s:
                check(s.version() in ("TLSv1.2", "TLSv1.3"), "version %s" % s.version())
                tls_echo(s, os.urandom(size))
        # Both versions, each pinned.
        for v in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            with tls_connect(client_context(PKI.ca, versions=(v, v)), "127.0.0.1", port) as s:
                tls_echo(s, os.urandom(16385))
        check(d.tls_metric("handshakes", "tls-echo") >= 7, "handshakes counted")
        d.stop()


def test_close_notify_answered(exe):
    ctx = client_context(PKI.ca)
    with echo_demo(exe) as d:
        for v in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            ctx = client_context(PKI.ca, versions=(v, v))
            s = tls_connect(ctx, "127.0.0.1", d.port("tls-echo"))
            tls_echo(s, b"bye")
            s.settimeout(5)
            try:
                plain = s.unwrap()  # sends close_notify, waits for the server's
            except (ssl.SSLError, OSError) as e:
                raise Failure("%s: close_notify not answered: %s" % (v.name, e))
            check(wait_ended(plain, 5) == "eof", "%s: the TCP stream did not end after close_notify" % v.name)
            plain.close()
        d.stop()


def test_fin_without_close_notify(exe):
    ctx = client_context(PKI.ca)
    with echo_demo(exe) as d:
        for _ in range(3):
            s = tls_connect(ctx, "127.0.0.1", d.port("tls-echo"))
            tls_echo(s, b"x" * 100)
            s.shutdown(socket.SHUT_WR)  # drops the TLS state: a FIN, no close_notify
            raw = socket.socket(fileno=os.dup(s.fileno()))
            s.close()
            # Whatever comes first (an alert, say), the server must end the stream.
            deadline = time.monotonic() + 5
            how = "open"
            while how in ("open", "data") and time.monotonic() < deadline:
                how = wait_ended(raw, max(0.1, deadline - time.monotonic()))
            check(how in ("eof", "reset"), "the server kept a truncated stream open (%s)" % how)
            raw.close()
        check(d.alive(), "the server died after a FIN without close_notify")
        with tls_connect(ctx, "127.0.0.1", d.port("tls-echo")) as s:
            tls_echo(s, b"still serving")
        d.stop()


# --- openssl s_client --------------------------------------------------------------------

def s_client(port, *args, stdin=b"", linger=0.8, timeout=15, server_name="localhost"):
    """Runs openssl s_client against 127.0.0.1:port, feeding `stdin` (bytes, or a list of
    pieces written half a second apart), then `linger`
    seconds of silence, so that TLS 1.3 tickets arrive, then EOF); returns (rc, output)."""
    cmd = [tool("openssl"), "s_client", "-connect", "127.0.0.1:%d" % port, "-CAfile", PKI.ca,
           "-verify_return_error"]
    if server_name:
        cmd += ["-servername", server_name]
    cmd += list(args)
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        # A list is written piece by piece: s_client reads a command ("R") only when it
        # comes alone in one read.
        for i, piece in enumerate(stdin if isinstance(stdin, list) else [stdin]):
            if i:
                time.sleep(0.5)
            if piece:
                p.stdin.write(piece)
                p.stdin.flush()
        time.sleep(linger)
    except BrokenPipeError:  # it ended already
        pass
    try:
        p.stdin.close()
    except BrokenPipeError:
        pass
    p.stdin = None  # closed: communicate() only reads
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise Failure("openssl s_client %s did not finish within %d s" % (" ".join(args), timeout))
    return p.returncode, out.decode(errors="replace")


def established(out):
    return "Verify return code: 0 (ok)" in out and "Cipher is (NONE)" not in out and "New, (NONE)" not in out


def protocol_of(out):
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("Protocol") and ":" in line:
            return line.split(":", 1)[1].strip()
    return None


def test_s_client_versions(exe):
    with echo_demo(exe) as d:
        port = d.port("tls-echo")
        for flag, want in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
            rc, out = s_client(port, flag, stdin=b"ping\n")
            check(established(out) and protocol_of(out) == want,
                  "%s did not establish %s: %s" % (flag, want, out[-800:]))
            check("ping" in out.split("---")[-1] or "ping" in out, "%s: no echo" % flag)
        # TLS 1.0 and 1.1: the client is told to allow them (SECLEVEL=0), the server refuses.
        for flag in ("-tls1", "-tls1_1"):
            rc, out = s_client(port, flag, "-cipher", "DEFAULT:@SECLEVEL=0")
            check(rc != 0 and not established(out),
                  "%s was accepted (rc %d): %s" % (flag, rc, out[-800:]))
            check("alert" in out.lower() or "wrong version" in out.lower()
                  or "unsupported protocol" in out.lower() or "handshake failure" in out.lower(),
                  "%s: refused without a TLS alert? %s" % (flag, out[-800:]))
        # CBC-only suites in TLS 1.2: no shared cipher.
        for cipher in ("ECDHE-ECDSA-AES128-SHA256", "ECDHE-ECDSA-AES256-SHA:ECDHE-ECDSA-AES128-SHA"):
            rc, out = s_client(port, "-tls1_2", "-cipher", cipher)
            check(rc != 0 and not established(out), "CBC suite %s accepted: %s" % (cipher, out[-800:]))
        check(d.tls_metric("handshake_failures", "tls-echo") >= 4, "refusals counted as failures")
        check(d.alive(), "the server died")
        d.stop()


def test_s_client_alpn(exe):
    with https_demo(exe) as d:
        port = d.port("https")
        for offer, want in (("http/1.1", "http/1.1"), ("h2,http/1.1", "http/1.1"), ("h2", None)):
            rc, out = s_client(port, "-alpn", offer, stdin=b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            check(established(out), "ALPN %s: no handshake: %s" % (offer, out[-800:]))
            if want:
                check("ALPN protocol: %s" % want in out, "ALPN %s: expected %s: %s" % (offer, want, out[-800:]))
            else:
                check("No ALPN negotiated" in out, "ALPN h2 alone: expected none: %s" % out[-800:])
            check("HTTP/1.1 200" in out, "ALPN %s: no HTTP response: %s" % (offer, out[-400:]))
        d.stop()
    with echo_demo(exe) as d:
        rc, out = s_client(d.port("tls-echo"), "-alpn", "http/1.1")
        check(established(out) and "No ALPN negotiated" in out, "tls-echo offered ALPN: %s" % out[-800:])
        d.stop()


def test_s_client_resumption(exe):
    with echo_demo(exe) as d:
        port = d.port("tls-echo")
        # TLS 1.2 by ticket and by session ID (-no_ticket), TLS 1.3 by ticket.
        for flags in (("-tls1_2",), ("-tls1_2", "-no_ticket"), ("-tls1_3",)):
            what = " ".join(flags)
            sess = PKI.path("session%s.pem" % "".join(flags))
            rc, out = s_client(port, *flags, "-sess_out", sess, stdin=b"one\n")
            check(established(out) and "New," in out, "%s first: %s" % (what, out[-800:]))
            check(os.path.exists(sess) and os.path.getsize(sess) > 0, "%s: no session saved" % what)
            rc, out = s_client(port, *flags, "-sess_in", sess, stdin=b"two\n")
            check("Reused," in out, "%s: the session was not resumed: %s" % (what, out[-1200:]))
        check(d.tls_metric("resumed", "tls-echo") >= 3, "resumptions counted")
        d.stop()


def test_s_client_renegotiation_refused(exe):
    with echo_demo(exe) as d:
        port = d.port("tls-echo")
        # s_client's "R" line asks for a renegotiation (TLS 1.2 only has it).
        rc, out = s_client(port, "-tls1_2", stdin=[b"before\n", b"R\n", b"after\n"], linger=1.5)
        check(established(out), "no handshake: %s" % out[-800:])
        after = out.split("RENEGOTIATING", 1)
        check(len(after) == 2, "s_client did not try to renegotiate: %s" % out[-800:])
        tail = after[1]
        refused = ("no renegotiation" in tail.lower() or "alert" in tail.lower()
                   or "errno" in tail.lower() or rc != 0)
        check(refused, "the renegotiation seems to have succeeded: %s" % tail[-800:])
        check("Verify return code" not in tail, "a second handshake completed: %s" % tail[-800:])
        check(d.alive(), "the server died")
        with tls_connect(client_context(PKI.ca), "127.0.0.1", port) as s:
            tls_echo(s, b"after")
        d.stop()


def subject_cn(out):
    for line in out.splitlines():
        if line.startswith("subject="):
            return line.split("CN", 1)[-1].strip(" =")
    return None


def test_sni(exe):
    with echo_demo(exe) as d:
        port = d.port("tls-echo")
        for name, want in (("localhost", "localhost"), ("other.test", "other.test"),
                           ("unknown.test", "localhost"), (None, "localhost")):
            args = () if name else ("-noservername",)
            rc, out = s_client(port, *args, server_name=name)
            check(subject_cn(out) == want, "SNI %s: certificate %s, expected %s"
                  % (name, subject_cn(out), want))
        # And Python verifies the second one by its name.
        with tls_connect(client_context(PKI.ca), "127.0.0.1", port, server_name="other.test") as s:
            check(s.getpeercert()["subject"][0][0][1] == "other.test", "python: not other.test")
            tls_echo(s, b"sni")
        d.stop()


# --- SIGHUP ------------------------------------------------------------------------------

def fingerprint(sock):
    return hashlib.sha256(sock.getpeercert(binary_form=True)).hexdigest()


def test_sighup_reload(exe):
    cert, key = PKI.path("live.pem"), PKI.path("live.key")
    a_cert, a_key = PKI.leaf("reload-a")
    b_cert, b_key = PKI.leaf("reload-b")
    shutil.copy(a_cert, cert)
    shutil.copy(a_key, key)
    ctx = client_context(PKI.ca)
    with TlsDemo(exe, [("--tls-echo", "127.0.0.1:0")], [(cert, key)]) as d:
        port = d.port("tls-echo")
        old = tls_connect(ctx, "127.0.0.1", port)
        tls_echo(old, b"before")
        fp_a = fingerprint(old)
        # Replaced the way a deploy does it: new files renamed over the old ones.
        shutil.copy(b_cert, cert + ".new")
        shutil.copy(b_key, key + ".new")
        os.rename(cert + ".new", cert)
        os.rename(key + ".new", key)
        mark = len(d.stderr_all())
        os.kill(d.pid, signal.SIGHUP)
        d.wait_log(r"SIGHUP: tls-echo certificates reloaded", start=mark)
        with tls_connect(ctx, "127.0.0.1", port) as s:
            check(fingerprint(s) != fp_a, "a new connection still got the old certificate")
            fp_b = fingerprint(s)
            tls_echo(s, b"new")
        tls_echo(old, os.urandom(20000))  # the open connection keeps working
        # A broken file: the reload fails, is logged, and the certificates in use stay.
        with open(cert, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
        mark = len(d.stderr_all())
        os.kill(d.pid, signal.SIGHUP)
        d.wait_log(r"SIGHUP: tls-echo certificates not reloaded, the old ones stay", start=mark)
        with tls_connect(ctx, "127.0.0.1", port) as s:
            check(fingerprint(s) == fp_b, "after a failed reload the certificate changed")
            tls_echo(s, b"kept")
        # A key that does not match: refused the same way.
        shutil.copy(a_cert, cert)  # key is still b's
        mark = len(d.stderr_all())
        os.kill(d.pid, signal.SIGHUP)
        d.wait_log(r"certificates not reloaded", start=mark)
        with tls_connect(ctx, "127.0.0.1", port) as s:
            check(fingerprint(s) == fp_b, "a mismatched pair was loaded")
        tls_echo(old, b"still")
        old.close()
        check(d.alive(), "died on SIGHUP")
        d.stop()


# --- bad certificates and keys -----------------------------------------------------------

def test_bad_files_exit_2(exe):
    cert, key = PKI.main
    _, other_key = PKI.other
    garbage = PKI.path("garbage.pem")
    with open(garbage, "w") as f:
        f.write("this is not PEM\n")
    encrypted = PKI.path("encrypted.key")
    from tls_util import openssl
    openssl("pkey", "-in", key, "-out", encrypted, "-aes256", "-passout", "pass:secret")
    cases = [
        ("missing certificate", PKI.path("nope.pem"), key),
        ("missing key", cert, PKI.path("nope.key")),
        ("garbage certificate", garbage, key),
        ("garbage key", cert, garbage),
        ("key as certificate", key, key),
        ("encrypted key", cert, encrypted),
        ("mismatched key", cert, other_key),
    ]
    for listener in (["--tls-echo", "127.0.0.1:0"], ["--https", "127.0.0.1:0"],
                     ["--tls-proxy", "127.0.0.1:0=127.0.0.1:1"]):
        for what, c, k in cases:
            code, out, err = run_demo(exe, listener + ["--tls-cert", c, "--tls-key", k])
            lines = err.strip().splitlines()
            check(code == 2, "%s %s: exit %d (expected 2); stderr %r" % (listener[0], what, code, err))
            check(len(lines) == 1, "%s %s: %d lines on stderr: %r" % (listener[0], what, len(lines), err))
            check(lines[0].startswith("netloop-demo: "), "%s: %r" % (what, lines[0]))
            check("banner" not in out and "listening" not in out, "%s: it listened: %r" % (what, out))
    # The second pair is checked too.
    code, _, err = run_demo(exe, ["--tls-echo", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key,
                                  "--tls-cert", PKI.other[0], "--tls-key", key])
    check(code == 2 and len(err.strip().splitlines()) == 1, "second pair mismatched: %d %r" % (code, err))
    # And a TLS listener with no certificate at all.
    code, _, err = run_demo(exe, ["--https", "127.0.0.1:0"])
    check(code == 2 and "needs a certificate" in err and len(err.strip().splitlines()) == 1,
          "no certificate: %d %r" % (code, err))


def test_banner_and_log(exe):
    with https_demo(exe) as d:
        banner = d.banners["https"]
        check("TLS OpenSSL" in banner and "kTLS" in banner and "ALPN http/1.1" in banner,
              "banner: %r" % banner)
        d.wait_log(r"TLS: OpenSSL [^;]+; kTLS (possible|not possible)")
        d.stop()


TESTS = [
    ("bad certificate, key or pair: exit 2, one line", test_bad_files_exit_2),
    ("banner and log name the TLS library and kTLS", test_banner_and_log),
    ("python ssl: echo of 1 B, 16 KiB +-1, 1 MiB intact", test_echo_sizes),
    ("python ssl: close_notify answered (1.2, 1.3)", test_close_notify_answered),
    ("python ssl: a FIN without close_notify is survived", test_fin_without_close_notify),
    ("s_client: 1.2 and 1.3 work; 1.0, 1.1, CBC refused", test_s_client_versions),
    ("s_client: ALPN http/1.1 on --https, never h2; none on echo", test_s_client_alpn),
    ("s_client: resumption in 1.2 (ticket, session ID) and 1.3", test_s_client_resumption),
    ("s_client: renegotiation refused", test_s_client_renegotiation_refused),
    ("SNI picks the second certificate", test_sni),
    ("SIGHUP reloads; open connections keep working", test_sighup_reload),
]

if __name__ == "__main__":
    skip_unless_ready(sys.argv, ("openssl",), "TLS e2e")
    if len(sys.argv) == 2:
        PKI = Pki()
        PKI.main = PKI.leaf("main")
        PKI.other = PKI.leaf("other", cn="other.test", sans=("DNS:other.test",))
    try:
        code = main(TESTS, sys.argv)
    finally:
        if PKI:
            PKI.close()
    sys.exit(code)
