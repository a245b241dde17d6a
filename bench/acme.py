#!/usr/bin/python3
"""Issue 4's figures: ACME certificates at the agent, measured.

  /usr/bin/python3 bench/acme.py [--runs 3] [--seconds 5] [--out FILE]

1. Time from agent start to a usable certificate, against Pebble with
   real validation (BIND for DNS, the gateway's entries probed): until
   the agent logs the certificate, and until a visitor gets a verified
   200 through `tls: terminate` with it.  http-01 and tls-alpn-01.
2. CPU seconds and peak memory of the agent (and its order child) during
   that issuance.
3. New TLS handshakes per second: the agent's `tls: terminate` (visitor
   -> gateway -> agent, which ends TLS) against nginx ending TLS itself
   with the same certificate and key, on this machine, in one run.

Everything runs on loopback and is stopped by PID, also on failure.
"""

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "system"))
import conftest  # noqa: E402  (the test fixtures: real processes)
from conftest import Agent, Bind, CA, Gateway, Nginx, Pebble, Procs  # noqa

NAME = "app.example.test"
BUILD = os.path.join(ROOT, os.environ.get("PORCH_BUILD", "build"))
TLS_RATE = os.path.join(BUILD, "tls_rate")
HZ = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    """utime+stime of pid and of its reaped children (the order child)."""
    with open(f"/proc/{pid}/stat") as f:
        v = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in v[11:15]) / HZ


