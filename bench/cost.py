#!/usr/bin/python3
"""Deterministic costs of the relay: instructions and syscalls per GiB.

Wall-clock figures on a shared 2-core VM move 10-20 % from run to run;
instruction and syscall counts of a fixed transfer do not.  For each
build (a directory with porch-gateway and porch-agent) and each number
of streams, a fresh gateway and agent in front of one nginx carry SIZE
bytes of downloads (1 curl of SIZE, or N curls of SIZE/N at once), and
only that transfer is counted, gateway and agent apart:

  callgrind  both daemons run under valgrind --tool=callgrind; the
             counters are zeroed after a warm-up request and dumped
             right after the transfer (callgrind_control -z / -d):
             user-space instructions per GiB, and with --top N the
             functions that cost most (self cost).  Note: valgrind
             counts each byte of a `rep movsb` as an instruction, so
             memcpy's count is about the bytes it copies.  --keep DIR
             keeps the dumps (callgrind_annotate, kcachegrind).
  strace     strace -c -f attached to each daemon for the transfer only:
             syscalls per GiB, by name (COST_RAW=1: strace's tables)
  perf       perf record -e cpu-clock attached to each daemon for the
             transfer: CPU seconds (user, system; clock ticks) and
             context switches per GiB from /proc, and with --top N the
             symbols with most samples (--perf-sort dso, or callers for
             call chains); wall-clock figures, so noisy

usage: bench/cost.py [--tool callgrind|strace|perf] [--size-mib 64]
                     [--streams 1,8] [--top 0] [--keep DIR]
                     [--perf-sort sym|dso|callers] DIR...
e.g.   bench/cost.py --tool strace --size-mib 256 build /tmp/old/build

Every process started is stopped at the end, also on SIGINT/SIGTERM.
"""

import argparse
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import compare  # noqa: E402
from compare import fx  # noqa: E402

DAEMONS = ("gateway", "agent")


def wrapper(tmp, name, binary, tool, outdir):
    """A script that runs binary under the tool (callgrind) or as is."""
    path = os.path.join(tmp, f"run-{name}")
    if tool == "callgrind":
        pre = (f"exec valgrind -q --tool=callgrind "
               f"--callgrind-out-file={outdir}/cg-{name}.%p ")
    else:
        pre = "exec "
    with open(path, "w") as f:
        f.write(f'#!/bin/sh\n{pre}"{binary}" "$@"\n')
    os.chmod(path, 0o755)
    return path


def start(procs, tmp, ng, d, tag, tool, outdir):
    fx.GATEWAY = wrapper(tmp, f"gw-{tag}", os.path.join(d, "porch-gateway"),
                         tool, outdir)
    fx.AGENT = wrapper(tmp, f"ag-{tag}", os.path.join(d, "porch-agent"),
                       tool, outdir)
    gw = fx.Gateway(procs, tmp, name=f"gw-{tag}")
    ag = fx.Agent(procs, tmp, name=f"ag-{tag}")
    gw.admit(ag, [compare.HOST])
    ag.use(gw)
    ag.serve(compare.HOST, tls=ng.tls)
    gw.write_config()
    gw.proc = procs.start(gw.name, [fx.GATEWAY, "-c", gw.conf], daemon=True)
    gw.proc.wait_log(r"porch-gateway started", timeout=60)
    ag.write_config()
    ag.proc = procs.start(ag.name, [fx.AGENT, "-c", ag.conf], daemon=True)
    ag.proc.wait_log(r"serving " + re.escape(compare.HOST), timeout=60)
    return gw, ag


def transfer(procs, tag, port, ca, size, streams):
    if streams == 1:
        compare.download_1(port, ca, size)
        return
    ps = [procs.start(f"curl-{tag}-{i}",
                      compare.curl_argv(port, ca, f"blob{streams}"))
          for i in range(streams)]
    for p in ps:
        if p.p.wait(compare.CURL_MAX_S + 10) != 0:
            raise RuntimeError(f"{p.name} failed: {p.log()}")
        if int(p.log().split()[-1]) != size // streams:
            raise RuntimeError(f"{p.name}: short download")


def cg_total(path):
    with open(path) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise RuntimeError(f"{path}: no totals")


