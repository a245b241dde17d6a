"""Tunnels that break: a restarted gateway, a killed agent, an agent that
reconnects while its old session still looks alive (the lease), and an
agent that goes silent without closing anything (keepalive)."""

import re
import signal

from conftest import Agent, Gateway, Nginx, assert_no_route, curl


# --- helpers (local to this file) -------------------------------------------

HOST = "app.example.test"






def whoami(gw, host=HOST, timeout=5):
    """The backend's answer over the HTTP entry, and over TLS."""
    r = curl(f"http://{host}:{gw.http_port}/whoami", host, gw.http_port,
             timeout=timeout)
    assert r.returncode == 0, r.stderr
    return r.stdout


def assert_serves(gw, ca, tag=HOST, host=HOST, timeout=5):
    r = curl(f"https://{host}:{gw.tls_port}/", host, gw.tls_port, ca=ca.crt,
             timeout=timeout)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"hello from {tag}\n"
    assert whoami(gw, host, timeout) == f"{tag} http {host}\n"


def restart_agent(ag):
    """Start ag again (same config and key); wait for its claim in the
    new process's part of the log."""
    p = ag.start(wait_serving=False)
    p.wait_log(rf"gateway gw: serving {re.escape(HOST)}\b")
    return p


def one_stack(procs, tmp_path, ca, gw_extra=""):
    tmp = str(tmp_path)
    gw = Gateway(procs, tmp, extra=gw_extra)
    ng = Nginx(procs, tmp, ca, HOST)
    ag = Agent(procs, tmp)
    gw.admit(ag, ["*.example.test"])
    ag.use(gw)
    ag.serve(HOST, tls=ng.tls, http=ng.http)
    gw.start()
    ag.start()
    return gw, ag, ng


# --- tests -------------------------------------------------------------------

def test_agent_reconnects_after_gateway_restart(procs, tmp_path, ca):
    gw, ag, _ = one_stack(procs, tmp_path, ca)
    assert_serves(gw, ca)
    first = gw.proc
    ports = (gw.tls_port, gw.http_port, gw.tunnel_port)

    ag.proc.set_mark()
    first.check_clean_exit()
    # The agent heard GOAWAY and lost the tunnel; it keeps retrying.
    ag.proc.wait_log(r"gateway gw is going away: gateway stopping")
    ag.proc.wait_log(r"gateway gw \(127\.0\.0\.1:\d+\): .*retrying in")
    ag.proc.wait_log(r"connect 127\.0\.0\.1:\d+: Connection refused; "
                     r"retrying in")

    # The same ports, key and config, in a new process.
    ag.proc.set_mark()
    second = gw.start()
    assert second is not first and second.pid != first.pid
    assert (gw.tls_port, gw.http_port, gw.tunnel_port) == ports
    ag.proc.wait_log(r"gateway gw \(127\.0\.0\.1:\d+\): tunnel up")
    ag.proc.wait_log(rf"gateway gw: serving {re.escape(HOST)}\b")
    second.wait_log(rf"agent agent claimed {re.escape(HOST)} ")
    assert_serves(gw, ca)
    assert ag.proc.alive()


def test_killed_agent_routes_removed_and_name_taken_back(procs, tmp_path,
                                                         ca):
    gw, ag, _ = one_stack(procs, tmp_path, ca)
    assert_serves(gw, ca)

    gw.proc.set_mark()
    assert ag.proc.stop(signal.SIGKILL) == -signal.SIGKILL
    # The kernel closes the socket: the gateway sees EOF at once, well
    # before keepalive (1s) or dead_peer (4s) could matter.
    m = gw.proc.wait_log(r"tunnel from 127\.0\.0\.1:\d+ \(agent agent\) "
                         r"closed: (.*)", timeout=1.5)
    assert "dead peer" not in m.group(1), m.group(0)
    assert_no_route(gw, HOST)

    gw.proc.set_mark()
    restart_agent(ag)
    gw.proc.wait_log(rf"agent agent claimed {re.escape(HOST)} ")
    assert_serves(gw, ca)


def test_reconnect_lease_replaces_stale_session(procs, tmp_path, ca):
    tmp = str(tmp_path)
    gw = Gateway(procs, tmp)
    old_ng = Nginx(procs, tmp, ca, HOST, tag="old-home")
    new_ng = Nginx(procs, tmp, ca, HOST, tag="new-home")
    old = Agent(procs, tmp, name="agent")
    new = Agent(procs, tmp, name="agent-again")
    # The same identity: the second process is the same agent coming back.
    new.key_path, new.pub = old.key_path, old.pub
    gw.admit(old, ["*.example.test"])
    old.use(gw)
    new.use(gw)
    old.serve(HOST, tls=old_ng.tls, http=old_ng.http)
    new.serve(HOST, tls=new_ng.tls, http=new_ng.http)
    gw.start()
    old.start()
    assert whoami(gw) == f"old-home http {HOST}\n"

    try:
        # The old home goes dark without closing anything.
        old.proc.send_signal(signal.SIGSTOP)
        gw.proc.set_mark()
        new.start()
        # Another process (a restart): the gateway first checks that the
        # old session is really dead (about a second), then moves over.
        gw.proc.wait_log(r"agent agent reconnected \(its old session "
                         r"stopped answering\) from 127\.0\.0\.1:\d+; "
                         r"replacing its session from 127\.0\.0\.1:\d+")
        gw.proc.wait_log(r"\(agent agent\) closed: shutdown: replaced by a "
                         r"new session of this agent's key from "
                         r"127\.0\.0\.1:\d+")
        gw.proc.wait_log(rf"agent agent claimed {re.escape(HOST)} ")
        # At once: no waiting for dead_peer (4s) on the stale session;
        # a visitor routed to the stopped agent would time out here.
        assert whoami(gw, timeout=3) == f"new-home http {HOST}\n"
        assert_serves(gw, ca, tag="new-home", timeout=3)
        assert "dead peer" not in gw.proc.log()
    finally:
        old.proc.send_signal(signal.SIGCONT)
    # The old process wakes up to a closed tunnel and, since it is the
    # same agent, would take the name back: that is its right.  Stop it
    # here so the teardown only checks clean exits.
    old.proc.check_clean_exit()


def test_silent_agent_detected_by_keepalive(procs, tmp_path, ca):
    gw, ag, _ = one_stack(procs, tmp_path, ca,
                          gw_extra="timeouts: { keepalive: 500ms, "
                                   "dead_peer: 2s }")
    assert_serves(gw, ca)
    try:
        gw.proc.set_mark()
        ag.proc.send_signal(signal.SIGSTOP)
        m = gw.proc.wait_log(r"tunnel from 127\.0\.0\.1:\d+ \(agent agent\) "
                             r"closed: dead peer: nothing received for "
                             r"(\d+) ms", timeout=4)
        assert 2000 <= int(m.group(1)) < 4000, m.group(0)
        assert_no_route(gw, HOST)
    finally:
        ag.proc.send_signal(signal.SIGCONT)
    # Awake again, the agent notices and comes back by itself.
    ag.proc.set_mark()
    ag.proc.wait_log(rf"gateway gw: serving {re.escape(HOST)}\b")
    assert_serves(gw, ca)
