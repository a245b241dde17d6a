"""Processes a test starts: each is registered with Procs and stopped by
PID when the test ends, pass or fail.  Readiness is a log line or a
successful connect.  Under PORCH_ASAN=1 porch daemons get sanitizer
options and every clean stop is checked for sanitizer and leak reports.
"""

import os
import re
import resource
import signal
import subprocess

import pytest

from .paths import ASAN, SANITIZER_MARKS
from .wait import wait_until


def nofile(n):
    """A preexec_fn for Procs.start: soft and hard open files limit n, as
    a small LimitNOFILE would set (a daemon raises its soft limit to the
    hard one, so both must be n)."""
    return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))


class Proc:
    """A started process, its log file and a cursor for wait_log."""

    def __init__(self, name, argv, logdir, env=None, sanitized=False,
                 preexec_fn=None):
        self.name = name
        self.argv = argv
        self.sanitized = sanitized
        self.log_path = os.path.join(logdir, f"{name}.log")
        self.logf = open(self.log_path, "ab")
        self.mark = os.path.getsize(self.log_path)
        e = dict(os.environ)
        if sanitized:
            e["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0"
            e["UBSAN_OPTIONS"] = "print_stacktrace=1"
        if env:
            e.update(env)
        self.p = subprocess.Popen(argv, stdout=self.logf,
                                  stderr=subprocess.STDOUT, env=e,
                                  preexec_fn=preexec_fn)
        self.pid = self.p.pid

    def log(self):
        with open(self.log_path, "r", errors="replace") as f:
            return f.read()

    def log_since_mark(self):
        with open(self.log_path, "rb") as f:
            f.seek(self.mark)
            return f.read().decode(errors="replace")

    def set_mark(self):
        self.mark = os.path.getsize(self.log_path)

    def wait_log(self, pattern, timeout=10.0, since_mark=True):
        """Wait until the log (since the mark) matches pattern; returns
        the match.  Fails early if the process died."""
        rx = re.compile(pattern)

        def match():
            text = self.log_since_mark() if since_mark else self.log()
            m = rx.search(text)
            if not m and self.p.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited ({self.p.returncode}) before "
                    f"/{pattern}/; log:\n{self.log()[-3000:]}")
            return m
        return wait_until(match, lambda: f"/{pattern}/ from {self.name}; "
                          f"log:\n{self.log()[-3000:]}", timeout)

    def wait_count(self, pattern, n, timeout=15.0, since_mark=True):
        """Wait until the log (since the mark) matches pattern at least
        n times; returns the count.  Fails early if the process died."""
        rx = re.compile(pattern)

        def enough():
            text = self.log_since_mark() if since_mark else self.log()
            got = len(rx.findall(text))
            if got < n:
                assert self.alive(), \
                    f"{self.name} exited:\n{self.log()[-3000:]}"
            return got if got >= n else 0
        return wait_until(enough, lambda: (
            f"{n} of /{pattern}/ from {self.name}; log:\n"
            f"{self.log()[-3000:]}"), timeout)

    def count(self, pattern):
        return len(re.findall(pattern, self.log()))

    def alive(self):
        return self.p.poll() is None

    def send_signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Stop by PID; returns the exit code."""
        if self.alive():
            os.kill(self.pid, sig)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.p.wait()
        self.logf.close()
        return self.p.returncode

    def check_clean_exit(self, already_signalled=False):
        """A daemon stopped with SIGTERM must exit 0 with no sanitizer
        or leak report.  already_signalled: the test sent the signal;
        just wait (a second SIGTERM during the final cleanup would hit
        the default handler)."""
        if already_signalled:
            try:
                self.p.wait(60)
            except subprocess.TimeoutExpired:
                pass
        rc = self.stop()
        text = self.log()
        for mark in SANITIZER_MARKS:
            assert mark not in text, f"{self.name}: {mark}\n{text[-5000:]}"
        assert rc == 0, f"{self.name} exited {rc}\n{text[-3000:]}"


class Procs:
    def __init__(self, tmp):
        self.tmp = tmp
        self.all = []

    def start(self, name, argv, env=None, daemon=False, preexec_fn=None):
        """daemon: a porch binary (sanitizer options, clean-exit check).
        preexec_fn: run in the child before exec (e.g. nofile(n))."""
        p = Proc(name, argv, self.tmp, env=env, sanitized=daemon and ASAN,
                 preexec_fn=preexec_fn)
        p.daemon = daemon
        self.all.append(p)
        return p

    def stop_all(self):
        """Stop everything; porch daemons still running must exit
        cleanly (status 0, no sanitizer or leak report)."""
        problems = []
        for p in reversed(self.all):
            try:
                if p.daemon and p.alive():
                    p.check_clean_exit()
                else:
                    p.stop(timeout=5)
            except AssertionError as e:
                problems.append(str(e))
            except Exception as e:  # keep stopping the others
                problems.append(f"{p.name}: {e!r}")
        return problems


def rss_kib(pid):
    """Resident memory of a running process, KiB (OSError once it is
    gone)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def nofile_limits(pid):
    """(soft, hard) open files limit of a running process."""
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
    raise AssertionError("no 'Max open files' line")


def assert_grew_less(what, grown_kib, limit_kib):
    """A bound on RSS growth.  Under ASan its allocator keeps freed
    memory in quarantine, so RSS says nothing about what a daemon holds:
    there the test is reported skipped, not passed.  Call it after every
    other assertion of the test (it ends the test under ASan)."""
    if ASAN:
        pytest.skip(f"RSS bound not checked under ASan ({what} grew "
                    f"{grown_kib} KiB; the rest of the test passed)")
    assert grown_kib < limit_kib, f"{what} grew {grown_kib} KiB"
