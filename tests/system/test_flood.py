"""Floods from one address must not lock others out (issue 14, faults 3
and 4), at a small scale.

A flood of connections that never finish a handshake, on the tunnel
listener or on the TLS entry with ALPN porch/1, may hold only its share
of handshake slots per source address; past half the cap the deadline
drops for everyone, so a flood from many addresses turns over quickly.
Silent visitors (routed, then idle) may hold only their address's share
of max_connections, and the gateway sizes its limits from its open files
limit: with 256 descriptors, the visitor listeners stop, the tunnel
listener and admin keep working, and nothing spins or floods the log.
"""

import os
import re
import resource
import select
import socket
import threading
import time

from conftest import (ASAN, Agent, Gateway, Nginx, admin_metrics, admin_status,
                      client_hello, curl, free_port, nofile, nofile_limits,
                      wait_until)

FLOOD = "127.0.0.2"
MAX_CONNECTS = 20000        # per flood: every loop here is bounded


class Flood:
    """Keeps n connections open to port, from the given source addresses
    (round robin), each sending first (or nothing) and then staying
    silent; a connection the gateway closes is opened again (at most 10
    every 20 ms), until stop() or MAX_CONNECTS connects."""

    def __init__(self, port, n, sources=(FLOOD,), first=b""):
        self.port, self.n, self.sources, self.first = port, n, sources, first
        self.socks = []
        self.connects = 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def open_one(self):
        src = self.sources[self.connects % len(self.sources)]
        self.connects += 1
        s = socket.socket()
        s.settimeout(1.0)
        try:
            s.bind((src, 0))
            s.connect(("127.0.0.1", self.port))
            if self.first:
                s.sendall(self.first)
            s.setblocking(False)
        except OSError:
            s.close()
            return
        self.socks.append(s)

    def run(self):
        burst = self.n
        while not self.stopped.is_set():
            for _ in range(min(burst, self.n - len(self.socks))):
                if self.connects >= MAX_CONNECTS or self.stopped.is_set():
                    break
                self.open_one()
            burst = 10
            # The sleeps here pace the flood (10 new every 20 ms).
            if not self.socks:
                time.sleep(0.02)
                continue
            r, _, _ = select.select(self.socks, [], [], 0.02)
            for s in r:
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if not data:        # closed by the gateway: open another
                    self.socks.remove(s)
                    s.close()
            time.sleep(0.02)

    def start(self, settle=None):
        """Returns once settle (default n) connections were tried."""
        self.thread.start()

        def settled():
            assert self.thread.is_alive(), "the flood ended early"
            return self.connects >= (settle or self.n)
        wait_until(settled, lambda: f"{settle or self.n} connects (only "
                   f"{self.connects})", timeout=30)
        return self

    def stop(self):
        self.stopped.set()
        self.thread.join(10)
        for s in self.socks:
            s.close()


def time_to_serve(agent, gw, host, bound):
    """Start the agent; seconds until it serves host through gw."""
    t0 = time.monotonic()
    agent.start(wait_serving=False)
    agent.proc.wait_log(rf"gateway {gw.name}: serving {re.escape(host)}\b",
                        timeout=bound + 15)
    return time.monotonic() - t0


# The agents here reconnect after at most 1 s (conftest's Agent): "one
# reconnect delay" plus the handshake itself, with room for a loaded box.
BOUND = 4.0 if not ASAN else 6.0


def test_idle_tcp_flood_on_tunnel_port_does_not_keep_agent_out(
        procs, tmp_path):
    gw = Gateway(procs, str(tmp_path), admin=True)
    a = Agent(procs, str(tmp_path))
    a.serve("in.example.test", tls=f"127.0.0.1:{free_port()}")
    gw.admit(a, ["in.example.test"])
    a.use(gw)
    gw.start()
    flood = Flood(gw.tunnel_port, 300).start()
    try:
        took = time_to_serve(a, gw, "in.example.test", BOUND)
        assert took < BOUND, f"agent kept out for {took:.1f}s"
        # One address holds at most its share of handshakes in progress;
        # the listener never stops for it.
        gw.proc.wait_log(r"tunnel from 127\.0\.0\.2:\d+ refused: 16 "
                         r"handshakes from that address in progress",
                         since_mark=False)
        assert admin_status(gw)["gateway"]["tunnels_pending"] <= 16
    finally:
        flood.stop()
    # Refusals are rate limited: a few lines, not one per connection.
    assert gw.proc.count(r"handshakes from that address") <= 3
    assert "agent handshakes in progress" not in gw.proc.log()


