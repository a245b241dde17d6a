"""Replicas: several agents serve one name; the gateway picks by policy,
replays a visitor whose replica failed before answering, and shows why
each replica is or is not in use."""

import signal
import socket
import subprocess
import threading
import time

from conftest import (PORCHCTL, Agent, Gateway, Nginx, curl, free_port,
                      porchctl_status, wait_until)

HOST = "app.example.test"


def replicas(procs, tmp_path, ca, n=2, priorities=(10, 20),
             policy="failover", gw_extra=""):
    """A gateway with an admin port and n agents, each with its own nginx
    (tagged r0, r1, ...) serving HOST."""
    admin = free_port()
    gw = Gateway(procs, str(tmp_path),
                 extra=f'admin: "127.0.0.1:{admin}"\n' + gw_extra)
    gw.admin = f"127.0.0.1:{admin}"
    agents, backends = [], []
    for i in range(n):
        ag = Agent(procs, str(tmp_path), name=f"r{i}")
        ng = Nginx(procs, str(tmp_path), ca, HOST, tag=f"r{i}")
        gw.admit(ag, [HOST])
        ag.use(gw)
        ag.serve(HOST, tls=ng.tls, http=ng.http, priority=priorities[i],
                 policy=policy)
        agents.append(ag)
        backends.append(ng)
    gw.start()
    for ag in agents:
        ag.start()
    return gw, agents, backends


def who(gw, ca):
    """Which replica answered a fresh TLS visitor ('r0', 'r1') or None."""
    r = curl(f"https://{HOST}:{gw.tls_port}/", HOST, gw.tls_port,
             ca=ca.crt, timeout=10)
    if r.returncode != 0:
        return None
    return r.stdout.strip().removeprefix("hello from ")


def replica_states(gw):
    st = porchctl_status(gw.admin)
    route = [r for r in st["routes"] if r["name"] == HOST]
    assert len(route) == 1, st["routes"]
    return {rep["agent"]: rep for rep in route[0]["replicas"]}, route[0]


def test_failover_prefers_lower_priority(procs, tmp_path, ca):
    gw, agents, _ = replicas(procs, tmp_path, ca)
    assert {who(gw, ca) for _ in range(10)} == {"r0"}
    reps, route = replica_states(gw)
    assert route["policy"] == "failover"
    assert reps["r0"]["state"] == "active"
    assert reps["r1"]["state"] == "standby"
    assert "priority 20 behind r0" in reps["r1"]["why"]
    # The readable form says the same.
    text = subprocess.run([PORCHCTL, "status", gw.admin],
                          capture_output=True, text=True).stdout
    assert "r1" in text and "standby" in text and "behind r0" in text

    # The preferred agent dies: the other takes over at once.
    agents[0].proc.stop(signal.SIGKILL)
    gw.proc.wait_log(r"agent r0\) closed")
    assert {who(gw, ca) for _ in range(5)} == {"r1"}
    reps, _ = replica_states(gw)
    assert list(reps) == ["r1"] and reps["r1"]["state"] == "active"


def test_balance_spreads_visitors(procs, tmp_path, ca):
    gw, _, _ = replicas(procs, tmp_path, ca, priorities=(10, 10),
                        policy="balance")
    seen = [who(gw, ca) for _ in range(30)]
    assert None not in seen
    # Idle replicas tie, and ties are broken at random: both serve.
    assert set(seen) == {"r0", "r1"}, seen
    reps, route = replica_states(gw)
    assert route["policy"] == "balance"
    assert all(r["state"] == "active" for r in reps.values())


def test_backend_down_not_yet_detected_is_replayed(procs, tmp_path, ca):
    """r0 is preferred but its nginx is gone (no health check to notice):
    every visitor is replayed to r1, and none fails."""
    gw, _, backends = replicas(procs, tmp_path, ca)
    backends[0].proc.stop()
    answers = [who(gw, ca) for _ in range(20)]
    assert answers == ["r1"] * 20, answers
    gw.proc.wait_log(r"replaying to another replica after: reset by peer: "
                     r"refused")
    # HTTP visitors too.
    r = curl(f"http://{HOST}:{gw.http_port}/whoami", HOST, gw.http_port)
    assert r.returncode == 0 and r.stdout.startswith("r1 "), r.stdout


