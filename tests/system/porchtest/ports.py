"""Loopback ports: fresh ones from the kernel, and waiting for one to
listen."""

import socket

from .wait import wait_until

_ports_given = set()


def free_port(family=socket.AF_INET, addr="127.0.0.1"):
    """A port nobody listens on right now (the kernel picks it), and
    never one this run handed out before: the kernel may offer a port
    again as soon as the probing socket is closed."""
    while True:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((addr, 0))
            port = s.getsockname()[1]
        if port not in _ports_given:
            _ports_given.add(port)
            return port


def wait_port(port, host="127.0.0.1", timeout=10.0):
    """Returns once something accepts on host:port; TimeoutError if
    nothing does within timeout."""
    def listens():
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            return False
    # TimeoutError, as callers (bench/compare.py) expect.
    try:
        wait_until(listens, f"listener on {host}:{port}", timeout)
    except AssertionError as e:
        raise TimeoutError(str(e)) from None
