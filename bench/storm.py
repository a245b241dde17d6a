#!/usr/bin/env python3
"""Reconnect storm: N agents come back after a gateway restart.

Starts a porch-gateway admitting N agent keys (each may claim one name),
connects N agent tunnels from one process (bench/many_agents.c, porch's
own tunnel and dialer code), waits until every claim is granted, then
restarts the gateway (SIGTERM, then a new process on the same ports) and
measures the time until all N are back, from the new gateway's start.

    PORCH_BUILD=build python3 bench/storm.py [-n 3000] [--rounds 2]
        [--gateway PATH]   another porch-gateway (e.g. an older build);
                           many_agents always comes from PORCH_BUILD

Prints one line per round and a JSON summary.  A benchmark, not a test:
it asserts nothing.  Loopback only; every process it starts is stopped
by PID when it ends.
"""

import argparse
import json
import os
import queue
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BUILD = os.path.join(ROOT, os.environ.get("PORCH_BUILD", "build"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def wait_file(path, pattern, timeout, since=0):
    deadline = time.monotonic() + timeout
    rx = re.compile(pattern)
    while time.monotonic() < deadline:
        with open(path, errors="replace") as f:
            f.seek(since)
            if rx.search(f.read()):
                return
        time.sleep(0.02)
    raise TimeoutError(f"{pattern!r} not in {path} after {timeout}s")


class Lines:
    """stdout of a process, line by line, with a timeout."""

    def __init__(self, proc):
        self.q = queue.Queue()
        threading.Thread(target=self._read, args=(proc.stdout,),
                         daemon=True).start()

    def _read(self, f):
        for line in f:
            self.q.put(line.rstrip("\n"))
        self.q.put(None)

    def until(self, prefix, timeout, after=0.0, seen=None):
        """The first line starting with prefix whose t= is > after."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {prefix!r} line in {timeout}s")
            try:
                line = self.q.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError("many_agents ended")
            if seen is not None:
                seen.append(line)
            m = re.match(r"(\w+) t=([\d.]+)", line)
            if m and m.group(1) == prefix and float(m.group(2)) > after:
                return float(m.group(2)), line


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--gateway", default=os.path.join(BUILD,
                                                       "porch-gateway"))
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--keep", action="store_true", help="keep the logs")
    args = ap.parse_args()

    many = os.path.join(BUILD, "many_agents")
    porchctl = os.path.join(BUILD, "porchctl")
    raise_nofile()
    tmp = tempfile.mkdtemp(prefix="porch-storm-")
    key_path = os.path.join(tmp, "gateway.key")
    gwpub = subprocess.run([porchctl, "keygen", key_path], check=True,
                           capture_output=True, text=True).stdout.strip()
    seed = f"storm-{os.getpid()}"
    keys = subprocess.run([many, "-K", "-n", str(args.n), "-s", seed],
                          check=True, capture_output=True,
                          text=True).stdout.split()
    tport = free_port()
    lines = [f"identity: {key_path}",
             "name: storm-gw.storm.test",
             "listen:",
             f'  tls: ["127.0.0.1:{free_port()}"]',
             f'  http: ["127.0.0.1:{free_port()}"]',
             f'  tunnel: ["127.0.0.1:{tport}"]',
             "timeouts:",
             "  drain: 200ms",
             "agents:"]
    for i, k in enumerate(keys):
        lines += [f"  - name: a{i}", f'    key: "{k}"',
                  f'    hostnames: ["a{i}.storm.test"]']
    conf = os.path.join(tmp, "gateway.yaml")
    with open(conf, "w") as f:
        f.write("\n".join(lines) + "\n")

    procs = []
    gwlog = os.path.join(tmp, "gateway.log")

    def start_gateway():
        log = open(gwlog, "a")
        since = log.tell()
        p = subprocess.Popen([args.gateway, "-c", conf], stdout=log,
                             stderr=subprocess.STDOUT)
        procs.append(p)
        wait_file(gwlog, r"porch-gateway started", 30, since)
        return p, time.monotonic(), since

    rounds = []
    agents = None
    try:
        gw, t0, _ = start_gateway()
        agents_err = open(os.path.join(tmp, "agents.log"), "w")
        agents = subprocess.Popen([many, "-g", f"127.0.0.1:{tport}",
                                   "-p", gwpub, "-n", str(args.n),
                                   "-s", seed], stdout=subprocess.PIPE,
                                  stderr=agents_err, text=True)
        procs.append(agents)
        out = Lines(agents)
        t_all, _ = out.until("all", args.timeout)
        print(f"first connect: {args.n} agents claimed in "
              f"{t_all - t0:.2f} s", flush=True)
        for r in range(args.rounds):
            time.sleep(1.0)     # a settled state, keepalives running
            t_stop = time.monotonic()
            gw.send_signal(signal.SIGTERM)
            gw.wait(timeout=30)
            agents_err.flush()
            err_since = os.path.getsize(agents_err.name)
            gw, t_start, log_since = start_gateway()
            seen = []
            t_back, _ = out.until("all", args.timeout, after=t_start,
                                  seen=seen)
            with open(gwlog, errors="replace") as f:
                f.seek(log_since)
                glog = f.read()
            with open(agents_err.name, errors="replace") as f:
                f.seek(err_since)
                alog = f.read()
            shed = len(re.findall(r"handshakes (already )?in progress"
                                  r"(?! *: accepting)", glog))
            failed = len(re.findall(r"tunnel failed", alog))
            busy = len(re.findall(r"gateway busy", alog))
            rec = {"round": r + 1,
                   "back_s": round(t_back - t_start, 3),
                   "back_from_stop_s": round(t_back - t_stop, 3),
                   "gateway_refused_handshakes": shed,
                   "agent_failed_handshakes": failed,
                   "agent_busy_lines": busy}
            rounds.append(rec)
            print(f"round {r + 1}: all {args.n} back {rec['back_s']:.2f} s "
                  f"after the new gateway started "
                  f"({rec['back_from_stop_s']:.2f} s after the stop); "
                  f"gateway refused {shed} handshakes, agents saw "
                  f"{failed} failed tunnels", flush=True)
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        if not args.keep:
            for name in os.listdir(tmp):
                os.unlink(os.path.join(tmp, name))
            os.rmdir(tmp)
        else:
            print(f"logs in {tmp}", file=sys.stderr)
    print(json.dumps({"agents": args.n, "gateway": args.gateway,
                      "rounds": rounds}))


if __name__ == "__main__":
    main()
