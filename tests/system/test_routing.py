"""Routing on the visitor entries: SNI and Host lookups, exact names over
wildcards, several agents, refusals, malformed and stalled visitors,
ClientHellos split over segments and records, PROXY v2, and a crowd."""

import os
import re
import select
import socket
import ssl
import struct
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from conftest import (Agent, Gateway, Nginx, client_hello, connect, curl,
                      free_port, recv_some, recv_until_eof, reframe,
                      resp_body, resp_status, send_chunked)


# ---------------------------------------------------------------- helpers

def start_pair(procs, tmp, grants, services, gw_extra="", name="agent"):
    """A gateway and one agent: grants are the gateway's patterns for the
    agent, services (hostname, tls, http, proxy) what the agent serves."""
    gw = Gateway(procs, tmp, extra=gw_extra)
    ag = Agent(procs, tmp, name=name)
    gw.admit(ag, grants)
    ag.use(gw)
    for host, tls, http, proxy in services:
        ag.serve(host, tls=tls, http=http, proxy=proxy)
    gw.start()
    ag.start()
    return gw, ag


def get_over_tls(port, host, cafile, path="/"):
    """One HTTPS request on a fresh connection; returns the raw response."""
    ctx = ssl.create_default_context(cafile=cafile)
    with socket.create_connection(("127.0.0.1", port), timeout=20) as raw:
        with ctx.wrap_socket(raw, server_hostname=host) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n"
                      f"Connection: close\r\n\r\n".encode())
            buf = b""
            while True:
                try:
                    b = s.recv(65536)
                except ssl.SSLZeroReturnError:
                    break
                if not b:
                    break
                buf += b
            return buf


# ---------------------------------------------------------------- 1

def test_several_hostnames_on_one_agent(procs, tmp_path, ca):
    tmp = str(tmp_path)
    alpha = Nginx(procs, tmp, ca, "alpha.example.test", tag="alpha")
    beta = Nginx(procs, tmp, ca, "beta.example.test", tag="beta")
    gw, ag = start_pair(procs, tmp, ["*.example.test"], [
        ("alpha.example.test", alpha.tls, alpha.http, None),
        ("beta.example.test", beta.tls, beta.http, None)])

    for host, tag in (("alpha.example.test", "alpha"),
                      ("beta.example.test", "beta")):
        r = curl(f"https://{host}:{gw.tls_port}/", host, gw.tls_port,
                 ca=ca.crt)
        assert r.returncode == 0, r.stderr
        assert r.stdout == f"hello from {tag}\n"
        r = curl(f"https://{host}:{gw.tls_port}/whoami", host, gw.tls_port,
                 ca=ca.crt)
        assert r.returncode == 0, r.stderr
        assert r.stdout == f"{tag} https {host}\n"
        r = curl(f"http://{host}:{gw.http_port}/whoami", host, gw.http_port)
        assert r.returncode == 0, r.stderr
        assert r.stdout == f"{tag} http {host}\n"
    for host in ("alpha.example.test", "beta.example.test"):
        gw.proc.wait_log(rf"entry=tls peer=127\.0\.0\.1:\d+ "
                         rf"sni={re.escape(host)} agent=agent stream=\d+")
        gw.proc.wait_log(rf"entry=http peer=127\.0\.0\.1:\d+ "
                         rf"host={re.escape(host)} agent=agent stream=\d+")


# ---------------------------------------------------------------- 2

