"""What a gateway tells about its cluster: peers (link, RTT, names each
way, last announcement) in /status, `porchctl status` and /metrics,
routes learned from a peer listed as such; and what it logs when a peer
presents a key other than the one pinned for it."""

import base64
import os
import re
import subprocess
import time

from conftest import (PORCHCTL, Agent, Gateway, Nginx, admin_metrics,
                      admin_status, keygen, wait_until)

HOST = "app.example.test"
FAST = "timeouts:\n  announce: 200ms"


def with_admin(procs, tmp_path, name, timeouts=FAST):
    return Gateway(procs, str(tmp_path), name=name, admin=True,
                   extra=timeouts)


def peer_of(st, name):
    found = [p for p in st["peers"] if p["peer"] == name]
    assert len(found) == 1, st["peers"]
    return found[0]


def route_of(st, name):
    found = [r for r in st["routes"] if r["name"] == name]
    assert len(found) == 1, st["routes"]
    return found[0]


def test_status_shows_peers_and_routes_learned_from_them(procs, tmp_path,
                                                         ca):
    """The agent is on g1 only: g2 serves HOST through g1, and says so."""
    g1 = with_admin(procs, tmp_path, "g1")
    g2 = with_admin(procs, tmp_path, "g2")
    g1.peer(g2)
    g2.peer(g1)
    ag = Agent(procs, str(tmp_path))
    ng = Nginx(procs, str(tmp_path), ca, HOST)
    g1.admit(ag, [HOST])
    ag.use(g1)
    ag.serve(HOST, tls=ng.tls, http=ng.http)
    g1.start()
    g2.start()
    ag.start()
    g2.proc.wait_log(r"peer g1: link up", since_mark=False)

    # Up, with an RTT from the keepalives, and the name learned.
    def learned():
        st = admin_status(g2)
        p = peer_of(st, "g1")
        if p["rtt_ms"] is not None and p["names_in"] == 1:
            return st, p
        return None
    st, p = wait_until(learned, lambda: f"RTT and name of g1 at g2: "
                       f"{admin_status(g2)}", timeout=8, interval=0.1)
    assert p["state"] == "up", p
    assert p["link"] in ("dial", "accept")
    assert p["address"] == f"127.0.0.1:{g1.tunnel_port}"
    assert p["key"] == g1.pub
    assert p["rtt_ms"] > 0
    assert p["announced_in"] == [HOST]
    assert p["names_out"] == 0 and p["announced_out"] == []
    assert p["last_announce_in_age_s"] is not None
    assert p["last_announce_in_age_s"] < 2.0
    assert p["last_error"] is None

    # The route g2 serves only through g1, listed as such.
    r = route_of(st, HOST)
    assert len(r["replicas"]) == 1, r
    rep = r["replicas"][0]
    assert rep["agent"] == "via peer g1" and rep["peer"] == "g1", rep
    assert rep["state"] == "active", rep
    assert "tls" in rep["kinds"] and "http" in rep["kinds"], rep

    # g1 sees the other direction: it announces the name to g2.
    p1 = wait_until(lambda: (lambda p: p if p["names_out"] == 1 else None)(
        peer_of(admin_status(g1), "g2")), "announcement from g1 to g2",
        timeout=5, interval=0.1)
    assert p1["announced_out"] == [HOST] and p1["names_in"] == 0, p1
    assert p1["last_announce_out_age_s"] < 2.0
    # g1's own route stays local: the agent, no peer replica.
    route = route_of(admin_status(g1), HOST)
    assert [x["agent"] for x in route["replicas"]] == [ag.name]

    # porchctl status: a peers section, and the route via g1.
    text = subprocess.run([PORCHCTL, "status", g2.admin], check=True,
                          capture_output=True, text=True).stdout
    assert "\npeers:\n" in text, text
    assert re.search(r"^  g1 +up +(dial|accept) +127\.0\.0\.1:\d+ +rtt "
                     r"\d+\.\d+ ms$", text, re.M), text
    assert re.search(r"names announced: 1 by it \(last [\d.]+s ago\), 0 by "
                     r"us", text), text
    routes = text.split("\nroutes:\n", 1)[1]
    assert re.search(rf"^  {re.escape(HOST)} \(", routes, re.M), text
    assert re.search(r"^    via peer g1 +tls\+http +active ", routes,
                     re.M), text

    # /metrics: Prometheus text, one series per peer and direction.
    m = admin_metrics(g2)
    for name in ("peer_up", "peer_rtt_seconds", "peer_names_announced",
                 "peer_last_announce_age_seconds"):
        assert f"# HELP porch_gateway_{name} " in m, m
        assert f"# TYPE porch_gateway_{name} gauge" in m, m
    assert re.search(r'^porch_gateway_peer_up\{peer="g1"\} 1$', m, re.M), m
    rtt = re.search(r'^porch_gateway_peer_rtt_seconds\{peer="g1"\} (\S+)$',
                    m, re.M)
    assert rtt and 0 < float(rtt.group(1)) < 1, m
    assert re.search(r'^porch_gateway_peer_names_announced\{peer="g1",'
                     r'direction="in"\} 1$', m, re.M), m
    assert re.search(r'^porch_gateway_peer_names_announced\{peer="g1",'
                     r'direction="out"\} 0$', m, re.M), m
    age = re.search(r'^porch_gateway_peer_last_announce_age_seconds\{'
                    r'peer="g1",direction="in"\} (\S+)$', m, re.M)
    assert age and float(age.group(1)) < 2, m

    # g1 gone: g2 shows the link down and the route with it.
    g1.proc.check_clean_exit()
    wait_until(lambda: peer_of(admin_status(g2), "g1")["state"] == "down",
               "g1 down at g2", timeout=8, interval=0.1)
    st = admin_status(g2)
    p = peer_of(st, "g1")
    assert p["rtt_ms"] is None and p["names_in"] == 0
    assert p["last_error"], p
    assert re.search(r'^porch_gateway_peer_up\{peer="g1"\} 0$',
                     admin_metrics(g2), re.M)


