"""Half-closes pass through the gateway, the tunnel and the agent in both
directions, with real sockets at both ends."""

import socket
import threading

from conftest import Agent, Gateway


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


def start_stack(procs, tmp_path, backend):
    gw = Gateway(procs, str(tmp_path))
    ag = Agent(procs, str(tmp_path))
    gw.admit(ag, ["half.example.test"])
    ag.use(gw)
    ag.serve("half.example.test", http=f"127.0.0.1:{backend.port}")
    gw.start()
    ag.start()
    return gw


def read_all(s):
    data = b""
    while True:
        b = s.recv(65536)
        if not b:
            return data
        data += b


def test_visitor_half_close_reaches_backend(procs, tmp_path):
    be = HalfCloseBackend("read-to-eof")
    gw = start_stack(procs, tmp_path, be)
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
    gw = start_stack(procs, tmp_path, be)
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
