#!/usr/bin/python3
"""porch announce bench: what peer announcements cost with many names.

Three gateways, fully meshed, with a short announce period; agents spread
over them claim NAMES names in all (at most 4000 per agent, the gateway's
claim limit being 4096).  Once every gateway has learned the names of the
others (or after a time limit: an old build caps names per peer), it
measures over a quiet window:
  - bytes on the peer links (both ways, all links: TCP bytes of the TLS
    links, from `ss -ti`; in steady state they carry ANNOUNCE and PING),
  - CPU seconds of the three gateways (utime+stime from /proc),
  - log lines the gateways wrote,
then one agent reconnects (its names withdrawn and claimed again) and
the same three figures are taken for the next two seconds.  Loopback
only; every process is stopped at the end.  It reports; it asserts
nothing.

usage: PORCH_BUILD=build bench/announce.py [--names 10000] [--seconds 10]
       [--announce 2s] [--wait 1]

(--wait 20 or so for a build from before issue 13: there a burst of
claims pushed the periodic announcement away for many periods.)
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "system"))
import conftest as fx  # noqa: E402

PER_AGENT = 4000


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def link_bytes(gws):
    """TCP bytes both ways on the links between gateways, counted on the
    dialing side (its remote port is another gateway's tunnel port)."""
    ports = {g.tunnel_port for g in gws}
    pids = {g.proc.pid for g in gws}
    out = subprocess.run(["ss", "-tinpH", "state", "established"],
                         capture_output=True, text=True).stdout
    total = 0
    lines = out.splitlines()
    for i, ln in enumerate(lines):
        m = re.search(r"127\.0\.0\.1:(\d+)\s+127\.0\.0\.1:(\d+)", ln)
        if not m or int(m.group(2)) not in ports:
            continue
        pm = re.search(r"pid=(\d+)", ln)
        if not pm or int(pm.group(1)) not in pids:
            continue
        info = lines[i + 1] if i + 1 < len(lines) else ""
        for key in ("bytes_sent", "bytes_received"):
            v = re.search(rf"\b{key}:(\d+)", ln + " " + info)
            if v:
                total += int(v.group(1))
    return total


def names_in(g):
    """Names g learned from all its peers (from /metrics)."""
    with urllib.request.urlopen(f"http://{g.admin}/metrics",
                                timeout=30) as r:
        m = r.read().decode()
    return sum(int(float(v)) for v in re.findall(
        r'^porch_gateway_peer_names_announced\{peer="[^"]+",'
        r'direction="in"\} (\S+)$', m, re.M))


def loglines(gws):
    return sum(g.proc.log().count("\n") for g in gws)


def measure(gws, seconds):
    pids = [g.proc.pid for g in gws]
    b0, c0, l0 = link_bytes(gws), sum(cpu_s(p) for p in pids), \
        loglines(gws)
    time.sleep(seconds)
    return (link_bytes(gws) - b0, sum(cpu_s(p) for p in pids) - c0,
            loglines(gws) - l0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--names", type=int, default=10000)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--announce", default="2s")
    ap.add_argument("--wait", type=float, default=1,
                    help="seconds between learning and measuring")
    ap.add_argument("--settle", type=float, default=120,
                    help="longest wait for the peers to learn the names")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="porch-announce-")
    procs = fx.Procs(tmp)
    try:
        gws = []
        for i in range(3):
            port = fx.free_port()
            g = fx.Gateway(procs, tmp, name=f"g{i}",
                           extra=f'admin: "127.0.0.1:{port}"\n'
                           f"timeouts:\n  announce: {args.announce}\n")
            g.admin = f"127.0.0.1:{port}"
            gws.append(g)
        for a in gws:
            for b in gws:
                if a is not b:
                    a.peer(b)
        agents = []
        left, k = args.names, 0
        while left > 0:
            n = min(PER_AGENT, left)
            ag = fx.Agent(procs, tmp, name=f"ag{k}")
            for j in range(n):
                ag.serve(f"n{j}.a{k}.example.test", tls="127.0.0.1:9")
            g = gws[k % 3]
            g.admit(ag, ["*.example.test"])
            ag.use(g)
            agents.append((ag, n))
            left -= n
            k += 1
        for g in gws:
            g.start()
        for g in gws:
            for o in gws:
                if o is not g:
                    g.proc.wait_log(rf"peer {o.name}: link up",
                                    since_mark=False, timeout=20)
        t0 = time.monotonic()
        for ag, _ in agents:
            ag.start(wait_serving=False)
        want = {g.name: sum(n for j, (ag, n) in enumerate(agents)
                            if gws[j % 3] is not g) for g in gws}
        while time.monotonic() - t0 < args.settle:
            got = {g.name: names_in(g) for g in gws}
            if got == want:
                break
            time.sleep(1)
        settle = time.monotonic() - t0
        print(f"build={fx.BUILD} names={args.names} agents={len(agents)} "
              f"announce={args.announce}")
        print(f"learned (of {want}): {got} after {settle:.1f}s")
        time.sleep(args.wait)
        b, c, lines = measure(gws, args.seconds)
        print(f"steady {args.seconds:.0f}s: peer-link bytes {b} "
              f"({b / args.seconds / 1024:.1f} KiB/s), gateway CPU "
              f"{c:.2f}s ({100 * c / args.seconds:.1f}% of a core), "
              f"log lines {lines}")
        print(f"learned at the end: {({g.name: names_in(g) for g in gws})}")
        ag, n = agents[0]
        pids = [g.proc.pid for g in gws]
        b0, c0, l0 = link_bytes(gws), sum(cpu_s(p) for p in pids), \
            loglines(gws)
        ag.proc.stop()
        ag.start(wait_serving=False)
        time.sleep(2)
        b = link_bytes(gws) - b0
        c = sum(cpu_s(p) for p in pids) - c0
        print(f"one agent ({n} names) reconnects, next 2s: peer-link bytes "
              f"{b}, gateway CPU {c:.2f}s, log lines "
              f"{loglines(gws) - l0}")
    finally:
        problems = procs.stop_all()
        if problems:
            print("\n".join(p[:300] for p in problems), file=sys.stderr)


if __name__ == "__main__":
    main()
