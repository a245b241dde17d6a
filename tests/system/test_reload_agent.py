"""SIGHUP on the agent: services, replicas and gateways change while the
tunnels and the streams already open carry on.

Every change is made the way an operator makes it: the Agent object
rewrites its YAML, then SIGHUP.  Waits are on log lines (the agent's
"reloaded" summary, the gateway's "claimed"/"withdrew"/"authenticated")
or on a download's progress, never on a sleep."""

import os
import re
import signal

from conftest import (Agent, Gateway, Nginx, big_file, curl, finish,
                      http_status, keygen, slow_download, tls_visit)

APP = "app.example.test"
TWO = "two.example.test"


def whoami(gw, ca, host):
    r = curl(f"https://{host}:{gw.tls_port}/whoami", host, gw.tls_port,
             ca=ca.crt)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def reload(ag, pattern=r"reloaded "):
    """Rewrite the agent's YAML, SIGHUP it, wait for pattern."""
    ag.proc.set_mark()
    ag.write_config()
    ag.proc.send_signal(signal.SIGHUP)
    return ag.proc.wait_log(pattern)


def two_sites(procs, tmp, ca, serve_two=False):
    """A gateway admitting the agent for *.example.test, and two nginx
    backends; the agent serves app (and two, if asked)."""
    gw = Gateway(procs, tmp)
    ag = Agent(procs, tmp)
    n1 = Nginx(procs, tmp, ca, APP)
    n2 = Nginx(procs, tmp, ca, TWO)
    gw.admit(ag, ["*.example.test"])
    ag.use(gw)
    ag.serve(APP, tls=n1.tls, http=n1.http)
    if serve_two:
        ag.serve(TWO, tls=n2.tls, http=n2.http)
    gw.start()
    ag.start()
    return gw, ag, n1, n2


def test_add_service_during_transfer(procs, tmp_path, ca):
    tmp = str(tmp_path)
    gw, ag, n1, n2 = two_sites(procs, tmp, ca)
    assert tls_visit(gw.tls_port, TWO) == "TLSV1_UNRECOGNIZED_NAME"
    want = big_file(n1.root)
    out = str(tmp_path / "got.bin")
    dl = slow_download(procs, gw, ca, APP, out)

    gw.proc.set_mark()
    ag.serve(TWO, tls=n2.tls, http=n2.http)
    reload(ag, r"reloaded \S+agent\.yaml: 2 services \(\+1 -0 ~0\), "
               r"1 gateways \(\+0 -0 ~0\)")
    gw.proc.wait_log(rf"agent agent claimed {re.escape(TWO)} "
                     r"\(tls\+http, priority 100, failover\)")
    ag.proc.wait_log(rf"gateway gw: serving {re.escape(TWO)}\b")
    # The reload ran while the download was still going.
    assert dl.alive(), "the download ended before the reload"
    assert whoami(gw, ca, TWO) == f"{TWO} https {TWO}"
    assert http_status(gw.http_port, TWO, "/whoami") == 200
    assert whoami(gw, ca, APP) == f"{APP} https {APP}"

    finish(dl, out, want)
    # The claim of the first service was not touched, nor the tunnel.
    assert gw.proc.count(rf"claimed {re.escape(APP)} ") == 1
    assert ag.proc.count(r"tunnel lost|tunnel up") == 1


