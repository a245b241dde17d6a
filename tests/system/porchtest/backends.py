"""Backends written in Python, for what nginx cannot show: how a
connection ended, and how many bytes arrived."""

import socket
import threading


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
