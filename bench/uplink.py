#!/usr/bin/python3
"""porch over a slow home uplink: fairness and latency (issue 13, item 2).

Three network namespaces joined by veth pairs (needs root):

  home     nginx (TLS, a 1 GiB file and a 1 KiB file on tmpfs), the
           porch agent(s), the `ssh -R` client
             | veth, home -> gw limited by tbf (RATE Mbit/s, burst
             | 64 kB, latency 100 ms): the uplink; optional 0.5 % loss
             | of the packets that crossed it (nftables, netdev ingress
             | hook on the gw end, so TCP sees a real loss)
  gw       porch-gateway(s), sshd + HAProxy SNI (ssh -R), the nftables
           DNAT of the port forward, and this script itself
             | veth, unlimited
  visitor  the clients: two curl downloads, one small-request client

Setups, side by side on the same link:
  port-fwd   visitor -> gw address, DNAT (nftables, gw) -> home nginx:
             what a user with a real port forward has (the baseline)
  ssh-R      visitor -> HAProxy SNI (gw) -> sshd <- `ssh -N -R` (home)
             -> nginx (compare.py's ssh-tunnel, helpers imported)
  porch      visitor -> porch-gateway (gw) -> tunnel -> porch-agent
             (home) -> nginx; one per --porch-build

Load, per setup, condition (rate, loss) and run: two visitors download
the 1 GiB file with curl for SECONDS (curl --max-time; the file is
larger than what the link carries in that time), while a third makes a
small HTTPS request (GET of 1 KiB) every 200 ms on a new TLS connection
(full handshake, connect to last byte) and, offset by 100 ms, every
200 ms on one kept-alive TLS connection opened before the downloads
(latency from when the request was due, so a stall delays the requests
behind it too).  Small requests start WARM seconds after the downloads
and stop being issued 1.5 s before the downloads are stopped.

Figures: p50/p99 of the small requests completed while the downloads
ran; how many waited until a download ended (completed only after the
first download stopped, or never: failed or timed out GRACE seconds
after the end); each download's goodput (bytes curl wrote, sampled from
/proc/PID/io, after WARM until the end), their split and the total as %
of the link rate (tbf counts Ethernet frames; TCP/IP headers alone cost
~4.4 % at MTU 1500).

Targets (issue 13), per setup and condition, met/missed: small-request
p99 within port-fwd's + 20 ms (new-connection and keep-alive); no
request waits for a bulk transfer to end; the split within 10 % (the
smaller download at least 90 % of the larger); goodput >= 95 % of the
link.  Printed, and written to bench/UPLINK.md.

Every process is stopped by PID, every namespace deleted (with its tc
and nftables state) at the end, also on SIGINT/SIGTERM/SIGHUP; every
load is bounded in time and count.  Nothing asserts a figure: the exit
status is non-zero only when a setup failed to run.

usage: bench/uplink.py [--seconds 20] [--rates 50,500] [--loss both]
                       [--runs 1] [--porch-build DIR ...] [--quick]
                       [--out FILE|-]
"""

import argparse
import ctypes
import json
import re
import math
import os
import platform
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

HOST = "bench.example.test"
SMALL = 1024
BIG_MIB = 1024
INTERVAL = 0.2          # s between small requests of one kind
ISSUE_MARGIN = 1.5      # s before the downloads stop: no new request
GRACE = 5.0             # s after the downloads stop: a request's limit
LOSS_PER_MILLE = 5
HOME_IP, GW_UP_IP = "10.77.1.1", "10.77.1.2"
GW_VIS_IP, VIS_IP = "10.77.2.1", "10.77.2.2"
NGINX_PORT = 443
PFWD_PORT = 8443
CLONE_NEWNET = 0x40000000


# --------------------------------------------------- the visitor's client
#
# Runs as `uplink.py --visitor JSON` in the visitor namespace; prints
# "ready" once its kept-alive connection answered, then one JSON line
# of records [kind, due, done or null, error or null] (CLOCK_MONOTONIC,
# the same clock in every namespace).

def _read_response(t, deadline):
    """One HTTP/1.1 response (Content-Length or to EOF); True on 200
    with the whole body."""
    data = b""
    while b"\r\n\r\n" not in data:
        t.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = t.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the head")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    if not head.startswith(b"HTTP/1.1 200"):
        raise ConnectionError(head.split(b"\r\n")[0].decode(errors="replace"))
    length = None
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while length is None or len(body) < length:
        t.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = t.recv(65536)
        if not chunk:
            if length is None:
                break
            raise ConnectionError("short body")
        body += chunk
    if len(body) != SMALL:
        raise ConnectionError(f"body of {len(body)} bytes")


