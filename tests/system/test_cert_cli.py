"""porchctl cert renew --wait against a running agent, a real CA (Pebble)
and real DNS (BIND): it follows the order it asked for to that order's
end, within a bound, and says so while it waits, also into a pipe.

A failed order is a real one: nowhere.example.test resolves to 127.0.0.9,
where nothing listens, so Pebble's http-01 probe is refused.
"""

import os
import re
import subprocess
import threading
import time

from conftest import (PORCHCTL, Agent, Bind, Gateway, Nginx, Pebble, free_port,
                      wait_until)

NAME = "app.example.test"
NOWHERE = "nowhere.example.test"
# The agent's own retries come minutes later: whatever --wait sees in a
# test comes from the order it asked for.
SLOW_RETRY = "retry: {min: 600s, max: 1200s}"


def stack(procs, tmp, ca, name):
    """BIND, a gateway (not started), Pebble probing it, and an agent
    (not started) with an admin address and one ACME service."""
    bind = Bind(procs, tmp, [f"{NAME.split('.')[0]} 60 IN A 127.0.0.1",
                             f"{NOWHERE.split('.')[0]} 60 IN A 127.0.0.9"])
    gw = Gateway(procs, tmp)
    pebble = Pebble(procs, tmp, gw.http_port, gw.tls_port, bind)
    ng = Nginx(procs, tmp, ca, name)
    admin = free_port()
    state = os.path.join(tmp, "agent", "state")
    a = Agent(procs, tmp, extra=f'admin: "127.0.0.1:{admin}"\n'
              + pebble.acme_section(state, ["challenge: [http-01]",
                                            SLOW_RETRY]))
    a.use(gw)
    gw.admit(a, ["*.example.test"])
    a.serve(name, tls=ng.tls, more=["certificate: acme"])
    return gw, a, state


def renew_wait(a, name, *args, timeout=60):
    """porchctl cert renew NAME --wait..., stdout and stderr piped; a
    hang fails the test (subprocess.TimeoutExpired) instead of hanging
    it."""
    return subprocess.run([PORCHCTL, "cert", "renew", "-c", a.conf, name,
                           *(args or ("--wait",))],
                          capture_output=True, text=True, timeout=timeout)


def serial_of(state, name):
    """The serial of the stored certificate, as hex without colons or
    leading zeros."""
    r = subprocess.run(["openssl", "x509", "-noout", "-serial", "-in",
                        os.path.join(state, "certs", name, "current",
                                     "cert.pem")],
                       capture_output=True, text=True, check=True)
    return norm_serial(r.stdout.strip().split("=")[1])


def norm_serial(s):
    return s.replace(":", "").lower().lstrip("0")


def test_renew_wait_returns_the_error_of_a_failed_order(procs, tmp_path, ca):
    """After an automatic order failed, a manual renew --wait used to
    hang (it compared the failure count from before its request, which
    the request reset): it must end with that order's error."""
    gw, a, _ = stack(procs, str(tmp_path), ca, NOWHERE)
    gw.start()
    a.start()
    a.proc.wait_log(rf"acme {re.escape(NOWHERE)}: order failed: .*; next "
                    r"attempt in", timeout=60)
    for attempt in (1, 2):
        a.proc.set_mark()
        t0 = time.monotonic()
        r = renew_wait(a, NOWHERE)
        took = time.monotonic() - t0
        assert r.returncode == 1, (attempt, r.stdout, r.stderr)
        assert f"{NOWHERE}: ordering now" in r.stdout, r.stdout
        # The CA's error, as the agent logged it for this order.
        m = a.proc.wait_log(rf"acme {re.escape(NOWHERE)}: order failed: "
                            r"(.*); next attempt in")
        assert "could not validate" in m.group(1)
        assert f"order failed: {m.group(1)}" in r.stderr, r.stderr
        assert took < 30, took