def test_stalled_tls_hellos_on_tls_entry_count_against_the_same_limits(
        procs, tmp_path):
    gw = Gateway(procs, str(tmp_path), admin=True)
    a = Agent(procs, str(tmp_path), name="direct")
    b = Agent(procs, str(tmp_path), name="via443")
    a.serve("a.example.test", tls=f"127.0.0.1:{free_port()}")
    b.serve("b.example.test", tls=f"127.0.0.1:{free_port()}")
    gw.admit(a, ["a.example.test"])
    gw.admit(b, ["b.example.test"])
    a.use(gw)
    b.use(gw, port=gw.tls_port, server_name="gw.example.test")
    gw.start()
    hello = client_hello("gw.example.test", alpn=("porch/1",))
    flood = Flood(gw.tls_port, 300, first=hello).start()
    try:
        took = time_to_serve(a, gw, "a.example.test", BOUND)
        assert took < BOUND, f"agent (tunnel port) kept out {took:.1f}s"
        took = time_to_serve(b, gw, "b.example.test", BOUND)
        assert took < BOUND, f"agent (TLS entry) kept out {took:.1f}s"
        gw.proc.wait_log(r"tunnel from 127\.0\.0\.2:\d+ \(on the TLS "
                         r"entry\) refused: 16 handshakes from that "
                         r"address in progress", since_mark=False)
        assert admin_status(gw)["gateway"]["tunnels_pending"] <= 16
    finally:
        flood.stop()
    assert gw.proc.count(r"handshakes from that address") <= 3


def test_flood_from_many_addresses_turns_over_at_a_short_deadline(
        procs, tmp_path):
    """Per-source limits do not stop a flood from many addresses: past
    half the cap, handshakes get a quarter of timeouts.handshake (10 s:
    2.5 s), so an agent waits one short deadline, not the flood."""
    gw = Gateway(procs, str(tmp_path), admin=True)
    a = Agent(procs, str(tmp_path))
    a.serve("many.example.test", tls=f"127.0.0.1:{free_port()}")
    gw.admit(a, ["many.example.test"])
    a.use(gw)
    gw.start()
    sources = [f"127.0.1.{i}" for i in range(1, 21)]   # 20 x 16 = 320
    flood = Flood(gw.tunnel_port, 320, sources=sources).start()
    try:
        wait_until(lambda: admin_status(gw)["gateway"]["tunnels_pending"]
                   >= 200, "flood held in handshakes")
        took = time_to_serve(a, gw, "many.example.test", 2.5 + BOUND)
        assert took < 2.5 + BOUND, f"agent kept out for {took:.1f}s"
        assert re.search(r"agent handshakes in progress: their deadline "
                         r"is 2500 ms", gw.proc.log())
    finally:
        flood.stop()