def test_remove_service(procs, tmp_path, ca):
    tmp = str(tmp_path)
    gw, ag, n1, n2 = two_sites(procs, tmp, ca, serve_two=True)
    assert whoami(gw, ca, TWO) == f"{TWO} https {TWO}"
    # A download from the service about to go: the stream was set up
    # before the reload and needs nothing of the service afterwards.
    want = big_file(n2.root)
    out = str(tmp_path / "got.bin")
    dl = slow_download(procs, gw, ca, TWO, out)

    gw.proc.set_mark()
    ag.services = [s for s in ag.services if s[0] != TWO]
    reload(ag, r"reloaded \S+: 1 services \(\+0 -1 ~0\), "
               r"1 gateways \(\+0 -0 ~0\)")
    ag.proc.wait_log(rf"gateway gw: withdrew {re.escape(TWO)}\b")
    gw.proc.wait_log(rf"agent agent withdrew {re.escape(TWO)}\b")
    assert dl.alive(), "the download ended before the reload"
    assert tls_visit(gw.tls_port, TWO) == "TLSV1_UNRECOGNIZED_NAME"
    assert http_status(gw.http_port, TWO) == 404
    # The other service is unaffected.
    assert whoami(gw, ca, APP) == f"{APP} https {APP}"
    assert http_status(gw.http_port, APP, "/whoami") == 200
    assert gw.proc.count(rf"withdrew {re.escape(APP)}\b") == 0

    finish(dl, out, want)
    assert ag.proc.count(r"tunnel lost") == 0


def test_change_priority(procs, tmp_path, ca):
    tmp = str(tmp_path)
    gw, ag, n1, n2 = two_sites(procs, tmp, ca, serve_two=True)
    gw.proc.wait_log(rf"agent agent claimed {re.escape(APP)} "
                     r"\(tls\+http, priority 100, failover\)")

    gw.proc.set_mark()
    ag.replica[APP] = (7, "balance")
    reload(ag, r"reloaded \S+: 2 services \(\+0 -0 ~1\), "
               r"1 gateways \(\+0 -0 ~0\)")
    ag.proc.wait_log(rf"reload: service {re.escape(APP)} changed")
    # Updated in place on the gateway: re-claimed, never withdrawn.
    gw.proc.wait_log(rf"agent agent claimed {re.escape(APP)} "
                     r"\(tls\+http, priority 7, balance\)")
    assert "withdrew" not in gw.proc.log_since_mark()
    assert f"claimed {TWO}" not in gw.proc.log_since_mark()
    assert whoami(gw, ca, APP) == f"{APP} https {APP}"

    # Only a backend port changes: the claim is the same, not re-sent;
    # new streams go to the new backend.
    n3 = Nginx(procs, tmp, ca, APP, tag="moved")
    gw.proc.set_mark()
    ag.services = [(APP, n3.tls, n3.http, None) if s[0] == APP else s
                   for s in ag.services]
    reload(ag, r"reloaded \S+: 2 services \(\+0 -0 ~1\)")
    assert whoami(gw, ca, APP) == f"moved https {APP}"
    assert "claimed" not in gw.proc.log_since_mark()

    # New timeouts: the running tunnel stays, later dials use them.
    ag.extra = "timeouts: { connect: 3s, keepalive: 500ms }"
    reload(ag, r"reloaded \S+: 2 services \(\+0 -0 ~0\), "
               r"1 gateways \(\+0 -0 ~0\)")
    assert whoami(gw, ca, TWO) == f"{TWO} https {TWO}"
    assert ag.proc.count(r"tunnel lost|tunnel up") == 1


def test_broken_config_keeps_running(procs, tmp_path, ca):
    tmp = str(tmp_path)
    gw, ag, n1, n2 = two_sites(procs, tmp, ca)
    ag.proc.set_mark()
    with open(ag.conf, "a") as f:
        f.write("bogus_key: 1\n")
    ag.proc.send_signal(signal.SIGHUP)
    ag.proc.wait_log(r"reload failed, keeping the running configuration: "
                     r"\S+agent\.yaml:\d+:\d+: .*bogus_key")
    assert "reloaded" not in ag.proc.log_since_mark()
    assert whoami(gw, ca, APP) == f"{APP} https {APP}"

    # A backend that does not resolve fails the reload as a whole: the
    # service added beside it is not claimed.
    ag.serve(TWO, tls=n2.tls)
    ag.serve("three.example.test", tls="no-such-host.invalid:443")
    reload(ag, r"reload failed, keeping the running configuration: "
               r"\S+agent\.yaml: backend 'no-such-host\.invalid:443'")
    assert "reloaded" not in ag.proc.log_since_mark()
    assert tls_visit(gw.tls_port, TWO) == "TLSV1_UNRECOGNIZED_NAME"

    # Fixed: the next SIGHUP applies it.
    ag.services.pop()
    reload(ag, r"reloaded \S+: 2 services \(\+1 -0 ~0\)")
    ag.proc.wait_log(rf"gateway gw: serving {re.escape(TWO)}\b")
    assert whoami(gw, ca, TWO) == f"{TWO} https {TWO}"
    assert ag.proc.count(r"tunnel lost") == 0


