#!/usr/bin/python3
"""porch failover bench: what visitors see when a replica fails.

A steady load of new TLS connections (each: connect, handshake, GET, read
the answer) runs against one gateway with two balanced replicas, each an
agent with its own nginx.  For each fault it reports how many visitor
connections failed and how long until every new connection succeeded
again:
  (a) one replica's backend (nginx) stops
  (b) one replica's agent is killed (SIGKILL)
  (c) one replica's agent stalls silently (SIGSTOP)
and (d) the latency one peer hop adds: the same requests through the
gateway that holds the agent and through a peer one hop away (medians).
Loopback only; every process is stopped at the end.  It reports; it
asserts nothing.

usage: bench/failover.py [--seconds 6] [--clients 4]
"""

import argparse
import os
import signal
import socket
import ssl
import statistics
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "system"))
import conftest as fx  # noqa: E402

HOST = "bench.example.test"


def request(port, ctx, timeout=15.0):
    """One visitor: returns (ok, seconds)."""
    t0 = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port),
                                      timeout=timeout) as s:
            with ctx.wrap_socket(s, server_hostname=HOST) as t:
                t.sendall(f"GET / HTTP/1.1\r\nHost: {HOST}\r\n"
                          "Connection: close\r\n\r\n".encode())
                data = b""
                while True:
                    b = t.recv(4096)
                    if not b:
                        break
                    data += b
        return data.startswith(b"HTTP/1.1 200"), time.monotonic() - t0
    except (OSError, ssl.SSLError):
        return False, time.monotonic() - t0


def load(port, ctx, clients, seconds, fault, at):
    """Run the load; call fault() after `at` seconds.  Returns the list
    of (start, end, ok) and the fault time."""
    results, lock = [], threading.Lock()
    stop = time.monotonic() + seconds
    t_fault = [None]

    def worker():
        while time.monotonic() < stop:
            t0 = time.monotonic()
            ok, _ = request(port, ctx)
            with lock:
                results.append((t0, time.monotonic(), ok))
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    time.sleep(at)                      # load shape, not synchronization
    t_fault[0] = time.monotonic()
    fault()
    for t in threads:
        t.join()
    return results, t_fault[0]


def summarize(name, results, t_fault):
    failed = [r for r in results if not r[2]]
    inflight = [r for r in failed if r[0] < t_fault]
    # Recovery: from the fault until the end of the last failure.
    recov = max((r[1] for r in failed), default=t_fault) - t_fault
    print(f"{name:30s} requests {len(results):5d}  failed {len(failed):3d}"
          f" ({len(inflight)} already in flight at the fault, "
          f"{len(failed) - len(inflight)} new)  all good again after "
          f"{max(recov, 0) * 1000:5.0f} ms")


def scenario(tmp, ca, name, fault_kind, args):
    procs = fx.Procs(tmp)
    try:
        gw = fx.Gateway(procs, tmp, name="gw" + fault_kind)
        ags, ngs = [], []
        for i in range(2):
            ag = fx.Agent(procs, tmp, name=f"r{i}{fault_kind}")
            ng = fx.Nginx(procs, tmp, ca, HOST, tag=f"r{i}{fault_kind}")
            gw.admit(ag, [HOST])
            ag.use(gw)
            ag.serve(HOST, tls=ng.tls, priority=10, policy="balance")
            ags.append(ag)
            ngs.append(ng)
        gw.start()
        for ag in ags:
            ag.start()
        ctx = ssl.create_default_context(cafile=ca.crt)
        faults = {
            "a": lambda: ngs[0].proc.stop(),
            "b": lambda: ags[0].proc.stop(signal.SIGKILL),
            "c": lambda: ags[0].proc.send_signal(signal.SIGSTOP),
        }
        res, tf = load(gw.tls_port, ctx, args.clients, args.seconds,
                       faults[fault_kind], args.seconds / 3)
        summarize(name, res, tf)
        if fault_kind == "c":
            ags[0].proc.send_signal(signal.SIGCONT)
    finally:
        procs.stop_all()


def peer_hop(tmp, ca, args):
    procs = fx.Procs(tmp)
    try:
        g0 = fx.Gateway(procs, tmp, name="p0")
        g1 = fx.Gateway(procs, tmp, name="p1")
        g0.peer(g1)
        g1.peer(g0)
        ag = fx.Agent(procs, tmp, name="ph")
        ng = fx.Nginx(procs, tmp, ca, HOST, tag="ph")
        g0.admit(ag, [HOST])
        ag.use(g0)
        ag.serve(HOST, tls=ng.tls)
        g0.start()
        g1.start()
        ag.start()
        ctx = ssl.create_default_context(cafile=ca.crt)
        deadline = time.monotonic() + 10
        while not request(g1.tls_port, ctx)[0] and \
                time.monotonic() < deadline:
            time.sleep(0.05)
        med = {}
        for label, port in (("direct", ng.tls_port),
                            ("gateway", g0.tls_port),
                            ("one peer hop", g1.tls_port)):
            times = []
            for _ in range(args.samples):
                ok, dt = request(port, ctx)
                if ok:
                    times.append(dt)
            med[label] = statistics.median(times) * 1000
            print(f"latency {label:14s} median {med[label]:6.2f} ms "
                  f"over {len(times)} new TLS connections + GET")
        print(f"(d) peer hop adds {med['one peer hop'] - med['gateway']:.2f}"
              f" ms at the median (goal < 1 ms)")
    finally:
        procs.stop_all()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=9)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--samples", type=int, default=300)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="porch-failover-")
    ca = fx.CA(os.path.join(tmp, "ca"))
    print(f"# porch failover bench, {time.strftime('%Y-%m-%d %H:%M')}, "
          f"{args.clients} clients, {args.seconds}s per fault, "
          f"keepalive 1s / dead peer 4s (defaults)")
    scenario(tmp, ca, "(a) backend stops", "a", args)
    scenario(tmp, ca, "(b) agent killed (SIGKILL)", "b", args)
    scenario(tmp, ca, "(c) agent stalls (SIGSTOP)", "c", args)
    peer_hop(tmp, ca, args)


if __name__ == "__main__":
    main()
