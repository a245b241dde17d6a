"""Who may connect and what they may claim: refused claims, refused keys in
both directions, and peers that do not speak porch at all."""

import os
import re
import socket
import ssl
import subprocess

from conftest import Agent, Gateway, Nginx, assert_no_route, curl, keygen


# --- helpers (local to this file) -------------------------------------------





def assert_no_route_logged(gw, host):
    """assert_no_route, and the gateway's log says why."""
    gw.proc.set_mark()
    assert_no_route(gw, host)
    gw.proc.wait_log(rf"entry=tls peer=\S+ sni={re.escape(host)} "
                     rf"result=no-route")


def assert_serves(s_gw, host, ca, tag=None):
    r = curl(f"https://{host}:{s_gw.tls_port}/", host, s_gw.tls_port,
             ca=ca.crt, timeout=10)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"hello from {tag or host}\n"
    r = curl(f"http://{host}:{s_gw.http_port}/whoami", host, s_gw.http_port,
             timeout=10)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"{tag or host} http {host}\n"


def retry_delays(text):
    return [int(x) for x in re.findall(r"retrying in (\d+) ms", text)]


# --- tests -------------------------------------------------------------------

def test_unauthorized_claim_refused(procs, tmp_path, ca):
    tmp = str(tmp_path)
    gw = Gateway(procs, tmp)
    app = Nginx(procs, tmp, ca, "app.example.test")
    evil = Nginx(procs, tmp, ca, "evil.other.test")
    other = Nginx(procs, tmp, ca, "other.example.test")
    ag = Agent(procs, tmp, name="agent")
    ag2 = Agent(procs, tmp, name="agent2")
    gw.admit(ag, ["app.example.test"])
    gw.admit(ag2, ["other.example.test"])
    ag.use(gw)
    ag2.use(gw)
    ag.serve("app.example.test", tls=app.tls, http=app.http)
    ag.serve("evil.other.test", tls=evil.tls, http=evil.http)
    ag2.serve("other.example.test", tls=other.tls, http=other.http)
    gw.start()
    ag2.start()
    ag.start(wait_serving=False)

    # Both sides say so, naming the hostname.
    gw.proc.wait_log(r"agent agent claimed evil\.other\.test: refused")
    ag.proc.wait_log(r"gateway gw refused hostname evil\.other\.test\b")
    ag.proc.wait_log(r"gateway gw: serving app\.example\.test\b")
    assert "serving evil.other.test" not in ag.proc.log()
    assert not re.search(r"claimed evil\.other\.test \(", gw.proc.log())

    # The granted name works, the refused one has no route.
    assert_serves(gw, "app.example.test", ca)
    assert_no_route_logged(gw, "evil.other.test")

    # The refusal changed nothing else: the agent's tunnel stayed up
    # (no reconnect), and the other agent still works.
    assert ag.proc.count(r"tunnel up") == 1
    assert "retrying in" not in ag.proc.log()
    assert "closed" not in ag2.proc.log()
    assert_serves(gw, "other.example.test", ca)
    assert gw.proc.alive() and ag.proc.alive() and ag2.proc.alive()


def test_agent_refuses_gateway_with_wrong_key(procs, tmp_path, ca):
    tmp = str(tmp_path)
    gw = Gateway(procs, tmp)
    ng = Nginx(procs, tmp, ca, "app.example.test")
    ag = Agent(procs, tmp)
    gw.admit(ag, ["*.example.test"])
    wrong = keygen(os.path.join(tmp, "throwaway.key"))
    assert wrong != gw.pub
    ag.use(gw, key=wrong)
    ag.serve("app.example.test", tls=ng.tls, http=ng.http)
    gw.start()
    ag.start(wait_serving=False)

    m = ag.proc.wait_log(r"gateway gw \(127\.0\.0\.1:\d+\) presented key "
                         r"(\S+), but .* pins (\S+) for it; refusing")
    assert m.group(1).rstrip(",") == gw.pub
    assert m.group(2) == wrong

    # It keeps trying, with growing delays capped at reconnect.max (1s):
    # 100ms doubling with jitter (half to all of it) gives [50,100]
    # [100,200] [200,400] [400,800], then [500,1000] from the fifth
    # attempt on.
    ag.proc.wait_count(r"retrying in \d+ ms", 7, since_mark=False)
    log = ag.proc.log()
    delays = retry_delays(log)
    assert len(delays) >= 7, log
    assert delays[0] <= 100, delays
    assert delays[:4] == sorted(delays[:4]), delays
    assert all(d <= 1000 for d in delays), delays
    assert all(d >= 500 for d in delays[4:]), delays
    assert ag.proc.count(r"presented key") >= 7
    assert "tunnel up" not in log
    assert "serving" not in log

    # The gateway never got a claim: visitors have no route.
    assert "claimed" not in gw.proc.log()
    assert_no_route_logged(gw, "app.example.test")


