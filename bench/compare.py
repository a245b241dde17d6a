#!/usr/bin/python3
"""porch side by side: direct, HAProxy SNI, HAProxy + ssh -R, porch, porch one peer hop away.

One run on loopback, one nginx TLS backend (files on tmpfs, keepalive
on) for every setup, the same clients:
  direct      client -> nginx
  haproxy     client -> HAProxy (mode tcp, req.ssl_sni) -> nginx
  ssh-tunnel  client -> HAProxy SNI -> sshd <- ssh -R (home) -> nginx
  porch       client -> porch-gateway -> tunnel -> porch-agent -> nginx
  porch-peer  client -> porch-gateway -> peer link -> porch-gateway
              -> tunnel -> porch-agent -> nginx (its own three processes)

Metrics (issue 5), every run interleaved across setups, medians of RUNS:
  M1  TLS download of SIZE with curl, 1 stream and 8 parallel streams
      (8 curls of SIZE/8 each; total bytes / wall time); ratio to direct.
      CPU: utime+stime (/proc/PID/stat) of the front and tunnel
      processes over the M1 transfers, in CPU seconds per GiB moved.
  M2  new TLS connections, each a full handshake and one GET of a 1 KiB
      file (bench/tls_rate, THREADS threads back to back for SECONDS):
      connections/s, p50 and p99 latency.
  M3  kept-alive GETs of the same file (tls_rate -k): THREADS
      connections paced to RATE requests/s in all (latency from when a
      request was due), and the same connections as fast as they go
      (saturation): p50, p99, requests/s.
  M4  RSS (VmRSS) of the front and tunnel processes with 0 and IDLE idle
      TLS visitor connections (handshake done), per-connection cost.
      Measured once per setup, on fresh processes, before any bulk
      traffic: allocators keep freed memory, so a second fill in the
      same processes would understate the cost.
  Idle tunnels: the RSS one more idle tunnel (no streams) costs at each
      end: one gateway as 1+TUNNELS agents connect one by one, one agent
      as 1+TUNNELS gateways it lists come up one by one; the average over
      the TUNNELS after the first, which also pays one-time setup and is
      shown separately.

The table and the targets of issue 5 (met / missed, by how much) are
printed and written to bench/RESULTS.md.  Every process started here is
stopped at the end, also on SIGINT/SIGTERM/SIGHUP; every load is bounded
in time and count.  Nothing asserts a figure: the exit status is non-zero
only when a setup failed or produced no figures (what `make bench-smoke`
checks with --quick --out -).

usage: bench/compare.py [--size-mib 1024] [--idle 1000] [--runs 3]
                        [--seconds 5] [--threads 4] [--rate 200]
                        [--tunnels 16] [--quick] [--out FILE|-]
"""

import argparse
import getpass
import json
import os
import platform
import re
import resource
import shutil
import signal
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

HOST = "bench.example.test"
STREAMS = 8
SMALL = 1024            # bytes of /small, the M2 and M3 file
CURL_MAX_S = 120        # per curl
IDLE_MAX_S = 180        # to open all idle connections of one setup
ROUTE_MAX_S = 20        # for a setup to answer its first request
IO_TIMEOUT_S = 5        # tls_rate: per connect, read and write
SETUPS = ("direct", "haproxy", "ssh-tunnel", "porch", "porch-peer")
TLS_RATE = os.path.join(fx.BUILD, "tls_rate")
CLK_TCK = os.sysconf("SC_CLK_TCK")


class Interrupted(Exception):
    pass


def on_signal(signum, _frame):
    raise Interrupted(f"signal {signum}")


# ---------------------------------------------------------------- helpers