def test_renew_wait_output_is_flushed_and_ends_with_the_serial(
        procs, tmp_path, ca):
    """No gateway tunnel is up, so the order cannot start yet: --wait into
    a pipe shows what it does while it waits (not only at its end), and
    once the gateway is up it ends with the new certificate's serial."""
    gw, a, state = stack(procs, str(tmp_path), ca, NAME)
    a.start(wait_serving=False)
    a.proc.wait_log(rf"acme {re.escape(NAME)}: no certificate yet; ordering")
    err = open(os.path.join(str(tmp_path), "renew.err"), "w+")
    p = subprocess.Popen([PORCHCTL, "cert", "renew", "-c", a.conf, NAME,
                          "--wait"], stdout=subprocess.PIPE, stderr=err,
                         text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(p.stdout),
                              daemon=True)
    reader.start()
    try:
        def two_lines():
            assert p.poll() is None, (lines, p.returncode)
            return len(lines) >= 2
        wait_until(two_lines, lambda: f"two lines through the pipe while "
                   f"waiting (have {lines})")
        # Still waiting: nothing can order without a tunnel.
        assert p.poll() is None
        assert lines == [f"{NAME}: ordering once the gateway tunnels are "
                         "up\n", f"{NAME}: waiting up to 300s for the "
                         "outcome of order 1\n"], lines
        gw.start()
        assert p.wait(timeout=90) == 0, (lines, open(err.name).read())
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        reader.join(5)
        err.close()
    out = "".join(lines)
    m = re.search(rf"{re.escape(NAME)}: certificate obtained, valid until "
                  r"20\d\d-\S+ \S+, serial ([0-9A-Fa-f:]+)\n", out)
    assert m, out
    assert norm_serial(m.group(1)) == serial_of(state, NAME), out
    # The agent says "ordering now" when the order does start.
    a.proc.wait_log(rf"acme {re.escape(NAME)}: ordering now",
                    since_mark=False)


def test_renew_wait_is_bounded(procs, tmp_path, ca):
    """--wait=SECONDS: an order that cannot start (no gateway tunnel)
    ends the wait after about that long, saying why."""
    _, a, _ = stack(procs, str(tmp_path), ca, NAME)
    a.start(wait_serving=False)
    a.proc.wait_log(rf"acme {re.escape(NAME)}: no certificate yet; ordering")
    t0 = time.monotonic()
    r = renew_wait(a, NAME, "--wait=2", timeout=30)
    took = time.monotonic() - t0
    assert r.returncode == 1, r.stdout + r.stderr
    assert 2 <= took < 15, took
    assert f"{NAME}: ordering once the gateway tunnels are up" in r.stdout
    assert re.search(r"order 1 has not started after 2s \(ordering once "
                     r"the gateway tunnels are up\)", r.stderr), r.stderr
    for bad in ("--wait=0", "--wait=x", "--wait="):
        r = renew_wait(a, NAME, bad, timeout=30)
        assert r.returncode == 2 and "give the seconds" in r.stderr, bad
    r = subprocess.run([PORCHCTL, "cert", "help"], capture_output=True,
                       text=True)
    assert "--wait[=SECONDS]" in r.stdout and "(default 300)" in r.stdout


def test_failed_order_log_says_when_the_next_attempt_is(procs, tmp_path,
                                                        ca):
    """After a failed order the agent used to log "no certificate yet;
    ordering now" although the next order was minutes away."""
    gw, a, _ = stack(procs, str(tmp_path), ca, NOWHERE)
    gw.start()
    a.start()
    m = a.proc.wait_log(rf"acme {re.escape(NOWHERE)}: order failed: .*; "
                        r"next attempt in (\S+) \(failure 1 in a row\)\n",
                        timeout=60)
    assert re.fullmatch(r"\d+m\d\ds", m.group(1)), m.group(0)
    a.proc.wait_log(rf"acme {re.escape(NOWHERE)}: no certificate yet; "
                    r"next attempt in \d+m\d\ds\n")
    after = a.proc.log()[a.proc.log().index(m.group(0)):]
    assert "ordering now" not in after, after
    assert a.proc.count(rf"acme {re.escape(NOWHERE)}: .*ordering now") == 1
