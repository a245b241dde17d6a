#!/usr/bin/python3
"""make soak: the gateway and two replica agents under ASan+UBSan for
MINUTES with a mixed load, checked at the end.

Load, all of it bounded and all at once:
  - new TLS connections with a small GET, RATE per second (threads);
  - long downloads (20 MiB at 2 MB/s, one after another);
  - slow readers (a TLS visitor reading a big file at 8 KiB/s for 20 s);
  - every RESTART seconds one agent is stopped (SIGTERM: it drains) and
    started again, the replicas taking turns, so the name stays served;
  - every RELOAD seconds the gateway and both agents reload (SIGHUP).

It fails on: any sanitizer or leak report, a daemon that does not exit 0
on SIGTERM, a small request or a download that should have succeeded and
did not, or a daemon's RSS growing past its level after the warm-up by
more than GROWTH (a fraction) plus SLACK MiB.  Figures are printed, none
is a target.  Every process is stopped at the end, also on SIGINT.

usage: tests/soak.py [--minutes 30] [--rate 20] [--restart 120]
                     [--reload 45] [--warmup 180]
"""

import argparse
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "system"))
os.environ.setdefault("PORCH_BUILD", "build-asan")
os.environ.setdefault("PORCH_ASAN", "1")

from conftest import (CA, Agent, Gateway, Nginx, Procs,  # noqa: E402
                      big_file, rss_kib, sha256)

HOST = "app.example.test"


def rss_now(pid):
    """rss_kib, or None while the process is being restarted."""
    try:
        return rss_kib(pid)
    except OSError:
        return None


