"""What a new self-hoster hit on the first day (issue 12): a name granted
after the agent asked for it, a reload whose backend name the home's
resolver never answers, two agents started with one key, and a tunnel
cut by a reset that was logged as "error:00000005".

Each test reproduces the fault as the user met it, with real daemons,
nginx and curl; waits are on log lines, status pages or downloads."""

import os
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import (PORCHCTL, Agent, Gateway, Nginx, big_file, curl, finish,
                      free_port, http_status, porchctl_status, slow_download,
                      wait_until)

APP = "app.example.test"
LATE = "late.example.test"


def service(st, host):
    return {s["hostname"]: s for s in st["services"]}[host]


# --- 1. a name granted after the agent asked for it -------------------------

def test_name_granted_later_goes_live_without_touching_the_agent(
        procs, tmp_path, ca):
    tmp = str(tmp_path)
    admin = free_port()
    gw = Gateway(procs, tmp)
    ag = Agent(procs, tmp, extra=f'admin: "127.0.0.1:{admin}"')
    ng = Nginx(procs, tmp, ca, APP)
    gw.admit(ag, [APP])
    ag.use(gw)
    ag.serve(APP, tls=ng.tls, http=ng.http)
    gw.start()
    ag.start()

    # The agent adds a service (SIGHUP): not granted yet, refused.
    ag.proc.set_mark()
    ag.serve(LATE, http=ng.http)
    ag.write_config()
    ag.proc.send_signal(signal.SIGHUP)
    ag.proc.wait_log(rf"gateway gw refused hostname {re.escape(LATE)}: "
                     r"agent agent is not authorized")
    assert http_status(gw.http_port, LATE) == 404
    # Its status says so, per gateway, with the gateway's reason.
    st = service(porchctl_status(admin), LATE)
    assert st["claimed"] is False, st
    assert st["gateways"]["gw"]["state"] == "refused", st
    assert "not authorized" in st["gateways"]["gw"]["reason"], st
    assert service(porchctl_status(admin), APP)["gateways"]["gw"] == \
        {"state": "claimed"}
    text = subprocess.run([PORCHCTL, "status", f"127.0.0.1:{admin}"],
                          capture_output=True, text=True).stdout
    assert re.search(rf"{re.escape(LATE)}\s+not claimed", text), text
    assert re.search(r"on gw\s+refused: agent agent is not authorized",
                     text), text

    # The operator grants it and reloads the gateway; nothing else.
    gw.agents = [(ag.name, ag.pub, [APP, LATE])]
    gw.proc.set_mark()
    ag.proc.set_mark()
    gw.write_config()
    gw.proc.send_signal(signal.SIGHUP)
    gw.proc.wait_log(rf"reload: granted; agent agent claimed "
                     rf"{re.escape(LATE)} \(http, ")
    ag.proc.wait_log(rf"gateway gw: serving {re.escape(LATE)}\b")
    assert http_status(gw.http_port, LATE, "/whoami") == 200
    # An HTTP visitor's site came from Host: the agent's line says so.
    ag.proc.wait_log(rf"visitor=\S+ host={re.escape(LATE)} backend=")
    st = service(porchctl_status(admin), LATE)
    assert st["claimed"] is True and \
        st["gateways"]["gw"] == {"state": "claimed"}, st
    # The agent was not restarted, nor its tunnel.
    assert ag.proc.count(r"tunnel up") == 1
    assert ag.proc.count(r"porch-agent .* started") == 1

    # Revoked again: withdrawn, and the agent's status follows.
    gw.agents = [(ag.name, ag.pub, [APP])]
    gw.proc.set_mark()
    gw.write_config()
    gw.proc.send_signal(signal.SIGHUP)
    gw.proc.wait_log(rf"may no longer claim {re.escape(LATE)}")
    assert http_status(gw.http_port, LATE) == 404
    wait_until(lambda: service(porchctl_status(admin), LATE)["gateways"]
               ["gw"]["state"] == "refused", "refused state")
    # And granted once more: the refusal was remembered again.
    gw.agents = [(ag.name, ag.pub, [APP, LATE])]
    gw.proc.set_mark()
    gw.write_config()
    gw.proc.send_signal(signal.SIGHUP)
    gw.proc.wait_log(rf"reload: granted; agent agent claimed "
                     rf"{re.escape(LATE)} ")
    assert http_status(gw.http_port, LATE, "/whoami") == 200


