"""The benchmark harness keeps its promise to stop what it started.

bench/compare.py starts nginx, two HAProxies, a private sshd and its
`ssh -R` client, three gateways, two agents and curls.  Interrupted in
the middle of a run (SIGINT to the harness alone, as `kill -INT` would,
not to its process group as a terminal's Ctrl-C does), it must stop
every one of them and remove its scratch directory.  `make bench-smoke`
proves that a full run works; this proves the interrupted one.

Runs once, with the normal build: it tests the harness, not the daemons
(the sanitizer pass skips it).
"""

import glob
import os
import signal
import subprocess
import sys
import time

import pytest

import conftest as fx

sys.path.insert(0, os.path.join(fx.ROOT, "bench"))
import compare  # noqa: E402  (its process walk: descendants)

COMPARE = os.path.join(fx.ROOT, "bench", "compare.py")
TLS_RATE = os.path.join(fx.BUILD, "tls_rate")


def alive(pid):
    """Running, and not a zombie waiting for its parent."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return False
    return s[s.rindex(")") + 2] != "Z"


@pytest.mark.skipif(fx.ASAN, reason="tests the harness; runs in the "
                    "normal pass only")
def test_interrupted_bench_stops_everything():
    if not os.access(TLS_RATE, os.X_OK):
        pytest.fail(f"{TLS_RATE} is missing: make {TLS_RATE}")
    before = set(glob.glob("/dev/shm/porch-compare-*"))
    env = dict(os.environ, PYTHONUNBUFFERED="1",
               PORCH_BUILD=os.path.relpath(fx.BUILD, fx.ROOT))
    p = subprocess.Popen([sys.executable, COMPARE, "--quick", "--out", "-"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, env=env, cwd=fx.ROOT)
    started = []
    out = []
    try:
        # The first M1 figure: every setup is up, the next download runs.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = p.stdout.readline()
            if not line:
                break
            out.append(line)
            if line.startswith("M1 run 1"):
                break
        assert out and out[-1].startswith("M1 run 1"), \
            "the harness never reached M1:\n" + "".join(out)
        started = compare.descendants(p.pid)
        names = set()
        for pid in started:
            try:
                with open(f"/proc/{pid}/comm") as f:
                    names.add(f.read().strip())
            except OSError:
                pass
        # What there is to stop (names as the kernel shortens them).
        for want in ("nginx", "haproxy", "sshd", "ssh", "porch-gateway",
                     "porch-agent"):
            assert want in names, f"no {want} among {sorted(names)}"

        p.send_signal(signal.SIGINT)
        rest, _ = p.communicate(timeout=60)
        out.append(rest)
        assert p.returncode == 130, "".join(out)
        assert "interrupted" in rest, rest
        left = [pid for pid in started if alive(pid)]
        assert not left, f"still running after the harness exited: {left}"
        assert set(glob.glob("/dev/shm/porch-compare-*")) <= before, \
            "the scratch directory was not removed"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        for pid in started:
            if alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
