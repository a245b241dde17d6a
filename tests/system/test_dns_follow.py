"""DNS that follows the cluster: the agent keeps each published name's
A/AAAA records at the public addresses of the gateways that can serve
it now, by RFC 2136 updates to a real BIND 9 (issue 16).

Two peered gateways with public addresses from the documentation ranges
(only DNS sees them), an agent on both, and dig reading what the
authoritative server holds.
"""
import os
import signal
import socket
import threading
import time

import pytest

from conftest import Agent, Gateway, free_port
from test_ddns import Dns

NAME = "app.example.test"
GRACE_S = 2


def gateways(procs, tmp):
    g1 = Gateway(procs, tmp, name="g1",
                 extra='public_addresses: [192.0.2.1, "2001:db8::1"]')
    g2 = Gateway(procs, tmp, name="g2",
                 extra="public_addresses: [192.0.2.2]")
    g1.peer(g2)
    g2.peer(g1)
    return g1, g2


def dns_agent(procs, tmp, dns, gws, name="agent", key=None, port=None,
              server=None):
    a = Agent(procs, tmp, name=name, extra=f"""dns:
  provider: rfc2136
  server: "{server or f'127.0.0.1:{dns.port}'}"
  zone: example.test
  tsig_key: {key or dns.key}
  ttl: 30s
  grace: {GRACE_S}s""")
    for g in gws:
        a.use(g, port=(port or {}).get(g.name))
        g.admit(a, [NAME])
    a.serve(NAME, tls="127.0.0.1:9", more=("dns: true",))
    return a


def wait_records(dns, want, rtype="A", timeout=15.0):
    """Wait until dig shows exactly want; returns the seconds it took."""
    t0 = time.monotonic()
    while True:
        got = dns.get(NAME, rtype)
        if got == sorted(want):
            return time.monotonic() - t0
        assert time.monotonic() - t0 < timeout, \
            f"{NAME} {rtype} is {got}, want {sorted(want)}"
        time.sleep(0.1)


@pytest.fixture
def bind(procs, tmp_path):
    return Dns(procs, str(tmp_path), "bind")


def test_records_follow_the_gateways(procs, tmp_path, bind):
    tmp = str(tmp_path)
    g1, g2 = gateways(procs, tmp)
    a = dns_agent(procs, tmp, bind, [g1, g2])
    g1.start()
    g2.start()
    a.start()
    wait_records(bind, ["192.0.2.1", "192.0.2.2"])
    wait_records(bind, ["2001:db8::1"], "AAAA")
    a.proc.wait_log(r"dns: app\.example\.test A is now", since_mark=False)

    # A gateway killed: gone once the cluster has lost it for the grace.
    g2.proc.send_signal(signal.SIGKILL)
    g2.proc.p.wait(timeout=5)
    took = wait_records(bind, ["192.0.2.1"], timeout=GRACE_S + 5 + 5)
    assert took >= GRACE_S - 0.5, took       # not before the grace
    # ... and back when it returns.
    g2.start()
    wait_records(bind, ["192.0.2.1", "192.0.2.2"])

    # Made unreachable (stopped: nothing answers, nothing closes).
    g1.proc.send_signal(signal.SIGSTOP)
    try:
        wait_records(bind, ["192.0.2.2"], timeout=4 + GRACE_S + 10)
        wait_records(bind, [], "AAAA", timeout=5)
    finally:
        g1.proc.send_signal(signal.SIGCONT)
    wait_records(bind, ["192.0.2.1", "192.0.2.2"], timeout=20)
    wait_records(bind, ["2001:db8::1"], "AAAA")


class Relay:
    """A TCP relay the test can cut: the agent's way to one gateway."""

    def __init__(self, port):
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.target = port
        self.socks = []
        self.open = True
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while self.open:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                c.close()
                continue
            self.socks += [c, u]
            for x, y in ((c, u), (u, c)):
                threading.Thread(target=self.pipe, args=(x, y),
                                 daemon=True).start()

    @staticmethod
    def pipe(x, y):
        try:
            while True:
                b = x.recv(65536)
                if not b:
                    break
                y.sendall(b)
        except OSError:
            pass
        for s in (x, y):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        self.open = False
        self.lsock.close()
        for s in self.socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass


def test_own_tunnel_down_but_gateway_alive_keeps_its_record(procs, tmp_path,
                                                           bind):
    """Only our tunnel to g1 breaks; g1 still peers with g2, which
    forwards to us: g1 stays in DNS."""
    tmp = str(tmp_path)
    g1, g2 = gateways(procs, tmp)
    relay = Relay(g1.tunnel_port)
    a = dns_agent(procs, tmp, bind, [g1, g2], port={"g1": relay.port})
    g1.start()
    g2.start()
    a.start()
    wait_records(bind, ["192.0.2.1", "192.0.2.2"])
    a.proc.set_mark()
    relay.cut()
    a.proc.wait_log(r"gateway g1 .*tunnel lost", timeout=15)
    # Watched for twice the grace and more: g1 never leaves.
    end = time.monotonic() + 2 * GRACE_S + 3
    while time.monotonic() < end:
        assert bind.get(NAME) == ["192.0.2.1", "192.0.2.2"]
        time.sleep(0.2)


@pytest.mark.parametrize("fault", ["secret", "silent"])
def test_dns_failures_are_named_and_change_nothing(procs, tmp_path, bind,
                                                   fault):
    tmp = str(tmp_path)
    g1, g2 = gateways(procs, tmp)
    if fault == "secret":
        from test_ddns import key_file
        a = dns_agent(procs, tmp, bind, [g1, g2],
                      key=key_file(tmp, secret="A" * 43 + "="))
        want = (r"dns: app\.example\.test A: NOTAUTH/BADSIG: the server's "
                r"secret for key porch-key\. differs from ours; give both "
                r"the same key file; nothing changed, trying again in \d+ s")
    else:
        silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        silent.bind(("127.0.0.1", 0))
        a = dns_agent(procs, tmp, bind, [g1, g2],
                      server=f"127.0.0.1:{silent.getsockname()[1]}")
        want = (r"dns: app\.example\.test A: cannot read the records: "
                r".*; nothing changed, trying again in \d+ s")
    g1.start()
    g2.start()
    a.start()
    a.proc.wait_log(want, timeout=30, since_mark=False)
    # The visitors do not notice: the name is served at both gateways.
    from conftest import tls_visit
    assert tls_visit(g1.tls_port, NAME) != "TLSV1_UNRECOGNIZED_NAME"
    assert bind.get(NAME) == []
    if fault == "silent":
        silent.close()
