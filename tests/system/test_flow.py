"""Flow control: a visitor that stops reading stalls only its own stream,
and neither the gateway nor the agent buffers its download."""

import hashlib
import os
import socket
import ssl

from conftest import ASAN, curl


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


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
    if not ASAN:
        assert gw_growth < 16 * 1024, f"gateway grew {gw_growth} KiB"
        assert ag_growth < 16 * 1024, f"agent grew {ag_growth} KiB"

    # And the stalled stream is intact: it resumes when the visitor reads.
    got = len(first)
    want = 50 << 20
    while got < want:
        b = slow.recv(1 << 20)
        assert b, "stalled download ended early"
        got += len(b)
    slow.close()