def visitor_main(spec):
    a = json.loads(spec)
    ctx = ssl.create_default_context(cafile=a["ca"])
    addr = (a["ip"], a["port"])
    begin, issue_end, deadline = a["begin"], a["issue_end"], a["deadline"]
    recs = []
    lock = threading.Lock()

    def connect(limit):
        s = socket.create_connection(addr, timeout=max(0.01, limit -
                                                       time.monotonic()))
        try:
            return ctx.wrap_socket(s, server_hostname=HOST)
        except BaseException:
            s.close()
            raise

    def get(t, limit, close):
        t.sendall((f"GET /small HTTP/1.1\r\nHost: {HOST}\r\n"
                   + ("Connection: close\r\n" if close else "")
                   + "\r\n").encode())
        _read_response(t, limit)

    def new_conn(due):
        err = None
        try:
            with connect(deadline) as t:
                get(t, deadline, True)
        except (OSError, ssl.SSLError, ValueError) as e:
            err = f"{type(e).__name__}: {e}"
        done = None if err else time.monotonic()
        with lock:
            recs.append(("new", due, done, err))

    n = max(1, int(math.floor((issue_end - begin) / INTERVAL)))

    # The kept-alive connection exists (and answered once) before the
    # downloads start.
    ka = connect(time.monotonic() + 10)
    get(ka, time.monotonic() + 10, False)
    print("ready", flush=True)

    def keepalive():
        nonlocal ka
        for k in range(n):
            due = begin + INTERVAL / 2 + k * INTERVAL
            d = due - time.monotonic()
            if d > 0:
                time.sleep(d)
            if time.monotonic() > deadline:
                recs.append(("ka", due, None, "deadline"))
                continue
            err = None
            try:
                if ka is None:
                    ka = connect(deadline)
                get(ka, deadline, False)
            except (OSError, ssl.SSLError, ValueError) as e:
                err = f"{type(e).__name__}: {e}"
                if ka is not None:
                    ka.close()
                ka = None
            done = None if err else time.monotonic()
            with lock:
                recs.append(("ka", due, done, err))

    kt = threading.Thread(target=keepalive)
    kt.start()
    threads = []
    for k in range(n):
        due = begin + k * INTERVAL
        d = due - time.monotonic()
        if d > 0:
            time.sleep(d)
        th = threading.Thread(target=new_conn, args=(due,))
        th.start()
        threads.append(th)
    for th in threads + [kt]:
        th.join(max(0.0, deadline - time.monotonic()) + 5)
    if ka is not None:
        ka.close()
    with lock:
        print(json.dumps(recs), flush=True)
    return 0


# ------------------------------------------------------------ the harness

class Interrupted(Exception):
    pass


def on_signal(signum, _frame):
    raise Interrupted(f"signal {signum}")


def run(argv, check=True, input=None):
    r = subprocess.run(argv, capture_output=True, text=True, input=input,
                       timeout=30)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {r.returncode} "
                           f"{r.stderr.strip()}")
    return r