def test_two_agents_and_wildcard_vs_exact(procs, tmp_path, ca):
    tmp = str(tmp_path)
    one = Nginx(procs, tmp, ca, "one.example.test", tag="one")
    two = Nginx(procs, tmp, ca, "two.example.test", tag="two")
    wild = Nginx(procs, tmp, ca, "a.w.example.test", tag="wild")
    exact = Nginx(procs, tmp, ca, "exact.w.example.test", tag="exact")

    gw = Gateway(procs, tmp)
    a1 = Agent(procs, tmp, name="home1")
    a2 = Agent(procs, tmp, name="home2")
    gw.admit(a1, ["one.example.test", "*.w.example.test"])
    gw.admit(a2, ["two.example.test", "exact.w.example.test"])
    a1.use(gw)
    a2.use(gw)
    a1.serve("one.example.test", tls=one.tls, http=one.http)
    a1.serve("*.w.example.test", tls=wild.tls, http=wild.http)
    a2.serve("two.example.test", tls=two.tls, http=two.http)
    a2.serve("exact.w.example.test", tls=exact.tls, http=exact.http)
    gw.start()
    # The wildcard's owner comes first, so a lookup that tried the
    # wildcard before the exact name would pick it.
    a1.start()
    a2.start()

    cases = [("one.example.test", "one", "home1"),
             ("two.example.test", "two", "home2"),
             ("a.w.example.test", "wild", "home1"),
             ("exact.w.example.test", "exact", "home2")]
    for host, tag, agent in cases:
        r = curl(f"https://{host}:{gw.tls_port}/", host, gw.tls_port,
                 ca=ca.crt)
        assert r.returncode == 0, f"{host}: {r.stderr}"
        assert r.stdout == f"hello from {tag}\n", host
        gw.proc.wait_log(rf"entry=tls peer=127\.0\.0\.1:\d+ "
                         rf"sni={re.escape(host)} agent={agent} stream=")
        r = curl(f"http://{host}:{gw.http_port}/whoami", host, gw.http_port)
        assert r.returncode == 0, f"{host}: {r.stderr}"
        assert r.stdout == f"{tag} http {host}\n", host
        gw.proc.wait_log(rf"entry=http peer=127\.0\.0\.1:\d+ "
                         rf"host={re.escape(host)} agent={agent} stream=")

    # The wildcard covers one label only, and nothing else is routed.
    r = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{gw.tls_port}",
         "-servername", "b.a.w.example.test"],
        input="", capture_output=True, text=True, timeout=20)
    assert "unrecognized name" in r.stderr.lower(), r.stderr
    gw.proc.wait_log(r"sni=b\.a\.w\.example\.test result=no-route")


# ---------------------------------------------------------------- 3

def test_http_entry_routes_by_host(stack):
    gw = stack.gw
    # curl sends "Host: name:port" for a non-default port.
    r = curl(f"http://app.example.test:{gw.http_port}/whoami",
             "app.example.test", gw.http_port)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "app.example.test http app.example.test\n"

    # Host with and without a port, in any case, with a trailing dot.
    for host_hdr in ("app.example.test", "app.example.test:80",
                     f"app.example.test:{gw.http_port}", "APP.Example.Test",
                     "app.example.test."):
        with connect(gw.http_port) as s:
            s.sendall(f"GET /whoami HTTP/1.1\r\nHost: {host_hdr}\r\n"
                      f"Connection: close\r\n\r\n".encode())
            resp = recv_until_eof(s)
        assert resp_status(resp) == 200, (host_hdr, resp)
        assert resp_body(resp) == b"app.example.test http app.example.test\n"

    # Unknown host: the gateway's own 404, logged as no-route.
    with connect(gw.http_port) as s:
        port = s.getsockname()[1]
        s.sendall(b"GET / HTTP/1.1\r\nHost: nope.example.test\r\n\r\n")
        resp = recv_until_eof(s)
    assert resp_status(resp) == 404, resp
    gw.proc.wait_log(rf"entry=http peer=127\.0\.0\.1:{port} "
                     rf"host=nope\.example\.test result=no-route")
    r = curl(f"http://other.example.test:{gw.http_port}/",
             "other.example.test", gw.http_port,
             extra=["-o", "/dev/null", "-w", "%{http_code}"])
    assert r.returncode == 0, r.stderr
    assert r.stdout == "404"
    gw.proc.wait_log(r"entry=http peer=127\.0\.0\.1:\d+ "
                     r"host=other\.example\.test result=no-route")


# ---------------------------------------------------------------- 4

def test_unknown_and_missing_sni_get_unrecognized_name(stack):
    gw = stack.gw
    r = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{gw.tls_port}",
         "-servername", "nope.example.test"],
        input="", capture_output=True, text=True, timeout=20)
    assert "unrecognized name" in r.stderr.lower(), r.stdout + r.stderr
    gw.proc.wait_log(r"entry=tls peer=127\.0\.0\.1:\d+ "
                     r"sni=nope\.example\.test result=no-route")

    r = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{gw.tls_port}",
         "-noservername"],
        input="", capture_output=True, text=True, timeout=20)
    assert "unrecognized name" in r.stderr.lower(), r.stdout + r.stderr
    gw.proc.wait_log(r"entry=tls peer=127\.0\.0\.1:\d+ sni=- result=no-sni")

    # The same through a raw socket: exactly one fatal alert, then close.
    with connect(gw.tls_port) as s:
        s.sendall(client_hello("nope.example.test"))
        reply = recv_until_eof(s)
    assert reply == bytes([0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 112]), \
        reply.hex()

    # A known name in another case and with a trailing dot is routed.
    with connect(gw.tls_port) as s:
        port = s.getsockname()[1]
        s.sendall(client_hello("APP.Example.TEST."))
        reply = recv_some(s, 1)
    assert reply[:1] == b"\x16", reply.hex()
    gw.proc.wait_log(rf"entry=tls peer=127\.0\.0\.1:{port} "
                     rf"sni=app\.example\.test agent=agent stream=")


