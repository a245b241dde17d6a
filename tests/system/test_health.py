"""Backend health checks: the agent withdraws a hostname from every
gateway while its backend is down and claims it again once it is back;
tcp, tls and http checks; rise and fall counts.

Intervals are short (200 ms) and every wait is on a log line: the agent's
transition lines, the gateway's "withdrew"/"claimed" lines, and the test
backend's one line per health request."""

import os
import re
import sys

from conftest import (Agent, Gateway, Nginx, assert_no_route, free_port,
                      http_status, porchctl_status, tls_visit, wait_port)

HOST = "app.example.test"
TCP = {"check": "tcp", "interval": "200ms", "timeout": "150ms",
       "rise": 2, "fall": 2}

# A test backend, one process.  http: GET /healthz answers according to
# the control file, one letter per request (F: 500, S or nothing: 200;
# a letter is consumed per request), any other path 200; each health
# answer is logged as "health NNN" and sent in two segments.  http500: /healthz always 500.
# garbage: reads what the client sends, answers bytes that are not TLS.
# silent: reads what the client sends and never answers.
BACKEND = r'''
import os, socket, socketserver, sys, time

mode, port, ctl = sys.argv[1], int(sys.argv[2]), sys.argv[3]


def next_letter():
    try:
        with open(ctl) as f:
            seq = f.read().strip()
    except FileNotFoundError:
        return "S"
    if not seq:
        return "S"
    with open(ctl + ".tmp", "w") as f:
        f.write(seq[1:])
    os.replace(ctl + ".tmp", ctl)
    return seq[0]


class H(socketserver.BaseRequestHandler):
    def handle(self):
        s = self.request
        s.settimeout(5)
        data = b""
        try:
            while b"\r\n\r\n" not in data and len(data) < 65536:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
                if mode in ("garbage", "silent"):
                    break
        except OSError:
            return
        if mode == "garbage":
            s.sendall(b"this is not TLS at all\r\n" * 4)
            return
        if mode == "silent":
            time.sleep(3)
            return
        path = data.split(b" ")[1] if data.count(b" ") >= 2 else b"/"
        code = 200
        if path == b"/healthz":
            code = 500 if mode == "http500" or next_letter() == "F" else 200
            print(f"health {code}", flush=True)
        body = b"ok\n"
        head = b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n" \
            b"Connection: close\r\n\r\n%s" % (code, len(body), body)
        if path == b"/healthz":
            # The status line in two segments: the agent must wait for
            # the rest (well within its timeout).
            s.sendall(head[:10])
            time.sleep(0.02)
            head = head[10:]
        s.sendall(head)


class S(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


with S(("127.0.0.1", port), H) as srv:
    print("listening", flush=True)
    srv.serve_forever()
'''


class HealthBackend:
    """The script above in its own process (stopped by PID with the test)."""

    def __init__(self, procs, tmp, name, mode):
        self.port = free_port()
        self.ctl = os.path.join(tmp, f"{name}.ctl")
        script = os.path.join(tmp, "backend.py")
        with open(script, "w") as f:
            f.write(BACKEND)
        self.proc = procs.start(name, [sys.executable, script, mode,
                                       str(self.port), self.ctl])
        wait_port(self.port)

    @property
    def addr(self):
        return f"127.0.0.1:{self.port}"

    def script(self, letters):
        """The next health answers: F fails, S succeeds."""
        with open(self.ctl + ".new", "w") as f:
            f.write(letters)
        os.replace(self.ctl + ".new", self.ctl)


def assert_route(gw, host=HOST):
    assert tls_visit(gw.tls_port, host) == "ok"
    assert http_status(gw.http_port, host) == 200


def make_stack(procs, tmp, ngws=1):
    gws = [Gateway(procs, tmp, name=f"gw{i + 1}") for i in range(ngws)]
    ag = Agent(procs, tmp)
    for gw in gws:
        gw.admit(ag, ["*.example.test"])
        ag.use(gw)
    return gws, ag


