#!/usr/bin/python3
"""porch side by side: direct, HAProxy SNI, HAProxy + ssh -R, porch.

One run on loopback, one nginx TLS backend (files on tmpfs) for every
setup, the same clients:
  direct      client -> nginx
  haproxy     client -> HAProxy (mode tcp, req.ssl_sni) -> nginx
  ssh-tunnel  client -> HAProxy SNI -> sshd <- ssh -R (home) -> nginx
  porch       client -> porch-gateway -> tunnel -> porch-agent -> nginx

Metrics (first cut of issue 5):
  M1  TLS download of SIZE with curl, 1 stream and 8 parallel streams
      (8 curls of SIZE/8 each; total bytes / wall time); median of RUNS,
      runs interleaved across setups; ratio against direct.
  M4  RSS (VmRSS) of the front and tunnel processes with 0 and IDLE idle
      TLS visitor connections (handshake done), per-connection cost.
      Measured once per setup, on fresh processes, before any bulk
      traffic: allocators keep freed memory, so a second fill in the
      same processes would understate the cost.

The table is printed and written to bench/RESULTS.md.  Every process
started here is stopped at the end, also on SIGINT/SIGTERM.  Nothing
asserts a time.

usage: bench/compare.py [--size-mib 512] [--idle 1000] [--runs 3] [--quick]
"""

import argparse
import getpass
import os
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
CURL_MAX_S = 120        # per curl
IDLE_MAX_S = 180        # to open all idle connections of one setup
SETUPS = ("direct", "haproxy", "ssh-tunnel", "porch")


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
    bind 127.0.0.1:{port}
    tcp-request inspect-delay 5s
    tcp-request content accept if {{ req.ssl_hello_type 1 }}
    use_backend home if {{ req.ssl_sni -i {host} }}
backend home
    server home 127.0.0.1:{backend}
"""


def start_haproxy(procs, tmp, name, backend):
    port = fx.free_port()
    cfg = os.path.join(tmp, f"{name}.cfg")
    with open(cfg, "w") as f:
        f.write(HAPROXY_CFG.format(port=port, host=HOST, backend=backend))
    p = procs.start(name, ["haproxy", "-f", cfg, "-db"])
    fx.wait_port(port)
    return p, port


SSHD_CFG = """ListenAddress 127.0.0.1:{port}
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


def start_ssh_tunnel(procs, tmp, backend):
    """A private sshd and a home ssh client with -R; returns
    (sshd proc, ssh proc, forwarded port)."""
    d = os.path.join(tmp, "ssh")
    os.makedirs(d, exist_ok=True)
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    hostkey = os.path.join(d, "host_ed25519")
    userkey = os.path.join(d, "home_ed25519")
    for k in (hostkey, userkey):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "",
                        "-f", k], check=True, capture_output=True)
    authkeys = userkey + ".pub"
    port, fwd = fx.free_port(), fx.free_port()
    cfg = os.path.join(d, "sshd_config")
    with open(cfg, "w") as f:
        f.write(SSHD_CFG.format(port=port, hostkey=hostkey, dir=d,
                                authkeys=authkeys))
    sshd = procs.start("sshd", ["/usr/sbin/sshd", "-D", "-f", cfg, "-e"])
    fx.wait_port(port)
    user = "root" if os.geteuid() == 0 else getpass.getuser()
    ssh = procs.start("ssh-home", [
        "ssh", "-N", "-F", "/dev/null", "-i", userkey,
        "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
        "-o", "ExitOnForwardFailure=yes", "-o", "LogLevel=ERROR",
        "-p", str(port), "-R", f"127.0.0.1:{fwd}:{backend}",
        f"{user}@127.0.0.1"])
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


# ------------------------------------------------------------------ main