def test_status_says_pending_and_not_connected(procs, tmp_path, ca):
    """A gateway that is down: the service is not claimed there, and the
    status says why instead of "claimed"."""
    tmp = str(tmp_path)
    admin = free_port()
    gw = Gateway(procs, tmp)
    down = Gateway(procs, tmp, name="down")     # never started
    ag = Agent(procs, tmp, extra=f'admin: "127.0.0.1:{admin}"')
    ng = Nginx(procs, tmp, ca, APP)
    gw.admit(ag, [APP])
    ag.use(gw)
    ag.use(down)
    ag.serve(APP, tls=ng.tls)
    gw.start()
    ag.start(wait_serving=False)
    ag.proc.wait_log(rf"gateway gw: serving {re.escape(APP)}\b")
    st = service(porchctl_status(admin), APP)
    assert st["claimed"] is True
    assert st["gateways"] == {"gw": {"state": "claimed"},
                              "down": {"state": "not connected"}}, st
    metrics = subprocess.run(["curl", "-sS", f"http://127.0.0.1:{admin}"
                              "/metrics"], capture_output=True,
                             text=True).stdout
    assert (f'porch_agent_claim_granted{{hostname="{APP}",gateway="gw"}} 1'
            in metrics), metrics
    assert (f'porch_agent_claim_granted{{hostname="{APP}",gateway="down"}} '
            "0" in metrics), metrics


# --- 2. a reload must never freeze the agent ---------------------------------

class BlackHoleResolver:
    """A DNS server on 127.0.0.77:53 (UDP and TCP) that reads every query
    and never answers: the home's resolver at its worst."""

    ADDR = "127.0.0.77"

    def __init__(self):
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.udp.bind((self.ADDR, 53))
        self.tcp.bind((self.ADDR, 53))
        self.tcp.listen(16)
        self.queries = 0
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        self.udp.settimeout(0.1)
        while not self.stop.is_set():
            try:
                self.udp.recvfrom(4096)
                self.queries += 1
            except OSError:
                pass

    def close(self):
        self.stop.set()
        self.t.join(2)
        self.udp.close()
        self.tcp.close()


@pytest.fixture
def blackhole(tmp_path):
    r = BlackHoleResolver()
    conf = tmp_path / "resolv.conf"
    conf.write_text(f"nameserver {r.ADDR}\noptions timeout:5 attempts:2\n")
    r.conf = str(conf)
    yield r
    r.close()


def in_mount_ns(resolv_conf, argv):
    """argv in a private mount namespace whose /etc/resolv.conf is
    resolv_conf (exec: the PID stays the daemon's)."""
    return ["unshare", "--mount", "sh", "-c",
            'mount --bind "$0" /etc/resolv.conf && exec "$@"',
            resolv_conf, *argv]


def test_reload_with_unanswered_backend_name_costs_nothing(
        procs, tmp_path, ca, blackhole):
    tmp = str(tmp_path)
    gw = Gateway(procs, tmp, extra="timeouts: { keepalive: 300ms, "
                                   "dead_peer: 1500ms }")
    ag = Agent(procs, tmp, extra="timeouts: { keepalive: 300ms, "
                                 "dead_peer: 1500ms }")
    ng = Nginx(procs, tmp, ca, APP)
    gw.admit(ag, ["*.example.test"])
    ag.use(gw)
    ag.serve(APP, tls=ng.tls, http=ng.http)
    gw.start()
    ag.write_config()
    from conftest import AGENT
    ag.proc = procs.start(ag.name, in_mount_ns(blackhole.conf,
                                               [AGENT, "-c", ag.conf]),
                          daemon=True)
    ag.proc.wait_log(rf"gateway gw: serving {re.escape(APP)}\b")
    want = big_file(ng.root, mib=16)
    out = str(tmp_path / "got.bin")
    dl = slow_download(procs, gw, ca, APP, out, rate="2M")

    # A new service whose backend only the (dead) resolver could name.
    gw.proc.set_mark()
    ag.proc.set_mark()
    ag.serve(LATE, http="nas.home.arpa:8080")
    ag.write_config()
    t0 = time.monotonic()
    ag.proc.send_signal(signal.SIGHUP)
    # While the lookup waits, the agent works: new visitors are served
    # (a frozen agent would time them out, then lose its tunnel).
    for _ in range(10):
        assert http_status(gw.http_port, APP, "/whoami") == 200
        # Pacing, not waiting: the visits spread over the lookup.
        time.sleep(0.2)
    assert dl.alive()
    ag.proc.wait_log(r"reload: looking up 1 backend name")
    m = ag.proc.wait_log(r"reload failed, keeping the running "
                         r"configuration: .*nas\.home\.arpa:8080.*: "
                         r"cannot resolve nas\.home\.arpa: (.*)",
                         timeout=15)
    assert "no answer" in m.group(1) or "imeout" in m.group(1), m.group(0)
    assert blackhole.queries > 0, "the resolver was never asked"
    assert time.monotonic() - t0 >= 4.0     # it waited for the lookup
    finish(dl, out, want)
    # Nothing was lost: the tunnel never went down, the name never left.
    assert "dead peer" not in gw.proc.log()
    assert ag.proc.count(r"tunnel up") == 1
    assert gw.proc.count(r"withdrew|closed:") == 0, gw.proc.log()
    assert http_status(gw.http_port, LATE) == 404
    # A later reload that drops the broken service works as before.
    ag.services = [s for s in ag.services if s[0] != LATE]
    ag.proc.set_mark()
    ag.write_config()
    ag.proc.send_signal(signal.SIGHUP)
    ag.proc.wait_log(r"reloaded \S+: 1 services \(\+0 -0 ~0\)")