class Topology:
    """The three namespaces; this process moves into gw."""

    def __init__(self):
        tag = f"pu{os.getpid()}"
        self.home, self.gw, self.vis = (f"{tag}-home", f"{tag}-gw",
                                        f"{tag}-vis")
        self.up_dev = f"{tag}h"         # home's end of the uplink
        self.gw_up_dev = f"{tag}g"      # gw's end of it
        self.gw_vis_dev = f"{tag}v"     # gw's end toward the visitors
        self.vis_dev = f"{tag}c"
        self.made = []
        self.rate = None
        self.loss = False
        self.orig_ns = None
        self.cc = "?"

    def wrap(self, ns):
        return ["ip", "netns", "exec", ns]

    def ns(self, ns, *cmd):
        return run(self.wrap(ns) + list(cmd))

    def create(self):
        for ns in (self.home, self.gw, self.vis):
            run(["ip", "netns", "add", ns])
            self.made.append(ns)
        run(["ip", "link", "add", self.up_dev, "netns", self.home, "type",
             "veth", "peer", "name", self.gw_up_dev, "netns", self.gw])
        run(["ip", "link", "add", self.gw_vis_dev, "netns", self.gw, "type",
             "veth", "peer", "name", self.vis_dev, "netns", self.vis])
        for ns, dev, ip in ((self.home, self.up_dev, HOME_IP),
                            (self.gw, self.gw_up_dev, GW_UP_IP),
                            (self.gw, self.gw_vis_dev, GW_VIS_IP),
                            (self.vis, self.vis_dev, VIS_IP)):
            run(["ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", dev])
            run(["ip", "-n", ns, "link", "set", dev, "up"])
        for ns in (self.home, self.gw, self.vis):
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
        # One frame per packet on the uplink, as on a real one: with
        # GSO, tbf passes 64 kB bursts whole and one "lost packet" of
        # the loss rule would be a dozen segments.
        run(["ip", "-n", self.home, "link", "set", "dev", self.up_dev,
             "gso_max_segs", "1"])
        self.cc = run(self.wrap(self.home) + [
            "sysctl", "-n", "net.ipv4.tcp_congestion_control"],
            check=False).stdout.strip() or "?"
        run(["ip", "-n", self.home, "route", "add", "default", "via",
             GW_UP_IP])
        run(["ip", "-n", self.vis, "route", "add", "default", "via",
             GW_VIS_IP])
        self.ns(self.gw, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        # The port forward: the gateway's address, DNAT to home's nginx.
        run(self.wrap(self.gw) + ["nft", "-f", "-"], input=f"""
table ip uplink_pfwd {{
  chain pre {{
    type nat hook prerouting priority dstnat;
    ip daddr {GW_VIS_IP} tcp dport {PFWD_PORT} dnat to {HOME_IP}:{NGINX_PORT}
  }}
}}
""")
        # This process (and what it starts) lives in gw from here on.
        self.orig_ns = os.open("/proc/self/ns/net", os.O_RDONLY)
        fd = os.open(f"/run/netns/{self.gw}", os.O_RDONLY)
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns")
        finally:
            os.close(fd)

    def set_link(self, rate, loss):
        if rate != self.rate:
            self.ns(self.home, "tc", "qdisc", "replace", "dev", self.up_dev,
                    "root", "tbf", "rate", f"{rate}mbit", "burst", "64kb",
                    "latency", "100ms")
            self.rate = rate
        if loss and not self.loss:
            run(self.wrap(self.gw) + ["nft", "-f", "-"], input=f"""
table netdev uplink_loss {{
  chain in {{
    type filter hook ingress device "{self.gw_up_dev}" priority 0;
    numgen random mod 1000 < {LOSS_PER_MILLE} counter drop
  }}
}}
""")
        elif not loss and self.loss:
            self.ns(self.gw, "nft", "delete", "table", "netdev",
                    "uplink_loss")
        self.loss = loss

    def qdisc_drops(self):
        """Packets tbf dropped on the uplink so far (its queue full)."""
        r = run(self.wrap(self.home) + ["tc", "-s", "qdisc", "show", "dev",
                                        self.up_dev], check=False)
        w = r.stdout.replace(",", " ").split()
        for i, x in enumerate(w[:-1]):
            if x == "dropped" and w[i + 1].isdigit():
                return int(w[i + 1])
        return 0

    def leftovers(self):
        pids = []
        for ns in self.made:
            r = run(["ip", "netns", "pids", ns], check=False)
            pids += [int(x) for x in r.stdout.split() if x.isdigit()]
        return [p for p in pids if p != os.getpid()]

    def destroy(self):
        """Stop any process still in our namespaces (ours, by PID), then
        delete them: their veths, qdiscs and nftables go with them."""
        problems = []
        if self.orig_ns is not None:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.setns(self.orig_ns, CLONE_NEWNET)
            os.close(self.orig_ns)
            self.orig_ns = None
        left = self.leftovers()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for p in left:
                try:
                    os.kill(p, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 3
            while left and time.monotonic() < deadline:
                left = [p for p in left if os.path.exists(f"/proc/{p}")]
                time.sleep(0.05)
            if not left:
                break
            problems.append(f"left in the namespaces: {left}")
        for ns in reversed(self.made):
            r = run(["ip", "netns", "del", ns], check=False)
            if r.returncode != 0:
                problems.append(f"ip netns del {ns}: {r.stderr.strip()}")
        self.made = []
        return problems


NGINX_CONF = """
user root;
daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/tmp;
    proxy_temp_path {dir}/tmp;
    fastcgi_temp_path {dir}/tmp;
    uwsgi_temp_path {dir}/tmp;
    scgi_temp_path {dir}/tmp;
    keepalive_requests 100000;
    server {{
        listen {port} ssl;
        server_name {name};
        ssl_certificate {crt};
        ssl_certificate_key {key};
        root {root};
    }}
}}
"""


def build_label(d, many):
    if not many:
        return "porch"
    d = os.path.normpath(d)
    name = os.path.basename(d)
    if name.startswith("build"):
        name = os.path.basename(os.path.dirname(d)) + "/" + name
    return f"porch {name}"


def build_version(d, skip):
    d = os.path.abspath(d)
    top = run(["git", "-C", d, "rev-parse", "--show-toplevel"], check=False)
    if top.returncode != 0:
        return f"{d}: not in a git tree"
    t = top.stdout.strip()
    rev = run(["git", "-C", t, "rev-parse", "--short", "HEAD"],
              check=False).stdout.strip()
    dirty = run(["git", "-C", t, "status", "--porcelain",
                 "--untracked-files=no", "--", ".", f":!{skip}"],
                check=False).stdout.strip()
    return (f"{d}: porch {rev}" + (" (with uncommitted changes)"
                                  if dirty else ""))


def pct(xs, q):
    if not xs:
        return None
    xs = sorted(xs)
    k = (len(xs) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def io_bytes(pid):
    """Bytes the process wrote so far (curl writes the body to
    /dev/null), or None once it is gone."""
    try:
        with open(f"/proc/{pid}/io") as f:
            for line in f:
                if line.startswith("wchar:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def trace_sample(topo, t0):
    """What the uplink holds now: each TCP socket home has toward gw
    (rtt, cwnd, pacing rate, bytes in flight, bytes not yet sent) and
    the tbf queue.  For --trace: where a slow small request waited."""
    ss = run(topo.wrap(topo.home) + ["ss", "-tinH", "state", "established",
                                     "dst", GW_UP_IP], check=False).stdout
    socks = []
    lines = ss.splitlines()
    for head, info in zip(lines[0::2], lines[1::2]):
        f = head.split()
        d = {"local": f[-2] if len(f) >= 2 else "?",
             "peer": f[-1] if f else "?", "sendq": int(f[1])
             if len(f) > 1 and f[1].isdigit() else None}
        for key in ("rtt", "cwnd", "pacing_rate", "delivery_rate",
                    "bytes_in_flight", "notsent", "unacked", "retrans"):
            m = re.search(rf"\b{key}:([^ ]+)", info)
            if m:
                d[key] = m.group(1)
        socks.append(d)
    q = run(topo.wrap(topo.home) + ["tc", "-s", "qdisc", "show", "dev",
                                    topo.up_dev], check=False).stdout
    m = re.search(r"backlog (\S+) (\d+)p", q)
    return {"t": round(time.monotonic() - t0, 3), "socks": socks,
            "tbf_backlog": m.group(1) if m else None,
            "tbf_packets": int(m.group(2)) if m else None}


def one_load(procs, topo, tmp, fx, ca, label, port, seconds, warm, tag,
             trace=None):
    """Two downloads and the small-request client against port (on the
    gw's visitor address), from the visitor namespace.  Returns the
    figures of one run.  trace: a file to append a sample of the
    uplink's sockets and queue to every 100 ms (--trace)."""
    vis = topo.wrap(topo.vis)
    now = time.monotonic()
    t_dl = now + 4.0                    # the client is ready well before
    begin = t_dl + warm
    spec = {"ca": ca.crt, "ip": GW_VIS_IP, "port": port, "begin": begin,
            "issue_end": t_dl + seconds - ISSUE_MARGIN,
            "deadline": t_dl + seconds + GRACE}
    cl = procs.start(f"small-{tag}", vis + [sys.executable,
                                            os.path.abspath(__file__),
                                            "--visitor", json.dumps(spec)])
    cl.wait_log(r"ready", timeout=3.5)
    d = t_dl - time.monotonic()
    if d > 0:
        time.sleep(d)
    dls = []
    for i in range(2):
        dls.append(procs.start(f"dl-{tag}-{i}", vis + [
            "curl", "-sS", "--max-time", str(seconds), "-o", "/dev/null",
            "--cacert", ca.crt, "--resolve", f"{HOST}:{port}:{GW_VIS_IP}",
            "-w", "%{size_download} %{time_total}\\n",
            f"https://{HOST}:{port}/big"]))
    samples = [[] for _ in dls]         # (t, bytes)
    ended = [None, None]
    hard = t_dl + seconds + 10
    while None in ended and time.monotonic() < hard:
        t = time.monotonic()
        if trace is not None:
            trace.write(json.dumps(dict(trace_sample(topo, t_dl),
                                        setup=label)) + "\n")
        for i, p in enumerate(dls):
            if ended[i] is not None:
                continue
            b = io_bytes(p.pid)
            if b is None or p.p.poll() is not None:
                ended[i] = t
            else:
                samples[i].append((t, b))
        time.sleep(0.1)
    for p in dls:
        p.stop(timeout=5)
    dl_end = min(e for e in ended if e is not None) if any(
        e is not None for e in ended) else time.monotonic()
    for i, p in enumerate(dls):
        if p.p.returncode not in (0, 28):      # 28: --max-time, expected
            raise RuntimeError(f"{label}: download {i} failed "
                               f"({p.p.returncode}): {p.log()[-500:]}")
    # Goodput after the warm-up, to the last sample of each download.
    rates = []
    for s in samples:
        w = [(t, b) for t, b in s if t >= t_dl + warm]
        if len(w) < 2 or w[-1][0] - w[0][0] <= 0:
            rates.append(0.0)
        else:
            rates.append((w[-1][1] - w[0][1]) / (w[-1][0] - w[0][0]))
    whole = []
    for p in dls:
        try:
            size, secs = p.log().split()[-2:]
            whole.append(int(size) / float(secs))
        except (ValueError, ZeroDivisionError):
            whole.append(0.0)
    # The small requests.
    try:
        cl.p.wait(t_dl + seconds + GRACE + 15 - time.monotonic())
    except subprocess.TimeoutExpired:
        pass
    cl.stop(timeout=5)
    try:
        recs = json.loads(cl.log().strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise RuntimeError(f"{label}: the small-request client gave no "
                           f"records: {cl.log()[-1000:]}")
    out = {"rates": rates, "whole": whole, "dl_end": dl_end}
    for kind in ("new", "ka"):
        rs = [r for r in recs if r[0] == kind]
        lat = [(r[2] - r[1]) * 1000 for r in rs
               if r[2] is not None and r[2] <= dl_end]
        waited = [r for r in rs if r[2] is None or r[2] > dl_end]
        errs = sorted({r[3] for r in rs if r[3]})
        out[kind] = {"n": len(rs), "lat": lat, "waited": len(waited),
                     "never": sum(1 for r in rs if r[2] is None),
                     "errors": errs}
    return out


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--visitor":
        return visitor_main(sys.argv[2])

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20,
                    help="length of each load (the downloads' curl "
                    "--max-time)")
    ap.add_argument("--rates", default="50,500",
                    help="uplink rates, Mbit/s, comma-separated")
    ap.add_argument("--loss", choices=("none", "both", "only"),
                    default="both", help=f"without / with and without / "
                    f"with {LOSS_PER_MILLE / 10:g} %% loss on the uplink")
    ap.add_argument("--runs", type=int, default=1,
                    help="runs per setup and condition, interleaved; the "
                    "latencies pool all runs, goodputs are medians")
    ap.add_argument("--porch-build", action="append", metavar="DIR",
                    help="a directory with porch-gateway and porch-agent "
                    "(repeat to compare builds; default: $PORCH_BUILD or "
                    "build)")
    ap.add_argument("--quick", action="store_true",
                    help="5 s per load, 50 Mbit/s, no loss (smoke check)")
    ap.add_argument("--trace", metavar="FILE",
                    help="append, every 100 ms of each load, the home's "
                    "sockets toward gw (ss -ti) and the tbf queue as JSON "
                    "lines: where a slow request waited")
    ap.add_argument("--out", default=os.path.join(HERE, "UPLINK.md"),
                    help="where to write the results ('-' for nowhere)")
    args = ap.parse_args()
    trace = open(args.trace, "a") if args.trace else None
    if args.quick:
        args.seconds, args.rates, args.loss = 5, "50", "none"
    try:
        rates = [int(x) for x in args.rates.split(",")]
    except ValueError:
        ap.error("--rates: integers, e.g. 50,500")
    if not 4 <= args.seconds <= 120 or not 1 <= args.runs <= 10 \
            or not rates or any(not 1 <= r <= 10000 for r in rates):
        ap.error("--seconds 4-120, --runs 1-10, --rates 1-10000 Mbit/s")
    if os.geteuid() != 0:
        sys.exit("bench/uplink.py needs root (network namespaces, tc, "
                 "nftables)")
    warm = 1.0 if args.seconds < 10 else 2.0
    losses = {"none": [False], "both": [False, True], "only": [True]}[
        args.loss]

    import compare as cmp               # after the --visitor fast path
    fx = cmp.fx
    builds = [os.path.abspath(b) for b in (args.porch_build or [fx.BUILD])]
    for b in builds:
        for exe in ("porch-gateway", "porch-agent", "porchctl"):
            if not os.access(os.path.join(b, exe), os.X_OK):
                sys.exit(f"{b}/{exe} is missing (make, or --porch-build)")
    labels = [build_label(b, len(builds) > 1) for b in builds]
    if len(set(labels)) != len(labels):
        labels = [f"porch {i + 1}" for i in range(len(builds))]
    setups = ["port-fwd", "ssh-R"] + labels

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)

    tmp = tempfile.mkdtemp(prefix="porch-uplink-", dir="/dev/shm"
                           if os.path.isdir("/dev/shm") else None)
    procs = fx.Procs(tmp)
    topo = Topology()
    started = time.time()
    t_start = time.monotonic()
    load0 = os.getloadavg()[0]
    rc, ok = 0, False
    try:
        topo.create()
        home = topo.wrap(topo.home)
        ca = fx.CA(os.path.join(tmp, "ca"))

        # nginx at home; the big file is sparse (zeros read from a hole:
        # no memory, and TLS hides what the bytes are).
        nd = os.path.join(tmp, "nginx")
        root = os.path.join(nd, "root")
        os.makedirs(os.path.join(nd, "tmp"))
        os.makedirs(root)
        crt, key = ca.leaf(HOST)
        with open(os.path.join(nd, "nginx.conf"), "w") as f:
            f.write(NGINX_CONF.format(dir=nd, port=NGINX_PORT, name=HOST,
                                      crt=crt, key=key, root=root))
        with open(os.path.join(root, "big"), "wb") as f:
            f.truncate(BIG_MIB << 20)
        with open(os.path.join(root, "small"), "wb") as f:
            f.write(os.urandom(SMALL))
        procs.start("nginx", home + ["nginx", "-p", nd, "-c",
                                     os.path.join(nd, "nginx.conf")])
        fx.wait_port(NGINX_PORT, host=HOME_IP)
        backend = f"127.0.0.1:{NGINX_PORT}"     # in home's namespace
        ports = {"port-fwd": PFWD_PORT}

        # ssh -R: sshd on gw's uplink address, ssh from home; HAProxy
        # SNI on gw's visitor address in front of the forwarded port.
        sshd, ssh, fwd = cmp.start_ssh_tunnel(procs, tmp, backend,
                                              listen=GW_UP_IP, ssh_wrap=home)
        hap, ports["ssh-R"] = cmp.start_haproxy(procs, tmp, "haproxy-ssh",
                                                fwd, bind=GW_VIS_IP)
        # setup -> () -> [(label, pid)] of its relay processes (CPU)
        relays = {"port-fwd": lambda: [],
                  "ssh-R": lambda: [("haproxy", hap.pid), ("sshd", sshd.pid)]
                  + [("sshd", x) for x in cmp.descendants(sshd.pid)]
                  + [("ssh", ssh.pid)]}

        # porch: one gateway (gw) and one agent (home) per build.
        for i, (b, label) in enumerate(zip(builds, labels)):
            d = os.path.join(tmp, f"porch{i}")
            os.makedirs(d)
            gk, ak = os.path.join(d, "gateway.key"), os.path.join(
                d, "agent.key")
            ctl = os.path.join(b, "porchctl")
            gpub = run([ctl, "keygen", gk]).stdout.strip()
            apub = run([ctl, "keygen", ak]).stdout.strip()
            tls_port, tun_port = 4430 + i, 7000 + i
            gconf, aconf = os.path.join(d, "gateway.yaml"), os.path.join(
                d, "agent.yaml")
            with open(gconf, "w") as f:
                f.write(f"""identity: {gk}
name: gw{i}.example.test
listen:
  tls: ["{GW_VIS_IP}:{tls_port}"]
  tunnel: ["{GW_UP_IP}:{tun_port}"]
agents:
  - name: home{i}
    key: "{apub}"
    hostnames: ["{HOST}"]
""")
            with open(aconf, "w") as f:
                f.write(f"""identity: {ak}
name: home{i}
reconnect: {{ min: 100ms, max: 1s }}
gateways:
  - name: gw{i}
    address: "{GW_UP_IP}:{tun_port}"
    key: "{gpub}"
services:
  - hostname: "{HOST}"
    tls: "{backend}"
""")
            g = procs.start(f"gateway{i}", [os.path.join(b, "porch-gateway"),
                                            "-c", gconf], daemon=True)
            g.wait_log(r"porch-gateway started")
            a = procs.start(f"agent{i}", home + [
                os.path.join(b, "porch-agent"), "-c", aconf], daemon=True)
            a.wait_log(rf"gateway gw{i}: serving {HOST}", timeout=20)
            ports[label] = tls_port
            relays[label] = (lambda g=g, a=a: [("gateway", g.pid),
                                               ("agent", a.pid)])

        print(f"# porch uplink: {', '.join(f'{r} Mbit/s' for r in rates)}"
              f"; loss {args.loss}; {args.seconds:g} s per load, "
              f"{args.runs} run(s); setups {', '.join(setups)}; "
              f"{os.cpu_count()} CPUs, load {load0:.2f}", flush=True)

        conds = [(r, lo) for r in rates for lo in losses]
        res = {}            # (cond, setup) -> [run figures]
        for rate, loss in conds:
            topo.set_link(rate, loss)
            for r in range(args.runs):
                for s in setups:
                    # Let the previous load's queues drain.
                    time.sleep(1.0)
                    c0 = {(lbl, pid): cmp.cpu_s(pid)
                          for lbl, pid in relays[s]()}
                    q0 = topo.qdisc_drops()
                    f = one_load(procs, topo, tmp, fx, ca, s, ports[s],
                                 args.seconds, warm,
                                 f"{rate}-{int(loss)}-{r}-{setups.index(s)}",
                                 trace)
                    f["tbf_drops"] = topo.qdisc_drops() - q0
                    f["cpu"] = {}
                    for lbl, pid in relays[s]():
                        t0, t1 = c0.get((lbl, pid), 0.0), cmp.cpu_s(pid)
                        if t0 is not None and t1 is not None:
                            f["cpu"][lbl] = f["cpu"].get(lbl, 0.0) + t1 - t0
                    res.setdefault(((rate, loss), s), []).append(f)
                    n, k = f["new"], f["ka"]
                    print(f"{rate:4d} Mbit/s{' loss' if loss else '     '} "
                          f"{s:14s} new p50/p99 {fmt(pct(n['lat'], .5))}/"
                          f"{fmt(pct(n['lat'], .99))} ms waited "
                          f"{n['waited']}/{n['n']} | ka "
                          f"{fmt(pct(k['lat'], .5))}/"
                          f"{fmt(pct(k['lat'], .99))} ms waited "
                          f"{k['waited']}/{k['n']} | downloads "
                          f"{f['rates'][0] / 1e6:.2f}/"
                          f"{f['rates'][1] / 1e6:.2f} MB/s = "
                          f"{sum(f['rates']) * 8 / (rate * 1e4):.1f} % "
                          "of the link"
                          + (f" | errors: {'; '.join(n['errors'] + k['errors'])[:300]}"
                             if n["errors"] or k["errors"] else ""),
                          flush=True)
            if loss:
                r = run(topo.wrap(topo.gw) + ["nft", "list", "table",
                                              "netdev", "uplink_loss"],
                        check=False)
                m = [x for x in r.stdout.split("\n") if "counter" in x]
                print(f"  loss rule: {m[0].strip() if m else '?'}")

        table, targets, bad = report(conds, setups, res)
        detail = details(conds, setups, res, args.seconds)
        print()
        print(table)
        print()
        print(targets)
        print()
        print(detail)
        if bad:
            print("no figure for: " + "; ".join(bad), file=sys.stderr)
            rc = 1

        elapsed = time.monotonic() - t_start
        load1 = os.getloadavg()[0]
        print(f"\n{elapsed:.0f} s; load average {load0:.2f} at the start, "
              f"{load1:.2f} at the end")
        if args.out != "-":
            write_doc(args, fx, cmp, builds, labels, rates, warm, table,
                      targets, detail, topo, started, elapsed, load0, load1)
            print(f"wrote {args.out}")
        ok = True
    except Interrupted as e:
        print(f"interrupted ({e}); stopping everything", file=sys.stderr)
        rc = 130
    except Exception as e:
        print(f"failed: {type(e).__name__}: {e}", file=sys.stderr)
        rc = 1
    finally:
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        problems = procs.stop_all()
        problems += topo.destroy()
        for p in problems:
            print(f"stop: {p}", file=sys.stderr)
        if (ok or rc == 130) and not problems:
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"logs kept in {tmp}", file=sys.stderr)
        if problems and rc == 0:
            rc = 1
    return rc


def fmt(v):
    return "-" if v is None else f"{v:.0f}" if v >= 100 else f"{v:.1f}"


def verdict(ok):
    return "**met**" if ok else "**missed**"


def report(conds, setups, res):
    """The table, the targets and what produced no figure."""
    rows = ["| uplink | setup | new conn p50 / p99 ms | keep-alive p50 / "
            "p99 ms | waited for a download (new, keep-alive) | downloads "
            "MB/s | split | total Mbit/s (% of link) |",
            "|---|---|---|---|---|---|---|---|"]
    tg, bad = [], []
    for cond in conds:
        rate, loss = cond
        cname = f"{rate} Mbit/s" + (f", {LOSS_PER_MILLE / 10:g} % loss"
                                    if loss else "")
        agg = {}
        for s in setups:
            runs = res.get((cond, s), [])
            if not runs:
                bad.append(f"{cname} {s}")
                continue
            a = {}
            for kind in ("new", "ka"):
                lat = [x for f in runs for x in f[kind]["lat"]]
                a[kind] = (pct(lat, .5), pct(lat, .99),
                           sum(f[kind]["waited"] for f in runs),
                           sum(f[kind]["n"] for f in runs))
            d1 = sorted(f["rates"][0] for f in runs)[len(runs) // 2]
            d2 = sorted(f["rates"][1] for f in runs)[len(runs) // 2]
            a["dl"] = (d1, d2)
            a["split"] = min(d1, d2) / max(d1, d2) if max(d1, d2) else 0
            a["total"] = (d1 + d2) * 8 / 1e6
            a["link"] = a["total"] / rate
            agg[s] = a
            # Requests that all waited are a figure; no download or no
            # request issued is not.
            if not d1 or not d2 or not a["new"][3] or not a["ka"][3]:
                bad.append(f"{cname} {s}")
            rows.append(
                f"| {cname} | {s} | {fmt(a['new'][0])} / {fmt(a['new'][1])}"
                f" | {fmt(a['ka'][0])} / {fmt(a['ka'][1])} | "
                f"{a['new'][2]}/{a['new'][3]}, {a['ka'][2]}/{a['ka'][3]} | "
                f"{d1 / 1e6:.2f} / {d2 / 1e6:.2f} | "
                f"{100 * min(d1, d2) / (d1 + d2) if d1 + d2 else 0:.0f}/"
                f"{100 * max(d1, d2) / (d1 + d2) if d1 + d2 else 0:.0f} | "
                f"{a['total']:.1f} ({100 * a['link']:.1f} %) |")
        base = agg.get("port-fwd")
        tg.append(f"{cname}:")
        for s in setups:
            a = agg.get(s)
            if a is None:
                continue
            parts = []
            if s != "port-fwd" and base is not None:
                for kind, name in (("new", "new conn"), ("ka", "keep-alive")):
                    v, b = a[kind][1], base[kind][1]
                    if v is None or b is None:
                        parts.append(f"{name} p99 -: **missed**")
                        continue
                    parts.append(f"{name} p99 {fmt(v)} ms vs {fmt(b + 20)}: "
                                 + verdict(v <= b + 20))
            w = a["new"][2] + a["ka"][2]
            parts.append(f"waited {w}: " + verdict(w == 0))
            parts.append(f"split {100 * a['split']:.0f} %: "
                         + verdict(a["split"] >= 0.9))
            parts.append(f"goodput {100 * a['link']:.1f} %: "
                         + verdict(a["link"] >= 0.95))
            tg.append(f"- {s}: " + "; ".join(parts))
    return "\n".join(rows), "\n".join(tg), bad


def details(conds, setups, res, seconds):
    """One line per load: curl's own whole-run goodput, the relays' CPU,
    the small requests' errors."""
    out = []
    for cond in conds:
        rate, loss = cond
        cname = f"{rate} Mbit/s" + (f", {LOSS_PER_MILLE / 10:g} % loss"
                                    if loss else "")
        for s in setups:
            for i, f in enumerate(res.get((cond, s), [])):
                cpu = f.get("cpu", {})
                errs = sorted(set(f["new"]["errors"] + f["ka"]["errors"]))
                out.append(
                    f"- {cname}, {s}, run {i + 1}: downloads over the whole "
                    f"run (curl) {f['whole'][0] / 1e6:.2f} / "
                    f"{f['whole'][1] / 1e6:.2f} MB/s; small requests "
                    "that waited: completed after the end / never: new "
                    f"{f['new']['waited'] - f['new']['never']}/"
                    f"{f['new']['never']}, keep-alive "
                    f"{f['ka']['waited'] - f['ka']['never']}/"
                    f"{f['ka']['never']}; tbf dropped {f['tbf_drops']} "
                    "packets (queue full)"
                    + ("; CPU s over the load (" + f"{seconds:g} s): "
                       + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items())
                       if cpu else "")
                    + (f"; small-request errors: {'; '.join(errs)[:400]}"
                       if errs else ""))
    return "\n".join(out)


def write_doc(args, fx, cmp, builds, labels, rates, warm, table, targets,
              detail, topo, started, elapsed, load0, load1):
    # The results file itself does not count as a change.
    vers = [f"{lbl}: {build_version(b, 'bench/UPLINK.md')}"
            for lbl, b in zip(labels, builds)]
    vers += [cmp.version(["haproxy", "-v"]),
             cmp.version(["ssh", "-V"], stderr=True),
             cmp.version(["nginx", "-v"], stderr=True),
             cmp.version(["openssl", "version"]),
             cmp.version(["curl", "--version"]),
             cmp.version(["tc", "-V"]),
             cmp.version(["nft", "--version"])]
    cpuname, tcp_cc = cmp.machine_facts()
    doc = [
        "# porch over a slow home uplink (bench/uplink.py)", "",
        "Generated by `" + " ".join(["bench/uplink.py"] + sys.argv[1:])
        + "`" + ("" if sys.argv[1:] else " (`make bench-uplink`)")
        + "; do not edit by hand.", "",
        f"- date: {time.strftime('%Y-%m-%d %H:%M %Z', time.localtime(started))}"
        f" ({elapsed:.0f} s)",
        f"- machine: {os.cpu_count()} CPUs ({cpuname}), Linux "
        f"{platform.release()}, TCP congestion control {tcp_cc} (in "
        f"the namespaces: {topo.cc}); every "
        "process shares these cores; load average (1 min) "
        f"{load0:.2f} at the start, {load1:.2f} at the end",
        f"- uplink (home → gw veth): tbf rate "
        f"{', '.join(str(r) for r in rates)} Mbit/s, burst 64 kB, latency "
        f"100 ms; loss {LOSS_PER_MILLE / 10:g} % (nftables numgen, netdev "
        "ingress at the gw end) where marked; MTU 1500, GSO off on the "
        "uplink (gso_max_segs 1: one frame per packet); the gw → "
        "visitor link and the downlink are not limited",
        f"- load: two curl downloads of a {BIG_MIB} MiB file for "
        f"{args.seconds:g} s (curl --max-time), small requests (GET of "
        f"{SMALL} bytes) every {INTERVAL * 1000:.0f} ms on new TLS "
        "connections and, offset by half that, on one kept-alive TLS "
        f"connection, from {warm:g} s after the downloads started until "
        f"{ISSUE_MARGIN:g} s before they stop; {args.runs} run(s) per "
        "setup and uplink, setups one after the other", "",
        "Versions:", ""] + [f"- {v}" for v in vers] + [
        "", table, "",
        "Latencies: of the small requests that completed while both "
        "downloads ran (new connection: connect to last byte; "
        "keep-alive: from when the request was due to its last byte). "
        "Waited: requests (of those issued) that completed only after "
        "the first download stopped, or never (failed, or no answer "
        f"{GRACE:g} s after it). Downloads: goodput of each (bytes curl "
        f"wrote, from {warm:g} s after the start to its end), their "
        "split (% of the two together) and the total as Mbit/s and % "
        "of the tbf rate (which counts Ethernet frames: TCP/IP headers "
        "alone cost ~4.4 % at MTU 1500).", "",
        "Targets (issue 13), from this run (p99 against port-fwd's + "
        "20 ms; waited: none; split: the smaller download ≥ 90 % of "
        "the larger; goodput ≥ 95 % of the link):", "", targets, "",
        "Each load (the relays' CPU: HAProxy, sshd and its children, "
        "ssh; porch-gateway, porch-agent; utime+stime):", "", detail, "",
        "Setups: port-fwd = visitor → the gateway's address, nftables "
        "DNAT → home's nginx (a real port forward; the baseline); ssh-R "
        "= visitor → HAProxy SNI → private sshd ← `ssh -N -R` from home "
        "→ nginx; porch = visitor → porch-gateway → tunnel → porch-agent "
        "→ nginx. Namespaces: home (nginx, agent, ssh client), gw "
        "(gateway, sshd, HAProxy, DNAT), visitor (the clients). nginx "
        "serves a sparse file (zeros; TLS makes the bytes opaque).", "",
        "Caveat (port-fwd at 500 Mbit/s): nginx has one worker, and "
        "with a port forward the kernel's work for every packet (tbf, "
        "veth, the DNAT and forwarding in gw) runs in the context of the "
        "process that writes it, nginx's worker: on a 2-CPU machine "
        "that worker saturates and everything it serves waits (seconds, "
        "with no tbf drop; with 2 workers the new connections on the "
        "other worker took 5 ms while the kept-alive one still waited "
        "seconds). In the other setups nginx writes to loopback and the "
        "agent or ssh carries that cost. So at 500 Mbit/s port-fwd's "
        "latencies measure this machine, not a port forward, and the "
        "p99 targets there compare against a weak baseline; the 50 "
        "Mbit/s rows are the meaningful baseline. The tbf drop count in "
        "the details shows whether a queue overflowed.",
        ""]
    with open(args.out, "w") as f:
        f.write("\n".join(doc))


if __name__ == "__main__":
    sys.exit(main())