def stop_and_restart_nginx(procs, tmp, ca, ng, gws, ag):
    """Stop the backend: withdrawn everywhere; start a new one on the same
    ports: claimed everywhere again."""
    for p in [ag.proc] + [gw.proc for gw in gws]:
        p.set_mark()
    ng.proc.stop()
    # fall (2) probes 200 ms apart, plus slack for slow (ASan) builds.
    ag.proc.wait_log(rf"health {re.escape(HOST)}: down after 2 failures "
                     rf"\(backend 127\.0\.0\.1:\d+: Connection refused\); "
                     rf"withdrawing it from every gateway", timeout=5)
    for gw in gws:
        gw.proc.wait_log(rf"agent agent withdrew {re.escape(HOST)}\b",
                         timeout=5)
        assert_no_route(gw, HOST)
    assert ag.proc.count(r"health .*: up after") == 0

    for p in [ag.proc] + [gw.proc for gw in gws]:
        p.set_mark()
    ng2 = Nginx(procs, tmp, ca, HOST, tag="again", tls_port=ng.tls_port,
                http_port=ng.http_port)
    ag.proc.wait_log(rf"health {re.escape(HOST)}: up after 2 successes "
                     rf"\(backends 127\.0\.0\.1:\d+ and 127\.0\.0\.1:\d+: "
                     rf"connected\); claiming it again", timeout=5)
    for gw in gws:
        gw.proc.wait_log(rf"agent agent claimed {re.escape(HOST)} ",
                         timeout=5)
        ag.proc.wait_log(rf"gateway {gw.name}: serving {re.escape(HOST)}\b")
        assert_route(gw)
    return ng2


# --- tests -------------------------------------------------------------------

def test_tcp_check_withdraws_and_restores(procs, tmp_path, ca):
    tmp = str(tmp_path)
    (gw,), ag = make_stack(procs, tmp)
    ng = Nginx(procs, tmp, ca, HOST)
    ag.serve(HOST, tls=ng.tls, http=ng.http, health=TCP)
    gw.start()
    ag.start()
    ag.proc.wait_log(rf"health {re.escape(HOST)}: up at the first check "
                     rf"\(backends .* connected\)", since_mark=False)
    assert_route(gw)
    stop_and_restart_nginx(procs, tmp, ca, ng, [gw], ag)


def test_two_gateways_withdraw_and_restore_on_both(procs, tmp_path, ca):
    tmp = str(tmp_path)
    gws, ag = make_stack(procs, tmp, ngws=2)
    ng = Nginx(procs, tmp, ca, HOST)
    ag.serve(HOST, tls=ng.tls, http=ng.http, health=TCP)
    for gw in gws:
        gw.start()
    ag.start()
    for gw in gws:
        assert_route(gw)
    stop_and_restart_nginx(procs, tmp, ca, ng, gws, ag)


def test_http_check_failing_is_never_claimed(procs, tmp_path):
    tmp = str(tmp_path)
    (gw,), ag = make_stack(procs, tmp)
    be = HealthBackend(procs, tmp, "backend500", "http500")
    ag.serve(HOST, http=be.addr,
             health={"check": "http", "path": "/healthz", "expect": 200,
                     "interval": "200ms", "timeout": "150ms"})
    # A service without a health section is claimed as always.
    ag.serve("plain.example.test", http=be.addr)
    gw.start()
    ag.start(wait_serving=False)
    ag.proc.wait_log(rf"health {re.escape(HOST)}: down at the first check "
                     rf"\(backend {re.escape(be.addr)}: HTTP status 500, "
                     rf"expected 200\); not claiming it")
    ag.proc.wait_log(r"gateway gw1: serving plain\.example\.test\b")
    gw.proc.wait_log(r"agent agent claimed plain\.example\.test ")
    # Several more failed probes while the tunnel is up: still unclaimed.
    be.proc.set_mark()
    be.proc.wait_log(r"(health 500\n(.|\n)*){3}")
    assert gw.proc.count(rf"claimed {re.escape(HOST)}") == 0
    assert ag.proc.count(rf"serving {re.escape(HOST)}") == 0
    assert ag.proc.count(r"health .*: up ") == 0
    assert http_status(gw.http_port, HOST) == 404
    assert http_status(gw.http_port, "plain.example.test") == 200