# ---------------------------------------------------------------- 5

BIG_ALPN = [f"porch-test-{i:02d}-" + "x" * 220 for i in range(8)] + \
    ["http/1.1"]


def _send_hello_and_check(gw, data, chunk, pause):
    with connect(gw.tls_port, nodelay=True) as s:
        port = s.getsockname()[1]
        gw.proc.set_mark()
        send_chunked(s, data, chunk, pause)
        reply = recv_some(s, 1, timeout=10)
    assert reply[:1] == b"\x16", f"no ServerHello: {reply[:16].hex()}"
    m = gw.proc.wait_log(rf"conn=\w+ entry=tls peer=127\.0\.0\.1:{port} "
                         rf"sni=app\.example\.test agent=agent stream=\d+ "
                         rf"in=(\d+) ")
    # Every byte we sent went down the tunnel, no more, no less.
    assert int(m.group(1)) == len(data), (m.group(0), len(data))


def test_large_hello_in_segments_and_records(stack):
    gw = stack.gw
    hello = client_hello("app.example.test", alpn=BIG_ALPN)
    assert len(hello) > 1500, len(hello)

    # One record, many TCP segments.
    _send_hello_and_check(gw, hello, 100, 0.01)

    # Three records, in odd-sized segments that cut record headers.
    framed = reframe(hello, 3)
    assert framed.count(b"\x16" + hello[1:3]) >= 3
    assert len(framed) == len(hello) + 10
    _send_hello_and_check(gw, framed, 77, 0.01)

    # Three records in a single segment.
    _send_hello_and_check(gw, framed, len(framed), 0)


# ---------------------------------------------------------------- 6

