"""The admin endpoints no longer trust everyone who can reach them
(issue 14, fault 6).

A web page the operator opens could POST /acme/renew cross-site (five
orders in two seconds, the renew hook five times) and, by DNS
rebinding, read /status; an admin address off loopback passed -t
silently.  Now: any Origin header or a Host that is not localhost or an
IP literal with the port is refused on both daemons; actions need the
secret the agent keeps in admin.secret (0600) next to its config, which
porchctl sends; a manual renew of a name is allowed once per 10
minutes; and an admin address off loopback needs admin_public: true.
"""

import os
import re
import stat
import subprocess
import urllib.error
import urllib.request

from conftest import AGENT, GATEWAY, PORCHCTL, Agent, Gateway, free_port
from test_cert_cli import NAME, renew_wait, stack


def request(port, path="/status", method="GET", headers=None):
    """(status, body) of one request to an admin listener."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                 method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def admin_port(a):
    return int(re.search(r'admin: "127\.0\.0\.1:(\d+)"', a.extra).group(1))


def test_cross_site_requests_are_refused_on_both_daemons(procs, tmp_path):
    """Origin or a foreign Host: 403 with a reason, on the gateway and
    the agent; the admin address, localhost and porchctl still work."""
    tmp = str(tmp_path)
    gport, aport = free_port(), free_port()
    gw = Gateway(procs, tmp, extra=f'admin: "127.0.0.1:{gport}"')
    a = Agent(procs, tmp, extra=f'admin: "127.0.0.1:{aport}"')
    gw.admit(a, ["*.example.test"])
    a.use(gw)
    a.serve("app.example.test", http="127.0.0.1:9")
    gw.start()
    a.start()
    for port in (gport, aport):
        code, body = request(port, headers={
            "Origin": "http://evil.example"})
        assert code == 403 and "cross-site request refused" in body, body
        # DNS rebinding: the page's own name, pointed at loopback.
        code, body = request(port, headers={"Host": f"evil.example:{port}"})
        assert code == 403 and "foreign Host refused" in body, body
        code, body = request(port, headers={"Host": "evil.example"})
        assert code == 403, body
        code, _ = request(port, headers={"Host": f"127.0.0.1:{port + 1}"})
        assert code == 403
        for host in (f"127.0.0.1:{port}", f"localhost:{port}",
                     f"LOCALHOST:{port}", f"[::1]:{port}"):
            code, body = request(port, headers={"Host": host})
            assert code == 200 and body.startswith("{"), (host, body)
        code, _ = request(port, "/metrics")
        assert code == 200
    # A web page's form post to the gateway: refused before anything.
    code, _ = request(gport, method="POST",
                      headers={"Origin": "http://evil.example"})
    assert code == 403
    code, _ = request(gport, method="POST")
    assert code == 405
    r = subprocess.run([PORCHCTL, "status", f"127.0.0.1:{gport}"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0 and "gateway" in r.stdout, r.stderr


def test_renew_needs_the_secret_and_respects_an_interval(procs, tmp_path,
                                                         ca):
    """POST /acme/renew without the secret, with a wrong one, or
    cross-site with the right one: refused, nothing ordered.  porchctl
    (which reads the secret) renews; a second renew within the interval
    is refused with when it is allowed again."""
    tmp = str(tmp_path)
    gw, a, _ = stack(procs, tmp, ca, NAME)
    gw.start()
    a.start()
    a.proc.wait_log(rf"acme {re.escape(NAME)}: certificate obtained",
                    timeout=60)
    port = admin_port(a)
    a.proc.set_mark()
    path = f"/acme/renew?name={NAME}"
    code, body = request(port, path, "POST")
    assert code == 401 and "admin secret" in body, (code, body)
    secret_path = os.path.join(a.dir, "admin.secret")
    assert stat.S_IMODE(os.stat(secret_path).st_mode) == 0o600
    with open(secret_path) as f:
        secret = f.read().strip()
    assert re.fullmatch(r"[0-9a-f]{64}", secret)
    code, body = request(port, path, "POST",
                         {"Authorization": "Bearer " + "0" * 64})
    assert code == 403 and "wrong admin secret" in body, (code, body)
    code, body = request(port, path, "POST", {
        "Authorization": f"Bearer {secret}",
        "Origin": "http://evil.example"})
    assert code == 403, (code, body)
    code, body = request(port, path, "POST", {
        "Authorization": f"Bearer {secret}",
        "Host": f"evil.example:{port}"})
    assert code == 403, (code, body)
    # The status page says no order was asked for.
    code, body = request(port)
    assert code == 200
    log = a.proc.log_since_mark()
    assert "renewal requested" not in log and "ordering" not in log, log
    # porchctl sends the secret: it renews.
    r = renew_wait(a, NAME)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{NAME}: ordering now" in r.stdout, r.stdout
    # Again at once: refused, saying when it is allowed.
    a.proc.set_mark()
    r = renew_wait(a, NAME, timeout=30)
    assert r.returncode == 1, r.stdout + r.stderr
    assert re.search(rf"{re.escape(NAME)}: renewed on request at "
                     r"20\d\d-\S+ \S+; the next request is allowed from "
                     r"20\d\d-\S+ \S+ \(in (\d+)s\)", r.stderr), r.stderr
    assert int(re.search(r"\(in (\d+)s\)", r.stderr).group(1)) > 500
    assert "ordering" not in a.proc.log_since_mark()


def test_agent_refuses_a_secret_others_can_read(procs, tmp_path):
    tmp = str(tmp_path)
    gw = Gateway(procs, tmp)
    a = Agent(procs, tmp, extra=f'admin: "127.0.0.1:{free_port()}"')
    gw.admit(a, ["*.example.test"])
    a.use(gw)
    a.serve("app.example.test", http="127.0.0.1:9")
    path = os.path.join(a.dir, "admin.secret")
    with open(path, "w") as f:
        f.write("a" * 64 + "\n")
    os.chmod(path, 0o644)
    a.write_config()
    r = subprocess.run([AGENT, "-c", a.conf], capture_output=True,
                       text=True, timeout=20)
    assert r.returncode != 0
    assert "readable by others" in r.stderr and "chmod 600" in r.stderr, \
        r.stderr


def test_admin_off_loopback_needs_admin_public(procs, tmp_path):
    tmp = str(tmp_path)
    port = free_port()
    gw = Gateway(procs, tmp, extra=f'admin: "0.0.0.0:{port}"')
    gw.write_config()
    r = subprocess.run([GATEWAY, "-t", "-c", gw.conf], capture_output=True,
                       text=True, timeout=20)
    assert r.returncode != 0, r.stdout
    assert "not a loopback address" in r.stderr, r.stderr
    assert "admin_public: true" in r.stderr, r.stderr
    gw.extra += "\nadmin_public: true"
    gw.write_config()
    r = subprocess.run([GATEWAY, "-t", "-c", gw.conf], capture_output=True,
                       text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    a = Agent(procs, tmp, extra=f'admin: "[::]:{port}"')
    a.use(gw)
    a.serve("app.example.test", http="127.0.0.1:9")
    a.write_config()
    r = subprocess.run([AGENT, "-t", "-c", a.conf], capture_output=True,
                       text=True, timeout=20)
    assert r.returncode != 0 and "admin_public" in r.stderr, r.stderr