class Load:
    """The visitors; counts of what worked and what did not."""

    def __init__(self, gw, ca, rate):
        self.gw, self.ca, self.rate = gw, ca, rate
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.count = {"small_ok": 0, "small_failed": 0, "dl_ok": 0,
                      "dl_failed": 0, "slow": 0}
        self.errors = []
        self.threads = []
        self.ctx = ssl.create_default_context(cafile=ca.crt)

    def bump(self, key, err=None):
        with self.lock:
            self.count[key] += 1
            if err and len(self.errors) < 20:
                self.errors.append(f"{time.strftime('%H:%M:%S')} {key}: "
                                   f"{err}")

    def small(self):
        period = 1.0 / max(1, self.rate)
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                with socket.create_connection(
                        ("127.0.0.1", self.gw.tls_port), timeout=10) as s:
                    with self.ctx.wrap_socket(s, server_hostname=HOST) as t:
                        t.sendall(f"GET /whoami HTTP/1.1\r\nHost: {HOST}\r\n"
                                  "Connection: close\r\n\r\n".encode())
                        data = b""
                        while True:
                            chunk = t.recv(4096)
                            if not chunk:
                                break
                            data += chunk
                if b" 200 " not in data.split(b"\r\n", 1)[0]:
                    raise OSError(f"answer {data[:60]!r}")
                self.bump("small_ok")
            except (OSError, ssl.SSLError) as e:
                self.bump("small_failed", repr(e))
            self.stop.wait(max(0.0, period - (time.monotonic() - t0)))

    def curl(self, path, rate, max_time, out):
        return subprocess.run(
            ["curl", "-sS", "--max-time", str(max_time), "--limit-rate",
             rate, "--cacert", self.ca.crt, "--resolve",
             f"{HOST}:{self.gw.tls_port}:127.0.0.1", "-o", out,
             f"https://{HOST}:{self.gw.tls_port}{path}"],
            capture_output=True, text=True)

    def downloads(self, want, tmp):
        out = os.path.join(tmp, "dl.bin")
        while not self.stop.is_set():
            r = self.curl("/big.bin", "2M", 60, out)
            if self.stop.is_set():
                break
            if r.returncode == 0 and sha256(out) == want:
                self.bump("dl_ok")
            else:
                self.bump("dl_failed", f"curl {r.returncode} "
                          f"{r.stderr.strip()}")

    def slow(self):
        while not self.stop.is_set():
            # Reads 8 KiB/s until curl gives up after 20 s: expected.
            self.curl("/big.bin", "8K", 20, os.devnull)
            self.bump("slow")

    def start(self, want, tmp):
        for fn, args in ((self.small, ()), (self.small, ()),
                         (self.downloads, (want, tmp)), (self.slow, ())):
            t = threading.Thread(target=fn, args=args, daemon=True)
            t.start()
            self.threads.append(t)

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(90)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--rate", type=int, default=20)
    ap.add_argument("--restart", type=float, default=120)
    ap.add_argument("--reload", type=float, default=45)
    ap.add_argument("--warmup", type=float, default=180)
    ap.add_argument("--growth", type=float, default=0.25)
    ap.add_argument("--slack", type=float, default=16)
    a = ap.parse_args()
    warmup = min(a.warmup, a.minutes * 60 / 3)

    tmp = tempfile.mkdtemp(prefix="porch-soak-")
    procs = Procs(tmp)
    load = None
    failures = []

    def on_signal(sig, frame):
        raise KeyboardInterrupt
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    try:
        ca = CA(os.path.join(tmp, "ca"))
        gw = Gateway(procs, tmp, extra="timeouts: { drain: 30s }")
        ng = Nginx(procs, tmp, ca, HOST)
        want = big_file(ng.root, mib=20)
        agents = [Agent(procs, tmp, name=f"home{i}",
                        extra="timeouts: { drain: 30s }") for i in (1, 2)]
        for ag in agents:
            gw.admit(ag, [HOST])
            ag.use(gw)
            ag.serve(HOST, tls=ng.tls, http=ng.http, policy="balance")
        gw.start()
        for ag in agents:
            ag.start()
        print(f"soak: {a.minutes} min, work dir {tmp}", flush=True)
        load = Load(gw, ca, a.rate)
        load.start(want, tmp)

        t0 = time.monotonic()
        end = t0 + a.minutes * 60
        next_restart = t0 + a.restart
        next_reload = t0 + a.reload
        turn = 0
        base, peak = {}, {}
        while time.monotonic() < end:
            time.sleep(5)   # the soak's tick: the load runs meanwhile
            now = time.monotonic()
            for p in [gw.proc] + [ag.proc for ag in agents]:
                kib = rss_now(p.pid)
                if kib is None:
                    continue
                if now - t0 < warmup:
                    base[p.name] = max(base.get(p.name, 0), kib)
                else:
                    peak[p.name] = max(peak.get(p.name, 0), kib)
            if now >= next_reload:
                next_reload += a.reload
                for p in [gw.proc] + [ag.proc for ag in agents]:
                    p.send_signal(signal.SIGHUP)
            if now >= next_restart:
                next_restart += a.restart
                ag = agents[turn % 2]
                turn += 1
                other = agents[turn % 2]
                # It drains: its streams get timeouts.drain to finish.
                ag.proc.send_signal(signal.SIGTERM)
                ag.proc.check_clean_exit(already_signalled=True)
                # The other replica serves meanwhile; this one comes back.
                ag.start(wait_serving=False)
                ag.proc.wait_log(rf"gateway gw: serving {HOST}", timeout=30)
                base.pop(ag.proc.name, None)
                assert other.proc.alive()
            with load.lock:
                c = dict(load.count)
            print(f"soak: {int(now - t0):5d}s {c} rss "
                  f"{ {p.name: rss_now(p.pid) for p in [gw.proc] + [ag.proc for ag in agents]} }",
                  flush=True)
        load.finish()
        c = load.count
        print(f"soak: done: {c}")
        for e in load.errors:
            print(f"  {e}")
        if c["small_failed"] or c["dl_failed"]:
            failures.append(f"{c['small_failed']} small requests and "
                            f"{c['dl_failed']} downloads failed")
        if c["small_ok"] == 0 or c["dl_ok"] == 0:
            failures.append("no load went through")
        for name, b in base.items():
            p = peak.get(name)
            if p is None:
                continue
            bound = b * (1 + a.growth) + a.slack * 1024
            print(f"soak: {name}: RSS {b} KiB after warm-up, peak {p} KiB "
                  f"(bound {int(bound)})")
            if p > bound:
                failures.append(f"{name}: RSS grew from {b} to {p} KiB")
    except KeyboardInterrupt:
        failures.append("interrupted")
    except AssertionError as e:
        failures.append(str(e))
    finally:
        if load is not None:
            load.stop.set()
        failures += procs.stop_all()
    if failures:
        print("soak: FAILED\n  " + "\n  ".join(failures))
        print(f"soak: logs in {tmp}")
        return 1
    print("soak: passed (every daemon exited 0 with no sanitizer or leak "
          "report)")
    subprocess.run(["rm", "-rf", tmp])
    return 0


if __name__ == "__main__":
    sys.exit(main())
