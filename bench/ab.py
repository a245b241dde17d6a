#!/usr/bin/python3
"""porch against itself: two or more builds, runs interleaved, medians.

How the tunnel optimisations were measured.  A machine as noisy as a
shared 2-core VM moves one figure by 10-20 % from run to run, more than
most single changes do; alternating the builds run by run, on one
backend and one client, spreads that noise over all of them alike.

Each argument is a git revision of this repository (exported with git
archive and built in a scratch directory) or a directory that already
holds porch-gateway and porch-agent.  Every build gets its own gateway
and agent in front of one nginx (files on tmpfs), as `porch` in
compare.py; `direct` (client -> nginx) and `haproxy` (HAProxy SNI
routing, when installed) run alongside as yardsticks.

Per build and run:
  M1   one curl download of SIZE; MB/s; of gateway + agent (or HAProxy)
       CPU seconds and minor page faults per GiB; and how busy all CPUs
       of the machine were (/proc/stat) while it ran
  M1x8 8 curls of SIZE/8 at once; the same figures
  M2   tls_rate: new TLS connection + GET of 1 KiB, THREADS threads for
       SECONDS; conn/s, p50, p99, and CPU ms per connection of gateway +
       agent (or HAProxy)

Nothing asserts a figure.  Every process started is stopped at the end,
also on SIGINT/SIGTERM; every load is bounded in count and time.

usage: bench/ab.py [--size-mib 1024] [--runs 5] [--seconds 4]
                   [--threads 4] [--only m1,m8,m2] REV|DIR ...
e.g.   make bench-ab AB="HEAD~3 HEAD"
"""

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import compare  # noqa: E402
from compare import fx  # noqa: E402

METRICS = ("m1", "m8", "m2")