def test_stalled_visitor_times_out_others_unaffected(procs, tmp_path, ca):
    tmp = str(tmp_path)
    ng = Nginx(procs, tmp, ca, "app.example.test")
    gw, ag = start_pair(procs, tmp, ["*.example.test"],
                        [("app.example.test", ng.tls, ng.http, None)],
                        gw_extra="timeouts:\n  hello: 1s")
    hello = client_hello("app.example.test")

    t0 = time.monotonic()
    stalled = connect(gw.tls_port)
    sport = stalled.getsockname()[1]
    stalled.sendall(hello[:len(hello) // 2])

    # While it stalls, other visitors get through.
    for _ in range(3):
        r = curl(f"https://app.example.test:{gw.tls_port}/",
                 "app.example.test", gw.tls_port, ca=ca.crt)
        assert r.returncode == 0, r.stderr
        assert r.stdout == "hello from app.example.test\n"
        r = curl(f"http://app.example.test:{gw.http_port}/whoami",
                 "app.example.test", gw.http_port)
        assert r.returncode == 0, r.stderr
        assert r.stdout == "app.example.test http app.example.test\n"
    # ...and the stalled one was still waiting meanwhile.
    rd, _, _ = select.select([stalled], [], [], 0)
    assert not rd, "the stalled visitor was closed before its deadline"

    got = recv_until_eof(stalled, timeout=5)
    elapsed = time.monotonic() - t0
    stalled.close()
    assert got == b"", got
    assert 0.8 <= elapsed <= 3.0, elapsed
    gw.proc.wait_log(rf"entry=tls peer=127\.0\.0\.1:{sport} sni=- "
                     rf"result=hello-timeout")

    # The deadline is absolute: a trickle of bytes does not extend it.
    t0 = time.monotonic()
    s = connect(gw.tls_port)
    tport = s.getsockname()[1]
    closed = False
    for i in range(len(hello) // 2):
        try:
            s.sendall(hello[i:i + 1])
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        rd, _, _ = select.select([s], [], [], 0.1)
        if rd:
            closed = True
            break
        if time.monotonic() - t0 > 4:
            break
    elapsed = time.monotonic() - t0
    s.close()
    assert closed, "a trickling visitor was never closed"
    assert elapsed <= 3.0, elapsed
    gw.proc.wait_log(rf"peer=127\.0\.0\.1:{tport} sni=- "
                     rf"result=hello-timeout")

    # On the HTTP entry a stalled head gets 408.
    t0 = time.monotonic()
    with connect(gw.http_port) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: app.exa")
        resp = recv_until_eof(s, timeout=5)
    assert 0.8 <= time.monotonic() - t0 <= 3.0
    assert resp_status(resp) == 408, resp


# ---------------------------------------------------------------- 7

def test_garbage_on_both_entries(stack):
    gw = stack.gw
    alert_decode_error = bytes([0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 50])

    tls_garbage = [
        bytes([0x80]) + os.urandom(300),     # not a handshake record
        b"GET / HTTP/1.1\r\nHost: app.example.test\r\n\r\n",
        b"\x16\x03\x01\x00\x00",               # empty record
        b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00",  # not a ClientHello
    ]
    for data in tls_garbage:
        with connect(gw.tls_port) as s:
            port = s.getsockname()[1]
            s.sendall(data)
            reply = recv_until_eof(s)
        assert reply[:1] == b"\x15", (data[:16], reply.hex())
        assert reply == alert_decode_error, (data[:16], reply.hex())
        gw.proc.wait_log(rf"entry=tls peer=127\.0\.0\.1:{port} sni=- "
                         rf"result=malformed-hello")

    for data in (bytes([0x00, 0xff]) + os.urandom(200),
                 b"\x16\x03\x01\x02\x00\x01" + os.urandom(100),
                 b"GET / HTTP/1.1\r\n\r\n"):       # no Host
        with connect(gw.http_port) as s:
            port = s.getsockname()[1]
            s.sendall(data)
            resp = recv_until_eof(s)
        assert resp_status(resp) == 400, (data[:16], resp)
        gw.proc.wait_log(rf"entry=http peer=127\.0\.0\.1:{port} host=- "
                         rf"result=malformed-request")

    # A head over http_head_bytes (8192 by default): 431.
    big = (b"GET / HTTP/1.1\r\nHost: app.example.test\r\nX-Big: " +
           b"a" * 10000 + b"\r\n\r\n")
    with connect(gw.http_port) as s:
        port = s.getsockname()[1]
        s.sendall(big)
        resp = recv_until_eof(s)
    assert resp_status(resp) == 431, resp
    gw.proc.wait_log(rf"entry=http peer=127\.0\.0\.1:{port} "
                     rf"host=- result=head-too-big")

    # Still alive and still routing on both entries.
    assert gw.proc.alive()
    r = curl(f"https://app.example.test:{gw.tls_port}/", "app.example.test",
             gw.tls_port, ca=stack.ca.crt)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hello from app.example.test\n"
    r = curl(f"http://app.example.test:{gw.http_port}/whoami",
             "app.example.test", gw.http_port)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "app.example.test http app.example.test\n"


# ---------------------------------------------------------------- 8

def test_backend_refusing(procs, tmp_path, ca):
    tmp = str(tmp_path)
    ng = Nginx(procs, tmp, ca, "app.example.test")
    dead = f"127.0.0.1:{free_port()}"
    gw, ag = start_pair(procs, tmp, ["*.example.test"], [
        ("app.example.test", ng.tls, ng.http, None),
        ("down.example.test", dead, None, None)])

    t0 = time.monotonic()
    r = curl(f"https://down.example.test:{gw.tls_port}/",
             "down.example.test", gw.tls_port, ca=ca.crt, timeout=10)
    elapsed = time.monotonic() - t0
    assert r.returncode != 0, r.stdout
    assert r.returncode != 28, "curl timed out: the visitor was not closed"
    assert elapsed < 2.0, elapsed

    # Closed at once, and not by a timeout, on a raw socket too.
    t0 = time.monotonic()
    with connect(gw.tls_port) as s:
        s.sendall(client_hello("down.example.test"))
        got = recv_until_eof(s, timeout=5)
    assert got == b"", got.hex()
    assert time.monotonic() - t0 < 2.0

    ag.proc.wait_log(rf"backend {re.escape(dead)}: Connection refused")
    gw.proc.wait_log(r"sni=down\.example\.test agent=agent stream=\d+ .*"
                     r"reason=reset by peer: refused")

    # The tunnel stayed up and the other service still works.
    for _ in range(2):
        r = curl(f"https://app.example.test:{gw.tls_port}/",
                 "app.example.test", gw.tls_port, ca=ca.crt)
        assert r.returncode == 0, r.stderr
        assert r.stdout == "hello from app.example.test\n"
    assert ag.proc.count(r"tunnel up") == 1, ag.proc.log()
    assert ag.proc.count(r"retrying in") == 0, ag.proc.log()
    assert not re.search(r"tunnel from .* closed", gw.proc.log())


# ---------------------------------------------------------------- 9

class ProxyV2Server:
    """One-shot TCP backend that expects a PROXY v2 header, records it
    and the request head after it, answers 200 and closes."""

    SIG = b"\r\n\r\n\x00\r\nQUIT\n"

    def __init__(self):
        self.srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(4)
        self.srv.settimeout(15)
        self.port = self.srv.getsockname()[1]
        self.result = {}
        self.done = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    @staticmethod
    def _exact(c, n):
        buf = b""
        while len(buf) < n:
            b = c.recv(n - len(buf))
            if not b:
                raise EOFError(f"EOF after {len(buf)} of {n} bytes")
            buf += b
        return buf

    def _run(self):
        try:
            c, _ = self.srv.accept()
            with c:
                c.settimeout(10)
                hdr = self._exact(c, 16)
                self.result["sig"] = hdr[:12]
                self.result["ver_cmd"] = hdr[12]
                self.result["fam"] = hdr[13]
                n = struct.unpack("!H", hdr[14:16])[0]
                addrs = self._exact(c, n)
                if hdr[13] == 0x11 and n >= 12:
                    self.result["src"] = socket.inet_ntoa(addrs[0:4])
                    self.result["dst"] = socket.inet_ntoa(addrs[4:8])
                    self.result["sport"], self.result["dport"] = \
                        struct.unpack("!HH", addrs[8:12])
                req = b""
                while b"\r\n\r\n" not in req:
                    b = c.recv(4096)
                    if not b:
                        break
                    req += b
                self.result["request"] = req
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n"
                          b"Connection: close\r\n\r\nproxy-ok\n")
        except Exception as e:  # reported by the test
            self.result["error"] = repr(e)
        finally:
            self.done.set()

    def close(self):
        self.srv.close()
        self.t.join(5)


def test_proxy_protocol_v2(procs, tmp_path):
    backend = ProxyV2Server()
    try:
        gw, ag = start_pair(procs, str(tmp_path), ["*.example.test"], [
            ("pp.example.test", None, f"127.0.0.1:{backend.port}", "v2")])
        req = (b"GET /pp HTTP/1.1\r\nHost: pp.example.test\r\n"
               b"User-Agent: porch-test\r\nConnection: close\r\n\r\n")
        with connect(gw.http_port) as s:
            vport = s.getsockname()[1]
            s.sendall(req)
            resp = recv_until_eof(s, timeout=10)
        assert backend.done.wait(10), "the backend saw no connection"
        res = backend.result
        assert "error" not in res, res
        assert resp_status(resp) == 200, resp
        assert resp_body(resp) == b"proxy-ok\n"
        assert res["sig"] == ProxyV2Server.SIG
        assert res["ver_cmd"] == 0x21          # v2, PROXY
        assert res["fam"] == 0x11              # TCP over IPv4
        assert res["src"] == "127.0.0.1"
        assert res["sport"] == vport, (res, vport)
        assert res["dst"] == "127.0.0.1"
        assert res["dport"] == gw.http_port, (res, gw.http_port)
        # The head follows the header unchanged.
        assert res["request"] == req, res["request"]
    finally:
        backend.close()


# ---------------------------------------------------------------- 10

def test_200_concurrent_visitors(stack):
    gw = stack.gw
    n = 200
    barrier = threading.Barrier(n, timeout=30)
    gw.proc.set_mark()

    def one(i):
        barrier.wait()
        return get_over_tls(gw.tls_port, "app.example.test", stack.ca.crt,
                            path=f"/?visitor={i}")

    with ThreadPoolExecutor(max_workers=n) as ex:
        results = list(ex.map(one, range(n)))
    bad = [r[:200] for r in results
           if resp_status(r) != 200 or
           resp_body(r) != b"hello from app.example.test\n"]
    assert not bad, f"{len(bad)} of {n} failed, e.g. {bad[:3]}"
    gw.proc.wait_count(r"entry=tls peer=127\.0\.0\.1:\d+ "
               r"sni=app\.example\.test agent=agent stream=\d+ ", n)
    assert gw.proc.alive() and stack.agent.proc.alive()
