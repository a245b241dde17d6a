"""The agent's side: tunnels to several gateways at once, IPv6 entries,
and PROXY protocol v1."""

import socket
import threading

from conftest import Agent, Gateway, Nginx, curl


def test_agent_serves_through_every_gateway(procs, tmp_path, ca):
    """One agent, two gateways: both route to it; stopping one changes
    nothing for visitors of the other."""
    ng = Nginx(procs, str(tmp_path), ca, "app.example.test")
    gw1 = Gateway(procs, str(tmp_path), name="gw1")
    gw2 = Gateway(procs, str(tmp_path), name="gw2")
    ag = Agent(procs, str(tmp_path))
    for gw in (gw1, gw2):
        gw.admit(ag, ["app.example.test"])
        ag.use(gw)
        gw.start()
    ag.serve("app.example.test", tls=ng.tls)
    ag.start()      # waits for "serving" from both gateways
    for gw in (gw1, gw2):
        r = curl(f"https://app.example.test:{gw.tls_port}/",
                 "app.example.test", gw.tls_port, ca=ca.crt)
        assert r.returncode == 0 and r.stdout.startswith("hello"), r.stderr
    gw1.proc.check_clean_exit()
    ag.proc.wait_log(r"gateway gw1 \(127\.0\.0\.1:\d+\): tunnel lost")
    r = curl(f"https://app.example.test:{gw2.tls_port}/",
             "app.example.test", gw2.tls_port, ca=ca.crt)
    assert r.returncode == 0 and r.stdout.startswith("hello"), r.stderr
    assert ag.proc.count(r"gateway gw2 .*tunnel (lost|failed)") == 0


def test_ipv6_entry(procs, tmp_path, ca):
    gw = Gateway(procs, str(tmp_path), ipv6=True)
    ag = Agent(procs, str(tmp_path))
    ng = Nginx(procs, str(tmp_path), ca, "app.example.test")
    gw.admit(ag, ["app.example.test"])
    ag.use(gw)
    ag.serve("app.example.test", tls=ng.tls)
    gw.start()
    port = gw.tls6_port
    gw.proc.wait_log(rf"listening on \[::1\]:{port} \(tls\)", since_mark=False)
    ag.start()
    r = curl(f"https://app.example.test:{port}/", "app.example.test", port,
             ca=ca.crt, extra=["-6", "--resolve",
                               f"app.example.test:{port}:[::1]"])
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hello from app.example.test\n"
    gw.proc.wait_log(r"entry=tls peer=\[::1\]:\d+ sni=app\.example\.test "
                     r"agent=agent")


def test_proxy_protocol_v1(procs, tmp_path):
    got = {}
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def serve():
        c, _ = srv.accept()
        c.settimeout(10)
        data = b""
        while b"\r\n\r\n" not in data:
            b = c.recv(4096)
            if not b:
                break
            data += b
        got["data"] = data
        c.sendall(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
        c.close()
    t = threading.Thread(target=serve, daemon=True)
    t.start()

    gw = Gateway(procs, str(tmp_path))
    ag = Agent(procs, str(tmp_path))
    gw.admit(ag, ["v1.example.test"])
    ag.use(gw)
    ag.serve("v1.example.test", http=f"127.0.0.1:{srv.getsockname()[1]}",
             proxy="v1")
    gw.start()
    ag.start()
    v = socket.socket()
    v.bind(("127.0.0.1", 0))
    vport = v.getsockname()[1]
    v.connect(("127.0.0.1", gw.http_port))
    v.sendall(b"GET / HTTP/1.1\r\nHost: v1.example.test\r\n\r\n")
    reply = v.recv(4096)
    v.close()
    t.join(10)
    srv.close()
    assert reply.startswith(b"HTTP/1.1 204"), reply
    line, _, rest = got["data"].partition(b"\r\n")
    assert line == (f"PROXY TCP4 127.0.0.1 127.0.0.1 {vport} "
                    f"{gw.http_port}").encode()
    assert rest.startswith(b"GET / HTTP/1.1\r\nHost: v1.example.test")


def test_keepalive_measures_rtt(procs, tmp_path):
    """Pings run both ways and their round trip is measured and logged."""
    gw = Gateway(procs, str(tmp_path),
                 extra="timeouts:\n  keepalive: 100ms\n  dead_peer: 2s")
    ag = Agent(procs, str(tmp_path))
    gw.admit(ag, ["app.example.test"])
    ag.use(gw)
    ag.serve("app.example.test", http="127.0.0.1:9")
    gw.start(args=["-v"])
    ag.start()
    m = gw.proc.wait_log(r"tunnel peer=127\.0\.0\.1:\d+: rtt (\d+\.\d+) ms")
    assert 0 < float(m.group(1)) < 1000
    ag.proc.check_clean_exit()
    gw.proc.wait_log(r"closed: .*\(last rtt=\d+\.\d{3}ms\)")
