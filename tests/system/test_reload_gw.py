"""SIGHUP on the gateway: agents, claims, listeners and peers change while
established connections carry on."""

import signal
import socket
import time

import pytest

from conftest import (Agent, Gateway, Nginx, Sink, big_file, curl, finish,
                      free_port, http_status, pair, slow_download, tls_visit)

HOST = "app.example.test"


def test_reload_keeps_transfers_and_applies_changes(procs, tmp_path, ca):
    gw = Gateway(procs, str(tmp_path))
    a1 = Agent(procs, str(tmp_path), name="a1")
    a2 = Agent(procs, str(tmp_path), name="a2")
    n1 = Nginx(procs, str(tmp_path), ca, HOST)
    n2 = Nginx(procs, str(tmp_path), ca, "two.example.test")
    gw.admit(a1, [HOST, "extra.example.test"])
    a1.use(gw)
    a1.serve(HOST, tls=n1.tls, http=n1.http)
    a1.serve("extra.example.test", http=n1.http)
    a2.use(gw)
    a2.serve("two.example.test", tls=n2.tls)
    gw.start()
    a1.start()
    a2.start(wait_serving=False)
    a2.proc.wait_log(r"refused by peer: agent key .* is not admitted")

    # A transfer in flight across the reload.
    want = big_file(n1.root)
    out = str(tmp_path / "got.bin")
    dl = slow_download(procs, gw, ca, HOST, out, rate="8M")
    try:
        # Reload: admit a2, take extra.example.test away from a1, and
        # move the HTTP entry to a new port.
        old_http = gw.http_port
        gw.http_port = free_port()
        gw.agents = [("a1", a1.pub, [HOST]),
                     ("a2", a2.pub, ["two.example.test"])]
        gw.proc.set_mark()
        gw.write_config()
        gw.proc.send_signal(signal.SIGHUP)
        gw.proc.wait_log(r"reloaded .*: 2 agent\(s\) admitted")
        gw.proc.wait_log(r"may no longer claim extra\.example\.test")
        a1.proc.wait_log(r"refused hostname extra\.example\.test: no "
                         r"longer authorized")
        # a2 gets in on its next try.
        a2.proc.wait_log(r"gateway gw: serving two\.example\.test",
                         timeout=15)
        r = curl(f"https://two.example.test:{gw.tls_port}/",
                 "two.example.test", gw.tls_port, ca=ca.crt)
        assert r.returncode == 0 and "two.example.test" in r.stdout
        assert http_status(gw.http_port, "extra.example.test") == 404
        assert http_status(gw.http_port, HOST) == 200
        with pytest.raises(ConnectionRefusedError):
            http_status(old_http, HOST)     # the old HTTP port is closed
    finally:
        finish(dl, out, want)
    # a1's tunnel was never dropped.
    assert a1.proc.count(r"tunnel lost") == 0


def test_broken_reload_keeps_running(procs, tmp_path, ca):
    gw = Gateway(procs, str(tmp_path))
    ag = Agent(procs, str(tmp_path))
    ng = Nginx(procs, str(tmp_path), ca, HOST)
    gw.admit(ag, [HOST])
    ag.use(gw)
    ag.serve(HOST, tls=ng.tls)
    gw.start()
    ag.start()
    with open(gw.conf, "a") as f:
        f.write("bogus_key: 1\n")
    gw.proc.send_signal(signal.SIGHUP)
    gw.proc.wait_log(r"reload failed, keeping the running configuration: "
                     r".*gateway\.yaml:\d+:\d+: .*bogus_key")
    assert tls_visit(gw.tls_port, HOST) == "ok"


def test_reload_adds_a_peer(procs, tmp_path, ca):
    g0 = Gateway(procs, str(tmp_path), name="g0",
                 extra="timeouts:\n  announce: 200ms")
    g1 = Gateway(procs, str(tmp_path), name="g1",
                 extra="timeouts:\n  announce: 200ms")
    ag = Agent(procs, str(tmp_path))
    ng = Nginx(procs, str(tmp_path), ca, HOST)
    g0.admit(ag, [HOST])
    ag.use(g0)
    ag.serve(HOST, tls=ng.tls)
    g0.start()
    g1.start()
    ag.start()
    assert tls_visit(g1.tls_port, HOST) == "TLSV1_UNRECOGNIZED_NAME"
    for a, b in ((g0, g1), (g1, g0)):
        a.peer(b)
        a.write_config()
        a.proc.send_signal(signal.SIGHUP)
        a.proc.wait_log(r"reloaded .* 1 peer\(s\)", since_mark=False)
    g1.proc.wait_log(r"peer g0: link up", since_mark=False, timeout=15)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 5:
        if tls_visit(g1.tls_port, HOST) == "ok":
            break
    r = curl(f"https://{HOST}:{g1.tls_port}/", HOST, g1.tls_port, ca=ca.crt)
    assert r.returncode == 0 and r.stdout == f"hello from {HOST}\n", r.stderr


def test_reload_moving_a_listener_with_a_visitor_mid_head(procs, tmp_path):
    sink = Sink()
    gw, ag = pair(procs, tmp_path, "up.example.test",
                  http=f"127.0.0.1:{sink.port}")
    s = socket.create_connection(("127.0.0.1", gw.http_port), timeout=10)
    s.sendall(b"POST / HTTP/1.1\r\n")           # the head is not complete
    gw.http_port = free_port()
    gw.proc.set_mark()
    gw.write_config()
    gw.proc.send_signal(signal.SIGHUP)
    gw.proc.wait_log(r"no longer listening on 127\.0\.0\.1:\d+")
    # The rest of the head arrives after its listener is gone.
    s.sendall(b"Host: up.example.test\r\n\r\nbody")
    sink.wait_received(4)
    s.close()
    assert gw.proc.alive()
    sink.close()