def raw_key(pub):
    assert pub.startswith("ed25519:")
    return base64.b64decode(pub[len("ed25519:"):])


def ordered_pair(procs, tmp_path, timeouts=FAST, order=(0, 1, 2)):
    """g1 and g2, and a third key W.  By default g1's key is lowest and
    g2's highest: g1 dials g2 whether it pins g2's key or W, and g2,
    whether it pins g1's key or W, waits to be dialed.  order: the ranks
    of g1's, W's and g2's keys."""
    g1 = with_admin(procs, tmp_path, "g1", timeouts)
    g2 = with_admin(procs, tmp_path, "g2", timeouts)
    spare = os.path.join(str(tmp_path), "spare.key")
    keys = [(g1.key_path, g1.pub), (g2.key_path, g2.pub),
            (spare, keygen(spare))]
    keys.sort(key=lambda k: raw_key(k[1]))
    (g1.key_path, g1.pub), wrong, (g2.key_path, g2.pub) = \
        (keys[i] for i in order)
    return g1, g2, wrong[1]


def refusals(g, pattern, seconds=4.0, want=3):
    """Wait until pattern was logged `want` times (several retries)."""
    g.proc.wait_count(pattern, want, timeout=seconds, since_mark=False)


def test_wrong_pinned_peer_key_is_one_clear_line_per_attempt(procs,
                                                             tmp_path):
    """g1 pins a wrong key for g2 and dials it: each attempt is one line
    naming both keys, the config file and the entry; g2 (which pins g1
    rightly and admitted it) hears why and never calls the link up."""
    g1, g2, wrong = ordered_pair(procs, tmp_path)
    g1.peers.append(("g2", g2.tunnel_port, wrong))
    g2.peer(g1)
    g2.start()
    g1.start()
    line = (rf"peer g2 \(127\.0\.0\.1:{g2.tunnel_port}\): refusing the "
            rf"link: it presented key {re.escape(g2.pub)}, but the "
            rf"'peers:' entry 'g2' in {re.escape(g1.conf)} pins "
            rf"{re.escape(wrong)}.*; retrying in \d+ ms")
    g1.proc.wait_log(line, timeout=5, since_mark=False)
    refusals(g1, line)
    # Once per attempt: every line about g2 is that line.
    about = [x for x in g1.proc.log().splitlines() if "peer g2" in x]
    assert all(re.search(line, x) for x in about), about
    g2.proc.wait_log(rf"peer g1 \(.*\) refused the link: your key is not "
                     rf"the one pinned for you there \({re.escape(wrong)}\)"
                     rf".*this gateway's key "
                     rf"is {re.escape(g2.pub)}", since_mark=False)
    for g in (g1, g2):
        assert g.proc.count(r"link up") == 0, g.proc.log()
        assert g.proc.count(r"going away") == 0, g.proc.log()
    assert len([x for x in g2.proc.log().splitlines() if "peer g1" in x]) \
        <= len(about) + 1
    # The status says why, too.
    p = peer_of(admin_status(g1), "g2")
    assert p["state"] == "down" and g2.pub in p["last_error"], p
    assert peer_of(admin_status(g2), "g1")["state"] in ("down",
                                                        "handshake")