def test_tls_check(procs, tmp_path, ca):
    tmp = str(tmp_path)
    (gw,), ag = make_stack(procs, tmp)
    junk = HealthBackend(procs, tmp, "garbage", "garbage")
    ng = Nginx(procs, tmp, ca, "good.example.test")
    tls = {"check": "tls", "interval": "200ms", "timeout": "150ms"}
    ag.serve("bad.example.test", tls=junk.addr, health=tls)
    ag.serve("good.example.test", tls=ng.tls, health=tls)
    gw.start()
    ag.start(wait_serving=False)
    ag.proc.wait_log(r"health bad\.example\.test: down at the first check "
                     rf"\(backend {re.escape(junk.addr)}: TLS handshake "
                     r"failed: [^)]+\); not claiming it")
    ag.proc.wait_log(r"health good\.example\.test: up at the first check "
                     rf"\(backend {re.escape(ng.tls)}: TLS handshake done "
                     r"\(TLSv1\.[23]\)\)")
    ag.proc.wait_log(r"gateway gw1: serving good\.example\.test\b")
    assert tls_visit(gw.tls_port, "good.example.test") == "ok"
    assert tls_visit(gw.tls_port, "bad.example.test") == \
        "TLSV1_UNRECOGNIZED_NAME"
    assert gw.proc.count(r"claimed bad\.example\.test") == 0


def test_rise_and_fall_counts(procs, tmp_path):
    tmp = str(tmp_path)
    (gw,), ag = make_stack(procs, tmp)
    be = HealthBackend(procs, tmp, "flappy", "http")
    ag.serve(HOST, http=be.addr,
             health={"check": "http", "path": "/healthz",
                     "interval": "200ms", "timeout": "150ms",
                     "rise": 3, "fall": 2})
    gw.start()
    ag.start()
    assert http_status(gw.http_port, HOST) == 200
    name = re.escape(HOST)

    # One failure with fall 2: noted, not withdrawn.
    ag.proc.set_mark()
    be.proc.set_mark()
    be.script("F")
    ag.proc.wait_log(rf"health {name}: check failed, 1 of 2 to go down "
                     r"\(backend [^)]*HTTP status 500, expected 200\); "
                     r"still up")
    # Two successes answered after it: the first of them reached the
    # agent (probes never overlap) and broke the run of failures.
    be.proc.wait_log(r"health 500\n(.|\n)*health 200\n(.|\n)*health 200\n")
    assert ag.proc.count(rf"health {name}: down") == 0
    assert gw.proc.count(r"withdrew") == 0
    assert http_status(gw.http_port, HOST) == 200

    # Two failures: down.  Then S F S S S: the failure restarts the run,
    # so it takes three successes after it to come up.
    ag.proc.set_mark()
    gw.proc.set_mark()
    be.script("FFSF")
    ag.proc.wait_log(rf"health {name}: down after 2 failures "
                     r"\(backend [^)]*HTTP status 500, expected 200\); "
                     r"withdrawing it from every gateway")
    gw.proc.wait_log(rf"agent agent withdrew {name}\b")
    ag.proc.wait_log(rf"health {name}: up after 3 successes "
                     r"\(backend [^)]*HTTP status 200\); claiming it again",
                     timeout=5)
    gw.proc.wait_log(rf"agent agent claimed {name} ")
    log = ag.proc.log_since_mark()
    steps = re.findall(rf"health {name}: (check passed, \d of 3|"
                       r"check failed, \d of 2|down after|up after)", log)
    assert steps == ["check failed, 1 of 2", "down after",
                     "check passed, 1 of 3",
                     "check passed, 1 of 3", "check passed, 2 of 3",
                     "up after"], log
    ag.proc.wait_log(rf"gateway gw1: serving {name}\b")
    assert http_status(gw.http_port, HOST) == 200