def test_identity_change_keeps_key(procs, tmp_path, ca):
    tmp = str(tmp_path)
    gw, ag, n1, n2 = two_sites(procs, tmp, ca)
    ag.key_path = os.path.join(ag.dir, "other.key")
    keygen(ag.key_path)
    ag.serve(TWO, tls=n2.tls)
    reload(ag, r"reloaded \S+: 2 services \(\+1 -0 ~0\)")
    ag.proc.wait_log(r"reload: identity \S+other\.key holds another key, "
                     r"which takes a restart; keeping the running key "
                     + re.escape(ag.pub))
    # Everything else applied, under the old key the gateway admits.
    ag.proc.wait_log(rf"gateway gw: serving {re.escape(TWO)}\b")
    assert whoami(gw, ca, TWO) == f"{TWO} https {TWO}"


def test_health_section_added(procs, tmp_path, ca):
    tmp = str(tmp_path)
    gw, ag, n1, n2 = two_sites(procs, tmp, ca)
    gw.proc.set_mark()
    ag.health[APP] = {"check": "tls", "interval": "200ms",
                      "timeout": "150ms"}
    reload(ag, r"reloaded \S+: 1 services \(\+0 -0 ~1\)")
    ag.proc.wait_log(rf"reload: service {re.escape(APP)} changed; its "
                     r"health checks restart, claim kept")
    ag.proc.wait_log(rf"health {re.escape(APP)}: up at the first check")
    # It was claimed all along: no withdrawal, no second claim.
    assert "withdrew" not in gw.proc.log_since_mark()
    assert "claimed" not in gw.proc.log_since_mark()
    assert whoami(gw, ca, APP) == f"{APP} https {APP}"

    # Pointed at a backend that is not there: the new checker withdraws
    # the name once it has seen so.
    dead = f"127.0.0.1:{n2.tls_port}"
    n2.proc.stop()
    ag.services = [(APP, dead, None, None)]
    reload(ag, r"reloaded \S+: 1 services \(\+0 -0 ~1\)")
    ag.proc.wait_log(rf"health {re.escape(APP)}: down at the first check")
    gw.proc.wait_log(rf"agent agent withdrew {re.escape(APP)}\b")
    assert tls_visit(gw.tls_port, APP) == "TLSV1_UNRECOGNIZED_NAME"


