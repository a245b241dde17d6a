"""Announcements between peers under churn: a burst of claims must not
push the periodic announcement away (the peer would let every name
expire), and a peer that announces more names than it may gets one log
line per announcement, with a count, rather than one line per name."""

import re
import time

from conftest import Agent, Gateway, admin_metrics, wait_until

PERIOD = 0.2
FAST = "timeouts:\n  announce: 200ms\n"
DOMAIN = "example.test"


def with_admin(procs, tmp_path, name, extra=""):
    return Gateway(procs, str(tmp_path), name=name, admin=True,
                   extra=FAST + extra)


def names_in(g, peer):
    """How many names g holds from peer, from /metrics."""
    m = admin_metrics(g)
    v = re.search(r'^porch_gateway_peer_names_announced\{peer="%s",'
                  r'direction="in"\} (\S+)$' % re.escape(peer), m, re.M)
    return int(float(v.group(1))) if v else 0


def many(agent, prefix, n):
    """n services on agent; nothing listens behind them, and nothing
    needs to: a claim does not depend on the backend."""
    names = [f"{prefix}{i}.{DOMAIN}" for i in range(n)]
    for name in names:
        agent.serve(name, tls="127.0.0.1:9")
    return names


def pair(procs, tmp_path, extra1=""):
    g0 = with_admin(procs, tmp_path, "g0")
    g1 = with_admin(procs, tmp_path, "g1", extra1)
    g0.peer(g1)
    g1.peer(g0)
    return g0, g1


def test_burst_of_claims_keeps_peer_routes(procs, tmp_path):
    """300 names on one agent, then agents coming and going in a burst
    (hundreds of claims and withdrawals in a second): the peer g1 holds
    all 300 names of the agent that stayed, at every look, through many
    announce periods (TTL: three periods)."""
    g0, g1 = pair(procs, tmp_path)
    big = Agent(procs, str(tmp_path), name="big")
    many(big, "svc", 300)
    small = []
    for k in range(6):
        a = Agent(procs, str(tmp_path), name=f"small{k}")
        many(a, f"a{k}x", 40)
        small.append(a)
    for a in [big] + small:
        g0.admit(a, [f"*.{DOMAIN}"])
        a.use(g0)
    g0.start()
    g1.start()
    g1.proc.wait_log(r"peer g0: link up", since_mark=False)
    big.start(wait_serving=False)
    wait_until(lambda: names_in(g1, "g0") >= 300, "300 names at g1",
               timeout=20)

    # The burst: 240 claims from six agents, then all withdrawn, twice.
    lows = []
    t0 = time.monotonic()
    for rnd in range(2):
        for a in small:
            if rnd == 0:
                a.start(wait_serving=False)
            else:
                a.proc.stop()
                a.start(wait_serving=False)
        for a in small:
            a.proc.wait_log(r"serving a\d+x39\.", timeout=20,
                            since_mark=False)
        lows.append(names_in(g1, "g0"))
    # Watch: 15 periods and more after the burst (the watching is the
    # test: a dip below 300 at any moment is the fault).
    end = time.monotonic() + 15 * PERIOD + 1
    while time.monotonic() < end:
        lows.append(names_in(g1, "g0"))
        time.sleep(0.02)
    for a in small:
        a.proc.check_clean_exit()
    # And 10 periods more, sampling as above.
    end = time.monotonic() + 10 * PERIOD
    while time.monotonic() < end:
        lows.append(names_in(g1, "g0"))
        time.sleep(0.02)
    assert min(lows) >= 300, (
        f"g1 lost names g0 kept announcing: lowest count {min(lows)} "
        f"(of 300 that stayed claimed) over {time.monotonic() - t0:.1f}s")
    assert names_in(g1, "g0") == 300


def test_names_beyond_the_limit_logged_once_per_announcement(procs,
                                                             tmp_path):
    """g1 keeps at most 100 names from a peer; g0 announces 400: g1
    keeps 100 and says so once per announcement, with the count."""
    g0, g1 = pair(procs, tmp_path, "limits:\n  names_per_peer: 100\n")
    ag = Agent(procs, str(tmp_path))
    many(ag, "svc", 400)
    g0.admit(ag, [f"*.{DOMAIN}"])
    ag.use(g0)
    g0.start()
    g1.start()
    ag.start(wait_serving=False)
    ag.proc.wait_log(r"serving svc399\.", timeout=20, since_mark=False)
    g1.proc.wait_log(r"ignored 300 names beyond", since_mark=False)
    g1.proc.set_mark()
    t0 = time.monotonic()
    time.sleep(10 * PERIOD)     # the test: how many lines in 10 periods
    dt = time.monotonic() - t0
    log = g1.proc.log_since_mark()
    assert names_in(g1, "g0") == 100
    lines = [ln for ln in log.splitlines() if "names_per_peer" in ln]
    # One line per full set (one every period here), never per name.
    assert 1 <= len(lines) <= dt / PERIOD + 2, log[-3000:]
    assert all(re.search(r"\b300 names\b", ln) for ln in lines), lines
    assert "svc" not in log, log[-3000:]
