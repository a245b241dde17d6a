"""Flow control: a visitor that stops reading stalls only its own stream,
and neither the gateway nor the agent buffers its download; a visitor
that uploads while the tunnel is busy, or before its stream has credit,
is not read into the gateway's memory."""

import hashlib
import os
import signal
import socket
import ssl
import time

from conftest import Sink, assert_grew_less, curl, pair, rss_kib


def test_slow_visitor_stalls_only_itself(stack, tmp_path):
    big = os.path.join(stack.nginx.root, "big.bin")
    with open(big, "wb") as f:
        for _ in range(200):
            f.write(os.urandom(1 << 20))
    small = os.path.join(stack.nginx.root, "small.bin")
    data = os.urandom(20 << 20)
    with open(small, "wb") as f:
        f.write(data)

    gw_before = rss_kib(stack.gw.proc.pid)
    ag_before = rss_kib(stack.agent.proc.pid)

    # A visitor asks for 200 MiB and then reads nothing at all.
    ctx = ssl.create_default_context(cafile=stack.ca.crt)
    raw = socket.create_connection(("127.0.0.1", stack.gw.tls_port))
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    slow = ctx.wrap_socket(raw, server_hostname="app.example.test")
    slow.sendall(b"GET /big.bin HTTP/1.1\r\nHost: app.example.test\r\n\r\n")
    first = slow.recv(100)
    assert first.startswith(b"HTTP/1.1 200"), first

    # Meanwhile others download completely, byte for byte, several times.
    for i in range(3):
        out = str(tmp_path / f"small{i}.bin")
        r = curl(f"https://app.example.test:{stack.gw.tls_port}/small.bin",
                 "app.example.test", stack.gw.tls_port, ca=stack.ca.crt,
                 timeout=30, out=out)
        assert r.returncode == 0, r.stderr
        with open(out, "rb") as f:
            assert hashlib.sha256(f.read()).digest() == \
                hashlib.sha256(data).digest()

    # The stalled download is held back by credit, not buffered: both
    # daemons grew by far less than the 200 MiB nginx is trying to send
    # (the bound is one window plus socket-sized buffers per stream).
    # (Not under ASan: its allocator keeps freed memory in quarantine, so
    # RSS there says nothing about what the daemons hold.)
    gw_growth = rss_kib(stack.gw.proc.pid) - gw_before
    ag_growth = rss_kib(stack.agent.proc.pid) - ag_before

    # And the stalled stream is intact: it resumes when the visitor reads.
    got = len(first)
    want = 50 << 20
    while got < want:
        b = slow.recv(1 << 20)
        assert b, "stalled download ended early"
        got += len(b)
    slow.close()
    assert_grew_less("the agent", ag_growth, 16 * 1024)
    assert_grew_less("the gateway", gw_growth, 16 * 1024)


def upload_for(port, seconds):
    """Push bytes at the HTTP entry until the gateway stops taking them
    or time is up; returns bytes accepted by the kernel."""
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST / HTTP/1.1\r\nHost: up.example.test\r\n\r\n")
    s.settimeout(0.2)
    chunk = b"u" * (1 << 16)
    sent = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            sent += s.send(chunk)
        except socket.timeout:
            continue
        except OSError:
            break
    return s, sent


def test_visitor_read_waits_on_credit_from_the_start(procs, tmp_path):
    """A request head bigger than the agent's window leaves bytes unsent
    at hand-over: the gateway must stop reading that visitor right there,
    not read (and buffer) everything it uploads."""
    sink = Sink()
    gw, ag = pair(procs, tmp_path, "up.example.test",
                  gw_extra="limits:\n  http_head_bytes: 32KiB",
                  agent_extra="limits:\n  stream_window: 16KiB",
                  http=f"127.0.0.1:{sink.port}")
    before = rss_kib(gw.proc.pid)
    ag.proc.send_signal(signal.SIGSTOP)     # no credit comes back now
    try:
        s = socket.create_connection(("127.0.0.1", gw.http_port))
        s.sendall(b"POST / HTTP/1.1\r\nHost: up.example.test\r\nX-Pad: " +
                  b"p" * 20000 + b"\r\n\r\n")
        s.settimeout(0.2)
        sent, chunk = 0, b"u" * (1 << 16)
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            try:
                sent += s.send(chunk)
            except socket.timeout:
                continue
        grown = rss_kib(gw.proc.pid) - before
        # Kernel socket buffers take some megabytes; the gateway must not
        # take the rest (it took gigabytes before the fix).
        assert sent < 64 << 20, f"gateway accepted {sent} bytes"
        s.close()
    finally:
        ag.proc.send_signal(signal.SIGCONT)
        sink.close()
    assert_grew_less("the gateway", grown, 16 * 1024)


def test_busy_tunnel_does_not_let_visitors_grow_the_gateway(procs, tmp_path):
    """With the agent frozen the tunnel backs up; uploads routed then must
    wait on credit, not pile up in the gateway."""
    sink = Sink()
    gw, ag = pair(procs, tmp_path, "up.example.test",
                  http=f"127.0.0.1:{sink.port}")
    before = rss_kib(gw.proc.pid)
    ag.proc.send_signal(signal.SIGSTOP)
    socks = []
    try:
        total = 0
        # Each stream may put one window (1 MiB) into the tunnel; once
        # the kernel buffers toward the frozen agent are full, newly
        # routed visitors find the tunnel busy.
        for _ in range(48):
            s, sent = upload_for(gw.http_port, 0.05)
            socks.append(s)
            total += sent
        grown = rss_kib(gw.proc.pid) - before
        assert total < 400 << 20, f"gateway accepted {total} bytes"
    finally:
        ag.proc.send_signal(signal.SIGCONT)
        for s in socks:
            s.close()
        sink.close()
    assert_grew_less("the gateway", grown, 48 * 1024)
