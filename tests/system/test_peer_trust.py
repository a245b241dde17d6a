"""Who may take a name's visitors and its ACME probes: a peer gateway only
for the names its 'hostnames' grant covers (and never for long on its
word alone), an agent only within its grant's bounds (min_priority,
acme).  The attacks are real: two gateways, BIND, Pebble, and a rogue
operator's agent that orders a certificate for a name it does not
serve."""

import os
import re
import signal

import pytest

from conftest import (Agent, Bind, Gateway, Nginx, Pebble, admin_status, curl,
                      wait_until)

NAME = "app.example.test"


def with_admin(procs, tmp, name, extra=""):
    return Gateway(procs, tmp, name=name, admin=True, extra=extra)


def peer_status(gw, peer):
    return {p["peer"]: p for p in admin_status(gw)["peers"]}[peer]


def replicas(gw, name):
    routes = {r["name"]: r for r in admin_status(gw)["routes"]}
    return routes[name]["replicas"] if name in routes else []


def acme_agent(procs, tmp, gw, pebble, name, challenge):
    state = os.path.join(tmp, name, "state")
    more = pebble.acme_section(state, [f"challenge: [{challenge}]",
                                       "retry: {min: 30s, max: 60s}"])
    a = Agent(procs, tmp, name=name, extra=more)
    a.use(gw)
    return a, state


def order_outcome(agent, name=NAME):
    m = agent.proc.wait_log(rf"acme {re.escape(name)}: (order failed|"
                            r"certificate obtained)", timeout=90)
    return m.group(1)


@pytest.mark.parametrize("grant,challenge", [
    (None, "http-01"),                      # a config from before grants
    (["shop.example.test"], "tls-alpn-01"),  # granted other names only
])
def test_rogue_peer_gets_no_certificate(procs, tmp_path, ca, grant,
                                        challenge):
    """app.example.test resolves to gateway A only, where the home agent
    serves it.  Gateway B's operator admits a rogue agent for the name
    on B, which orders a certificate: B announces the name to A with the
    ACME kinds.  A must not send the CA's probes over the link (nor any
    visitor), so the order fails and no certificate is issued."""
    tmp = str(tmp_path)
    bind = Bind(procs, tmp, ["app 60 IN A 127.0.0.1"])
    a = with_admin(procs, tmp, "gwa")
    b = Gateway(procs, tmp, name="gwb")
    a.peer(b, hostnames=grant)
    b.peer(a, hostnames=None)   # B's side is not what is tested
    pebble = Pebble(procs, tmp, a.http_port, a.tls_port, bind)
    ng_home = Nginx(procs, tmp, ca, NAME, tag="home")
    ng_rogue = Nginx(procs, tmp, ca, NAME, tag="rogue")
    home = Agent(procs, tmp, name="home")
    home.use(a)
    a.admit(home, [NAME])
    home.serve(NAME, tls=ng_home.tls, http=ng_home.http)
    rogue, state = acme_agent(procs, tmp, b, pebble, "rogue", challenge)
    b.admit(rogue, [NAME])
    rogue.serve(NAME, tls=ng_rogue.tls, http=ng_rogue.http,
                more=["certificate: acme"])
    a.start()
    b.start()
    a.proc.wait_log(r"peer gwb: link up")
    home.start()
    home.proc.wait_log(r"gateway gwa: serving app\.example\.test")
    rogue.start()
    rogue.proc.wait_log(r"gateway gwb: serving app\.example\.test")
    assert order_outcome(rogue) == "order failed", rogue.proc.log()[-3000:]
    assert not os.path.exists(os.path.join(state, "certs", NAME, "current"))
    log = a.proc.log()
    assert not re.search(r"entry=acme-\S+ .*agent=peer:gwb", log), log
    # A knows what B announced, and says why it is not believed.
    a.proc.wait_log(r"peer gwb announced 1 name not granted to it "
                    r"\(app\.example\.test\)", since_mark=False)
    if grant is None:
        assert re.search(r"peer gwb has no 'hostnames' in .*: no name it "
                         r"announces is believed", log), log
    p = peer_status(a, "gwb")
    assert p["hostnames"] == grant
    assert p["trust"].startswith("none" if grant is None else "names")
    assert NAME in p["refused_in"] and NAME not in p["announced_in"], p
    via = [r for r in replicas(a, NAME) if r.get("peer") == "gwb"]
    assert via and via[0]["state"] == "refused", via
    assert "not granted to peer gwb" in via[0]["why"]
    # Ordinary visitors of the name still reach the home agent only.
    for _ in range(3):
        r = curl(f"https://{NAME}:{a.tls_port}/whoami", NAME, a.tls_port,
                 ca=ca.crt)
        assert r.returncode == 0 and "home" in r.stdout, r.stdout + r.stderr