def stat_busy():
    """(total, idle) jiffies of all CPUs."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v), v[3] + v[4]


def minflt(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
    except OSError:
        return 0
    return int(st[st.rindex(")") + 2:].split()[7])


def build(spec, scratch):
    """Directory with porch-gateway and porch-agent for spec."""
    if os.path.isdir(spec):
        d = os.path.abspath(spec)
        for b in ("porch-gateway", "porch-agent"):
            if not os.access(os.path.join(d, b), os.X_OK):
                sys.exit(f"ab: {d} has no {b}")
        return spec, d
    r = subprocess.run(["git", "-C", fx.ROOT, "rev-parse", "--short",
                        "--verify", spec + "^{commit}"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"ab: '{spec}' is neither a directory nor a git "
                 f"revision: {r.stderr.strip()}")
    rev = r.stdout.strip()
    src = os.path.join(scratch, "src-" + rev)
    if not os.path.isdir(src):
        os.makedirs(src)
        arch = subprocess.Popen(["git", "-C", fx.ROOT, "archive", rev],
                                stdout=subprocess.PIPE)
        subprocess.run(["tar", "-x", "-C", src], stdin=arch.stdout,
                       check=True)
        if arch.wait() != 0:
            sys.exit(f"ab: git archive {rev} failed")
    print(f"# building {spec} ({rev})", flush=True)
    r = subprocess.run(["make", "-C", src, "-j", str(os.cpu_count() or 2),
                        "all"], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"ab: building {rev} failed:\n{r.stdout[-2000:]}"
                 f"{r.stderr[-2000:]}")
    return f"{spec} ({rev})" if spec != rev else rev, \
        os.path.join(src, "build")


def start_porch(procs, tmp, ng, label, d, i):
    fx.GATEWAY = os.path.join(d, "porch-gateway")
    fx.AGENT = os.path.join(d, "porch-agent")
    gw = fx.Gateway(procs, tmp, name=f"gw{i}")
    ag = fx.Agent(procs, tmp, name=f"ag{i}")
    gw.admit(ag, [compare.HOST])
    ag.use(gw)
    ag.serve(compare.HOST, tls=ng.tls)
    gw.start()
    ag.start()
    return gw.tls_port, [gw.proc.pid, ag.proc.pid]


def measure(fn, pids, gib):
    """fn() -> MB/s; with CPU s/GiB, faults/GiB of pids, busy %."""
    c0 = [compare.cpu_s(p) or 0.0 for p in pids]
    f0 = [minflt(p) for p in pids]
    s0 = stat_busy()
    mbs = fn()
    s1 = stat_busy()
    cpu = sum((compare.cpu_s(p) or 0.0) - c for p, c in zip(pids, c0))
    flt = sum(minflt(p) - f for p, f in zip(pids, f0))
    tot = s1[0] - s0[0]
    busy = 100.0 * (tot - (s1[1] - s0[1])) / tot if tot else 0.0
    return {"mbs": mbs, "cpu": cpu / gib, "flt": flt / gib, "busy": busy}


def fmt_runs(xs, f="%.0f"):
    return ", ".join(f % x for x in xs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("builds", nargs="+", metavar="REV|DIR")
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=4)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--only", default=",".join(METRICS),
                    help="comma-separated subset of " + ",".join(METRICS))
    args = ap.parse_args()
    only = [m for m in args.only.split(",") if m]
    if any(m not in METRICS for m in only) or not only:
        ap.error(f"--only takes {','.join(METRICS)}")
    if args.size_mib % compare.STREAMS or args.size_mib <= 0 or \
            args.runs <= 0 or not 0 < args.seconds <= 60 or \
            not 1 <= args.threads <= 64:
        ap.error(f"--size-mib a positive multiple of {compare.STREAMS}, "
                 "--runs positive, --seconds in (0, 60], --threads 1-64")
    if "m2" in only and not os.access(compare.TLS_RATE, os.X_OK):
        sys.exit(f"{compare.TLS_RATE} is missing: make bench-ab builds it")

    signal.signal(signal.SIGTERM, compare.on_signal)
    signal.signal(signal.SIGINT, compare.on_signal)
    tmp = tempfile.mkdtemp(prefix="porch-ab-", dir="/dev/shm"
                           if os.path.isdir("/dev/shm") else None)
    procs = fx.Procs(tmp)
    size = args.size_mib << 20
    rc = 1
    try:
        builds = [build(b, tmp) for b in args.builds]
        ca = fx.CA(os.path.join(tmp, "ca"))
        ng = fx.Nginx(procs, tmp, ca, compare.HOST)
        chunk = os.urandom(1 << 20)
        for name, mib in (("blob", args.size_mib),
                          ("blob8", args.size_mib // compare.STREAMS)):
            with open(os.path.join(ng.root, name), "wb") as f:
                for _ in range(mib):
                    f.write(chunk)
        with open(os.path.join(ng.root, "small"), "wb") as f:
            f.write(os.urandom(compare.SMALL))
        setups = [("direct", ng.tls_port, [])]
        if shutil.which("haproxy"):
            hap, hap_port = compare.start_haproxy(procs, tmp, "haproxy",
                                                  ng.tls_port)
            setups.append(("haproxy", hap_port, [hap.pid]))
        for i, (label, d) in enumerate(builds):
            port, pids = start_porch(procs, tmp, ng, label, d, i)
            setups.append((label, port, pids))
        for label, port, _ in setups:
            compare.wait_route(label, port, ca.crt)
        print(f"# {len(builds)} build(s), {', '.join(x[0] for x in setups[:-len(builds)])}, {args.size_mib} MiB, "
              f"M2 {args.seconds:g} s x {args.threads} threads, "
              f"{args.runs} interleaved runs, {os.cpu_count()} CPUs, "
              f"load {os.getloadavg()[0]:.2f}", flush=True)

        res = {label: {m: [] for m in only} for label, _, _ in setups}
        gib = size / 2**30
        for run in range(args.runs):
            for label, port, pids in setups:
                r = res[label]
                if "m1" in only:
                    r["m1"].append(measure(lambda: compare.download_1(
                        port, ca.crt, size), pids, gib))
                if "m8" in only:
                    r["m8"].append(measure(lambda: compare.download_n(
                        procs, f"{run}-{port}", port, ca.crt,
                        size // compare.STREAMS), pids, gib))
                if "m2" in only:
                    c0 = [compare.cpu_s(p) or 0.0 for p in pids]
                    j = compare.tls_rate(port, ca.crt, args.threads,
                                         args.seconds)
                    cpu = sum((compare.cpu_s(p) or 0.0) - c
                              for p, c in zip(pids, c0))
                    j["cpu_ms"] = 1000.0 * cpu / max(1, j["connections"])
                    r["m2"].append(j)
            print(f"# run {run + 1} of {args.runs} done", flush=True)

        med = statistics.median
        base = res["direct"]
        for m, title in (("m1", "M1 one download"),
                         ("m8", f"M1 {compare.STREAMS} downloads at once")):
            if m not in only:
                continue
            print(f"\n{title} ({args.size_mib} MiB in all):")
            b = med(x["mbs"] for x in base[m])
            for label, _, pids in setups:
                xs = res[label][m]
                mbs = med(x["mbs"] for x in xs)
                line = f"  {label:24} {mbs:6.0f} MB/s ({mbs / b:.2f}x direct)"
                if pids:
                    line += (f"  {med(x['cpu'] for x in xs):.2f}"
                             f" CPU s/GiB, {med(x['flt'] for x in xs):.0f}"
                             " faults/GiB")
                line += f"  CPUs {med(x['busy'] for x in xs):.0f} % busy"
                print(line)
                print(f"  {'':24} runs: {fmt_runs(x['mbs'] for x in xs)}")
        if "m2" in only:
            print(f"\nM2 new TLS connection + GET ({args.threads} threads):")
            b = med(x["rate"] for x in base["m2"])
            h = med(x["rate"] for x in res["haproxy"]["m2"]) \
                if "haproxy" in res else None
            for label, _, pids in setups:
                xs = res[label]["m2"]
                rate = med(x["rate"] for x in xs)
                vs = f", {rate / h:.2f}x haproxy" if h else ""
                cpu = f"  {med(x['cpu_ms'] for x in xs):.3f} CPU ms/conn" \
                    if pids else ""
                print(f"  {label:24} {rate:6.0f} conn/s ({rate / b:.2f}x "
                      f"direct{vs})  p50 {med(x['p50_ms'] for x in xs):.2f}"
                      f" ms  p99 {med(x['p99_ms'] for x in xs):.2f} ms{cpu}")
                print(f"  {'':24} runs: {fmt_runs(x['rate'] for x in xs)}")
        rc = 0
    except compare.Interrupted as e:
        print(f"ab: interrupted ({e}); stopping everything", file=sys.stderr)
        rc = 130
    finally:
        problems = procs.stop_all()
        for p in problems:
            print(f"ab: {p}", file=sys.stderr)
        subprocess.run(["rm", "-rf", tmp])
    return rc


if __name__ == "__main__":
    sys.exit(main())
