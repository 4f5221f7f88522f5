#!/usr/bin/env python3
"""E2E: testssl.sh against netloop-demo --https (a certificate made at test time, its CA
given to testssl with --add-ca): protocols, cipher categories, forward secrecy, every
vulnerability check, the ciphers per protocol and the server defaults. Nothing may be
flagged vulnerable or worse than LOW (a WARN, a check testssl.sh could not run,
is named in the result; more than two fail); no SSLv2, SSLv3, TLS 1.0 or 1.1; TLS 1.2 and 1.3
offered; no CBC suite in any protocol; ALPN http/1.1 and never h2. Its --jsonfile output
is what is checked. Bounded: --fast, and killed after 360 s.

Exits 77 (meson: SKIP) when testssl.sh or the openssl CLI is missing or the build has no
TLS.

Usage: test_demo_tls_testssl.py PATH/TO/netloop-demo"""

import json
import os
import subprocess
import sys
import time

from e2e_util import Failure, check, main
from tls_util import Pki, TlsDemo, skip_unless_ready, tool

PKI = None
TESTSSL_SECONDS = 360

# Findings that belong to the test certificate's surroundings, not to the server: no CAA
# record in DNS for "localhost", and the engine/RC4 "local problem" warnings of Debian's
# OpenSSL build that testssl.sh drives.
ALLOWED_LOW = {"DNS_CAArecord"}
ALLOWED_WARN = {"engine_problem", "RC4"}


def run_testssl(port, json_path):
    cmd = [tool("testssl"), "--quiet", "--color", "0", "--warnings", "off", "--fast",
           "--add-ca", PKI.ca, "--ip", "127.0.0.1", "--connect-timeout", "20",
           "--openssl-timeout", "30", "--jsonfile", json_path,
           "-p", "-s", "-f", "-U", "-E", "-S", "https://localhost:%d" % port]
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=TESTSSL_SECONDS, start_new_session=True)
    except subprocess.TimeoutExpired:
        raise Failure("testssl.sh did not finish within %d s" % TESTSSL_SECONDS)
    check(os.path.exists(json_path), "testssl.sh wrote no JSON (exit %d): %s"
          % (p.returncode, p.stdout.decode(errors="replace")[-800:] + p.stderr.decode(errors="replace")[-400:]))
    with open(json_path) as f:
        return json.load(f), time.monotonic() - t0


def test_testssl(exe):
    with TlsDemo(exe, [("--https", "127.0.0.1:0")], [PKI.main], ["--log-level", "warn"]) as d:
        findings, took = run_testssl(d.port("https"), PKI.path("testssl.json"))
        check(d.alive(), "the server died under testssl.sh")
        d.stop()
    by_id = {}
    problems = []
    inconclusive = []
    for f in findings:
        fid, sev, text = f.get("id", ""), f.get("severity", ""), f.get("finding", "")
        by_id[fid] = f
        low = text.lower()
        if "vulnerable" in low and "not vulnerable" not in low:
            problems.append("%s: %s" % (fid, text))
        elif "not ok" in low:
            problems.append("%s: %s" % (fid, text))
        elif sev in ("MEDIUM", "HIGH", "CRITICAL"):
            problems.append("%s (%s): %s" % (fid, sev, text))
        elif sev == "LOW" and fid not in ALLOWED_LOW:
            problems.append("%s (LOW): %s" % (fid, text))
        elif sev == "FATAL":
            problems.append("%s (%s): %s" % (fid, sev, text))
        elif sev == "WARN" and fid not in ALLOWED_WARN:
            # testssl.sh could not tell (a check's connection timed out on a loaded
            # machine, say): said in the result, not a finding about the server.
            inconclusive.append("%s: %s" % (fid, text))
        if fid.startswith("cipher-") and "CBC" in text:
            problems.append("CBC suite offered: %s" % text)
    for fid in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
        check(fid in by_id, "testssl.sh said nothing about %s" % fid)
        if not by_id[fid]["finding"].startswith("not offered"):
            problems.append("%s: %s" % (fid, by_id[fid]["finding"]))
    for fid in ("TLS1_2", "TLS1_3"):
        check(fid in by_id, "testssl.sh said nothing about %s" % fid)
        if not by_id[fid]["finding"].startswith("offered"):
            problems.append("%s: %s (expected offered)" % (fid, by_id[fid]["finding"]))
    alpn = by_id.get("ALPN", {}).get("finding", "")
    if "http/1.1" not in alpn or "h2" in alpn:
        problems.append("ALPN: %r (expected http/1.1, never h2)" % alpn)
    ciphers = [f for f in findings if f.get("id", "").startswith("cipher-")]
    check(ciphers, "testssl.sh listed no cipher per protocol")
    check(not problems, "testssl.sh flagged %d: %s" % (len(problems), "; ".join(problems)))
    check(len(inconclusive) <= 2, "testssl.sh could not run %d checks: %s"
          % (len(inconclusive), "; ".join(inconclusive)))
    note = "%d findings, %d suites, %.0f s" % (len(findings), len(ciphers), took)
    if inconclusive:
        note += "; inconclusive (WARN): " + "; ".join(inconclusive)
    return note


TESTS = [("testssl.sh: nothing vulnerable, no TLS < 1.2, no CBC", test_testssl)]

if __name__ == "__main__":
    skip_unless_ready(sys.argv, ("openssl", "testssl"), "testssl.sh e2e")
    if len(sys.argv) == 2:
        PKI = Pki()
        # Long enough that testssl.sh does not warn of its expiry; a CRL address (never
        # fetched) so that it does not flag a certificate that cannot be revoked.
        PKI.main = PKI.leaf("main", days=200,
                            more_ext="crlDistributionPoints=URI:http://localhost/netloop-test.crl\n")
    try:
        code = main(TESTS, sys.argv)
    finally:
        if PKI:
            PKI.close()
    sys.exit(code)