def cg_dump(pid, outdir, name):
    before = set(glob.glob(f"{outdir}/cg-{name}.{pid}*"))
    subprocess.run(["callgrind_control", "-d", str(pid)], check=True,
                   capture_output=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        new = set(glob.glob(f"{outdir}/cg-{name}.{pid}*")) - before
        for p in new:
            try:
                return p, cg_total(p)
            except (RuntimeError, OSError):
                pass
        time.sleep(0.2)
    raise RuntimeError(f"no callgrind dump from {pid}")


def cg_self(path):
    """Self cost (Ir) per function of a callgrind dump."""
    names, cost, fn, skip = {}, {}, None, False
    with open(path) as f:
        for line in f:
            if skip:
                skip = False
                continue
            m = re.match(r"c?fn=\((\d+)\)(?: (.*))?", line.rstrip("\n"))
            if m is not None:
                # fn and cfn share one table of compressed names
                if m.group(2):
                    names[m.group(1)] = m.group(2)
                if line.startswith("fn="):
                    fn = names.get(m.group(1), m.group(1))
            elif line.startswith("calls="):
                skip = True	# the next line is the call's inclusive cost
            elif line[:1].isdigit() or line[:1] in "+-*":
                v = line.split()
                if len(v) >= 2 and fn is not None:
                    cost[fn] = cost.get(fn, 0) + int(v[1])
    return cost


def cg_top(path, n, gib):
    cost = cg_self(path)
    tot = sum(cost.values()) or 1
    top = sorted(cost.items(), key=lambda x: -x[1])[:n]
    return [f"{c / gib / 1e6:8.1f} M/GiB {100.0 * c / tot:5.1f} %  {f}"
            for f, c in top]


def strace_start(pid, out):
    return subprocess.Popen(["strace", "-c", "-f", "-q", "-o", out,
                             "-p", str(pid)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def strace_stop(p, out):
    p.send_signal(signal.SIGINT)
    p.wait(30)
    if os.environ.get("COST_RAW"):
        print(open(out).read())
    calls = {}
    with open(out) as f:
        for line in f:
            v = line.split()
            if len(v) >= 5 and v[0][0].isdigit() and v[-1] != "total":
                calls[v[-1]] = int(v[3])
    return sum(calls.values()), calls


def proc_cost(pid):
    """(utime s, stime s, voluntary, involuntary context switches)."""
    with open(f"/proc/{pid}/stat") as f:
        st = f.read()
    v = st[st.rindex(")") + 2:].split()
    sw = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if "ctxt_switches" in line:
                k, n = line.split(":")
                sw[k] = int(n)
    return (int(v[11]) / compare.CLK_TCK, int(v[12]) / compare.CLK_TCK,
            sw.get("voluntary_ctxt_switches", 0),
            sw.get("nonvoluntary_ctxt_switches", 0))


def perf_top(data, n, sort):
    if sort == "callers":	# call chains of the hottest symbols
        r = subprocess.run(["perf", "report", "-i", data, "--stdio",
                            "--no-children", "--sort", "sym", "-G",
                            "--percent-limit", "3"],
                           capture_output=True, text=True)
        return [x for x in r.stdout.splitlines()
                if x.strip() and not x.startswith("#")][:n]
    r = subprocess.run(["perf", "report", "-i", data, "--stdio",
                        "--no-children", "--sort",
                        sort, "--percent-limit", "0.5"],
                       capture_output=True, text=True)
    out = [x for x in r.stdout.splitlines()
           if re.match(r"^\s+[\d.]+%", x)]
    return out[:n]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("builds", nargs="+", metavar="DIR")
    ap.add_argument("--tool", choices=("callgrind", "strace", "perf"),
                    default="callgrind")
    ap.add_argument("--size-mib", type=int, default=64)
    ap.add_argument("--streams", default="1,8")
    ap.add_argument("--top", type=int, default=0)
    ap.add_argument("--keep", help="directory for the callgrind dumps")
    ap.add_argument("--perf-sort", default="sym",
                    help="perf report --sort keys (sym, dso, ...), or callers: "
                    "call chains (perf record -g) of the hottest symbols")
    args = ap.parse_args()
    streams = [int(x) for x in args.streams.split(",")]
    if any(n < 1 or args.size_mib % n for n in streams):
        ap.error("--size-mib must be a multiple of every --streams")
    for d in args.builds:
        for b in ("porch-gateway", "porch-agent"):
            if not os.access(os.path.join(d, b), os.X_OK):
                sys.exit(f"cost: {d} has no {b}")

    signal.signal(signal.SIGTERM, compare.on_signal)
    signal.signal(signal.SIGINT, compare.on_signal)
    tmp = tempfile.mkdtemp(prefix="porch-prof-", dir="/dev/shm"
                           if os.path.isdir("/dev/shm") else None)
    outdir = os.path.abspath(args.keep) if args.keep else tmp
    os.makedirs(outdir, exist_ok=True)
    procs = fx.Procs(tmp)
    size = args.size_mib << 20
    gib = size / 2**30
    rc = 1
    try:
        ca = fx.CA(os.path.join(tmp, "ca"))
        ng = fx.Nginx(procs, tmp, ca, compare.HOST)
        chunk = os.urandom(1 << 20)
        for n in streams:
            name = "blob" if n == 1 else f"blob{n}"
            with open(os.path.join(ng.root, name), "wb") as f:
                for _ in range(args.size_mib // n):
                    f.write(chunk)
        with open(os.path.join(ng.root, "small"), "wb") as f:
            f.write(os.urandom(compare.SMALL))
        print(f"# {args.tool}, {args.size_mib} MiB per transfer, counts "
              "per GiB", flush=True)
        for bi, d in enumerate(args.builds):
            for n in streams:
                tag = f"{bi}-{n}"
                gw, ag = start(procs, tmp, ng, d, tag, args.tool, outdir)
                pids = {"gateway": gw.proc.pid, "agent": ag.proc.pid}
                compare.wait_route(tag, gw.tls_port, ca.crt)
                if args.tool == "callgrind":
                    for k in DAEMONS:
                        subprocess.run(["callgrind_control", "-z",
                                        str(pids[k])], check=True,
                                       capture_output=True)
                elif args.tool == "perf":
                    pdata = {k: os.path.join(tmp, f"perf-{tag}-{k}.data")
                             for k in DAEMONS}
                    perf = {k: subprocess.Popen(
                        ["perf", "record", "-q", "-e", "cpu-clock", "-o",
                         pdata[k], "-p", str(pids[k])] +
                        (["-g"] if args.perf_sort == "callers" else []),
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL) for k in DAEMONS}
                    time.sleep(1)
                else:
                    st = {k: strace_start(pids[k], os.path.join(
                        tmp, f"st-{tag}-{k}")) for k in DAEMONS}
                    time.sleep(1)	# strace attaches asynchronously
                c0 = {k: proc_cost(pids[k]) for k in DAEMONS}
                t0 = time.monotonic()
                transfer(procs, tag, gw.tls_port, ca.crt, size, n)
                wall = time.monotonic() - t0
                c1 = {k: proc_cost(pids[k]) for k in DAEMONS}
                if args.tool == "perf":
                    for k in DAEMONS:
                        perf[k].send_signal(signal.SIGINT)
                        perf[k].wait(60)
                for k in DAEMONS:
                    if args.tool == "callgrind":
                        path, tot = cg_dump(pids[k], outdir,
                                            f"{'gw' if k == 'gateway' else 'ag'}-{tag}")
                        print(f"{d} streams={n} {k:7} "
                              f"{tot / gib / 1e6:9.1f} M instr/GiB",
                              flush=True)
                        for line in cg_top(path, args.top, gib):
                            print("    " + line)
                    elif args.tool == "perf":
                        d0, d1 = c0[k], c1[k]
                        print(f"{d} streams={n} {k:7} user "
                              f"{(d1[0] - d0[0]) / gib:.2f} sys "
                              f"{(d1[1] - d0[1]) / gib:.2f} CPU s/GiB, "
                              f"{(d1[2] - d0[2]) / gib:.0f} voluntary "
                              f"{(d1[3] - d0[3]) / gib:.0f} involuntary "
                              "switches/GiB", flush=True)
                        for line in perf_top(pdata[k], args.top,
                                             args.perf_sort):
                            print("    " + line)
                    else:
                        tot, calls = strace_stop(st[k], os.path.join(
                            tmp, f"st-{tag}-{k}"))
                        top = sorted(calls.items(), key=lambda x: -x[1])
                        print(f"{d} streams={n} {k:7} {tot / gib:9.0f} "
                              "syscalls/GiB: " + ", ".join(
                                  f"{c} {v / gib:.0f}" for c, v in top[:8]),
                              flush=True)
                print(f"#   {wall:.1f} s", flush=True)
                for p in (ag.proc, gw.proc):
                    p.stop(timeout=30)
        rc = 0
    except compare.Interrupted as e:
        print(f"cost: interrupted ({e})", file=sys.stderr)
        rc = 130
    finally:
        for p in procs.stop_all():
            print(f"cost: {p}", file=sys.stderr)
        shutil.rmtree(tmp, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
