"""Connection limits, reached and left again (as memcached's
t/conn-limits.t does): at limits.max_connections the gateway stops
accepting visitors, the next one waits in the listen backlog (its TCP
connect succeeds, nothing answers its ClientHello), and once a visitor
closes accepting resumes and the waiting visitor reaches its backend.
With a small open files limit the same happens at the visitors' budget
(max_connections capped, with a warning), and with every descriptor of
the process taken too.

Floods from one or many addresses, and accept that must not spin at
the descriptor limit, are in test_flood.py.
"""

import re
import select
import socket
import ssl
import time

from conftest import (Agent, Gateway, Nginx, admin_status, fetch, nofile,
                      wait_until)

HOST = "app.example.test"


class Visitor:
    """A TLS visitor for HOST, driven step by step: the constructor
    connects (from source) and sends its ClientHello; answered() tells
    whether anything came back; finish() completes the handshake and a
    GET, returning the body."""

    def __init__(self, port, ca, source="127.0.0.1"):
        self.raw = socket.socket()
        self.raw.settimeout(5)
        self.raw.bind((source, 0))
        self.raw.connect(("127.0.0.1", port))   # the backlog completes it
        ctx = ssl.create_default_context(cafile=ca.crt)
        self.s = ctx.wrap_socket(self.raw, server_hostname=HOST,
                                 do_handshake_on_connect=False)
        self.s.setblocking(False)
        try:
            self.s.do_handshake()
        except ssl.SSLWantReadError:
            pass

    def answered(self, timeout):
        return bool(select.select([self.s], [], [], timeout)[0])

    def finish(self, timeout=15.0):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.s.do_handshake()
                break
            except ssl.SSLWantReadError:
                left = deadline - time.monotonic()
                assert left > 0, "the visitor's handshake did not finish"
                select.select([self.s], [], [], left)
        self.s.settimeout(timeout)
        self.s.sendall(f"GET / HTTP/1.1\r\nHost: {HOST}\r\n"
                       f"Connection: close\r\n\r\n".encode())
        data = b""
        while True:
            b = self.s.recv(65536)
            if not b:
                break
            data += b
        return data.split(b"\r\n\r\n", 1)[-1].decode()

    def close(self):
        self.s.close()


def session(gw, ca, source="127.0.0.1"):
    """A visitor whose TLS session with the backend is up, then idle: it
    holds one of the gateway's visitor slots for as long as it stays."""
    v = Visitor(gw.tls_port, ca, source)
    v.s.setblocking(True)
    v.s.settimeout(10)
    v.s.do_handshake()
    return v


def stack(procs, tmp_path, ca, gw_extra="", preexec_fn=None):
    gw = Gateway(procs, str(tmp_path), admin=True, extra=gw_extra)
    ng = Nginx(procs, str(tmp_path), ca, HOST)
    ag = Agent(procs, str(tmp_path))
    gw.admit(ag, [HOST])
    ag.use(gw)
    ag.serve(HOST, tls=ng.tls)
    gw.start(preexec_fn=preexec_fn)
    ag.start()
    return gw


def assert_held(v):
    """The wait is the test: a routed visitor gets the backend's
    ServerHello within milliseconds; one the gateway did not accept gets
    nothing."""
    assert not v.answered(1.0), "a visitor got past the limit"


def test_max_connections_holds_the_next_visitor_until_one_closes(
        procs, tmp_path, ca):
    gw = stack(procs, tmp_path, ca, gw_extra="limits:\n"
               "  max_connections: 4\n  connections_per_source: 4")
    held = [session(gw, ca) for _ in range(4)]
    gw.proc.wait_log(r"4 visitors: not accepting visitors until one "
                     r"closes \(limits\.max_connections 4")
    assert admin_status(gw)["gateway"]["connections"] == 4
    waiting = Visitor(gw.tls_port, ca)
    assert_held(waiting)
    # The tunnel side is not affected: admin answers, the agent stays.
    assert gw.proc.count(r"tunnel lost") == 0
    held.pop().close()
    # Accepting resumes: the waiting visitor reaches the backend.
    assert waiting.finish() == f"hello from {HOST}\n"
    waiting.close()
    for v in held:
        v.close()
    wait_until(lambda: admin_status(gw)["gateway"]["connections"] == 0,
               "visitors' slots freed")
    r = fetch(gw, HOST, ca=ca, timeout=10)
    assert r.returncode == 0 and r.stdout == f"hello from {HOST}\n", r.stderr
    assert "Error from accept" not in gw.proc.log()


def test_open_files_limit_caps_visitors_and_accepting_resumes(
        procs, tmp_path, ca):
    """RLIMIT_NOFILE 96 (soft and hard): max_connections (default 20000)
    is capped to the visitors' budget; the budget fills, then every
    descriptor of the process goes (idle admin clients take the rest);
    a visitor that closes still lets the waiting one in, and once the
    admin clients leave everything is served again."""
    gw = stack(procs, tmp_path, ca, preexec_fn=nofile(96))
    m = gw.proc.wait_log(r"limits\.max_connections \(20000\) is more than "
                         r"the descriptors allow: at most (\d+) visitors "
                         r"\(open files limit 96,", since_mark=False)
    budget = int(m.group(1))
    assert 8 <= budget < 96, budget
    # connections_per_source is a quarter of the budget: eight sources.
    sources = [f"127.0.3.{i}" for i in range(1, 9)]
    held = [session(gw, ca, sources[i % 8]) for i in range(budget)]
    gw.proc.wait_log(rf"{budget} visitors: not accepting visitors until "
                     r"one closes")
    waiting = Visitor(gw.tls_port, ca, sources[0])
    assert_held(waiting)
    # Now the rest of the descriptors: admin clients until admin cannot
    # accept any more.
    admins = []
    gw.proc.set_mark()
    for _ in range(96):
        s = socket.create_connection(("127.0.0.1", gw.admin_port),
                                     timeout=5)
        admins.append(s)
        if re.search(r"admin: accept: Too many open files",
                     gw.proc.log_since_mark()):
            break
    gw.proc.wait_log(r"admin: accept: Too many open files")
    assert_held(waiting)
    try:
        # One visitor leaves: its descriptor and slot go to the waiting
        # one, at the process's limit as it is.
        held.pop().close()
        assert waiting.finish() == f"hello from {HOST}\n"
        waiting.close()
    finally:
        for s in admins:
            s.close()
    for v in held:
        v.close()
    wait_until(lambda: fetch(gw, HOST, ca=ca, timeout=10).returncode == 0,
               "visitor served once the admin clients left", interval=0.2)
    assert admin_status(gw)["gateway"]["connections"] <= 1
    assert "Error from accept" not in gw.proc.log()
    assert gw.proc.alive()
