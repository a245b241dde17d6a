"""How connections end: half-closes and resets pass through the gateway,
the tunnel and the agent in both directions, with real sockets at both
ends; a reset never turns into a clean end."""

import socket
import struct
import threading

from conftest import Sink, pair


class HalfCloseBackend:
    """One connection.  mode 'read-to-eof': read until the visitor's FIN,
    then answer with what it got and close.  mode 'shut-first': send a
    greeting, shut down the write side, then read until EOF and report
    what arrived after the shutdown."""

    def __init__(self, mode):
        self.mode = mode
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.got = b""
        self.error = None
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        try:
            self.sock.settimeout(20)
            c, _ = self.sock.accept()
            c.settimeout(20)
            if self.mode == "read-to-eof":
                while True:
                    b = c.recv(65536)
                    if not b:
                        break
                    self.got += b
                c.sendall(b"got %d bytes\n" % len(self.got))
                c.close()
            else:
                head = b""
                while b"\r\n\r\n" not in head:
                    b = c.recv(65536)
                    if not b:
                        raise AssertionError("EOF before the request head")
                    head += b
                c.sendall(b"greeting\n")
                c.shutdown(socket.SHUT_WR)
                while True:
                    b = c.recv(65536)
                    if not b:
                        break
                    self.got += b
                c.close()
        except Exception as e:  # reported by the test
            self.error = e
        finally:
            self.sock.close()


def read_all(s):
    data = b""
    while True:
        b = s.recv(65536)
        if not b:
            return data
        data += b


def test_visitor_half_close_reaches_backend(procs, tmp_path):
    be = HalfCloseBackend("read-to-eof")
    gw, _ = pair(procs, tmp_path, "half.example.test",
                 http=f"127.0.0.1:{be.port}")
    s = socket.create_connection(("127.0.0.1", gw.http_port), timeout=20)
    body = b"x" * 300000
    s.sendall(b"POST / HTTP/1.1\r\nHost: half.example.test\r\n\r\n" + body)
    s.shutdown(socket.SHUT_WR)       # the backend answers only after EOF
    reply = read_all(s)
    s.close()
    be.t.join(20)
    assert be.error is None, be.error
    sent = len(b"POST / HTTP/1.1\r\nHost: half.example.test\r\n\r\n") + len(body)
    assert reply == b"got %d bytes\n" % sent


def test_backend_half_close_reaches_visitor(procs, tmp_path):
    be = HalfCloseBackend("shut-first")
    gw, _ = pair(procs, tmp_path, "half.example.test",
                 http=f"127.0.0.1:{be.port}")
    s = socket.create_connection(("127.0.0.1", gw.http_port), timeout=20)
    s.sendall(b"GET / HTTP/1.1\r\nHost: half.example.test\r\n\r\n")
    # The backend's FIN arrives as EOF while our side is still open.
    assert read_all(s) == b"greeting\n"
    s.sendall(b"after the backend's FIN")
    s.shutdown(socket.SHUT_WR)
    be.t.join(20)
    s.close()
    assert be.error is None, be.error
    assert be.got == b"after the backend's FIN"


def test_visitor_reset_reaches_backend_as_reset(procs, tmp_path):
    sink = Sink()
    gw, ag = pair(procs, tmp_path, "up.example.test",
                  http=f"127.0.0.1:{sink.port}")
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


def test_visitor_reset_right_after_its_head(procs, tmp_path):
    """A visitor that sends its request head and resets at once: the
    gateway read the reset while handing the connection to its stream
    and freed the stream under the caller (a use-after-free ASan saw on
    the first such visitor).  The gateway must go on serving, and exit
    cleanly at the end (no sanitizer report)."""
    sink = Sink()
    gw, ag = pair(procs, tmp_path, "up.example.test",
                  http=f"127.0.0.1:{sink.port}")
    n = 100
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", gw.http_port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                     struct.pack("ii", 1, 0))
        s.sendall(b"GET / HTTP/1.1\r\nHost: up.example.test\r\n\r\n")
        s.close()
    # Then a visitor that stays: its head must reach the backend.
    before = sink.received
    s = socket.create_connection(("127.0.0.1", gw.http_port))
    head = b"GET /last HTTP/1.1\r\nHost: up.example.test\r\n\r\n"
    s.sendall(head)
    sink.wait_received(before + len(head))
    s.close()
    assert gw.proc.alive() and ag.proc.alive()
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
    gw, ag = pair(procs, tmp_path, "up.example.test",
                  http=f"127.0.0.1:{srv.getsockname()[1]}")
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