def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_s(pid):
    """utime + stime of pid (all its threads), in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
    except OSError:
        return None
    fields = st[st.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def descendants(pid):
    """All live descendants of pid (sshd's per-connection children)."""
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        ppid = int(st[st.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    out, pending = [], [pid]
    while pending:
        for c in kids.get(pending.pop(), []):
            out.append(c)
            pending.append(c)
    return out


def settle(pids, quiet_ms=300, limit_s=10):
    """Poll until the RSS of pids stops changing; returns the tuple."""
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


def curl_argv(port, ca, path):
    return ["curl", "-sS", "--max-time", str(CURL_MAX_S), "-o", "/dev/null",
            "--cacert", ca, "--resolve", f"{HOST}:{port}:127.0.0.1",
            "-w", "%{speed_download} %{size_download}\\n",
            f"https://{HOST}:{port}/{path}"]


def download_1(port, ca, want):
    """MB/s of one curl download (curl's own figure)."""
    r = subprocess.run(curl_argv(port, ca, "blob"), capture_output=True,
                       text=True, timeout=CURL_MAX_S + 10)
    if r.returncode != 0:
        raise RuntimeError(f"curl failed ({r.returncode}): {r.stderr}")
    speed, size = r.stdout.split()
    if int(size) != want:
        raise RuntimeError(f"short download: {size} of {want}")
    return float(speed) / 1e6


def download_n(procs, tag, port, ca, want_each):
    """MB/s of STREAMS curls at once: total bytes / wall time."""
    ps = []
    t0 = time.monotonic()
    for i in range(STREAMS):
        ps.append(procs.start(f"curl-{tag}-{i}",
                              curl_argv(port, ca, "blob8")))
    total = 0
    for p in ps:
        rc = p.p.wait(CURL_MAX_S + 10)
        if rc != 0:
            raise RuntimeError(f"{p.name} failed ({rc}): {p.log()}")
    wall = time.monotonic() - t0
    for p in ps:
        p.stop()
        size = int(p.log().split()[-1])
        if size != want_each:
            raise RuntimeError(f"{p.name}: short download {size}")
        total += size
    return total / wall / 1e6


def get_small(port, ctx, timeout=2.0):
    """One new TLS connection and a GET of /small; True on a 200."""
    try:
        with socket.create_connection(("127.0.0.1", port),
                                      timeout=timeout) as s:
            with ctx.wrap_socket(s, server_hostname=HOST) as t:
                t.sendall(f"GET /small HTTP/1.1\r\nHost: {HOST}\r\n"
                          "Connection: close\r\n\r\n".encode())
                data = b""
                while True:
                    chunk = t.recv(65536)
                    if not chunk:
                        break
                    data += chunk
        return data.startswith(b"HTTP/1.1 200") and len(data) > SMALL
    except (OSError, ssl.SSLError):
        return False


def wait_route(name, port, ca):
    """Until the setup answers (a peer route is announced within
    seconds of the link coming up)."""
    ctx = ssl.create_default_context(cafile=ca)
    deadline = time.monotonic() + ROUTE_MAX_S
    while not get_small(port, ctx):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name}: no answer within {ROUTE_MAX_S}s")
        time.sleep(0.1)


def open_idle(n, port, ca):
    ctx = ssl.create_default_context(cafile=ca)
    conns = []
    deadline = time.monotonic() + IDLE_MAX_S
    try:
        for _ in range(n):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(conns)} of {n} idle connections "
                                   f"in {IDLE_MAX_S}s")
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            try:
                conns.append(ctx.wrap_socket(s, server_hostname=HOST))
            except Exception:
                s.close()
                raise
    except Exception:
        for c in conns:
            c.close()
        raise
    return conns


