"""Waiting on a condition with a deadline: the only way a test waits.
A bare sleep before an assertion either wastes time or, on a loaded
machine, is too short."""

import time


def wait_until(fn, what, timeout=10.0, interval=0.02):
    """Call fn until it returns something true; return that.  Fails
    with "no WHAT within TIMEOUT s" at the deadline.  what may be a
    string or a callable giving one (for details known only then)."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            msg = what() if callable(what) else what
            raise AssertionError(f"no {msg} within {timeout}s")
        time.sleep(interval)