def test_unknown_peer_key_is_refused_clearly_on_both_sides(procs, tmp_path):
    """g2 pins a wrong key for g1, which dials it: g2 names the key it
    got, its config file and the entry that probably needs it; g1 says
    that g2 refused its key.  Neither says "link up"."""
    g1, g2, wrong = ordered_pair(procs, tmp_path)
    g1.peer(g2)
    g2.peers.append(("g1", g1.tunnel_port, wrong))
    g2.start()
    g1.start()
    refused = (rf"gateway g1\.example\.test presented key "
               rf"{re.escape(g1.pub)}, which no 'peers:' entry in "
               rf"{re.escape(g2.conf)} pins; refusing the link; if it is "
               rf"peer 'g1' \(whose entry pins {re.escape(wrong)}\)")
    g2.proc.wait_log(refused, timeout=5, since_mark=False)
    line = (rf"peer g2 \(127\.0\.0\.1:{g2.tunnel_port}\): it does not know "
            rf"our key {re.escape(g1.pub)}; in g2's config, the 'peers:' "
            rf"entry for this gateway must pin it; retrying in \d+ ms")
    g1.proc.wait_log(line, timeout=5, since_mark=False)
    refusals(g1, line)
    about = [x for x in g1.proc.log().splitlines() if "peer g2" in x]
    assert all(re.search(line, x) for x in about), about
    for g in (g1, g2):
        assert g.proc.count(r"link up") == 0, g.proc.log()


def test_peers_that_both_wait_to_be_dialed_say_so(procs, tmp_path):
    """g1 pins for g2 a key W that sorts below g1's own: g1 waits for g2
    to dial, and g2 (whose key sorts above g1's) waits for g1.  Nothing
    connects; each says so once, naming the keys to check."""
    g1, g2, wrong = ordered_pair(
        procs, tmp_path, "timeouts:\n  announce: 200ms\n"
        "  keepalive: 200ms\n  dead_peer: 1s", order=(1, 0, 2))
    g1.peers.append(("g2", g2.tunnel_port, wrong))
    g2.peer(g1)
    g2.start()
    g1.start()
    quiet = (r"peer {}: no link for \d+s; with the key pinned for it in "
             r"{} \({}\), it is the side that dials: check that it runs, "
             r"reaches our tunnel listener and pins our key {}")
    g1.proc.wait_log(quiet.format("g2", re.escape(g1.conf),
                                  re.escape(wrong), re.escape(g1.pub)),
                     timeout=8, since_mark=False)
    g2.proc.wait_log(quiet.format("g1", re.escape(g2.conf),
                                  re.escape(g1.pub), re.escape(g2.pub)),
                     timeout=8, since_mark=False)
    # The wait is the test: a few more timer ticks, still said once.
    time.sleep(0.5)
    for g in (g1, g2):
        assert g.proc.count(r"no link for") == 1, g.proc.log()
        assert g.proc.count(r"link up") == 0, g.proc.log()