def test_agent_status_shows_health(procs, tmp_path, ca):
    """The agent's admin listener reports each service's verdict."""
    import subprocess
    from conftest import PORCHCTL, free_port
    admin = free_port()
    gw = Gateway(procs, str(tmp_path))
    ag = Agent(procs, str(tmp_path), extra=f'admin: "127.0.0.1:{admin}"')
    ng = Nginx(procs, str(tmp_path), ca, "app.example.test")
    gw.admit(ag, ["*.example.test"])
    ag.use(gw)
    ag.serve("app.example.test", tls=ng.tls,
             health={"check": "tcp", "interval": "200ms",
                     "timeout": "150ms"})
    ag.serve("dead.example.test", http="127.0.0.1:9",
             health={"check": "tcp", "interval": "200ms",
                     "timeout": "150ms"})
    gw.start()
    ag.start(wait_serving=False)
    ag.proc.wait_log(r"gateway gw: serving app\.example\.test")
    ag.proc.wait_log(r"health dead\.example\.test: .*down")
    st = porchctl_status(f"127.0.0.1:{admin}")
    svcs = {s["hostname"]: s for s in st["services"]}
    assert svcs["app.example.test"]["health"] == "up"
    assert svcs["app.example.test"]["claimed"] is True
    assert svcs["dead.example.test"]["health"] == "down"
    assert svcs["dead.example.test"]["claimed"] is False
    assert "refused" in svcs["dead.example.test"]["last_check"].lower()
    assert st["gateways"][0]["state"] == "up"
    text = subprocess.run([PORCHCTL, "status", f"127.0.0.1:{admin}"],
                          capture_output=True, text=True).stdout
    assert "dead.example.test" in text and "withdrawn" in text


def test_failure_reasons(procs, tmp_path):
    """Why a probe failed, as the status and the log lines say it: a
    refused connect, no answer within the timeout (at the step it
    reached), and an answer that is not HTTP."""
    tmp = str(tmp_path)
    (gw,), ag = make_stack(procs, tmp)
    silent = HealthBackend(procs, tmp, "silent", "silent")
    junk = HealthBackend(procs, tmp, "garbage", "garbage")
    dead = f"127.0.0.1:{free_port()}"
    http = {"check": "http", "path": "/healthz", "interval": "400ms",
            "timeout": "150ms"}
    ag.serve("refused.example.test", http=dead, health=http)
    ag.serve("silent.example.test", http=silent.addr, health=http)
    ag.serve("junk.example.test", http=junk.addr, health=http)
    ag.serve("silenttls.example.test", tls=silent.addr,
             health={"check": "tls", "interval": "400ms",
                     "timeout": "150ms"})
    gw.start()
    ag.start(wait_serving=False)
    first = r"health {}: down at the first check \(backend {}: {}\)"
    ag.proc.wait_log(first.format(r"refused\.example\.test",
                                  re.escape(dead), "Connection refused"))
    ag.proc.wait_log(first.format(
        r"silent\.example\.test", re.escape(silent.addr),
        "timed out after 150 ms waiting for the status line"))
    ag.proc.wait_log(first.format(
        r"junk\.example\.test", re.escape(junk.addr),
        "malformed HTTP status line[^)]*"))
    ag.proc.wait_log(first.format(
        r"silenttls\.example\.test", re.escape(silent.addr),
        "timed out after 150 ms in the TLS handshake"))
    assert gw.proc.count(r"claimed [a-z]+\.example\.test") == 0