def tls_rate(port, ca, threads, secs, keepalive=None):
    """bench/tls_rate on /small; its JSON figures.  keepalive: None for
    new connections (M2), else the -k rate (0: as fast as possible)."""
    argv = [TLS_RATE, "-c", f"127.0.0.1:{port}", "-n", HOST, "-A", ca,
            "-r", "/small", "-t", str(threads), "-s", str(secs),
            "-T", str(IO_TIMEOUT_S)]
    if keepalive is None:
        argv += ["-m", str(int(secs * 50000))]
    else:
        argv += ["-k", str(keepalive), "-m", str(int(secs * 1000000))]
    r = subprocess.run(argv, capture_output=True, text=True,
                       timeout=secs + 4 * IO_TIMEOUT_S + 10)
    try:
        j = json.loads(r.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise RuntimeError(f"tls_rate ({r.returncode}): {r.stdout!r} "
                           f"{r.stderr!r}")
    if j["requests"] <= 0:
        raise RuntimeError(f"tls_rate: no request succeeded: {j}")
    return j


def machine_facts():
    """The CPU's model name and the kernel's TCP congestion control, for
    the machine line of a results file ("?" when unknown)."""
    cpuname = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpuname = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        with open("/proc/sys/net/ipv4/tcp_congestion_control") as f:
            tcp_cc = f.read().strip()
    except OSError:
        tcp_cc = "?"
    return cpuname, tcp_cc


def version(argv, stderr=False):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        out = (r.stderr if stderr else r.stdout).strip()
        return out.splitlines()[0] if out else "?"
    except OSError:
        return "?"


# ----------------------------------------------------------------- setups

HAPROXY_CFG = """global
    maxconn 4096
defaults
    mode tcp
    timeout connect 5s
    timeout client 600s
    timeout server 600s
frontend sni
    bind {bind}:{port}
    tcp-request inspect-delay 5s
    tcp-request content accept if {{ req.ssl_hello_type 1 }}
    use_backend home if {{ req.ssl_sni -i {host} }}
backend home
    server home 127.0.0.1:{backend}
"""


def start_haproxy(procs, tmp, name, backend, bind="127.0.0.1"):
    """bind: the address it listens on (bench/uplink.py: a namespace's
    own address)."""
    port = fx.free_port()
    cfg = os.path.join(tmp, f"{name}.cfg")
    with open(cfg, "w") as f:
        f.write(HAPROXY_CFG.format(bind=bind, port=port, host=HOST,
                                   backend=backend))
    p = procs.start(name, ["haproxy", "-f", cfg, "-db"])
    fx.wait_port(port, host=bind)
    return p, port


SSHD_CFG = """ListenAddress {listen}:{port}
HostKey {hostkey}
PidFile {dir}/sshd.pid
AuthorizedKeysFile {authkeys}
StrictModes no
UsePAM no
PermitRootLogin yes
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AllowTcpForwarding yes
GatewayPorts no
X11Forwarding no
LogLevel INFO
"""


def start_ssh_tunnel(procs, tmp, backend, listen="127.0.0.1", ssh_wrap=()):
    """A private sshd and a home ssh client with -R; returns
    (sshd proc, ssh proc, forwarded port).  listen: sshd's address;
    ssh_wrap: argv before ssh's (bench/uplink.py runs it in the home
    namespace).  The forwarded port is on the loopback of sshd's side."""
    d = os.path.join(tmp, "ssh")
    os.makedirs(d, exist_ok=True)
    try:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    except OSError:
        pass        # not root: sshd then needs no privsep directory
    hostkey = os.path.join(d, "host_ed25519")
    userkey = os.path.join(d, "home_ed25519")
    for k in (hostkey, userkey):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "",
                        "-f", k], check=True, capture_output=True)
    authkeys = userkey + ".pub"
    port, fwd = fx.free_port(), fx.free_port()
    cfg = os.path.join(d, "sshd_config")
    with open(cfg, "w") as f:
        f.write(SSHD_CFG.format(listen=listen, port=port, hostkey=hostkey,
                                dir=d, authkeys=authkeys))
    sshd = procs.start("sshd", [shutil.which("sshd") or "/usr/sbin/sshd",
                                "-D", "-f", cfg, "-e"])
    fx.wait_port(port, host=listen)
    user = "root" if os.geteuid() == 0 else getpass.getuser()
    ssh = procs.start("ssh-home", [
        *ssh_wrap, "ssh", "-N", "-F", "/dev/null", "-i", userkey,
        "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
        "-o", "ExitOnForwardFailure=yes", "-o", "LogLevel=ERROR",
        "-p", str(port), "-R", f"127.0.0.1:{fwd}:{backend}",
        f"{user}@{listen}"])
    deadline = time.monotonic() + 15
    while True:
        if not ssh.alive():
            raise RuntimeError(f"ssh -R exited: {ssh.log()}\nsshd: "
                               f"{sshd.log()[-2000:]}")
        try:
            fx.wait_port(fwd, timeout=0.5)
            break
        except TimeoutError:
            if time.monotonic() > deadline:
                raise
    return sshd, ssh, fwd


def start_porch_peer(procs, tmp, backend):
    """An agent on a home gateway, and an entry gateway that peers with
    it and holds no agent: its visitors go one peer hop.  Returns
    (entry gateway, home gateway, agent)."""
    home = fx.Gateway(procs, tmp, name="peer-home")
    entry = fx.Gateway(procs, tmp, name="peer-entry")
    home.peer(entry)
    entry.peer(home)
    ag = fx.Agent(procs, tmp, name="peer-agent")
    home.admit(ag, [HOST])
    ag.use(home)
    ag.serve(HOST, tls=backend)
    home.start()
    entry.start()
    ag.start()
    entry.proc.wait_log(r"peer peer-home: link up", timeout=ROUTE_MAX_S)
    return entry, home, ag


def tunnel_memory(procs, tmp, backend, n):
    """RSS one idle tunnel costs at each end (see the module doc).
    Tunnels come up one at a time, each settled before the next, so
    that transient handshake memory of several at once does not count.
    Returns {"gateway"/"agent": [RSS KiB with 0, 1, ..., 1 + n
    tunnels]}; stops what it started."""
    started = []
    problems = []
    out = {}
    try:
        # The gateway end: 1 + n agents, each its own process.
        gw = fx.Gateway(procs, tmp, name="tun-gw")
        ags = [fx.Agent(procs, tmp, name=f"tun-a{i}") for i in range(n + 1)]
        for i, a in enumerate(ags):
            h = f"t{i}.{HOST}"
            gw.admit(a, [h])
            a.use(gw)
            a.serve(h, tls=backend)
        gw.start()
        started.append(gw)
        seq = [settle([gw.proc.pid])[0]]
        for a in ags:
            a.start()                   # returns once it is served
            started.append(a)
            seq.append(settle([gw.proc.pid])[0])
        out["gateway"] = seq

        # The agent end: one agent listing 1 + n gateways, all down at
        # first (it keeps redialing them), then up one by one.
        gws = [fx.Gateway(procs, tmp, name=f"tun-g{i}") for i in range(n + 1)]
        ag = fx.Agent(procs, tmp, name="tun-agent")
        h = f"tx.{HOST}"
        for g in gws:
            g.admit(ag, [h])
            ag.use(g)
        ag.serve(h, tls=backend)
        ag.start(wait_serving=False)
        started.append(ag)
        time.sleep(0.5)                 # a few refused dials
        seq = [settle([ag.proc.pid])[0]]
        for g in gws:
            g.start()
            started.append(g)
            ag.proc.wait_log(rf"gateway {g.name}: serving {re.escape(h)}\b",
                             timeout=15)
            seq.append(settle([ag.proc.pid])[0])
        out["agent"] = seq
    finally:
        for x in reversed(started):
            try:
                x.proc.check_clean_exit()
            except AssertionError as e:
                problems.append(str(e))
    if problems:
        raise RuntimeError("tunnel memory: " + "\n".join(problems))
    return out