def test_reload_resolves_backend_names_through_hosts(procs, tmp_path, ca):
    """A name the lookup can answer (localhost, from /etc/hosts) still
    works after a reload, and an unknown name fails the reload clearly."""
    tmp = str(tmp_path)
    gw = Gateway(procs, tmp)
    ag = Agent(procs, tmp)
    ng = Nginx(procs, tmp, ca, APP)
    gw.admit(ag, ["*.example.test"])
    ag.use(gw)
    ag.serve(APP, tls=ng.tls)
    gw.start()
    ag.start()
    ag.proc.set_mark()
    ag.serve(LATE, http=f"localhost:{ng.http_port}")
    ag.write_config()
    ag.proc.send_signal(signal.SIGHUP)
    ag.proc.wait_log(r"reloaded \S+: 2 services \(\+1 -0 ~0\)")
    ag.proc.wait_log(rf"gateway gw: serving {re.escape(LATE)}\b")
    assert http_status(gw.http_port, LATE, "/whoami") == 200


# --- 3. two agents with one key ----------------------------------------------

def two_with_one_key(procs, tmp, ca, wrong_gateway_key=False):
    gw = Gateway(procs, tmp)
    n1 = Nginx(procs, tmp, ca, APP, tag="first")
    n2 = Nginx(procs, tmp, ca, APP, tag="copy")
    first = Agent(procs, tmp, name="agent")
    copy = Agent(procs, tmp, name="copy")
    # /etc/porch copied to a second machine: the same key.
    copy.key_path, copy.pub = first.key_path, first.pub
    gw.admit(first, ["*.example.test"])
    first.use(gw)
    if wrong_gateway_key:
        from conftest import keygen
        copy.use(gw, key=keygen(os.path.join(tmp, "other-gw.key")))
    else:
        copy.use(gw)
    first.serve(APP, tls=n1.tls, http=n1.http)
    copy.serve(APP, tls=n2.tls, http=n2.http)
    gw.start()
    first.start()
    return gw, first, copy, n1


def whoami(gw):
    r = curl(f"http://{APP}:{gw.http_port}/whoami", APP, gw.http_port,
             timeout=5)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()[0]


def test_two_agents_with_one_key_do_not_flap(procs, tmp_path, ca):
    tmp = str(tmp_path)
    gw, first, copy, n1 = two_with_one_key(procs, tmp, ca)
    want = big_file(n1.root, mib=12)
    out = str(tmp_path / "got.bin")
    dl = slow_download(procs, gw, ca, APP, out, rate="2M")

    gw.proc.set_mark()
    copy.start(wait_serving=False)
    # Told at both ends, in words that name the fix.
    m = gw.proc.wait_log(r"two agents are using key (\S+) \(agent agent\): "
                         r"one connected from 127\.0\.0\.1:\d+, another "
                         r"from 127\.0\.0\.1:\d+; keeping the first and "
                         r"refusing the newer\. Give each replica its "
                         r"own key", timeout=10)
    assert m.group(1) == first.pub
    copy.proc.wait_log(r"gateway gw refused this agent: two agents are "
                       r"using key .*give each replica its own key")
    r = copy.proc.wait_log(r"retrying in (\d+) ms")
    assert int(r.group(1)) >= 30000, r.group(0)
    # The good session was never displaced; its download goes on.
    for _ in range(10):
        assert whoami(gw) == "first"
    finish(dl, out, want)
    log = gw.proc.log()
    assert "replacing its session" not in log, log
    assert first.proc.count(r"tunnel up") == 1
    assert first.proc.count(r"tunnel lost") == 0
    # No ping-pong: one attempt by the copy, refused once.
    assert gw.proc.count(r"\[warn\] two agents are using key") == 1
    assert gw.proc.count(r"agent agent \(.*\) authenticated") == 2


