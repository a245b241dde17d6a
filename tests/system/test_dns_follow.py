"""DNS that follows the cluster: the agent keeps each published name's
A/AAAA records at the public addresses of the gateways that can serve
it now, by RFC 2136 updates to a real BIND 9 (issue 16).

Two peered gateways with public addresses from the documentation ranges
(only DNS sees them), an agent on both, and dig reading what the
authoritative server holds.
"""
import json
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import (PORCHCTL, Agent, Gateway, Nginx, admin_metrics,
                      admin_status, free_port, tls_visit)
from porchtest.wait import wait_until
from test_ddns import SECRET, Dns, key_file

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
              server=None, backend="127.0.0.1:9"):
    admin_port = free_port()
    a = Agent(procs, tmp, name=name, extra=f"""admin: "127.0.0.1:{admin_port}"
dns:
  provider: rfc2136
  server: "{server or f'127.0.0.1:{dns.port}'}"
  zone: example.test
  tsig_key: {key or dns.key}
  ttl: 30s
  grace: {GRACE_S}s""")
    for g in gws:
        a.use(g, port=(port or {}).get(g.name))
        g.admit(a, [NAME])
    a.serve(NAME, tls=backend, more=("dns: true",))
    a.admin = f"127.0.0.1:{admin_port}"
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


@pytest.mark.parametrize("server", ["bind", "knot"])
def test_records_follow_the_gateways(procs, tmp_path, server):
    bind = Dns(procs, str(tmp_path), server)
    tmp = str(tmp_path)
    g1, g2 = gateways(procs, tmp)
    a = dns_agent(procs, tmp, bind, [g1, g2])
    g1.start()
    g2.start()
    a.start()
    wait_records(bind, ["192.0.2.1", "192.0.2.2"])
    wait_records(bind, ["2001:db8::1"], "AAAA")
    a.proc.wait_log(r"dns: app\.example\.test A is now", since_mark=False)
    # What was published, and from which gateways, in /status,
    # porchctl status and /metrics.
    st = admin_status(a)["dns"]
    rec = {(r["hostname"], r["type"]): r for r in st["records"]}
    assert rec[(NAME, "A")]["published"] == ["192.0.2.1", "192.0.2.2"] or \
        rec[(NAME, "A")]["published"] == ["192.0.2.2", "192.0.2.1"]
    assert rec[(NAME, "A")]["ok"] is True
    assert {g["name"]: g["state"] for g in st["gateways"]} == \
        {"g1.example.test": "live", "g2.example.test": "live"}
    out = subprocess.run([PORCHCTL, "status", a.admin], capture_output=True,
                         text=True, timeout=10).stdout
    assert "dns (zone example.test at 127.0.0.1:" in out, out
    assert re.search(r"app\.example\.test +AAAA 2001:db8::1 +ok at ", out), out
    assert f'porch_agent_dns_ok{{hostname="{NAME}",type="A"}} 1' in \
        admin_metrics(a)

    # A gateway killed: gone once the cluster has lost it for the grace.
    g2.proc.send_signal(signal.SIGKILL)
    g2.proc.p.wait(timeout=5)
    took = wait_records(bind, ["192.0.2.1"], timeout=GRACE_S + 5 + 5)
    assert took >= GRACE_S - 0.5, took       # not before the grace
    st = admin_status(a)["dns"]
    assert {g["name"]: g["state"] for g in st["gateways"]} == \
        {"g1.example.test": "live", "g2.example.test": "dead"}
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


@pytest.mark.parametrize("fault", ["secret", "silent", "policy"])
def test_dns_failures_are_named_and_change_nothing(procs, tmp_path, ca,
                                                   fault):
    tmp = str(tmp_path)
    # policy: the key may change TXT records only.
    bind = Dns(procs, tmp, "bind", txt_only=fault == "policy")
    g1, g2 = gateways(procs, tmp)
    web = Nginx(procs, tmp, ca, NAME)
    if fault == "policy":
        a = dns_agent(procs, tmp, bind, [g1, g2], backend=web.tls)
        want = (r"dns: app\.example\.test A: REFUSED: the server does not "
                r"let key porch-key\. make this change in zone "
                r"example\.test; grant it in the zone's update-policy "
                r"\(e\.g\. grant porch-key\. zonesub ANY;\); nothing "
                r"changed, trying again in \d+ s")
    elif fault == "secret":
        a = dns_agent(procs, tmp, bind, [g1, g2], backend=web.tls,
                      key=key_file(tmp, secret="A" * 43 + "="))
        want = (r"dns: app\.example\.test A: NOTAUTH/BADSIG: the server's "
                r"secret for key porch-key\. differs from ours; give both "
                r"the same key file; nothing changed, trying again in \d+ s")
    else:
        silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        silent.bind(("127.0.0.1", 0))
        a = dns_agent(procs, tmp, bind, [g1, g2], backend=web.tls,
                      server=f"127.0.0.1:{silent.getsockname()[1]}")
        want = (r"dns: app\.example\.test A: cannot read the records: "
                r".*; nothing changed, trying again in \d+ s")
    g1.start()
    g2.start()
    a.start()
    a.proc.wait_log(want, timeout=30, since_mark=False)
    # The visitors do not notice: the name is served at both gateways.
    assert tls_visit(g1.tls_port, NAME) == "ok"
    assert tls_visit(g2.tls_port, NAME) == "ok"
    assert bind.get(NAME) == []
    # The key's secret is never in the log, whatever went wrong.
    assert "A" * 43 not in a.proc.log() and SECRET not in a.proc.log()
    if fault == "silent":
        silent.close()


