"""Visitors cannot exhaust the agent at home (issue 14, fault 5).

A backend that accepts and never reads used to cost the agent a socket
per visitor and megabytes of kernel buffers each, without bound, until
its descriptors ran out for every service.  Now each service has a cap
on its backend connections (services[].max_connections), refused with
the replayable RESET "limit"; each gateway gets a share of the agent's
streams; the agent raises RLIMIT_NOFILE at start; and a backend socket's
kernel buffers are about a stream window.
"""

import re
import socket
import subprocess
import threading
import time

import pytest

from conftest import AGENT, Agent, Gateway, wait_until

APP = "app.example.test"
OTHER = "other.example.test"


class StallServer:
    """Accepts connections and never reads from them."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.addr = f"127.0.0.1:{self.port}"
        self.conns = []
        self.stop = False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        self.sock.settimeout(0.1)
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            self.conns.append(c)

    def wait_conns(self, n, timeout=10):
        wait_until(lambda: len(self.conns) >= n, lambda: f"{n} backend "
                   f"connections (have {len(self.conns)})", timeout)

    def close(self):
        self.stop = True
        self.t.join(5)
        for c in self.conns:
            c.close()
        self.sock.close()


class HttpServer:
    """Answers every request with 200 and its tag, then closes."""

    def __init__(self, tag):
        self.tag = tag.encode()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.addr = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.stop = False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        self.sock.settimeout(0.1)
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            with c:
                c.settimeout(5)
                data = b""
                try:
                    while b"\r\n\r\n" not in data:
                        chunk = c.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n"
                              b"Connection: close\r\n\r\n%s"
                              % (len(self.tag), self.tag))
                except OSError:
                    pass

    def close(self):
        self.stop = True
        self.t.join(5)
        self.sock.close()


@pytest.fixture
def servers():
    made = []

    def make(kind, *args):
        s = kind(*args)
        made.append(s)
        return s
    yield make
    for s in made:
        s.close()


def visit(port, host, timeout=10.0):
    """One request through the HTTP entry: the response, or "" when
    the connection closed without one."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        data = b""
        while True:
            try:
                chunk = s.recv(4096)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    return data.decode(errors="replace")