def test_peer_takes_only_granted_names(procs, tmp_path, ca):
    """A peer is believed only for its grant: a visitor of a name A has
    no agent for goes to B only when B is granted the name; a reload
    that grants it counts at once, without B announcing again."""
    tmp = str(tmp_path)
    a = with_admin(procs, tmp, "gwa")
    b = Gateway(procs, tmp, name="gwb")
    a.peer(b, hostnames=["*.b.example.test"])
    b.peer(a)
    names = ["x.b.example.test", "bank.example.test"]
    ng = {n: Nginx(procs, tmp, ca, n, tag=f"at-b-{n.split('.')[0]}")
          for n in names}
    ag = Agent(procs, tmp, name="bagent")
    ag.use(b)
    b.admit(ag, names)
    for n in names:
        ag.serve(n, http=ng[n].http)
    a.start()
    b.start()
    a.proc.wait_log(r"peer gwb: link up")
    ag.start()
    for n in names:
        ag.proc.wait_log(rf"gateway gwb: serving {re.escape(n)}",
                         since_mark=False)
    wait_until(lambda: "bank.example.test" in
               peer_status(a, "gwb")["refused_in"], "refusal of bank.*")
    p = peer_status(a, "gwb")
    assert p["announced_in"] == ["x.b.example.test"], p
    assert p["names_refused"] == 1
    r = curl(f"http://x.b.example.test:{a.http_port}/whoami",
             "x.b.example.test", a.http_port)
    assert "at-b-x" in r.stdout, r.stdout + r.stderr
    r = curl(f"http://bank.example.test:{a.http_port}/whoami",
             "bank.example.test", a.http_port)
    assert "at-b-bank" not in r.stdout
    assert "No service is published" in r.stdout, r.stdout
    # The operator grants it: believed at once (B does not re-announce
    # names it already announced until its next full set).
    a.peers = []
    a.peer(b, hostnames=["*.b.example.test", "bank.example.test"])
    a.write_config()
    a.proc.set_mark()
    a.proc.send_signal(signal.SIGHUP)
    a.proc.wait_log(r"reloaded")
    r = curl(f"http://bank.example.test:{a.http_port}/whoami",
             "bank.example.test", a.http_port)
    assert "at-b-bank" in r.stdout, r.stdout + r.stderr
    assert peer_status(a, "gwb")["names_refused"] == 0


def test_peer_ttl_is_capped(procs, tmp_path):
    """B announces every 60 s, so its TTL is 180 s; A (announce 200ms)
    believes a name for at most four of its own full-set intervals
    (0.8 s) after B last said it, not for B's 180 s."""
    tmp = str(tmp_path)
    a = with_admin(procs, tmp, "gwa", "timeouts:\n  announce: 200ms")
    b = Gateway(procs, tmp, name="gwb",
                extra="timeouts:\n  announce: 60s")
    a.peer(b)
    b.peer(a)
    ag = Agent(procs, tmp, name="bagent")
    ag.use(b)
    b.admit(ag, [NAME])
    ag.serve(NAME, tls="127.0.0.1:9")
    a.start()
    b.start()
    a.proc.wait_log(r"peer gwb: link up")
    ag.start()
    rep = wait_until(lambda: [r for r in replicas(a, NAME)
                              if r.get("peer") == "gwb"], "replica via gwb")
    assert rep[0]["expires_in_s"] is not None
    assert rep[0]["expires_in_s"] <= 0.8, rep
    # ... and then it is gone, although B's link stays up.
    wait_until(lambda: not [r for r in replicas(a, NAME)
                            if r.get("peer") == "gwb"],
               "expiry of the replica via gwb", timeout=5)
    assert peer_status(a, "gwb")["state"] == "up"