def test_copy_pinning_another_gateway_key_costs_nothing(procs, tmp_path, ca):
    tmp = str(tmp_path)
    gw, first, copy, n1 = two_with_one_key(procs, tmp, ca,
                                           wrong_gateway_key=True)
    want = big_file(n1.root, mib=12)
    out = str(tmp_path / "got.bin")
    dl = slow_download(procs, gw, ca, APP, out, rate="2M")
    copy.start(wait_serving=False)
    # Several refused attempts (it backs off from 100 ms to 1 s)...
    copy.proc.wait_count(r"presented key .* pins .* refusing this gateway",
                         3, since_mark=False)
    # ...none of which touched the good session.
    for _ in range(5):
        assert whoami(gw) == "first"
    finish(dl, out, want)
    assert "replacing its session" not in gw.proc.log()
    assert first.proc.count(r"tunnel lost") == 0


def test_same_agent_reconnecting_takes_over_at_once(procs, tmp_path, ca):
    """The lease still works for the agent itself: its own new session
    (same process) replaces the stale one without a probe."""
    tmp = str(tmp_path)
    gw = Gateway(procs, tmp, extra="timeouts: { keepalive: 300ms, "
                                   "dead_peer: 10s }")
    ng = Nginx(procs, tmp, ca, APP)
    ag = Agent(procs, tmp, extra="timeouts: { keepalive: 300ms, "
                                 "dead_peer: 1s }")
    gw.admit(ag, ["*.example.test"])
    ag.use(gw)
    ag.serve(APP, tls=ng.tls, http=ng.http)
    gw.start()
    ag.start()
    # The home's connection goes dark both ways (a NAT that forgot it):
    # the agent gives up on it (dead_peer 1s) while the gateway still
    # believes in it (10s); the agent's new connection is not affected.
    out = subprocess.run(["ss", "-Htn", "state", "established",
                          f"dport = :{gw.tunnel_port}"],
                         capture_output=True, text=True).stdout.split()
    aport = out[2].rsplit(":", 1)[1]
    subprocess.run(["nft", "add", "table", "inet", "porchtest"], check=True)
    try:
        subprocess.run(["nft", "add", "chain", "inet", "porchtest", "out",
                        "{ type filter hook output priority 0; }"],
                       check=True)
        gw.proc.set_mark()
        ag.proc.set_mark()
        for port in ("sport", "dport"):
            subprocess.run(["nft", "add", "rule", "inet", "porchtest",
                            "out", "tcp", port, aport, "drop"], check=True)
        ag.proc.wait_log(r"tunnel lost: dead peer", timeout=5)
        gw.proc.wait_log(r"agent agent reconnected from 127\.0\.0\.1:\d+; "
                         r"replacing its session", timeout=10)
    finally:
        subprocess.run(["nft", "delete", "table", "inet", "porchtest"])
    assert "checking whether that one is still alive" not in \
        gw.proc.log_since_mark()
    ag.proc.wait_log(rf"gateway gw: serving {re.escape(APP)}\b")
    assert http_status(gw.http_port, APP, "/whoami") == 200


# --- 6. an end of tunnel said in words ---------------------------------------

def recv_q(port):
    """Bytes waiting unread in the receive queues of port's sockets."""
    out = subprocess.run(["ss", "-Htn", f"sport = :{port}"],
                         capture_output=True, text=True).stdout
    return sum(int(line.split()[1]) for line in out.splitlines()
               if line.split())


def test_reset_tunnel_is_logged_in_words(procs, tmp_path, ca):
    tmp = str(tmp_path)
    gw = Gateway(procs, tmp)
    ng = Nginx(procs, tmp, ca, APP)
    ag = Agent(procs, tmp, extra="timeouts: { keepalive: 200ms, "
                                 "dead_peer: 20s }")
    gw.admit(ag, ["*.example.test"])
    ag.use(gw)
    ag.serve(APP, tls=ng.tls)
    gw.start()
    ag.start()
    # A gateway that dies with unread bytes makes its kernel answer with
    # a reset, as a NAT that forgot the connection does.
    gw.proc.send_signal(signal.SIGSTOP)
    try:
        wait_until(lambda: recv_q(gw.tunnel_port) > 0, "unread pings")
        ag.proc.set_mark()
    finally:
        gw.proc.stop(signal.SIGKILL)
    m = ag.proc.wait_log(r"tunnel lost: (.*) \(last rtt")
    assert m.group(1) == "Connection reset by peer", m.group(0)
    assert "error:0000" not in ag.proc.log()
