"""SIGTERM: the gateway and the agent drain what is in flight and stop
cleanly, whatever state their connections are in (a visitor mid-hello,
gateways that stopped answering)."""

import signal
import socket
import time

import pytest

from conftest import (Agent, Gateway, Nginx, Sink, big_file, curl, finish,
                      pair, slow_download)

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
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", gw.tls_port), timeout=2)
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


def test_gateway_sigterm_with_visitor_mid_hello(procs, tmp_path):
    sink = Sink()
    gw, ag = pair(procs, tmp_path, "up.example.test",
                  http=f"127.0.0.1:{sink.port}")
    half = socket.create_connection(("127.0.0.1", gw.tls_port))
    half.sendall(bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01]))
    half2 = socket.create_connection(("127.0.0.1", gw.http_port))
    half2.sendall(b"GET / HTTP/1.1\r\nHo")
    gw.proc.check_clean_exit()      # exit 0, no sanitizer report
    ag.proc.wait_log(r"gateway gw is going away|tunnel lost")
    half.close()
    half2.close()
    sink.close()


def test_agent_sigterm_with_two_stalled_gateways(procs, tmp_path):
    sink = Sink()
    gw1 = Gateway(procs, str(tmp_path), name="gw1")
    gw2 = Gateway(procs, str(tmp_path), name="gw2")
    ag = Agent(procs, str(tmp_path))
    for gw in (gw1, gw2):
        gw.admit(ag, ["up.example.test"])
        ag.use(gw)
        gw.start()
    ag.serve("up.example.test", http=f"127.0.0.1:{sink.port}")
    ag.start()
    gw1.proc.send_signal(signal.SIGSTOP)
    gw2.proc.send_signal(signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        ag.proc.check_clean_exit()
        assert time.monotonic() - t0 < 6
    finally:
        gw1.proc.send_signal(signal.SIGCONT)
        gw2.proc.send_signal(signal.SIGCONT)
        sink.close()