# ------------------------------------------------------------------ table

def med(xs):
    return statistics.median(xs) if xs else None


def c_rate(v, base, is_base):
    if v is None:
        return "-"
    if is_base or not base:
        return f"{v:.0f}"
    return f"{v:.0f} ({v / base:.2f}×)"


def c_lat(v, base, is_base):
    if v is None:
        return "-"
    if is_base or base is None:
        return f"{v:.2f}"
    return f"{v:.2f} ({v - base:+.2f})"


def verdict(ok, by, unit=""):
    return (f"**met** ({by}{unit} to spare)" if ok
            else f"**missed** by {by}{unit}")


# ------------------------------------------------------------------ main

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--idle", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5,
                    help="length of each M2 and M3 run")
    ap.add_argument("--threads", type=int, default=4,
                    help="tls_rate threads (M2) and connections (M3)")
    ap.add_argument("--rate", type=float, default=200,
                    help="M3's fixed request rate, requests/s in all")
    ap.add_argument("--tunnels", type=int, default=16,
                    help="extra idle tunnels for the per-tunnel memory")
    ap.add_argument("--quick", action="store_true",
                    help="size 64 MiB, idle 100, runs 1, 1 s per M2/M3 "
                    "run, 2 extra tunnels (proves it works)")
    ap.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"),
                    help="where to write the results ('-' for nowhere)")
    args = ap.parse_args()
    if args.quick:
        args.size_mib, args.idle, args.runs = 64, 100, 1
        args.seconds, args.tunnels = 1, 2
    if args.size_mib % STREAMS or args.size_mib <= 0 or args.runs <= 0 \
            or args.idle <= 0 or not 0 < args.seconds <= 60 \
            or not 1 <= args.threads <= 64 or args.rate <= 0 \
            or not 1 <= args.tunnels <= 64:
        ap.error(f"--size-mib must be a positive multiple of {STREAMS}; "
                 "--runs and --idle positive; --seconds in (0, 60]; "
                 "--threads 1-64; --rate positive; --tunnels 1-64")
    if not os.access(TLS_RATE, os.X_OK):
        sys.exit(f"{TLS_RATE} is missing: make {os.path.relpath(TLS_RATE, fx.ROOT)}"
                 " (or make bench)")
    size = args.size_mib << 20

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, 4 * args.idle + 256))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    tmp = tempfile.mkdtemp(prefix="porch-compare-", dir="/dev/shm"
                           if os.path.isdir("/dev/shm") else None)
    procs = fx.Procs(tmp)
    started = time.time()
    t_start = time.monotonic()
    load0 = os.getloadavg()[0]
    rc = 0
    ok = False
    ng = None
    try:
        ca = fx.CA(os.path.join(tmp, "ca"))
        ng = fx.Nginx(procs, tmp, ca, HOST)
        chunk = os.urandom(1 << 20)
        for name, mib in (("blob", args.size_mib),
                          ("blob8", args.size_mib // STREAMS)):
            with open(os.path.join(ng.root, name), "wb") as f:
                for _ in range(mib):
                    f.write(chunk)
        with open(os.path.join(ng.root, "small"), "wb") as f:
            f.write(os.urandom(SMALL))

        hap, hap_port = start_haproxy(procs, tmp, "haproxy", ng.tls_port)
        sshd, ssh, fwd = start_ssh_tunnel(procs, tmp, ng.tls)
        hap2, hap2_port = start_haproxy(procs, tmp, "haproxy-ssh", fwd)
        gw = fx.Gateway(procs, tmp)
        ag = fx.Agent(procs, tmp)
        gw.admit(ag, [HOST])
        ag.use(gw)
        ag.serve(HOST, tls=ng.tls)
        gw.start()
        ag.start()
        pe, ph, pa = start_porch_peer(procs, tmp, ng.tls)

        ports = {"direct": ng.tls_port, "haproxy": hap_port,
                 "ssh-tunnel": hap2_port, "porch": gw.tls_port,
                 "porch-peer": pe.tls_port}

        def front(name):
            """(label, pid) of the front and tunnel processes."""
            if name == "haproxy":
                return [("haproxy", hap.pid)]
            if name == "ssh-tunnel":
                return ([("haproxy", hap2.pid), ("sshd", sshd.pid)]
                        + [("sshd-child", p) for p in descendants(sshd.pid)]
                        + [("ssh", ssh.pid)])
            if name == "porch":
                return [("gateway", gw.proc.pid), ("agent", ag.proc.pid)]
            if name == "porch-peer":
                return [("entry-gateway", pe.proc.pid),
                        ("home-gateway", ph.proc.pid),
                        ("agent", pa.proc.pid)]
            return []

        def cpu_snap(name):
            return {pid: (lbl, cpu_s(pid)) for lbl, pid in front(name)}

        def cpu_delta(a, b):
            """label -> CPU seconds between snapshots a and b."""
            out = {}
            for pid, (lbl, t1) in b.items():
                t0 = a.get(pid, (lbl, 0.0))[1]
                if t1 is not None and t0 is not None:
                    out[lbl] = out.get(lbl, 0.0) + t1 - t0
            return out

        print(f"# porch compare: {args.size_mib} MiB, {args.idle} idle, "
              f"{args.seconds:g} s per M2/M3 run, {args.threads} threads, "
              f"M3 at {args.rate:g} req/s, {args.tunnels} extra tunnels, "
              f"median of {args.runs}, {os.cpu_count()} CPUs, load "
              f"{load0:.2f}", flush=True)

        # Every setup answers before anything is measured (and has done
        # its one-time setup: one connection each).
        for name in SETUPS:
            wait_route(name, ports[name], ca.crt)

        # M4 first, on fresh processes.
        mem = {}
        for name in SETUPS:
            fr = front(name)
            if not fr:
                continue
            pids = [p for _, p in fr]
            base = settle(pids)
            conns = open_idle(args.idle, ports[name], ca.crt)
            try:
                fr2 = front(name)      # sshd children may have changed
                held = settle([p for _, p in fr2])
            finally:
                for c in conns:
                    c.close()
            b, h = sum(base), sum(held)
            per = {}                   # label -> [rss before, rss held]
            for (lbl, _), x in zip(fr, base):
                per.setdefault(lbl, [0, 0])[0] += x
            for (lbl, _), y in zip(fr2, held):
                per.setdefault(lbl, [0, 0])[1] += y
            mem[name] = (b, h, (h - b) / args.idle,
                         [(lbl, x, y) for lbl, (x, y) in per.items()])
            print(f"M4 {name:10s} rss {b:7d} -> {h:7d} KiB  "
                  f"{(h - b) / args.idle:6.1f} KiB/conn  ("
                  + ", ".join(f"{lbl} {x}->{y}" for lbl, x, y in mem[name][3])
                  + ")", flush=True)
            # let the fronts drop the closed connections before bulk runs
            settle(pids, limit_s=5)

        # Idle tunnels, in processes of their own, stopped afterwards.
        tseq = tunnel_memory(procs, tmp, ng.tls, args.tunnels)
        tun = {}            # end -> (first, per further tunnel, steps)
        for end, seq in tseq.items():
            steps = [b - a for a, b in zip(seq[1:], seq[2:])]
            tun[end] = (seq[1] - seq[0], (seq[-1] - seq[1]) / args.tunnels,
                        steps)
            print(f"tunnels {end:7s} rss {seq[0]} -> {seq[1]} (first) -> "
                  f"{seq[-1]} KiB ({args.tunnels} more): "
                  f"{tun[end][1]:.1f} KiB per further tunnel (steps "
                  f"{min(steps)}..{max(steps)}), first {tun[end][0]} KiB",
                  flush=True)

        # M1 with CPU accounting, runs interleaved across setups.
        one = {n: [] for n in SETUPS}
        many = {n: [] for n in SETUPS}
        cpu = {n: [] for n in SETUPS}        # per run: label -> s/GiB
        gib = 2 * size / (1 << 30)           # per setup and run
        for r in range(args.runs):
            for name in SETUPS:
                s0 = cpu_snap(name)
                one[name].append(download_1(ports[name], ca.crt, size))
                many[name].append(download_n(procs, f"{name}-{r}",
                                             ports[name], ca.crt,
                                             size // STREAMS))
                d = cpu_delta(s0, cpu_snap(name))
                if d:
                    cpu[name].append({k: v / gib for k, v in d.items()})
                print(f"M1 run {r + 1} {name:10s} 1 stream "
                      f"{one[name][-1]:7.0f} MB/s   {STREAMS} streams "
                      f"{many[name][-1]:7.0f} MB/s"
                      + (f"   CPU {sum(d.values()) / gib:5.2f} s/GiB"
                         if d else ""), flush=True)

        # M2 and M3, runs interleaved across setups.
        m2 = {n: [] for n in SETUPS}
        m3r = {n: [] for n in SETUPS}
        m3s = {n: [] for n in SETUPS}
        for r in range(args.runs):
            for name in SETUPS:
                m2[name].append(tls_rate(ports[name], ca.crt, args.threads,
                                         args.seconds))
                m3r[name].append(tls_rate(ports[name], ca.crt, args.threads,
                                          args.seconds, args.rate))
                m3s[name].append(tls_rate(ports[name], ca.crt, args.threads,
                                          args.seconds, 0))
                a, b, c = m2[name][-1], m3r[name][-1], m3s[name][-1]
                print(f"M2/M3 run {r + 1} {name:10s} new {a['rate']:6.0f}/s "
                      f"p50 {a['p50_ms']:.2f} p99 {a['p99_ms']:.2f} | "
                      f"@{args.rate:g}/s p50 {b['p50_ms']:.2f} p99 "
                      f"{b['p99_ms']:.2f} | sat {c['rate']:6.0f}/s p50 "
                      f"{c['p50_ms']:.2f} p99 {c['p99_ms']:.2f}"
                      + (f"  errors {a['errors']}/{b['errors']}/"
                         f"{c['errors']}" if a["errors"] or b["errors"]
                         or c["errors"] else ""), flush=True)

        # ---- medians
        def mj(d, n, key):
            return med([x[key] for x in d[n]])

        M = {}
        for n in SETUPS:
            cpu_tot = med([sum(x.values()) for x in cpu[n]])
            M[n] = {
                "m1_1": med(one[n]), "m1_8": med(many[n]), "cpu": cpu_tot,
                "m2": mj(m2, n, "rate"), "m2_p50": mj(m2, n, "p50_ms"),
                "m2_p99": mj(m2, n, "p99_ms"),
                "m3r_p50": mj(m3r, n, "p50_ms"),
                "m3r_p99": mj(m3r, n, "p99_ms"),
                "m3r_rate": mj(m3r, n, "rate"),
                "m3s": mj(m3s, n, "rate"), "m3s_p50": mj(m3s, n, "p50_ms"),
                "m3s_p99": mj(m3s, n, "p99_ms"),
                "m4": mem[n][2] if n in mem else None,
            }
        D = M["direct"]
        spec = [
            ("M1 1 stream, MB/s (×direct)", "m1_1", c_rate),
            (f"M1 {STREAMS} streams, MB/s (×direct)", "m1_8", c_rate),
            ("M1 CPU of front+tunnel, s/GiB", "cpu", None),
            ("M2 new TLS conn + GET, conn/s (×direct)", "m2", c_rate),
            ("M2 p50 ms (± direct)", "m2_p50", c_lat),
            ("M2 p99 ms (± direct)", "m2_p99", c_lat),
            (f"M3 kept-alive at {args.rate:g} req/s, p50 ms (± direct)",
             "m3r_p50", c_lat),
            (f"M3 kept-alive at {args.rate:g} req/s, p99 ms (± direct)",
             "m3r_p99", c_lat),
            ("M3 kept-alive saturated, req/s (×direct)", "m3s", c_rate),
            ("M3 saturated p50 ms (± direct)", "m3s_p50", c_lat),
            ("M3 saturated p99 ms (± direct)", "m3s_p99", c_lat),
            ("M4 KiB per idle visitor (all front+tunnel)", "m4", None),
        ]
        rows = ["| metric | " + " | ".join(SETUPS) + " |",
                "|---" * (len(SETUPS) + 1) + "|"]
        for label, key, f in spec:
            cells = []
            for n in SETUPS:
                v = M[n][key]
                if f is None:
                    cells.append("-" if v is None else
                                 (f"{v:.2f}" if key == "cpu" else f"{v:.1f}"))
                else:
                    cells.append(f(v, D[key], n == "direct"))
            rows.append(f"| {label} | " + " | ".join(cells) + " |")
        rows.append("| M4 RSS idle=0 → idle=N, KiB | " + " | ".join(
            f"{mem[n][0]} → {mem[n][1]}" if n in mem else "-"
            for n in SETUPS) + " |")
        table = "\n".join(rows)

        # ---- targets (issue 5), all from this run
        P, H, S = M["porch"], M["haproxy"], M["ssh-tunnel"]
        gw_kib = {lbl: (y - x) / args.idle for lbl, x, y in mem["porch"][3]}
        hap_kib = mem["haproxy"][2]
        tg = []

        def ratio_goal(what, v, goal):
            tg.append(f"- {what}: {v:.3f} (goal >= {goal:.2f}): "
                      + verdict(v >= goal, f"{abs(v - goal):.3f}"))
        for k, lbl in (("m1_1", "1 stream"), ("m1_8", f"{STREAMS} streams")):
            ratio_goal(f"M1 porch/direct, {lbl}", P[k] / D[k], 0.6)
        for k, lbl in (("m1_1", "1 stream"), ("m1_8", f"{STREAMS} streams")):
            ratio_goal(f"M1 porch/ssh-tunnel, {lbl}", P[k] / S[k], 1.5)
        ratio_goal("M2 porch/haproxy new conn/s", P["m2"] / H["m2"], 0.8)
        d99 = P["m2_p99"] - H["m2_p99"]
        tg.append(f"- M2 porch p99 − haproxy p99: {d99:+.3f} ms (goal <= "
                  "+1.00 ms): " + verdict(d99 <= 1.0,
                                          f"{abs(1.0 - d99):.3f}", " ms"))
        g = gw_kib["gateway"]
        tg.append(f"- M4 gateway KiB per idle visitor: {g:.1f} (goal <= "
                  f"HAProxy's {hap_kib:.1f}): "
                  + verdict(g <= hap_kib, f"{abs(hap_kib - g):.1f}", " KiB"))
        tg.append(f"- M4 gateway KiB per idle visitor: {g:.1f} (goal <= "
                  "16): " + verdict(g <= 16, f"{abs(16 - g):.1f}", " KiB"))
        for end in ("gateway", "agent"):
            first, per, _ = tun[end]
            tg.append(f"- idle tunnel, {end} end: {per:.1f} KiB per tunnel "
                      f"(goal <= 64; the first tunnel of a process, one-time "
                      f"setup included: {first} KiB): "
                      + verdict(per <= 64, f"{abs(64 - per):.1f}", " KiB"))
        targets = "\n".join(tg)

        print()
        print(table)
        print()
        print(targets)

        # ---- smoke check: every setup produced every figure
        missing = []
        for n in SETUPS:
            for label, key, _ in spec:
                v = M[n][key]
                if key in ("cpu", "m4") and n == "direct":
                    continue
                if v is None or (key in ("m1_1", "m1_8", "m2", "m3s",
                                         "m3r_rate", "m4") and v <= 0):
                    missing.append(f"{n}: {label}")
        if missing:
            print("no figure for: " + "; ".join(missing), file=sys.stderr)
            rc = 1

        # ---- details
        errs = {n: sum(x["errors"] for x in m2[n] + m3r[n] + m3s[n])
                for n in SETUPS}
        missed = {n: sum(x["missed"] for x in m3r[n]) for n in SETUPS}
        detail = ["Runs (in order; M1 MB/s 1 stream / 8 streams; M2 conn/s; "
                  f"M3 saturated req/s; M3 at {args.rate:g} req/s achieved):",
                  ""]
        for n in SETUPS:
            detail.append(
                f"- {n}: M1 " + ", ".join(f"{a:.0f}" for a in one[n])
                + " / " + ", ".join(f"{a:.0f}" for a in many[n])
                + "; M2 " + ", ".join(f"{x['rate']:.0f}" for x in m2[n])
                + "; M3 " + ", ".join(f"{x['rate']:.0f}" for x in m3s[n])
                + " / " + ", ".join(f"{x['rate']:.0f}" for x in m3r[n])
                + (f"; {errs[n]} failed requests" if errs[n] else "")
                + (f"; {missed[n]} paced requests never sent (client "
                   "behind)" if missed[n] else ""))
        detail += ["", "CPU seconds per GiB moved in M1, per process "
                   "(median over runs):", ""]
        for n in SETUPS:
            if cpu[n]:
                detail.append(f"- {n}: " + ", ".join(
                    f"{lbl} {med([x.get(lbl, 0) for x in cpu[n]]):.2f}"
                    for lbl in cpu[n][0]))
        detail += ["", "Memory per process (KiB, idle=0 -> idle=N; KiB per "
                   "idle visitor):", ""]
        for n in SETUPS:
            if n in mem:
                detail.append(f"- {n}: " + ", ".join(
                    f"{lbl} {x} -> {y} ({(y - x) / args.idle:.1f})"
                    for lbl, x, y in mem[n][3]))
        detail += ["", "Idle tunnels (no streams), RSS KiB with 0, 1, 2, ... "
                   "tunnels, each up and settled before the next:", ""]
        for end, who in (("gateway", f"one porch-gateway; {args.tunnels + 1}"
                                     " agents, separate processes, connect "
                                     "one by one"),
                         ("agent", f"one porch-agent listing "
                                   f"{args.tunnels + 1} gateways, all down "
                                   "at first (it keeps redialing), then up "
                                   "one by one")):
            first, per, steps = tun[end]
            detail.append(f"- {end} end ({who}): "
                          + ", ".join(str(x) for x in tseq[end])
                          + f"; the first tunnel {first}, each further one "
                          f"{per:.1f} on average (steps {min(steps)} to "
                          f"{max(steps)})")

        elapsed = time.monotonic() - t_start
        load1 = os.getloadavg()[0]
        print()
        print(f"{elapsed:.0f} s; load average {load0:.2f} at the start, "
              f"{load1:.2f} at the end"
              + (" (other work on the machine: figures are noisy)"
                 if max(load0, load1) > os.cpu_count() else ""))

        if args.out != "-":
            root = fx.ROOT
            rev = version(["git", "-C", root, "rev-parse", "--short",
                           "HEAD"])
            # The results file itself does not count: a second run
            # would otherwise always report uncommitted changes.
            dirty = subprocess.run(["git", "-C", root, "status",
                                    "--porcelain", "--untracked-files=no",
                                    "--", ".", ":!bench/RESULTS.md"],
                                   capture_output=True, text=True).stdout
            vers = [
                f"porch {rev}" + (" (with uncommitted changes)"
                                  if dirty.strip() else ""),
                version(["haproxy", "-v"]),
                version(["ssh", "-V"], stderr=True),
                version(["nginx", "-v"], stderr=True),
                version(["openssl", "version"]),
                version(["curl", "--version"]),
            ]
            # BBR paces every socket with a timer when the qdisc is not
            # fq: on one such machine it took HAProxy's 1-stream M1 from
            # 1500 to 1130 MB/s and porch's from 760 to 690, so it is part
            # of what a run measured.
            cpuname, tcp_cc = machine_facts()
            doc = [
                "# porch side by side (bench/compare.py)", "",
                "Generated by `" + " ".join(["bench/compare.py"]
                                            + sys.argv[1:])
                + "`" + ("" if sys.argv[1:] else " (`make bench`)")
                + "; do not edit by hand.", "",
                f"- date: {time.strftime('%Y-%m-%d %H:%M %Z', time.localtime(started))}"
                f" ({elapsed:.0f} s)",
                f"- machine: {os.cpu_count()} CPUs ({cpuname}), Linux "
                f"{platform.release()}, TCP congestion control {tcp_cc}; "
                "client, backend, fronts and tunnels "
                "all share these cores on loopback, so the ratios matter, "
                "not the absolute numbers; load average (1 min) "
                f"{load0:.2f} at the start, {load1:.2f} at the end "
                "(anything else running on the machine skews the figures)",
                f"- load: M1 {args.size_mib} MiB per download ({STREAMS} "
                f"streams: {STREAMS} × {args.size_mib // STREAMS} MiB at "
                f"once); M2 and M3 {args.seconds:g} s each with "
                f"{args.threads} client threads/connections, GET of a "
                f"{SMALL}-byte file; M4 {args.idle} idle TLS connections; "
                f"median of {args.runs} run(s), interleaved across setups; "
                "M4 and idle tunnels measured once, on fresh processes", "",
                "Versions:", ""] + [f"- {v}" for v in vers] + [
                "", table, "",
                "Cells: the median, and in brackets the ratio to direct "
                "(rates) or the difference to direct in ms (latencies).",
                "", "Targets (issue 5), from this run:", "", targets, ""
                ] + detail + [
                "", "Setups: direct = client → nginx; haproxy = HAProxy "
                "`mode tcp` with `req.ssl_sni` routing → nginx; ssh-tunnel "
                "= HAProxy SNI → private sshd ← `ssh -R` from home → nginx; "
                "porch = porch-gateway → tunnel → porch-agent → nginx; "
                "porch-peer = a porch-gateway with no agent → peer link → "
                "the porch-gateway holding the agent's tunnel → porch-agent "
                "→ nginx (three processes of its own). nginx keeps "
                "connections alive (100000 requests each).", "",
                "Method: M1 = curl downloads, MB/s (1 stream: curl's "
                "figure; 8 streams: bytes / wall time). CPU = utime+stime "
                "from /proc/PID/stat of the front and tunnel processes "
                "(HAProxy; HAProxy, sshd and its children, ssh; gateway(s) "
                "and agent) before and after each run's M1 transfers, "
                "divided by the GiB moved (client and nginx not counted). "
                "M2 = `tls_rate`: threads opening new TLS connections back "
                "to back (full handshake, no resumption), one GET each; "
                "latency = connect to last byte. M3 = `tls_rate -k`: one "
                "kept-alive connection per thread, paced to the total rate "
                "(latency counted from when each request was due, so a "
                "stall delays the requests behind it too) or unpaced "
                "(saturation). M4 = VmRSS of the front and tunnel "
                "processes with 0 and N idle visitor connections after "
                "their handshakes. Idle tunnels: VmRSS of one gateway as "
                "agents connect (no streams), and of one agent as its "
                "gateways come up, one tunnel at a time, each settled "
                "before the next (several handshakes at once would leave "
                "transient memory in the heap); the target is judged on "
                "the average cost of each further tunnel, since the first "
                "one also pays one-time setup of the process (TLS library, "
                "code pages).",
                ""]
            with open(args.out, "w") as f:
                f.write("\n".join(doc))
            print(f"wrote {args.out}")
        ok = True
    except Interrupted as e:
        print(f"interrupted ({e}); stopping everything", file=sys.stderr)
        rc = 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        problems = procs.stop_all()
        for p in problems:
            print(f"stop: {p}", file=sys.stderr)
        if ng is not None:
            for name in ("blob", "blob8"):
                try:
                    os.unlink(os.path.join(ng.root, name))
                except OSError:
                    pass
        if (ok or rc == 130) and not problems:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"logs kept in {tmp}", file=sys.stderr)
        if problems and rc == 0:
            rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
