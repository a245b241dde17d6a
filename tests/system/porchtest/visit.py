"""What visitors do: curl through a gateway's entries, bare TLS and HTTP
visits, downloads checked byte for byte, and the admin endpoints."""

import hashlib
import json
import os
import re
import socket
import ssl
import subprocess
import urllib.request

from .paths import PORCHCTL
from .wait import wait_until


def curl(url, host, port, ca=None, timeout=20, extra=(), out=None):
    """curl through the gateway: --resolve pins host to loopback."""
    argv = ["curl", "-sS", "--max-time", str(timeout), "--resolve",
            f"{host}:{port}:127.0.0.1"]
    if ca:
        argv += ["--cacert", ca]
    if out:
        argv += ["-o", out]
    argv += list(extra) + [url]
    return subprocess.run(argv, capture_output=True, text=out is None)


def tls_visit(port, sni, timeout=5.0):
    """A TLS visitor for sni on the gateway's TLS entry.  Returns "ok" when
    the handshake completes, else the SSL error's reason (e.g.
    "TLSV1_UNRECOGNIZED_NAME")."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            with ctx.wrap_socket(s, server_hostname=sni):
                return "ok"
        except ssl.SSLError as e:
            return e.reason or str(e)


def http_status(port, host, path="/", timeout=5.0):
    """Status line code of a plain HTTP/1.1 request to the HTTP entry."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n"
                  f"Connection: close\r\n\r\n".encode())
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    m = re.match(rb"HTTP/1\.[01] (\d{3}) ", data)
    assert m, f"no HTTP status line from the gateway: {data[:200]!r}"
    return int(m.group(1))


def big_file(root, mib=20):
    """mib MiB of random bytes as root/big.bin; returns its sha256."""
    h = hashlib.sha256()
    with open(os.path.join(root, "big.bin"), "wb") as f:
        for _ in range(mib):
            chunk = os.urandom(1 << 20)
            h.update(chunk)
            f.write(chunk)
    return h.hexdigest()


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def slow_download(procs, gw, ca, host, out, rate="4M", first=1 << 20):
    """curl of big.bin through the gateway's TLS entry at a limited rate
    (20 MiB at 4 MB/s: about five seconds), started via procs; returns
    once the first bytes (1 MiB by default) have arrived."""
    p = procs.start(f"curl-{host}",
                    ["curl", "-sS", "--max-time", "60", "--limit-rate", rate,
                     "--cacert", ca.crt, "--resolve",
                     f"{host}:{gw.tls_port}:127.0.0.1", "-o", out,
                     f"https://{host}:{gw.tls_port}/big.bin"])
    def started():
        assert p.alive(), f"curl ended early:\n{p.log()}"
        return os.path.exists(out) and os.path.getsize(out) >= first
    wait_until(started, "start of the download", timeout=20)
    return p


def finish(dl, out, want):
    """The download ends well and byte-exact."""
    assert dl.p.wait(60) == 0, dl.log()
    assert sha256(out) == want


def fetch(gw, host, path="/", ca=None, http=False, timeout=20, extra=(),
          out=None):
    """curl https://HOST/PATH through gw's TLS entry (its HTTP entry
    with http=True); ca: a CA or a certificate file.  Returns the
    CompletedProcess."""
    port = gw.http_port if http else gw.tls_port
    scheme = "http" if http else "https"
    return curl(f"{scheme}://{host}:{port}{path}", host, port,
                ca=getattr(ca, "crt", ca), timeout=timeout, extra=extra,
                out=out)


def get(gw, host, path="/", **kw):
    """fetch, which must succeed; returns the body."""
    r = fetch(gw, host, path, **kw)
    assert r.returncode == 0, r.stderr
    return r.stdout


def assert_no_route(gw, host):
    """Neither entry has a route for host."""
    assert tls_visit(gw.tls_port, host) == "TLSV1_UNRECOGNIZED_NAME"
    assert http_status(gw.http_port, host) == 404


def admin_status(gw):
    """GET /status on gw's admin listener (Gateway(admin=True)), or on an
    agent's admin address."""
    with urllib.request.urlopen(f"http://{gw.admin}/status",
                                timeout=5) as r:
        return json.load(r)


def admin_metrics(gw):
    with urllib.request.urlopen(f"http://{gw.admin}/metrics",
                                timeout=5) as r:
        return r.read().decode()


def porchctl_status(addr):
    """`porchctl status ADDR --json` (a gateway's or an agent's admin
    address, "127.0.0.1:PORT", or just the port), parsed."""
    if isinstance(addr, int):
        addr = f"127.0.0.1:{addr}"
    r = subprocess.run([PORCHCTL, "status", addr, "--json"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)
