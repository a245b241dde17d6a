"""A visitor a peer gateway hands over costs what a direct one does: at
max_connections the gateway refuses it too (issue 14), with a code the
peer may replay elsewhere, instead of letting peers push it past its
limit."""

import socket
import ssl

from conftest import Agent, Gateway, Nginx, curl

HOST = "app.example.test"


def test_peer_visitors_count_against_max_connections(procs, tmp_path, ca):
    tmp = str(tmp_path)
    g0 = Gateway(procs, tmp, name="g0", extra="timeouts:\n  announce: 200ms\n"
                 "limits:\n  max_connections: 1")
    g1 = Gateway(procs, tmp, name="g1", extra="timeouts:\n  announce: 200ms")
    g0.peer(g1)
    g1.peer(g0)
    ag = Agent(procs, tmp)
    ng = Nginx(procs, tmp, ca, HOST)
    g0.admit(ag, [HOST])
    ag.use(g0)
    ag.serve(HOST, tls=ng.tls)
    g0.start()
    g1.start()
    ag.start()
    g1.proc.wait_log(r"peer g0: link up", since_mark=False)
    # Through g1 while g0 has room: served over the peer hop.
    r = curl(f"https://{HOST}:{g1.tls_port}/", HOST, g1.tls_port,
             ca=ca.crt, timeout=10)
    assert r.returncode == 0, r.stderr
    # One visitor holds g0's only slot (a TLS session kept open).
    ctx = ssl.create_default_context(cafile=ca.crt)
    raw = socket.create_connection(("127.0.0.1", g0.tls_port), timeout=10)
    held = ctx.wrap_socket(raw, server_hostname=HOST)
    try:
        g0.proc.set_mark()
        r = curl(f"https://{HOST}:{g1.tls_port}/", HOST, g1.tls_port,
                 ca=ca.crt, timeout=10)
        assert r.returncode != 0, "a peer's visitor went past max_connections"
        g0.proc.wait_log(r"max_connections \(1\) reached: refusing "
                         r"visitors from peer g1")
        assert "via=peer:g1" not in g0.proc.log_since_mark()
    finally:
        held.close()
