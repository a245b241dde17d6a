"""Graceful drain on SIGTERM, and agents that reach a gateway only on its
TLS port."""

import socket

from conftest import (Agent, Gateway, Nginx, big_file, curl, finish,
                      slow_download, tls_visit)

HOST = "app.example.test"


def test_gateway_sigterm_drains_transfer(procs, tmp_path, ca):
    gw = Gateway(procs, str(tmp_path), extra="timeouts:\n  drain: 30s")
    ag = Agent(procs, str(tmp_path))
    ng = Nginx(procs, str(tmp_path), ca, HOST)
    gw.admit(ag, [HOST])
    ag.use(gw)
    ag.serve(HOST, tls=ng.tls)
    gw.start()
    ag.start()
    want = big_file(ng.root, 30)
    out = str(tmp_path / "got.bin")
    dl = slow_download(procs, gw, ca, HOST, out, rate="10M")
    try:
        # Bytes flow: stop the gateway mid-transfer.
        gw.proc.set_mark()
        gw.proc.send_signal(15)
        gw.proc.wait_log(r"draining 1 visitor connection")
        # New visitors are refused at once: the listeners are closed.
        try:
            socket.create_connection(("127.0.0.1", gw.tls_port),
                                     timeout=2).close()
            refused = False
        except ConnectionRefusedError:
            refused = True
        assert refused
    finally:
        finish(dl, out, want)
    gw.proc.check_clean_exit(already_signalled=True)
    ag.proc.wait_log(r"gateway gw is going away: gateway stopping",
                     since_mark=False)


def test_agent_sigterm_moves_new_visitors(procs, tmp_path, ca):
    """Two replicas; the preferred one gets SIGTERM during a transfer:
    new visitors go to the other at once, the transfer finishes."""
    gw = Gateway(procs, str(tmp_path))
    a0 = Agent(procs, str(tmp_path), name="r0",
               extra="timeouts:\n  drain: 30s")
    a1 = Agent(procs, str(tmp_path), name="r1")
    n0 = Nginx(procs, str(tmp_path), ca, HOST, tag="r0")
    n1 = Nginx(procs, str(tmp_path), ca, HOST, tag="r1")
    for a, n, prio in ((a0, n0, 10), (a1, n1, 20)):
        gw.admit(a, [HOST])
        a.use(gw)
        a.serve(HOST, tls=n.tls, priority=prio)
    gw.start()
    a0.start()
    a1.start()
    want = big_file(n0.root, 30)
    out = str(tmp_path / "got.bin")
    dl = slow_download(procs, gw, ca, HOST, out, rate="10M")
    try:
        a0.proc.send_signal(15)
        gw.proc.wait_log(r"agent r0 is going away: agent stopping")
        for _ in range(5):
            r = curl(f"https://{HOST}:{gw.tls_port}/", HOST, gw.tls_port,
                     ca=ca.crt)
            assert r.returncode == 0 and r.stdout == "hello from r1\n", \
                r.stderr
        assert a0.proc.alive()          # still finishing the transfer
    finally:
        finish(dl, out, want)
    a0.proc.check_clean_exit(already_signalled=True)


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