def test_descriptor_exhaustion_and_silent_visitors(procs, tmp_path, ca):
    """256 open files, max_connections above what they allow: the limit
    is capped with a warning; silent visitors from one address hold only
    its share, others are served; visitors from many addresses fill the
    visitors' budget, yet the tunnel listener and admin keep working, the
    log stays small, and visitors are served again once they leave."""
    host = "app.example.test"
    gw = Gateway(procs, str(tmp_path), admin=True,
                 extra="limits:\n  max_connections: 1000")
    ng = Nginx(procs, str(tmp_path), ca, host)
    a = Agent(procs, str(tmp_path))
    a.serve(host, tls=ng.tls, http=ng.http)
    late = Agent(procs, str(tmp_path), name="late")
    late.serve("late.example.test", tls=ng.tls)
    gw.admit(a, [host])
    gw.admit(late, ["late.example.test"])
    a.use(gw)
    late.use(gw)
    gw.start(preexec_fn=nofile(256))
    a.start()

    def served():
        r = curl(f"https://{host}:{gw.tls_port}/", host, gw.tls_port,
                 ca=ca.crt, timeout=10)
        return r.returncode == 0 and r.stdout == f"hello from {host}\n"

    hello = client_hello(host)
    # Silent visitors after a valid hello, all from one address.
    one = Flood(gw.tls_port, 300, first=hello).start()
    try:
        assert served(), "a visitor from another address is refused"
        st = admin_status(gw)["gateway"]
        assert st["connections"] <= 64, st
        gw.proc.wait_log(r"visitor from 127\.0\.0\.2:\d+ refused: \d+ "
                         r"connections from that address already")
        m = re.search(r'rejected_total\{result="source-limit"\} (\d+)',
                      admin_metrics(gw))
        assert m and int(m.group(1)) > 0, "refusals not counted"
    finally:
        one.stop()
    m = re.search(r"limits\.max_connections \(1000\) is more than the "
                  r"descriptors allow: at most (\d+) visitors", gw.proc.log())
    assert m, "no warning that max_connections was capped"
    budget = int(m.group(1))
    assert budget < 256
    # Many addresses: the visitors' budget runs out, nothing else does.
    size0 = os.path.getsize(gw.proc.log_path)
    sources = [f"127.0.2.{i}" for i in range(1, 11)]
    many = Flood(gw.tls_port, 400, sources=sources, first=hello)
    many.start(settle=budget)
    try:
        gw.proc.wait_log(r"not accepting visitors until one closes")
        st = admin_status(gw)["gateway"]
        # (the first flood's visitors may still be closing)
        assert budget // 2 <= st["connections"] <= budget, st
        # The tunnel listener still accepts: a new agent gets in.
        took = time_to_serve(late, gw, "late.example.test", BOUND)
        assert took < BOUND, f"agent kept out for {took:.1f}s"
        assert a.proc.count(r"tunnel up") == 1, a.proc.log()
        # The idle time is the test: what a spinning accept would
        # write meanwhile (megabytes a second).
        time.sleep(2)
        assert admin_status(gw)["gateway"]["connections"] > 0
    finally:
        many.stop()
    grew = os.path.getsize(gw.proc.log_path) - size0
    # One summary line per visitor that got in, a few rate-limited
    # warnings; a spinning accept writes megabytes a second.
    assert grew < 200 * 1024, f"the log grew {grew} bytes"
    assert "Error from accept" not in gw.proc.log()
    wait_until(served, "visitor served again", timeout=15, interval=0.2)


def test_accept_at_the_descriptor_limit_does_not_spin(procs, tmp_path):
    """Idle connections to the admin port take every descriptor (its
    clients are outside the visitors' budget): accept fails with EMFILE
    on every listener, and none of them may retry in a loop (libevent's
    listener logged the error and retried at once, gigabytes an hour)."""
    gw = Gateway(procs, str(tmp_path), admin=True)
    gw.start(preexec_fn=nofile(256))
    size0 = os.path.getsize(gw.proc.log_path)
    socks = []
    try:
        for _ in range(300):
            s = socket.socket()
            s.settimeout(1.0)
            s.bind((FLOOD, 0))
            try:
                s.connect(("127.0.0.1", gw.admin_port))
            except OSError:
                s.close()
                continue
            socks.append(s)
        # Visitors and tunnels knock too, while there is no descriptor.
        for port in (gw.tls_port, gw.tunnel_port):
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                pass
        # The idle time is the test: what a spinning accept would
        # write meanwhile (megabytes a second).
        time.sleep(2)
        assert gw.proc.alive()
    finally:
        for s in socks:
            s.close()
    grew = os.path.getsize(gw.proc.log_path) - size0
    assert grew < 64 * 1024, f"the log grew {grew} bytes"
    assert "Error from accept" not in gw.proc.log()
    # Admin answers again once its idle clients are gone.
    def answers():
        try:
            return admin_status(gw)
        except OSError:
            return None
    wait_until(answers, "answer from admin", timeout=15, interval=0.2)


def test_daemons_raise_their_open_files_limit(procs, tmp_path):
    """Started with a soft limit of 256 under a hard one of 4096 (the
    usual 1024/524288 at smaller scale), both daemons use the hard one:
    every visitor costs the gateway a descriptor and the agent one per
    backend connection."""
    gw = Gateway(procs, str(tmp_path))
    a = Agent(procs, str(tmp_path))
    a.serve("nofile.example.test", tls=f"127.0.0.1:{free_port()}")
    gw.admit(a, ["nofile.example.test"])
    a.use(gw)
    soft_256 = lambda: resource.setrlimit(resource.RLIMIT_NOFILE,
                                          (256, 4096))
    gw.start(preexec_fn=soft_256)
    a.start(preexec_fn=soft_256)
    assert nofile_limits(gw.proc.pid) == (4096, 4096)
    assert nofile_limits(a.proc.pid) == (4096, 4096)