def test_two_replicas_converge_without_flapping(procs, tmp_path, bind):
    """Two agents serve the name and keep the same RRset: the sequence
    of record sets dig sees every 200 ms while a gateway dies and comes
    back has no step back and is never empty."""
    tmp = str(tmp_path)
    g1, g2 = gateways(procs, tmp)
    a1 = dns_agent(procs, tmp, bind, [g1, g2], name="replica1")
    a2 = dns_agent(procs, tmp, bind, [g1, g2], name="replica2")
    g1.start()
    g2.start()
    a1.start()
    a2.start()
    both = ["192.0.2.1", "192.0.2.2"]
    wait_records(bind, both)
    seen = []

    def sample(seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            got = bind.get(NAME)
            if not seen or seen[-1] != got:
                seen.append(got)
            time.sleep(0.2)

    sample(1)
    g2.proc.send_signal(signal.SIGKILL)
    g2.proc.p.wait(timeout=5)
    sample(GRACE_S + 6)
    g2.start()
    sample(8)
    print("record sets seen:", seen)
    assert seen == [both, ["192.0.2.1"], both], seen
    # Both replicas wrote, and each says what it published.
    for a in (a1, a2):
        assert a.proc.count(r"dns: app\.example\.test A: ") == 0, \
            a.proc.log()


def exec_agent(procs, tmp, gws, command):
    a = Agent(procs, tmp, name="agent", extra=f"""dns:
  provider: exec
  zone: example.test
  command: {command}
  grace: {GRACE_S}s""")
    for g in gws:
        a.use(g)
        g.admit(a, [NAME])
    a.serve(NAME, tls="127.0.0.1:9", more=("dns: true",))
    return a


def test_exec_provider_gets_the_record_sets_as_json(procs, tmp_path):
    """provider: exec hands each record set to a command as JSON: what
    must be there and what must go, for a DNS service with its own API."""
    tmp = str(tmp_path)
    seen = tmp_path / "seen.jsonl"
    script = tmp_path / "dns-update"
    script.write_text(f"#!/bin/sh\ncat >> {seen}\n")
    script.chmod(0o755)
    g1, g2 = gateways(procs, tmp)
    a = exec_agent(procs, tmp, [g1, g2], str(script))
    g1.start()
    g2.start()
    a.start()

    def sets():
        out = {}
        if seen.exists():
            for line in seen.read_text().splitlines():
                try:
                    j = json.loads(line)
                except ValueError:
                    continue        # the command is still writing it
                out[j["type"]] = j
        return out

    wait_until(lambda: sets().get("A", {}).get("records") and
               sorted(sets()["A"]["records"]) == ["192.0.2.1", "192.0.2.2"]
               and sets().get("AAAA", {}).get("records"),
               "the command got both A records and the AAAA", timeout=20)
    got = sets()
    assert got["A"]["zone"] == "example.test" and got["A"]["name"] == NAME
    assert got["A"]["ttl"] == 60 and got["A"]["delete"] == []
    assert got["AAAA"]["records"] == ["2001:db8::1"]
    g2.proc.send_signal(signal.SIGKILL)
    g2.proc.p.wait(timeout=5)
    wait_until(lambda: sets()["A"]["records"] == ["192.0.2.1"] and
               sets()["A"]["delete"] == ["192.0.2.2"],
               "the command was told to delete g2", timeout=GRACE_S + 10)


def test_exec_provider_failure_is_named(procs, tmp_path):
    tmp = str(tmp_path)
    script = tmp_path / "dns-update"
    script.write_text("#!/bin/sh\necho 'API says: token expired' >&2\n"
                      "exit 3\n")
    script.chmod(0o755)
    g1, g2 = gateways(procs, tmp)
    a = exec_agent(procs, tmp, [g1, g2], str(script))
    g1.start()
    g2.start()
    a.start()
    a.proc.wait_log(r"dns: app\.example\.test A: the command failed "
                    r"\(exit 3\): API says: token expired; nothing "
                    r"changed, trying again in \d+ s", timeout=20,
                    since_mark=False)


def test_a_reload_does_not_forget_a_dead_gateway(procs, tmp_path, bind):
    """A gateway that dies just before the agent reloads still leaves
    DNS: the reload keeps the gateways the agent has heard of."""
    tmp = str(tmp_path)
    g1, g2 = gateways(procs, tmp)
    a = dns_agent(procs, tmp, bind, [g1, g2])
    g1.start()
    g2.start()
    a.start()
    wait_records(bind, ["192.0.2.1", "192.0.2.2"])
    g2.proc.send_signal(signal.SIGKILL)
    g2.proc.p.wait(timeout=5)
    a.proc.set_mark()
    a.proc.send_signal(signal.SIGHUP)
    a.proc.wait_log(r"reloaded ")
    wait_records(bind, ["192.0.2.1"], timeout=GRACE_S + 10)
