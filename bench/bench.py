#!/usr/bin/python3
"""porch benchmark, first cut: throughput and idle-connection memory.

One run on loopback:
  * download SIZE over TLS from nginx (file on tmpfs) directly, and through
    porch-gateway + porch-agent; MB/s of each and the ratio;
  * RSS of gateway and agent with 0 and N idle TLS visitor connections
    open through them, and the cost per connection.
It reuses the system tests' fixtures (real nginx, real binaries) and stops
every process it started, also when interrupted.  Nothing here asserts a
time: it reports.

usage: bench/bench.py [--size-mib 1024] [--idle 1000] [--runs 3]
"""

import argparse
import os
import resource
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "system"))
import conftest as fx  # noqa: E402


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def download(url, host, port, ca):
    r = subprocess.run(
        ["curl", "-sS", "--max-time", "600", "-o", "/dev/null", "--cacert",
         ca, "--resolve", f"{host}:{port}:127.0.0.1", "-w",
         "%{speed_download} %{size_download}", url],
        capture_output=True, text=True, check=True)
    speed, size = r.stdout.split()
    return float(speed) / 1e6, int(size)


def open_idle(n, port, host, ca):
    """n TLS connections through port with finished handshakes, idle."""
    ctx = ssl.create_default_context(cafile=ca)
    conns = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        t = ctx.wrap_socket(s, server_hostname=host)
        conns.append(t)
    return conns


def settle(pids, quiet_ms=300, limit_s=10):
    """Wait until the RSS of pids stops changing (no sleep-as-sync: this
    is a measurement, polled until stable)."""
    last, stable_since = None, time.monotonic()
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        cur = tuple(rss_kib(p) for p in pids)
        if cur != last:
            last, stable_since = cur, time.monotonic()
        elif (time.monotonic() - stable_since) * 1000 >= quiet_ms:
            break
        time.sleep(0.05)
    return last


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--idle", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, 4 * args.idle + 256))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    tmp = tempfile.mkdtemp(prefix="porch-bench-", dir="/dev/shm"
                           if os.path.isdir("/dev/shm") else None)
    procs = fx.Procs(tmp)
    try:
        ca = fx.CA(os.path.join(tmp, "ca"))
        host = "bench.example.test"
        ng = fx.Nginx(procs, tmp, ca, host)
        with open(os.path.join(ng.root, "blob"), "wb") as f:
            chunk = os.urandom(1 << 20)
            for _ in range(args.size_mib):
                f.write(chunk)
        gw = fx.Gateway(procs, tmp)
        ag = fx.Agent(procs, tmp)
        gw.admit(ag, [host])
        ag.use(gw)
        ag.serve(host, tls=ng.tls)
        gw.start()
        ag.start()

        print(f"# porch bench, {time.strftime('%Y-%m-%d %H:%M')}, "
              f"{os.cpu_count()} CPUs, {args.size_mib} MiB, "
              f"median of {args.runs}")
        res = {}
        for name, port in (("direct", ng.tls_port), ("porch", gw.tls_port)):
            speeds = []
            for _ in range(args.runs):
                mbs, size = download(f"https://{host}:{port}/blob", host,
                                     port, ca.crt)
                assert size == args.size_mib << 20, size
                speeds.append(mbs)
            res[name] = statistics.median(speeds)
            print(f"throughput {name:8s} {res[name]:9.1f} MB/s  "
                  f"(runs: {', '.join(f'{s:.0f}' for s in speeds)})")
        print(f"throughput ratio porch/direct  {res['porch'] / res['direct']:.2f}"
              "   (goal >= 0.6)")

        pids = (gw.proc.pid, ag.proc.pid)
        base = settle(pids)
        conns = open_idle(args.idle, gw.tls_port, host, ca.crt)
        held = settle(pids)
        for c in conns:
            c.close()
        for label, b, h in (("gateway", base[0], held[0]),
                            ("agent", base[1], held[1])):
            per = (h - b) * 1024 / args.idle
            print(f"rss {label:8s} idle=0 {b:7d} KiB  idle={args.idle} "
                  f"{h:7d} KiB  per connection {per / 1024:6.1f} KiB"
                  + ("   (goal <= 16 KiB)" if label == "gateway" else ""))
    finally:
        procs.stop_all()


if __name__ == "__main__":
    main()