def test_add_and_drop_gateways(procs, tmp_path, ca):
    tmp = str(tmp_path)
    gw, ag, n1, n2 = two_sites(procs, tmp, ca)
    gw2 = Gateway(procs, tmp, name="gw2")
    gw2.admit(ag, ["*.example.test"])
    gw2.start()
    want = big_file(n1.root)
    out = str(tmp_path / "got.bin")
    dl = slow_download(procs, gw, ca, APP, out)

    # Added: a tunnel to gw2; the one to gw is not touched.
    gw.proc.set_mark()
    ag.use(gw2)
    reload(ag, r"reloaded \S+: 1 services \(\+0 -0 ~0\), "
               r"2 gateways \(\+1 -0 ~0\)")
    gw2.proc.wait_log(r"agent agent \(ed25519:\S+\) authenticated")
    ag.proc.wait_log(rf"gateway gw2: serving {re.escape(APP)}\b")
    assert whoami(gw2, ca, APP) == f"{APP} https {APP}"
    assert dl.alive(), "the download ended before the reload"
    assert "authenticated" not in gw.proc.log_since_mark()
    assert "tunnel lost" not in ag.proc.log()

    # Changed (another SNI): a new tunnel replaces the old one, which
    # drains; gw stays untouched.
    gw2.proc.set_mark()
    name, addr, key, _ = ag.gateways[1]
    ag.gateways[1] = (name, addr, key, "gw2.example.test")
    reload(ag, r"reloaded \S+: 1 services \(\+0 -0 ~0\), "
               r"2 gateways \(\+0 -0 ~1\)")
    gw2.proc.wait_log(r"agent agent is going away")
    gw2.proc.wait_log(r"agent agent \(ed25519:\S+\) authenticated")
    ag.proc.wait_log(r"gateway gw2 \(dropped by the reload\): tunnel "
                     r"closed")
    ag.proc.wait_log(rf"gateway gw2: serving {re.escape(APP)}\b")
    assert whoami(gw2, ca, APP) == f"{APP} https {APP}"

    finish(dl, out, want)

    # Removed, with a download in flight through it: GOAWAY, no new
    # visitors there, the stream finishes, then the tunnel closes; the
    # agent stops dialing it and gw goes on.
    out2 = str(tmp_path / "got2.bin")
    dl2 = slow_download(procs, gw2, ca, APP, out2, rate="8M")
    gw2.proc.set_mark()
    ag.gateways.pop()
    reload(ag, r"reloaded \S+: 1 services \(\+0 -0 ~0\), "
               r"1 gateways \(\+0 -1 ~0\)")
    gw2.proc.wait_log(r"agent agent is going away")
    assert dl2.alive(), "the download ended before the reload"
    assert tls_visit(gw2.tls_port, APP) == "TLSV1_UNRECOGNIZED_NAME"
    assert whoami(gw, ca, APP) == f"{APP} https {APP}"
    finish(dl2, out2, want)
    ag.proc.wait_log(r"gateway gw2 \(dropped by the reload\): tunnel "
                     r"closed")
    assert "dropped by the reload): tunnel closed: drain time over" \
        not in ag.proc.log()

    assert "authenticated" not in gw.proc.log_since_mark()
    assert ag.proc.count(r"tunnel lost") == 0
    assert ag.proc.count(r"gateway gw \(\S+\): tunnel up") == 1


def test_sigterm_waits_for_dropped_gateway(procs, tmp_path, ca):
    """SIGTERM while a gateway dropped by a reload still drains a
    stream: the agent waits for it, then exits 0 with nothing leaked."""
    tmp = str(tmp_path)
    gw, ag, n1, n2 = two_sites(procs, tmp, ca)
    gw2 = Gateway(procs, tmp, name="gw2")
    gw2.admit(ag, ["*.example.test"])
    gw2.start()
    ag.use(gw2)
    reload(ag, r"reloaded \S+: 1 services \(\+0 -0 ~0\), "
               r"2 gateways \(\+1 -0 ~0\)")
    ag.proc.wait_log(rf"gateway gw2: serving {re.escape(APP)}\b")
    want = big_file(n1.root, 10)
    out = str(tmp_path / "got.bin")
    dl = slow_download(procs, gw2, ca, APP, out)
    ag.gateways.pop()
    reload(ag, r"reloaded \S+: 1 services \(\+0 -0 ~0\), "
               r"1 gateways \(\+0 -1 ~0\)")
    ag.proc.wait_log(r"gateway gw2: dropped by the reload; its tunnel "
                     r"drains")
    ag.proc.send_signal(signal.SIGTERM)
    ag.proc.wait_log(r"SIGTERM: stopping")
    finish(dl, out, want)
    ag.proc.p.wait(20)
    ag.proc.check_clean_exit()      # exit 0, no sanitizer report
    log = ag.proc.log()
    assert log.index("gateway gw2 (dropped by the reload): tunnel closed") \
        < log.index("stopped")
