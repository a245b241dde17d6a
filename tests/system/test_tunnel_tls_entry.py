"""Agents on the gateway's TLS entry (a home that may only dial out to
443): ALPN porch/1 and the gateway's own name make a tunnel; anything
else for that name is a visitor with no route, and an old TLS version
with those marks fails its handshake without harm."""

import subprocess

from conftest import Agent, Gateway, Nginx, Sink, curl, pair, tls_visit

HOST = "app.example.test"


def test_agent_reaches_tunnel_over_tls_port(procs, tmp_path, ca):
    """A home that allows only outbound 443: the agent dials the
    gateway's TLS entry with ALPN porch/1 and the gateway's own name."""
    gw = Gateway(procs, str(tmp_path))
    ag = Agent(procs, str(tmp_path))
    ng = Nginx(procs, str(tmp_path), ca, HOST)
    gw.admit(ag, [HOST])
    ag.use(gw, port=gw.tls_port, server_name="gw.example.test")
    ag.serve(HOST, tls=ng.tls, http=ng.http)
    gw.start()
    ag.start()
    gw.proc.wait_log(r"tunnel from 127\.0\.0\.1:\d+ \(on the TLS entry\): "
                     r"agent agent .* authenticated", since_mark=False)
    r = curl(f"https://{HOST}:{gw.tls_port}/", HOST, gw.tls_port,
             ca=ca.crt)
    assert r.returncode == 0 and r.stdout == f"hello from {HOST}\n", r.stderr
    # Visitors for the gateway's own name without ALPN porch/1 are still
    # visitors: no route.
    assert tls_visit(gw.tls_port, "gw.example.test") == \
        "TLSV1_UNRECOGNIZED_NAME"
    # And the tunnel listener itself was not used.
    assert gw.proc.count(r"tunnel from 127\.0\.0\.1:\d+: agent") == 0


def test_tls12_hello_for_the_gateway_name_is_harmless(procs, tmp_path):
    """An agent-looking ClientHello (the gateway's name, ALPN porch/1)
    that TLS 1.3 must refuse: the handshake fails, the gateway lives."""
    sink = Sink()
    gw, ag = pair(procs, tmp_path, "up.example.test",
                  http=f"127.0.0.1:{sink.port}")
    for _ in range(3):
        subprocess.run(["openssl", "s_client", "-connect",
                        f"127.0.0.1:{gw.tls_port}", "-servername",
                        "gw.example.test", "-alpn", "porch/1", "-tls1_2"],
                       input=b"", capture_output=True, timeout=10)
    gw.proc.wait_log(r"tunnel from .* closed: TLS error", since_mark=False)
    assert gw.proc.alive()
    assert tls_visit(gw.tls_port, "nope.example.test") == \
        "TLSV1_UNRECOGNIZED_NAME"
    sink.close()