def stalled(port, host):
    """A visitor whose request reaches a backend that never answers."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    return s


def test_service_cap_refuses_with_limit_and_other_services_work(
        procs, tmp_path, servers):
    """max_connections 2 and a backend that never reads: the third
    visitor is refused with the replayable code at once (no replica to
    replay to here), and another service of the agent still works."""
    tmp = str(tmp_path)
    stall = servers(StallServer)
    ok = servers(HttpServer, "other")
    gw = Gateway(procs, tmp)
    a = Agent(procs, tmp)
    gw.admit(a, ["*.example.test"])
    a.use(gw)
    a.serve(APP, http=stall.addr, more=["max_connections: 2"])
    a.serve(OTHER, http=ok.addr)
    gw.start()
    a.start()
    held = [stalled(gw.http_port, APP) for _ in range(2)]
    try:
        stall.wait_conns(2)
        t0 = time.monotonic()
        body = visit(gw.http_port, APP)
        assert time.monotonic() - t0 < 5, body
        assert "200 OK" not in body
        a.proc.wait_log(rf"service {re.escape(APP)} is at its limit of 2 "
                        r"backend connections \(max_connections\)")
        # The replayable code, with no replica left to replay to.
        gw.proc.wait_log(r"reason=reset by peer: limit \(service "
                         rf"{re.escape(APP)} is at its limit of 2")
        assert len(stall.conns) == 2
        assert visit(gw.http_port, OTHER).endswith("other")
        # A connection the backend ends frees its place.
        stall.conns[0].close()
        deadline = time.monotonic() + 10
        while True:
            held.append(stalled(gw.http_port, APP))
            try:
                stall.wait_conns(3, timeout=0.5)
                break
            except AssertionError:
                assert time.monotonic() < deadline
    finally:
        for s in held:
            s.close()


def test_refused_visitor_is_replayed_to_another_replica(procs, tmp_path,
                                                        servers):
    """The same with a second replica agent: the visitor the first one
    refuses is served by the second."""
    tmp = str(tmp_path)
    stall = servers(StallServer)
    ok = servers(HttpServer, "replica-b")
    gw = Gateway(procs, tmp)
    a = Agent(procs, tmp, name="a")
    b = Agent(procs, tmp, name="b")
    for ag in (a, b):
        gw.admit(ag, [APP])
        ag.use(gw)
    a.serve(APP, http=stall.addr, priority=10, more=["max_connections: 2"])
    b.serve(APP, http=ok.addr, priority=20)
    gw.start()
    a.start()
    b.start()
    held = [stalled(gw.http_port, APP) for _ in range(2)]
    try:
        stall.wait_conns(2)
        body = visit(gw.http_port, APP)
        assert "200 OK" in body and body.endswith("replica-b"), body
        gw.proc.wait_log(r"replaying to another replica after: reset by "
                         rf"peer: limit \(service {re.escape(APP)} is at "
                         r"its limit of 2")
        assert len(stall.conns) == 2
    finally:
        for s in held:
            s.close()


def test_one_gateway_gets_a_share_of_the_agent(procs, tmp_path, servers):
    """max_streams 4, gateway_share 50: the visitors of one gateway get
    two streams, and the other gateway's visitors are still served."""
    tmp = str(tmp_path)
    stall = servers(StallServer)
    ok = servers(HttpServer, "other")
    g1 = Gateway(procs, tmp, name="gw1")
    g2 = Gateway(procs, tmp, name="gw2")
    a = Agent(procs, tmp,
              extra="limits: {max_streams: 4, gateway_share: 50}")
    for g in (g1, g2):
        g.admit(a, ["*.example.test"])
        a.use(g)
    a.serve(APP, http=stall.addr)
    a.serve(OTHER, http=ok.addr)
    g1.start()
    g2.start()
    a.start()
    held = [stalled(g1.http_port, APP) for _ in range(2)]
    try:
        stall.wait_conns(2)
        assert "200 OK" not in visit(g1.http_port, APP)
        a.proc.wait_log(r"gateway gw1 has its share of 2 of the agent's 4 "
                        r"streams \(limits\.gateway_share\)")
        assert len(stall.conns) == 2
        assert visit(g2.http_port, OTHER).endswith("other")
        held.append(stalled(g2.http_port, APP))
        stall.wait_conns(3)
    finally:
        for s in held:
            s.close()


def test_agent_raises_nofile_and_bounds_backend_buffers(procs, tmp_path,
                                                        servers):
    """Started with a soft descriptor limit of 256, the agent raises it
    to the hard limit.  A backend that never reads holds about a stream
    window in the agent's socket, not the megabytes TCP autotuning would
    give it."""
    tmp = str(tmp_path)
    stall = servers(StallServer)
    gw = Gateway(procs, tmp)
    a = Agent(procs, tmp, extra="limits: {stream_window: 64KiB}")
    gw.admit(a, [APP])
    a.use(gw)
    a.serve(APP, http=stall.addr)
    gw.start()
    a.write_config()
    a.proc = procs.start(a.name, ["prlimit", "--nofile=256:4096", AGENT,
                                  "-c", a.conf], daemon=True)
    a.proc.wait_log(rf"gateway gw: serving {re.escape(APP)}\b")
    with open(f"/proc/{a.proc.pid}/limits") as f:
        line = [l for l in f if l.startswith("Max open files")][0]
    assert line.split()[3:5] == ["4096", "4096"], line
    s = stalled(gw.http_port, APP)
    try:
        stall.wait_conns(1)
        s.settimeout(0.2)
        chunk = b"x" * 65536
        sent = 0
        deadline = time.monotonic() + 20
        # Push until the path is full (nothing more goes for a while).
        while time.monotonic() < deadline and sent < 64 << 20:
            try:
                sent += s.send(chunk)
            except socket.timeout:
                break
        r = subprocess.run(["ss", "-tmnH", "state", "established", "dst",
                            stall.addr], capture_output=True, text=True)
        tb = [int(x) for x in re.findall(r"\btb(\d+)", r.stdout)]
        assert tb, r.stdout
        # SO_SNDBUF 64 KiB: the kernel books twice that.
        assert max(tb) <= 4 * 65536, r.stdout
    finally:
        s.close()