def test_min_priority_bounds_a_claim(procs, tmp_path, ca):
    """An agent granted the name with min_priority 100 claims priority 1:
    the gateway raises it to 100, so the owner (priority 50) keeps the
    visitors, and the status says what was changed and why."""
    tmp = str(tmp_path)
    gw = with_admin(procs, tmp, "gw")
    ng_owner = Nginx(procs, tmp, ca, NAME, tag="owner")
    ng_other = Nginx(procs, tmp, ca, NAME, tag="intruder")
    owner = Agent(procs, tmp, name="owner")
    owner.use(gw)
    gw.admit(owner, [NAME])
    owner.serve(NAME, tls=ng_owner.tls, http=ng_owner.http, priority=50)
    other = Agent(procs, tmp, name="intruder")
    other.use(gw)
    gw.admit(other, ["*.example.test"], more=["min_priority: 100"])
    other.serve(NAME, tls=ng_other.tls, http=ng_other.http, priority=1)
    gw.start()
    owner.start()
    owner.proc.wait_log(r"serving app\.example\.test")
    other.start()
    gw.proc.wait_log(r"agent intruder claimed app\.example\.test \(tls\+http,"
                     r" priority 100, failover\): priority 1 raised to "
                     r"agents\[\]\.min_priority 100")
    for _ in range(5):
        r = curl(f"https://{NAME}:{gw.tls_port}/whoami", NAME, gw.tls_port,
                 ca=ca.crt)
        assert "owner" in r.stdout, r.stdout + r.stderr
    reps = {r["agent"]: r for r in replicas(gw, NAME)}
    assert reps["intruder"]["priority"] == 100
    assert reps["intruder"]["state"] == "standby"
    assert reps["intruder"]["limited"] == ("priority 1 raised to 100 by "
                                           "the grant's min_priority")
    assert reps["owner"]["state"] == "active"
    assert reps["owner"]["limited"] is None


def test_acme_false_keeps_probes_from_an_agent(procs, tmp_path, ca):
    """An agent granted the name but not ACME (acme: false) orders a
    certificate for it, with the name only among its certificate's
    names (an ACME-only claim, which would take every probe at any
    priority): the claim is refused, the probes reach the owner, and no
    certificate is issued."""
    tmp = str(tmp_path)
    bind = Bind(procs, tmp, ["app 60 IN A 127.0.0.1",
                             "side 60 IN A 127.0.0.1"])
    gw = with_admin(procs, tmp, "gw")
    pebble = Pebble(procs, tmp, gw.http_port, gw.tls_port, bind)
    ng_owner = Nginx(procs, tmp, ca, NAME, tag="owner")
    owner = Agent(procs, tmp, name="owner")
    owner.use(gw)
    gw.admit(owner, [NAME])
    owner.serve(NAME, tls=ng_owner.tls, http=ng_owner.http)
    other, state = acme_agent(procs, tmp, gw, pebble, "intruder", "http-01")
    gw.admit(other, ["*.example.test"], more=["acme: false"])
    ng_side = Nginx(procs, tmp, ca, "side.example.test", tag="side")
    other.serve("side.example.test", http=ng_side.http,
                more=["certificate: acme",
                      f"certificate_names: [{NAME}]"])
    gw.start()
    owner.start()
    owner.proc.wait_log(r"serving app\.example\.test")
    other.start()
    gw.proc.wait_log(r"agent intruder claimed app\.example\.test: refused, "
                     r"acme-http refused: agents\[\]\.acme is false",
                     timeout=30)
    assert order_outcome(other, "side.example.test") == "order failed"
    assert not os.path.exists(os.path.join(state, "certs",
                                           "side.example.test", "current"))
    assert not re.search(r"entry=acme-\S+ .*agent=intruder", gw.proc.log())
    other.proc.wait_log(r"gateway gw refused hostname app\.example\.test: "
                        r"agent intruder may not answer ACME validation",
                        since_mark=False)
