"""Limits and admission at scale (issue 13, items 4 and 5), at a small
scale: the claims-per-agent limit is a config key, its refusals are one
line per burst on both sides and the agent is told the limit; a gateway
at its cap of handshakes in progress paces agents instead of closing
their connections, and an agent that the gateway does not answer says
the gateway is busy, not a TLS error."""

import json
import re
import socket
import time
import urllib.request

from conftest import Agent, Gateway, free_port, wait_until

PENDING_CAP = 256   # GW_TUN_MAX_PENDING in gateway/gw_tun.c


def test_claims_per_tunnel_is_configurable_counted_and_explained(
        procs, tmp_path):
    gw = Gateway(procs, str(tmp_path),
                 extra="limits:\n  claims_per_tunnel: 3")
    a = Agent(procs, str(tmp_path))
    names = [f"s{i}.example.test" for i in range(6)]
    for n in names:
        a.serve(n, tls=f"127.0.0.1:{free_port()}")
    gw.admit(a, ["*.example.test"])
    a.use(gw)
    gw.start()
    a.start(wait_serving=False)
    # One line per burst at the gateway, with the count and the limit.
    gw.proc.wait_log(r"agent agent: refused 3 claims over the limit of 3 "
                     r"names per agent")
    # The agent hears the truth, once, with the count.
    line = a.proc.wait_log(r"gateway gw refused 3 hostnames[^\n]*").group(0)
    assert "the gateway allows at most 3 names per agent" in line, line
    assert "ask the gateway's operator to grant" not in a.proc.log()
    served = re.findall(r"gateway gw: serving (\S+)", a.proc.log())
    assert len(served) == 3, served
    assert gw.proc.count(r"refused \d+ claims? over the limit") == 1
    assert a.proc.count(r"refused \d+ hostnames?") == 1
    # Every name still claimed is routed; the ones refused are not.
    assert gw.proc.count(r"agent agent claimed s\d\.example\.test") == 3


def with_admin(procs, tmp_path, extra):
    return Gateway(procs, str(tmp_path), admin=True, extra=extra)


def pending(gw):
    with urllib.request.urlopen(f"http://{gw.admin}/status",
                                timeout=5) as r:
        return json.load(r)["gateway"]["tunnels_pending"]


PER_SOURCE = 16     # limits.handshakes_per_source, by default


def hold_handshakes(gw, n):
    """n idle TCP connections to the tunnel listener: each counts as a
    handshake in progress until the gateway's handshake timeout (a
    quarter of it once more than half the cap are in progress).  From
    127.0.0.2 on, PER_SOURCE from each address: a storm of many agents,
    as one address alone may hold only PER_SOURCE."""
    socks = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", gw.tunnel_port),
                                     timeout=5,
                                     source_address=(
                                         f"127.0.0.{2 + i // PER_SOURCE}",
                                         0))
        socks.append(s)
    wait_until(lambda: pending(gw) >= n, lambda: f"{n} handshakes pending "
               f"(have {pending(gw)})")
    return socks


def test_agent_at_the_handshake_cap_is_paced_not_dropped(procs, tmp_path):
    # Past half the cap their deadline is a quarter of this: 3 s.
    gw = with_admin(procs, tmp_path, "timeouts:\n  handshake: 12s")
    a = Agent(procs, str(tmp_path))
    a.serve("paced.example.test", tls=f"127.0.0.1:{free_port()}")
    gw.admit(a, ["paced.example.test"])
    a.use(gw)
    gw.start()
    socks = hold_handshakes(gw, PENDING_CAP)
    try:
        t0 = time.monotonic()
        a.start(wait_serving=False)
        # It waits in the listen backlog until the idle ones time out,
        # then gets in on its first connection.
        a.proc.wait_log(r"gateway gw: serving paced\.example\.test",
                        timeout=15)
        assert time.monotonic() - t0 < 10
    finally:
        for s in socks:
            s.close()
    assert not re.search(r"refused, \d+ handshakes", gw.proc.log()), \
        gw.proc.log()
    assert "tunnel failed" not in a.proc.log(), a.proc.log()
    assert a.proc.count(r"tunnel up") == 1


def test_agent_says_gateway_busy_when_not_answered(procs, tmp_path):
    # The agent gives the handshake 2 s (twice its connect timeout); the
    # gateway's slots stay taken for 5 s (busy: a quarter of 20 s).
    gw = with_admin(procs, tmp_path, "timeouts:\n  handshake: 20s")
    a = Agent(procs, str(tmp_path), extra="timeouts:\n  connect: 1s")
    a.serve("busy.example.test", tls=f"127.0.0.1:{free_port()}")
    gw.admit(a, ["busy.example.test"])
    a.use(gw)
    gw.start()
    socks = hold_handshakes(gw, PENDING_CAP)
    try:
        a.start(wait_serving=False)
        line = a.proc.wait_log(r"[^\n]*gateway busy[^\n]*",
                               timeout=10).group(0)
        assert "retrying in" in line, line
        assert "TLS error" not in line and "error:" not in line, line
        # Still admitted once the slots free up.
        a.proc.wait_log(r"gateway gw: serving busy\.example\.test",
                        timeout=20)
    finally:
        for s in socks:
            s.close()