def test_kill_agent_under_load(procs, tmp_path, ca):
    """Steady load over two balanced replicas; one agent is SIGKILLed.
    Only connections in flight on it may fail; everything after works."""
    gw, agents, _ = replicas(procs, tmp_path, ca, priorities=(10, 10),
                             policy="balance")
    results = []
    stop = threading.Event()

    def load():
        while not stop.is_set():
            results.append((time.monotonic(), who(gw, ca)))
    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: len(results) >= 40, "40 visits before the kill",
                   timeout=30, interval=0.01)
        t_kill = time.monotonic()
        agents[0].proc.stop(signal.SIGKILL)
        gw.proc.wait_log(r"agent r0\) closed")
        t_gone = time.monotonic()
        wait_until(lambda: sum(1 for ts, _ in list(results)
                               if ts > t_gone + 0.5) >= 20,
                   "20 visits after the kill", timeout=20, interval=0.01)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    failed = [ts for ts, w in results if w is None]
    # Failures only around the kill (requests in flight on r0).
    assert all(t_kill - 1 <= ts <= t_gone + 0.5 for ts in failed), failed
    assert len(failed) <= 4, failed
    after = [w for ts, w in results if ts > t_gone + 0.5]
    assert after and set(after) == {"r1"}, after


def test_no_replay_after_the_replica_answered_with_eof(procs, tmp_path):
    """The preferred replica's backend ends the request without a byte
    (its FIN reached the visitor); then its agent dies.  The request
    must not be replayed to the other replica."""
    got = {1: [], 2: []}
    held = []

    def backend(n, answer):
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        ls.listen(8)

        def run():
            while True:
                try:
                    c, _ = ls.accept()
                except OSError:
                    return
                got[n].append(c.recv(4096))
                answer(c)
        threading.Thread(target=run, daemon=True).start()
        return ls

    def half(c):
        c.shutdown(socket.SHUT_WR)      # FIN, nothing else
        held.append(c)

    def full(c):
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
        c.close()
    b1, b2 = backend(1, half), backend(2, full)
    gw = Gateway(procs, str(tmp_path))
    a1 = Agent(procs, str(tmp_path), name="a1")
    a2 = Agent(procs, str(tmp_path), name="a2")
    for ag, b, prio in ((a1, b1, 10), (a2, b2, 20)):
        gw.admit(ag, ["up.example.test"])
        ag.use(gw)
        ag.serve("up.example.test",
                 http=f"127.0.0.1:{b.getsockname()[1]}", priority=prio)
    gw.start()
    a1.start()
    a2.start()
    v = socket.create_connection(("127.0.0.1", gw.http_port), timeout=10)
    v.sendall(b"POST /pay HTTP/1.1\r\nHost: up.example.test\r\n"
              b"Content-Length: 0\r\n\r\n")
    assert v.recv(100) == b""           # the replica's answer: EOF
    a1.proc.stop(signal.SIGKILL)
    gw.proc.wait_log(r"agent a1\) closed")
    # A new visitor now goes to a2: a2's backend must see only that one.
    w = socket.create_connection(("127.0.0.1", gw.http_port), timeout=10)
    w.sendall(b"GET /new HTTP/1.1\r\nHost: up.example.test\r\n\r\n")
    assert w.recv(100).startswith(b"HTTP/1.1 200")
    w.close()
    v.close()
    assert len(got[2]) == 1 and got[2][0].startswith(b"GET /new"), got[2]
    assert gw.proc.count(r"replaying") == 0
    for c in held:
        c.close()
    b1.close()
    b2.close()
