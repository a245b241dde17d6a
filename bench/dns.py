#!/usr/bin/python3
"""DNS that follows the cluster, timed (issue 16's figures; not a test).

BIND 9 authoritative for example.test with a TSIG key, two peered
gateways with public addresses, one agent on both with dns: at its
default settings (grace 30 s, TTL 60 s).  For each of --runs rounds:
SIGKILL one gateway and time until dig at the authoritative server shows
the record set without it; start it again and time until it is back.
Then the time from an agent's start to a dns-01 certificate from Pebble
(validating against the same BIND), per run on a fresh state directory.

Prints the medians; every process is stopped by PID and the scratch
directory removed, also on failure.

usage: bench/dns.py [--runs 5]
"""

import argparse
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "system"))
import conftest as fx  # noqa: E402
from test_ddns import Dns  # noqa: E402

NAME = "app.example.test"


def wait_set(dns, want, timeout):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if dns.get(NAME) == sorted(want):
            return time.monotonic() - t0
        time.sleep(0.1)
    raise RuntimeError(f"{NAME} never became {want}: {dns.get(NAME)}")


def follow(procs, tmp, runs):
    dns = Dns(procs, tmp, "bind")
    g1 = fx.Gateway(procs, tmp, name="g1",
                    extra="public_addresses: [192.0.2.1]")
    g2 = fx.Gateway(procs, tmp, name="g2",
                    extra="public_addresses: [192.0.2.2]")
    g1.peer(g2)
    g2.peer(g1)
    a = fx.Agent(procs, tmp, extra=f"""dns:
  provider: rfc2136
  server: "{dns.server}"
  zone: example.test
  tsig_key: {dns.key}""")
    for g in (g1, g2):
        a.use(g)
        g.admit(a, [NAME])
    a.serve(NAME, tls="127.0.0.1:9", more=("dns: true",))
    g1.start()
    g2.start()
    a.start()
    both = ["192.0.2.1", "192.0.2.2"]
    first = wait_set(dns, both, 30)
    gone, back = [], []
    for r in range(runs):
        g2.proc.send_signal(signal.SIGKILL)
        g2.proc.p.wait(timeout=5)
        gone.append(wait_set(dns, ["192.0.2.1"], 120))
        g2.start()
        back.append(wait_set(dns, both, 60))
        print(f"  round {r + 1}: gone after {gone[-1]:.1f} s, back after "
              f"{back[-1]:.1f} s", flush=True)
    return first, gone, back


def dns01(procs, tmp, runs):
    dns = Dns(procs, tmp, "bind")
    pebble = fx.Pebble(procs, tmp, fx.free_port(), fx.free_port(), dns)
    took = []
    for r in range(runs):
        state = os.path.join(tmp, f"state{r}")
        a = fx.Agent(procs, tmp, name=f"agent{r}",
                     extra=pebble.acme_section(state, [
                         "challenge: [dns-01]"]) + f"""
dns:
  provider: rfc2136
  server: "{dns.server}"
  zone: example.test
  tsig_key: {dns.key}""")
        gw = fx.Gateway(procs, tmp, name=f"gw{r}")
        a.use(gw)
        a.serve(NAME, tls="127.0.0.1:9", more=["certificate: acme"])
        t0 = time.monotonic()
        a.start(wait_serving=False)
        a.proc.wait_log(r"certificate obtained", timeout=120)
        took.append(time.monotonic() - t0)
        a.proc.stop()
        print(f"  run {r + 1}: {took[-1]:.2f} s", flush=True)
    return took


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="porch-dns-bench-")
    procs = fx.Procs(tmp)
    try:
        print("gateway death and return, default dns.grace (30 s):")
        first, gone, back = follow(procs, os.path.join(tmp, "f"),
                                   args.runs)
        print("agent start to a dns-01 certificate (Pebble):")
        took = dns01(procs, os.path.join(tmp, "c"), args.runs)
        print(f"records first published: {first:.1f} s after the agent "
              f"started")
        print(f"gateway killed -> record gone: median "
              f"{statistics.median(gone):.1f} s (min {min(gone):.1f}, max "
              f"{max(gone):.1f}; grace 30 s)")
        print(f"gateway back -> record back: median "
              f"{statistics.median(back):.1f} s")
        print(f"agent start -> dns-01 certificate: median "
              f"{statistics.median(took):.2f} s")
    finally:
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