def test_gateway_refuses_unknown_agent_key(procs, tmp_path, ca):
    tmp = str(tmp_path)
    gw = Gateway(procs, tmp)
    ng = Nginx(procs, tmp, ca, "app.example.test")
    ag = Agent(procs, tmp)
    stranger = Agent(procs, tmp, name="stranger")
    # The gateway admits some other key, not this agent's.
    gw.admit(stranger, ["*.example.test"])
    ag.use(gw)
    ag.serve("app.example.test", tls=ng.tls, http=ng.http)
    gw.start()
    ag.start(wait_serving=False)

    gw.proc.wait_log(rf"agent key {re.escape(ag.pub)} is not admitted; "
                     rf"add it under 'agents:' in {re.escape(gw.conf)}")
    # Let the agent try a few times, then judge everything it said.
    ag.proc.wait_count(r"retrying in \d+ ms", 5, since_mark=False)
    log = ag.proc.log()
    delays = retry_delays(log)
    problems = []
    if not re.search(rf"refused by peer: agent key {re.escape(ag.pub)} is "
                     rf"not admitted by this gateway", log):
        problems.append("no 'refused by peer: agent key ... is not "
                        "admitted' line")
    if "tunnel up" in log:
        problems.append("the agent logged 'tunnel up' for a gateway that "
                        "refused it")
    if "serving" in log:
        problems.append("the agent logged 'serving'")
    # A refusal is a failure: the agent must back off, not hammer the
    # gateway at reconnect.min forever.
    if not (delays[:4] == sorted(delays[:4]) and delays[4] >= 500):
        problems.append(f"no exponential backoff: delays {delays[:8]}")
    assert not problems, "; ".join(problems) + "\nagent log:\n" + log[-2500:]
    assert "claimed" not in gw.proc.log()
    assert_no_route_logged(gw, "app.example.test")


def test_non_porch_peers_are_dropped(stack):
    gw = stack.gw
    port = gw.tunnel_port

    # Plain TCP garbage: the gateway hangs up (a TLS alert at most).
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + os.urandom(4096))
        got = b""
        while True:
            try:
                chunk = s.recv(4096)
            except ConnectionResetError:
                break
            if not chunk:
                break
            got += chunk
        assert len(got) < 64, got   # nothing but an alert
    gw.proc.wait_log(r"tunnel from 127\.0\.0\.1:\d+ \(agent \?\) closed: "
                     r"\S")

    # TLS, but ALPN h2: refused during the handshake.
    gw.proc.set_mark()
    r = subprocess.run(["openssl", "s_client", "-connect",
                        f"127.0.0.1:{port}", "-alpn", "h2"], input="",
                       capture_output=True, text=True, timeout=20)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert "no application protocol" in out, out
    gw.proc.wait_log(r"\(agent \?\) closed: .*no application protocol")

    # TLS without any ALPN: the handshake may finish, then the gateway
    # drops the peer because it does not speak porch/1.
    gw.proc.set_mark()
    r = subprocess.run(["openssl", "s_client", "-connect",
                        f"127.0.0.1:{port}"], input="",
                       capture_output=True, text=True, timeout=20)
    gw.proc.wait_log(r"closed: peer does not speak porch/1 \(ALPN\)")

    # A porch ALPN, then garbage instead of frames.
    gw.proc.set_mark()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["porch/1"])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw) as s:
            assert s.selected_alpn_protocol() == "porch/1"
            s.sendall(b"\xff" * 64 + os.urandom(1024))
            try:
                while s.recv(4096):
                    pass
            except (ssl.SSLError, ConnectionResetError):
                pass
    gw.proc.wait_log(r"tunnel peer=127\.0\.0\.1:\d+: protocol error")
    gw.proc.wait_log(r"tunnel from 127\.0\.0\.1:\d+ \(agent \?\) closed")

    # The gateway is still up, and the real agent was never disturbed.
    assert gw.proc.alive()
    assert stack.agent.proc.count(r"tunnel up") == 1
    r = curl(f"https://app.example.test:{gw.tls_port}/", "app.example.test",
             gw.tls_port, ca=stack.ca.crt, timeout=10)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hello from app.example.test\n"
