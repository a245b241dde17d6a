"""A cluster of gateways: peers announce what their agents serve, and a
visitor at any gateway reaches an agent connected to only one of them,
over exactly one peer hop."""

import signal

from conftest import Agent, Gateway, Nginx, curl, fetch, tls_visit, wait_until

HOST = "app.example.test"
FAST = "timeouts:\n  announce: 200ms"


def cluster(procs, tmp_path, ca, n=3):
    gws = [Gateway(procs, str(tmp_path), name=f"g{i}", extra=FAST)
           for i in range(n)]
    for a in gws:
        for b in gws:
            if a is not b:
                a.peer(b)
    ag = Agent(procs, str(tmp_path))
    ng = Nginx(procs, str(tmp_path), ca, HOST)
    gws[0].admit(ag, [HOST])
    ag.use(gws[0])
    ag.serve(HOST, tls=ng.tls, http=ng.http)
    for g in gws:
        g.start()
    ag.start()
    # Every other gateway links to every peer and learns the name.
    for g in gws:
        for other in gws:
            if other is not g:
                g.proc.wait_log(rf"peer {other.name}: link up",
                                since_mark=False)
    return gws, ag, ng


def test_visitors_reach_the_agent_through_any_gateway(procs, tmp_path, ca):
    gws, ag, ng = cluster(procs, tmp_path, ca)
    for g in gws:
        r = fetch(g, HOST, ca=ca, timeout=10)
        assert r.returncode == 0, (g.name, r.stderr)
        assert r.stdout == f"hello from {HOST}\n"
        h = curl(f"http://{HOST}:{g.http_port}/whoami", HOST, g.http_port)
        assert h.returncode == 0 and h.stdout.startswith(HOST), h.stdout
    # g1 and g2 sent their visitors on to g0, which served them locally.
    for g in gws[1:]:
        g.proc.wait_log(rf"sni={HOST} agent=peer:g0 .*reason=eof",
                        since_mark=False)
    gws[0].proc.wait_log(rf"sni={HOST} agent=agent via=peer:g1 ",
                         since_mark=False)
    # One hop only: nothing was forwarded twice.
    for g in gws:
        assert g.proc.count(r"agent=peer:g[12]") == 0


def visit_result(port):
    """tls_visit, but a hang or a reset counts as an answer too."""
    try:
        return tls_visit(port, HOST, timeout=1.0)
    except OSError as e:
        return type(e).__name__


def test_frozen_peer_routes_expire(procs, tmp_path, ca):
    """g0 (the only gateway with the agent) freezes: its announcements
    stop, and g1 drops its names within the soft-state TTL (three missed
    200 ms announcements), well before the dead-peer timeout (4 s)."""
    gws, ag, ng = cluster(procs, tmp_path, ca, n=2)
    assert fetch(gws[1], HOST, ca=ca, timeout=10).returncode == 0
    gws[0].proc.send_signal(signal.SIGSTOP)
    try:
        seen = []

        def expired():
            seen.append(visit_result(gws[1].tls_port))
            return seen[-1] == "TLSV1_UNRECOGNIZED_NAME"
        wait_until(expired, lambda: f"expiry of g0's routes at g1 (last "
                   f"visit: {seen[-1]})", timeout=3.5, interval=0)
        # Routes went by expiry, not because the link was declared dead.
        assert gws[1].proc.count(r"peer g0.*link lost") == 0
    finally:
        gws[0].proc.send_signal(signal.SIGCONT)
    # Back again: announced again, served again.
    wait_until(lambda: fetch(gws[1], HOST, ca=ca, timeout=10).returncode == 0,
               "visitor served through g1 again")


def test_killed_peer_is_dropped(procs, tmp_path, ca):
    gws, ag, ng = cluster(procs, tmp_path, ca, n=2)
    assert fetch(gws[1], HOST, ca=ca, timeout=10).returncode == 0
    gws[0].proc.stop(signal.SIGKILL)
    gws[1].proc.wait_log(r"peer g0.*link lost|peer g0: link lost|"
                         r"peer g0 \(127\.0\.0\.1:\d+\): link lost")
    assert tls_visit(gws[1].tls_port, HOST) == "TLSV1_UNRECOGNIZED_NAME"