def status_kib(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def stack(procs, tmp, challenge):
    """BIND, a gateway, Pebble probing it, nginx on plain HTTP, and an
    agent (not started) terminating TLS for NAME in front of it."""
    bind = Bind(procs, tmp, [f"{NAME.split('.')[0]} 60 IN A 127.0.0.1"])
    gw = Gateway(procs, tmp)
    pebble = Pebble(procs, tmp, gw.http_port, gw.tls_port, bind)
    ca = CA(os.path.join(tmp, "ca"))
    ng = Nginx(procs, tmp, ca, NAME, tag="plain")
    state = os.path.join(tmp, "state")
    a = Agent(procs, tmp, extra=pebble.acme_section(
        state, [f"challenge: [{challenge}]"]))
    a.use(gw)
    gw.admit(a, [NAME])
    a.serve(NAME, tls="terminate", http=ng.http)
    gw.start()
    return gw, pebble, a, ca, state


def issuance(tmp, challenge):
    """One fresh agent obtaining one certificate; returns the figures."""
    procs = Procs(tmp)
    try:
        gw, pebble, a, ca, state = stack(procs, tmp, challenge)
        t0 = time.monotonic()
        a.start(wait_serving=False)
        pid = a.proc.pid
        peak_child = 0
        # Sample the order child's memory while it lives.
        while "certificate obtained" not in a.proc.log():
            for c in children(pid):
                peak_child = max(peak_child, status_kib(c, "VmHWM"))
            if time.monotonic() - t0 > 60:
                raise RuntimeError("no certificate in 60 s:\n" +
                                   a.proc.log()[-2000:])
            time.sleep(0.005)
        t_cert = time.monotonic() - t0
        # Usable: a visitor verifying against Pebble's root gets a 200.
        while True:
            r = conftest.curl(f"https://{NAME}:{gw.tls_port}/whoami", NAME,
                              gw.tls_port, ca=pebble.root)
            if r.returncode == 0 and "plain" in r.stdout:
                break
            if time.monotonic() - t0 > 70:
                raise RuntimeError(f"certificate not served: {r.stderr}")
            time.sleep(0.01)
        t_use = time.monotonic() - t0
        return {"cert_s": t_cert, "usable_s": t_use,
                "agent_cpu_s": cpu_s(pid),
                "agent_hwm_kib": status_kib(pid, "VmHWM"),
                "agent_rss_kib": status_kib(pid, "VmRSS"),
                "child_hwm_kib": peak_child}
    finally:
        problems = procs.stop_all()
        if problems:
            print("\n".join(problems), file=sys.stderr)


def rate(port, seconds, threads, cafile, path=None):
    argv = [TLS_RATE, "-c", f"127.0.0.1:{port}", "-n", NAME, "-t",
            str(threads), "-s", str(seconds), "-A", cafile]
    if path:
        argv += ["-r", path]
    r = subprocess.run(argv, capture_output=True, text=True,
                       timeout=seconds + 60)
    if r.returncode != 0:
        raise RuntimeError(f"tls_rate failed: {r.stdout} {r.stderr}")
    return json.loads(r.stdout)


def handshakes(tmp, seconds, threads):
    """terminate at the agent vs nginx, same certificate, one run."""
    procs = Procs(tmp)
    try:
        gw, pebble, a, ca, state = stack(procs, tmp, "http-01")
        a.start(wait_serving=False)
        a.proc.wait_log("certificate obtained", timeout=60)
        cur = os.path.join(state, "certs", NAME, "current")
        # nginx with the very certificate and key the agent got.
        ng2 = Nginx(procs, os.path.join(tmp, "n2"), ca, NAME, tag="same")
        conf = os.path.join(ng2.dir, "nginx.conf")
        with open(conf) as f:
            text = f.read()
        text = text.replace(ng2.crt, os.path.join(cur, "fullchain.pem"))
        text = text.replace(ng2.key, os.path.join(cur, "privkey.pem"))
        with open(conf, "w") as f:
            f.write(text)
        ng2.proc.stop()
        ng2.proc = procs.start("nginx-same2", ["nginx", "-p", ng2.dir, "-c",
                                               conf])
        conftest.wait_port(ng2.tls_port)
        out = {}
        for label, port in (("nginx", ng2.tls_port),
                            ("porch_terminate", gw.tls_port)):
            out[label] = rate(port, seconds, threads, pebble.root)
            out[label + "_get"] = rate(port, seconds, threads, pebble.root,
                                       "/whoami")
        return out
    finally:
        problems = procs.stop_all()
        if problems:
            print("\n".join(problems), file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--out", default=os.path.join(HERE, "ACME.md"))
    args = ap.parse_args()
    if not os.path.exists(TLS_RATE):
        sys.exit(f"{TLS_RATE} missing: run 'make {TLS_RATE}' first")
    res = {"http-01": [], "tls-alpn-01": []}
    for ch in res:
        for i in range(args.runs):
            with tempfile.TemporaryDirectory() as tmp:
                res[ch].append(issuance(tmp, ch))
            print(f"{ch} run {i + 1}: {res[ch][-1]}", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        hs = handshakes(tmp, args.seconds, args.threads)
    print(json.dumps(hs), file=sys.stderr)

    def med(ch, key):
        return statistics.median(r[key] for r in res[ch])

    lines = [
        "# ACME at the agent: measured",
        "",
        f"Generated by `bench/acme.py` on {time.strftime('%Y-%m-%d')}, "
        f"{platform.node()}, {os.cpu_count()} CPUs shared by every "
        "process (Pebble, BIND, nginx, gateway, agent, client); "
        f"medians of {args.runs} runs, each with a fresh agent and a fresh "
        "Pebble (real validation, no sleeps: PEBBLE_VA_NOSLEEP=1).",
        "",
        "## Time to a usable certificate, agent CPU and memory",
        "",
        "| challenge | agent start to certificate | to first verified "
        "visitor | agent CPU (incl. order child) | agent peak RSS | "
        "order child peak RSS |",
        "|---|---|---|---|---|---|",
    ]
    for ch in res:
        lines.append(
            f"| {ch} | {med(ch, 'cert_s'):.2f} s | "
            f"{med(ch, 'usable_s'):.2f} s | "
            f"{med(ch, 'agent_cpu_s') * 1000:.0f} ms | "
            f"{med(ch, 'agent_hwm_kib') / 1024:.1f} MiB | "
            f"{med(ch, 'child_hwm_kib') / 1024:.1f} MiB |")
    lines += [
        "",
        "Most of the time is the ACME client's polling: it asks for the "
        "authorization and the order again after the CA's Retry-After, or "
        "after 250 ms, 500 ms, then every second.  CPU is counted in clock "
        "ticks of 10 ms (utime+stime of the agent and its reaped order "
        "child); RSS is VmHWM.",
        "",
        f"## New TLS handshakes per second ({args.threads} client threads, "
        f"{args.seconds:g} s each, no session reuse)",
        "",
        "| setup | handshakes/s | p50 | p99 | with one GET: conn/s | p50 | "
        "p99 |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, title in (("nginx", "nginx ends TLS (same cert and key)"),
                         ("porch_terminate", "gateway -> agent "
                          "`tls: terminate` -> nginx (plain HTTP)")):
        h, g = hs[label], hs[label + "_get"]
        lines.append(f"| {title} | {h['rate']:.0f} | {h['p50_ms']:.2f} ms | "
                     f"{h['p99_ms']:.2f} ms | {g['rate']:.0f} | "
                     f"{g['p50_ms']:.2f} ms | {g['p99_ms']:.2f} ms |")
    ratio = hs["porch_terminate"]["rate"] / hs["nginx"]["rate"]
    ratio_g = hs["porch_terminate_get"]["rate"] / hs["nginx_get"]["rate"]
    lines += ["", f"Ratio porch terminate / nginx: **{ratio:.2f}x** "
              f"(handshakes), **{ratio_g:.2f}x** (handshake + GET).", ""]
    text = "\n".join(lines)
    if args.out == "-":
        print(text)
    else:
        with open(args.out, "w") as f:
            f.write(text)
        print(text)


if __name__ == "__main__":
    main()
