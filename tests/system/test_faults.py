"""Faults found in review, kept fixed: unbounded reads while the tunnel
is busy, shutdown with work in flight, and resets that must stay resets."""

import signal
import socket
import struct
import threading
import time

from conftest import ASAN, Agent, Gateway


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


class Sink:
    """A backend that reads and discards, recording how each connection
    ended: 'eof' or 'reset'."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.ends = []
        self.received = 0
        self.cond = threading.Condition()
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.drain, args=(c,),
                             daemon=True).start()

    def drain(self, c):
        end = "eof"
        try:
            while True:
                b = c.recv(1 << 16)
                if not b:
                    break
                with self.cond:
                    self.received += len(b)
                    self.cond.notify_all()
        except ConnectionResetError:
            end = "reset"
        with self.cond:
            self.ends.append(end)
            self.cond.notify_all()
        c.close()

    def wait_received(self, n, timeout=10):
        with self.cond:
            assert self.cond.wait_for(lambda: self.received >= n, timeout), \
                f"backend got {self.received} of {n} bytes"

    def wait_end(self, timeout=10):
        with self.cond:
            assert self.cond.wait_for(lambda: self.ends, timeout), \
                "backend connection did not end"
            return self.ends[0]

    def close(self):
        self.sock.close()


def pair(procs, tmp_path, backend_port, gw_extra=""):
    gw = Gateway(procs, str(tmp_path), extra=gw_extra)
    ag = Agent(procs, str(tmp_path))
    gw.admit(ag, ["up.example.test"])
    ag.use(gw)
    ag.serve("up.example.test", http=f"127.0.0.1:{backend_port}")
    gw.start()
    ag.start()
    return gw, ag


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
    gw = Gateway(procs, str(tmp_path),
                 extra="limits:\n  http_head_bytes: 32KiB")
    ag = Agent(procs, str(tmp_path),
               extra="limits:\n  stream_window: 16KiB")
    gw.admit(ag, ["up.example.test"])
    ag.use(gw)
    ag.serve("up.example.test", http=f"127.0.0.1:{sink.port}")
    gw.start()
    ag.start()
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
        if not ASAN:
            assert grown < 16 * 1024, f"gateway grew {grown} KiB"
        s.close()
    finally:
        ag.proc.send_signal(signal.SIGCONT)
        sink.close()


def test_busy_tunnel_does_not_let_visitors_grow_the_gateway(procs, tmp_path):
    """With the agent frozen the tunnel backs up; uploads routed then must
    wait on credit, not pile up in the gateway."""
    sink = Sink()
    gw, ag = pair(procs, tmp_path, sink.port)
    before = rss_kib(gw.proc.pid)
    ag.proc.send_signal(signal.SIGSTOP)
    socks = []
    try:
        total = 0
        # Each stream may put one window (256 KiB) into the tunnel; once
        # the kernel buffers toward the frozen agent are full, newly
        # routed visitors find the tunnel busy.
        for _ in range(48):
            s, sent = upload_for(gw.http_port, 0.05)
            socks.append(s)
            total += sent
        grown = rss_kib(gw.proc.pid) - before
        if not ASAN:
            assert grown < 48 * 1024, f"gateway grew {grown} KiB"
        assert total < 400 << 20, f"gateway accepted {total} bytes"
    finally:
        ag.proc.send_signal(signal.SIGCONT)
        for s in socks:
            s.close()
        sink.close()


def test_gateway_sigterm_with_visitor_mid_hello(procs, tmp_path):
    sink = Sink()
    gw, ag = pair(procs, tmp_path, sink.port)
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


def test_visitor_reset_reaches_backend_as_reset(procs, tmp_path):
    sink = Sink()
    gw, ag = pair(procs, tmp_path, sink.port)
    v = socket.create_connection(("127.0.0.1", gw.http_port))
    v.sendall(b"POST / HTTP/1.1\r\nHost: up.example.test\r\n\r\n" +
              b"x" * 1000)
    sink.wait_received(1000)        # the stream reached the backend
    # Close with a TCP reset, not a FIN.
    v.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    v.close()
    assert sink.wait_end() == "reset"
    gw.proc.wait_log(r"entry=http .*reason=local read error|"
                     r"entry=http .*reason=cancel")
    sink.close()


def test_backend_reset_reaches_visitor_as_reset(procs, tmp_path):
    """A backend that aborts: the visitor must not see a clean end."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def abort():
        c, _ = srv.accept()
        c.recv(4096)
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\npartial")
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                     struct.pack("ii", 1, 0))
        c.close()
    threading.Thread(target=abort, daemon=True).start()
    gw, ag = pair(procs, tmp_path, srv.getsockname()[1])
    v = socket.create_connection(("127.0.0.1", gw.http_port), timeout=10)
    v.sendall(b"GET / HTTP/1.1\r\nHost: up.example.test\r\n\r\n")
    got, end = b"", "eof"
    try:
        while True:
            b = v.recv(4096)
            if not b:
                break
            got += b
    except ConnectionResetError:
        end = "reset"
    v.close()
    srv.close()
    assert end == "reset", f"visitor saw a clean end after {got!r}"