def fmt_rate(v):
    return f"{v:.0f}" if v is not None else "-"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=512)
    ap.add_argument("--idle", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true",
                    help="size 64 MiB, idle 100, runs 1 (proves it works)")
    ap.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"),
                    help="where to write the table ('-' for nowhere)")
    args = ap.parse_args()
    if args.quick:
        args.size_mib, args.idle, args.runs = 64, 100, 1
    if args.size_mib % STREAMS or args.size_mib <= 0 or args.runs <= 0 \
            or args.idle <= 0:
        ap.error(f"--size-mib must be a positive multiple of {STREAMS}; "
                 "--runs and --idle positive")
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
    load0 = os.getloadavg()[0]
    rc = 0
    ok = False
    try:
        ca = fx.CA(os.path.join(tmp, "ca"))
        ng = fx.Nginx(procs, tmp, ca, HOST)
        chunk = os.urandom(1 << 20)
        for name, mib in (("blob", args.size_mib),
                          ("blob8", args.size_mib // STREAMS)):
            with open(os.path.join(ng.root, name), "wb") as f:
                for _ in range(mib):
                    f.write(chunk)

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

        ports = {"direct": ng.tls_port, "haproxy": hap_port,
                 "ssh-tunnel": hap2_port, "porch": gw.tls_port}

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
            return []

        print(f"# porch compare: {args.size_mib} MiB, {args.idle} idle, "
              f"median of {args.runs}, {os.cpu_count()} CPUs", flush=True)

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

        # M1, runs interleaved across setups.
        one = {n: [] for n in SETUPS}
        many = {n: [] for n in SETUPS}
        for r in range(args.runs):
            for name in SETUPS:
                one[name].append(download_1(ports[name], ca.crt, size))
                many[name].append(download_n(procs, f"{name}-{r}",
                                             ports[name], ca.crt,
                                             size // STREAMS))
                print(f"M1 run {r + 1} {name:10s} 1 stream "
                      f"{one[name][-1]:7.0f} MB/s   {STREAMS} streams "
                      f"{many[name][-1]:7.0f} MB/s", flush=True)

        med1 = {n: statistics.median(v) for n, v in one.items()}
        medn = {n: statistics.median(v) for n, v in many.items()}

        hdr = ("| setup | M1 1 stream MB/s | ×direct | M1 8 streams MB/s "
               "| ×direct | M4 RSS idle=0 KiB | M4 RSS idle=N KiB "
               "| M4 KiB/conn | M4 processes |")
        rows = [hdr, "|" + "---|" * 9]
        for n in SETUPS:
            m = mem.get(n)
            rows.append(
                f"| {n} | {med1[n]:.0f} | {med1[n] / med1['direct']:.2f} "
                f"| {medn[n]:.0f} | {medn[n] / medn['direct']:.2f} | "
                + (f"{m[0]} | {m[1]} | {m[2]:.1f} | "
                   + ", ".join(lbl for lbl, _, _ in m[3])
                   if m else "- | - | - | -") + " |")
        table = "\n".join(rows)
        detail = ["Runs (MB/s, 1 stream / 8 streams):", ""]
        for n in SETUPS:
            detail.append(f"- {n}: " + ", ".join(f"{a:.0f}" for a in one[n])
                          + " / " + ", ".join(f"{a:.0f}" for a in many[n]))
        detail += ["", "Memory per process (KiB, idle=0 -> idle=N):", ""]
        for n in SETUPS:
            if n in mem:
                detail.append(f"- {n}: " + ", ".join(
                    f"{lbl} {x} -> {y}" for lbl, x, y in mem[n][3]))
        print()
        print(table)
        targets = (
            f"porch/direct: 1 stream {med1['porch'] / med1['direct']:.2f}, "
            f"{STREAMS} streams {medn['porch'] / medn['direct']:.2f} "
            "(goal >= 0.6); porch/ssh-tunnel: 1 stream "
            f"{med1['porch'] / med1['ssh-tunnel']:.2f}, {STREAMS} streams "
            f"{medn['porch'] / medn['ssh-tunnel']:.2f} (goal >= 1.5)")
        print(targets)

        if args.out != "-":
            root = fx.ROOT
            rev = version(["git", "-C", root, "rev-parse", "--short",
                           "HEAD"])
            dirty = subprocess.run(["git", "-C", root, "status",
                                    "--porcelain", "--untracked-files=no"],
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
            cpu = "?"
            try:
                with open("/proc/cpuinfo") as f:
                    for line in f:
                        if line.startswith("model name"):
                            cpu = line.split(":", 1)[1].strip()
                            break
            except OSError:
                pass
            doc = [
                "# porch side by side (bench/compare.py)", "",
                "Generated by `" + " ".join(["bench/compare.py"]
                                            + sys.argv[1:])
                + "`; do not edit by hand.", "",
                f"- date: {time.strftime('%Y-%m-%d %H:%M %Z', time.localtime(started))}",
                f"- machine: {os.cpu_count()} CPUs ({cpu}); client, "
                "backend, fronts and tunnels all share these cores on "
                "loopback, so the ratios matter, not the absolute numbers; "
                f"load average (1 min) {load0:.2f} at the start, "
                f"{os.getloadavg()[0]:.2f} at the end (anything else "
                "running on the machine skews the figures)",
                f"- load: {args.size_mib} MiB per download ({STREAMS} "
                f"streams: {STREAMS} × {args.size_mib // STREAMS} MiB at "
                f"once), {args.idle} idle TLS connections, median of "
                f"{args.runs} run(s); M4 measured once per setup on fresh "
                "processes", "",
                "Versions:", ""] + [f"- {v}" for v in vers] + [
                "", table, "", targets, ""] + detail + [
                "", "Setups: direct = curl → nginx; haproxy = HAProxy "
                "`mode tcp` with `req.ssl_sni` routing → nginx; ssh-tunnel "
                "= HAProxy SNI → private sshd ← `ssh -R` from home → nginx; "
                "porch = porch-gateway → tunnel → porch-agent → nginx. M4 "
                "counts the front and tunnel processes listed (sshd-child = "
                "sshd's per-connection processes).", ""]
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
        problems = procs.stop_all()
        for p in problems:
            print(f"stop: {p}", file=sys.stderr)
        for name in ("blob", "blob8"):
            try:
                os.unlink(os.path.join(tmp, f"nginx-{HOST}-x", "root", name))
            except OSError:
                pass
        if ok and not problems:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"logs kept in {tmp}", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
