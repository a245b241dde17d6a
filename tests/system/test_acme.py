"""Certificates by ACME through real gateways, from a real CA.

Pebble validates for real (never PEBBLE_VA_ALWAYS_VALID): it resolves the
test names with our BIND, which points them at 127.0.0.1, and probes the
gateway's HTTP entry (http-01) or TLS entry (tls-alpn-01).  A challenge
answer that is wrong, or that a gateway routes to the wrong agent, fails
the order, and so the test.
"""

import json
import signal
import os
import re
import socket
import ssl
import stat
import subprocess
import time
import urllib.request

import pytest

from conftest import (PORCHCTL, Agent, Bind, Gateway, Nginx, Pebble, free_port,
                      get, wait_until)

NAME = "app.example.test"


def records(*names, addr="127.0.0.1"):
    return [f"{n.split('.')[0]} 60 IN A {addr}" for n in names]


def cert_dir(state, name=NAME):
    return os.path.join(state, "certs", name, "current")


def openssl(*args, stdin=None):
    return subprocess.run(["openssl", *args], input=stdin,
                          capture_output=True, text=True)


def check_cert(pebble, state, name=NAME, names=(NAME,)):
    """The current certificate verifies against Pebble's root, covers
    the names, matches its key, and the key is private."""
    d = cert_dir(state, name)
    full = os.path.join(d, "fullchain.pem")
    key = os.path.join(d, "privkey.pem")
    r = openssl("verify", "-CAfile", pebble.root, "-untrusted",
                pebble.intermediate, os.path.join(d, "cert.pem"))
    assert r.returncode == 0 and ": OK" in r.stdout, r.stdout + r.stderr
    r = openssl("verify", "-CAfile", pebble.root, "-untrusted",
                os.path.join(d, "chain.pem"), os.path.join(d, "cert.pem"))
    assert r.returncode == 0, r.stdout + r.stderr
    text = openssl("x509", "-in", full, "-noout", "-ext",
                   "subjectAltName").stdout
    for n in names:
        assert f"DNS:{n}" in text, text
    pub_cert = openssl("x509", "-in", full, "-noout", "-pubkey").stdout
    pub_key = openssl("pkey", "-in", key, "-pubout").stdout
    assert pub_cert and pub_cert == pub_key
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o700
    return openssl("x509", "-in", full, "-noout", "-serial").stdout.strip()


def admin_json(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status",
                                timeout=5) as r:
        return json.load(r)


def renew(port, name=NAME, agent=None):
    """POST /acme/renew with the secret the agent keeps next to its
    config, as porchctl does."""
    with open(os.path.join(agent.dir, "admin.secret")) as f:
        secret = f.read().strip()
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/acme/renew?name={name}", method="POST",
        headers={"Authorization": f"Bearer {secret}"})
    with urllib.request.urlopen(req, timeout=5) as r:
        assert r.status == 202
        return r.read().decode()


def acme_agent(procs, tmp, gw, pebble, name="agent", challenge="http-01",
               extra=(), admin=None):
    state = os.path.join(tmp, name, "state")
    lines = [f"challenge: [{challenge}]", "retry: {min: 2s, max: 4s}"]
    lines += list(extra)
    more = pebble.acme_section(state, lines)
    if admin:
        more = f'admin: "127.0.0.1:{admin}"\n' + more
    a = Agent(procs, tmp, name=name, extra=more)
    a.use(gw)
    gw.admit(a, [NAME, "*.example.test"])
    return a, state


@pytest.fixture
def ca_stack(procs, tmp_path):
    """BIND for example.test, a gateway, and Pebble probing it."""
    tmp = str(tmp_path)
    bind = Bind(procs, tmp, records(NAME, "www.example.test",
                                    "other.example.test")
                + ["nowhere 60 IN A 127.0.0.9"])
    gw = Gateway(procs, tmp)
    return tmp, bind, gw


def test_http01_through_gateway(procs, ca_stack, ca):
    """http-01: the CA's GET reaches the agent through the gateway's HTTP
    entry, and the agent answers it whatever its backend is; every other
    request still goes to the backend."""
    tmp, bind, gw = ca_stack
    pebble = Pebble(procs, tmp, gw.http_port, gw.tls_port, bind)
    ng = Nginx(procs, tmp, ca, NAME, tag="home")
    admin = free_port()
    a, state = acme_agent(procs, tmp, gw, pebble, admin=admin)
    a.serve(NAME, tls=ng.tls, http=ng.http,
            more=["certificate: acme",
                  "certificate_names: [www.example.test]"])
    gw.start()
    a.start()
    a.proc.wait_log(r"acme app\.example\.test: certificate obtained",
                    timeout=60)
    assert "order failed" not in a.proc.log()
    a.proc.wait_log(r"renewal scheduled", timeout=30)
    with open(os.path.join(cert_dir(state), "privkey.pem")) as f:
        key_body = f.read().splitlines()[1]
    assert "PRIVATE KEY" not in a.proc.log() and key_body not in a.proc.log()
    check_cert(pebble, state, names=(NAME, "www.example.test"))
    # Both names were validated through the gateway, by http-01.
    assert a.proc.count(r"http-01 probe answered") >= 2
    gw.proc.wait_log(r"entry=acme-http", since_mark=False)
    # The backend still gets its visitors, on both entries.
    body = get(gw, NAME, "/whoami", http=True)
    assert "home http" in body, body
    st = admin_json(admin)
    certs = {c["name"]: c for c in st["certificates"]}
    assert certs[NAME]["state"] == "valid", certs
    assert certs[NAME]["failures"] == 0
    assert certs[NAME]["expires_in_s"] > 3600
    r = subprocess.run([PORCHCTL, "status", f"127.0.0.1:{admin}"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert re.search(r"certificates:\n  app\.example\.test +valid +until "
                     r"20\d\d-", r.stdout), r.stdout
    r = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics",
                               timeout=5).read().decode()
    assert re.search(r'porch_agent_cert_expiry_seconds\{name="app\.example'
                     r'\.test"\} [1-9]\d+', r), r
    assert "porch_agent_certs_issued_total 1" in r, r
    # The agent's claim lost its ACME kinds once validation ended.
    gw.proc.wait_log(r"agent agent claimed app\.example\.test \(tls\+http, ",
                     since_mark=False)
    last = re.findall(r"agent agent claimed app\.example\.test \(([^,]*),",
                      gw.proc.log())
    assert "acme-http" in "".join(last[:-1]) and last[-1] == "tls+http", last


def test_tlsalpn01_reaches_the_ordering_replica(procs, ca_stack, ca):
    """tls-alpn-01 while a second, preferred replica serves the name: the
    CA's acme-tls/1 handshakes must reach the agent that ordered, and
    ordinary visitors keep going to the preferred replica untouched."""
    tmp, bind, gw = ca_stack
    pebble = Pebble(procs, tmp, gw.http_port, gw.tls_port, bind)
    ng_a = Nginx(procs, tmp, ca, NAME, tag="ordering")
    ng_b = Nginx(procs, tmp, ca, NAME, tag="preferred")
    b = Agent(procs, tmp, name="replica")
    b.use(gw)
    gw.admit(b, [NAME])
    b.serve(NAME, tls=ng_b.tls, http=ng_b.http, priority=10)
    a, state = acme_agent(procs, tmp, gw, pebble, challenge="tls-alpn-01")
    a.serve(NAME, tls=ng_a.tls, http=ng_a.http, priority=100,
            more=["certificate: acme"])
    gw.start()
    b.start()
    a.start()
    a.proc.wait_log(r"certificate obtained", timeout=60)
    assert "order failed" not in a.proc.log()
    check_cert(pebble, state)
    assert "tls-alpn-01" in a.proc.log()
    gw.proc.wait_log(r"entry=acme-tls .*agent=agent\b", since_mark=False)
    assert not re.search(r"entry=acme-tls .*agent=replica", gw.proc.log())
    for _ in range(5):
        body = get(gw, NAME, "/whoami", ca=ca.crt)
        assert "preferred" in body, body


def test_http01_through_a_peer_gateway(procs, ca_stack, ca):
    """The CA probes a gateway the agent is not connected to: that
    gateway relays the probe over its peer link to the one that is."""
    tmp, bind, gw1 = ca_stack
    gw2 = Gateway(procs, tmp, name="gw2")
    gw1.peer(gw2)
    gw2.peer(gw1)
    pebble = Pebble(procs, tmp, gw2.http_port, gw2.tls_port, bind)
    ng = Nginx(procs, tmp, ca, NAME)
    a, state = acme_agent(procs, tmp, gw1, pebble)
    a.serve(NAME, tls=ng.tls, more=["certificate: acme"])
    gw1.start()
    gw2.start()
    gw2.proc.wait_log(r"peer gw: link up")
    a.start()
    a.proc.wait_log(r"certificate obtained", timeout=60)
    assert "order failed" not in a.proc.log()
    check_cert(pebble, state)
    gw2.proc.wait_log(r"entry=acme-http .*agent=peer:gw", since_mark=False)


def test_forced_renewal_replaces_atomically_and_runs_hook(procs, ca_stack,
                                                          ca):
    tmp, bind, gw = ca_stack
    pebble = Pebble(procs, tmp, gw.http_port, gw.tls_port, bind)
    ng = Nginx(procs, tmp, ca, NAME)
    admin = free_port()
    hook_out = os.path.join(tmp, "hook.out")
    a, state = acme_agent(
        procs, tmp, gw, pebble, admin=admin,
        extra=[f"renew_hook: 'echo \"$PORCH_CERT_NAME $PORCH_CERT_DIR\" "
               f">> {hook_out}'"])
    a.serve(NAME, tls=ng.tls, more=["certificate: acme"])
    gw.start()
    a.start()
    a.proc.wait_log(r"certificate obtained", timeout=60)
    assert "order failed" not in a.proc.log()
    a.proc.wait_log(r"renew_hook done")
    first = check_cert(pebble, state)
    v1 = os.readlink(cert_dir(state))
    a.proc.set_mark()
    r = subprocess.run([PORCHCTL, "cert", "renew", "-c", a.conf, NAME,
                        "--wait"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ordering now" in r.stdout, r.stdout
    m = re.search(r"certificate obtained, valid until 20\d\d-.*, serial "
                  r"([0-9A-Fa-f:]+)\n", r.stdout)
    assert m, r.stdout
    a.proc.wait_log(r"renew_hook done")
    second = check_cert(pebble, state)
    # --wait prints the serial of the certificate that order obtained.
    assert m.group(1).replace(":", "").lower().lstrip("0") == \
        second.split("=")[1].lower().lstrip("0"), (r.stdout, second)
    v2 = os.readlink(cert_dir(state))
    assert second != first and v2 != v1
    # The previous version is kept whole next to the new one.
    old = os.path.join(state, "certs", NAME, v1)
    assert sorted(os.listdir(old)) == ["cert.pem", "chain.pem",
                                       "fullchain.pem", "privkey.pem"]
    with open(hook_out) as f:
        lines = f.read().splitlines()
    assert lines == [f"{NAME} {cert_dir(state)}"] * 2, lines
    # porchctl reads the same state, and revokes with the agent's account.
    r = subprocess.run([PORCHCTL, "cert", "status", "-c", a.conf, "--json"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    st = st["certificates"][0]
    assert st["name"] == NAME and st["certificate"]["serial"].lower() == \
        second.split("=")[1].lower(), st
    assert st["state"]["failures"] == 0 and st["state"]["last_success"]
    r = subprocess.run([PORCHCTL, "cert", "revoke", "-c", a.conf, NAME,
                        "--reason", "4"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    ctx = ssl.create_default_context(cafile=pebble.api_ca)
    with urllib.request.urlopen(
            f"https://127.0.0.1:{pebble.mgmt_port}/cert-status-by-serial/"
            f"{second.split('=')[1].lower()}", context=ctx, timeout=5) as u:
        assert json.load(u)["Status"] == "Revoked"
    # A restart finds the certificate and does not order again.
    a.proc.stop()
    a.start()
    a.proc.wait_log(r"renewal scheduled")
    assert "ordering now" not in a.proc.log_since_mark()


def test_terminate_serves_plain_backend_and_picks_up_renewal(procs, ca_stack,
                                                             ca):
    """tls: terminate: the agent ends TLS with the certificate it got and
    passes plain HTTP to the backend; a renewal changes what new visitors
    see without a restart and without cutting a kept-alive connection."""
    tmp, bind, gw = ca_stack
    pebble = Pebble(procs, tmp, gw.http_port, gw.tls_port, bind)
    ng = Nginx(procs, tmp, ca, NAME, tag="plain")
    admin = free_port()
    a, state = acme_agent(procs, tmp, gw, pebble, admin=admin,
                          challenge="tls-alpn-01")
    a.serve(NAME, tls="terminate", http=ng.http)
    gw.start()
    a.start(wait_serving=False)
    a.proc.wait_log(r"certificate obtained", timeout=60)
    assert "order failed" not in a.proc.log()
    first = check_cert(pebble, state)
    body = get(gw, NAME, "/whoami", ca=pebble.root)
    assert "plain http" in body, body
    # A kept-alive visitor across the renewal.
    ctx = ssl.create_default_context(cafile=pebble.root)
    raw = socket.create_connection(("127.0.0.1", gw.tls_port), timeout=10)
    conn = ctx.wrap_socket(raw, server_hostname=NAME)
    serial_seen = conn.getpeercert()["serialNumber"]
    req = (f"GET /whoami HTTP/1.1\r\nHost: {NAME}\r\n\r\n").encode()
    conn.sendall(req)
    assert b"plain http" in conn.recv(4096)
    a.proc.set_mark()
    renew(admin, agent=a)
    a.proc.wait_log(r"certificate obtained", timeout=60)
    second = check_cert(pebble, state)
    assert second != first
    conn.sendall(req)
    assert b"plain http" in conn.recv(4096)
    conn.close()
    ctx2 = ssl.create_default_context(cafile=pebble.root)
    with ctx2.wrap_socket(socket.create_connection(
            ("127.0.0.1", gw.tls_port), timeout=10),
            server_hostname=NAME) as c2:
        assert c2.getpeercert()["serialNumber"] != serial_seen
        assert c2.getpeercert()["serialNumber"].lower().lstrip("0") == \
            second.split("=")[1].lower().lstrip("0")


def test_bad_nonces_are_retried(procs, ca_stack, ca):
    """Pebble rejects half of all nonces with badNonce: the client
    retries with the fresh nonce and the order still succeeds."""
    tmp, bind, gw = ca_stack
    pebble = Pebble(procs, tmp, gw.http_port, gw.tls_port, bind,
                    env={"PEBBLE_WFE_NONCEREJECT": "50"})
    ng = Nginx(procs, tmp, ca, NAME)
    a, state = acme_agent(procs, tmp, gw, pebble)
    a.serve(NAME, tls=ng.tls, more=["certificate: acme"])
    gw.start()
    a.start()
    # Some twenty requests, each refused half the time: without retries
    # on badNonce the order would succeed about once in a million runs.
    a.proc.wait_log(r"certificate obtained", timeout=90)
    check_cert(pebble, state)


def test_unreachable_challenge_backs_off_with_clear_message(procs, ca_stack,
                                                            ca):
    """A name that points at no gateway: the order fails with a message
    that says what to check, the next attempt waits (backoff), and the
    status shows the error."""
    tmp, bind, gw = ca_stack
    pebble = Pebble(procs, tmp, gw.http_port, gw.tls_port, bind)
    ng = Nginx(procs, tmp, ca, "nowhere.example.test")
    admin = free_port()
    a, state = acme_agent(procs, tmp, gw, pebble, admin=admin)
    a.serve("nowhere.example.test", tls=ng.tls, more=["certificate: acme"])
    gw.start()
    t0 = time.monotonic()
    a.start()
    m = a.proc.wait_log(r"acme nowhere\.example\.test: order failed: "
                        r"(.*); next attempt in (\d+)s", timeout=60)
    assert "could not validate" in m.group(1), m.group(0)
    assert "resolves to the gateways" in m.group(1), m.group(0)
    assert 1 <= int(m.group(2)) <= 4
    a.proc.wait_log(r"failure 2 in a row", timeout=30)
    elapsed = time.monotonic() - t0
    assert elapsed >= 1.0
    st = {c["name"]: c for c in admin_json(admin)["certificates"]}
    c = st["nowhere.example.test"]
    assert c["state"] in ("none", "ordering")
    assert c["failures"] >= 2 or c["state"] == "ordering"
    assert "could not validate" in c["last_error"]
    # No tight loop: attempts are spaced by the backoff.
    assert a.proc.count(r"order failed") <= 1 + elapsed / 1.0


def test_external_account_binding(procs, ca_stack, ca):
    """A CA that requires EAB: a wrong key gives one clear line naming
    acme.eab; the right one gets the certificate."""
    tmp, bind, gw = ca_stack
    pebble = Pebble(procs, tmp, gw.http_port, gw.tls_port, bind,
                    config={"externalAccountBindingRequired": True,
                            "externalAccountMACKeys": {
                                "kid-1": "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"}})
    ng = Nginx(procs, tmp, ca, NAME)
    a, state = acme_agent(procs, tmp, gw, pebble, extra=[
        "eab: {kid: kid-1, hmac_key: "
        "AAAADM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W}"])
    a.serve(NAME, tls=ng.tls, more=["certificate: acme"])
    gw.start()
    a.start()
    m = a.proc.wait_log(r"order failed: (.*); next attempt", timeout=60)
    assert "acme.eab" in m.group(1), m.group(0)
    # The HMAC key is a secret: never in a log line.
    assert "AAAADM6eQGHWpSRTPal5eIUYFTu7EajV" not in a.proc.log()
    a.proc.stop()
    a.extra = a.extra.replace(
        "AAAADM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W",
        "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W")
    # The failure's backoff is saved; a user fixing the key renews now.
    os.unlink(os.path.join(state, "certs", NAME, "state.json"))
    a.start()
    a.proc.wait_log(r"certificate obtained", timeout=60)
    check_cert(pebble, state)


def test_reload_adds_a_name_and_reorders(procs, ca_stack, ca):
    """SIGHUP with another name in the certificate: the agent orders a
    certificate covering both at once, without a restart; the visitors
    of the service are not disturbed meanwhile."""
    tmp, bind, gw = ca_stack
    pebble = Pebble(procs, tmp, gw.http_port, gw.tls_port, bind)
    ng = Nginx(procs, tmp, ca, NAME, tag="home")
    a, state = acme_agent(procs, tmp, gw, pebble)
    a.serve(NAME, tls=ng.tls, more=["certificate: acme"])
    gw.start()
    a.start()
    a.proc.wait_log(r"certificate obtained", timeout=60)
    check_cert(pebble, state)
    a.proc.set_mark()
    a.more[NAME] = ["certificate: acme",
                    "certificate_names: [other.example.test]"]
    a.write_config()
    a.proc.send_signal(signal.SIGHUP)
    a.proc.wait_log(r"reload: acme app\.example\.test: names changed")
    a.proc.wait_log(r"certificate obtained", timeout=60)
    check_cert(pebble, state, names=(NAME, "other.example.test"))
    body = get(gw, NAME, "/whoami", ca=ca.crt)
    assert "home" in body


def test_order_child_dies_with_the_agent(procs, ca_stack, ca):
    """An agent killed mid-order: its order process goes too, holding
    none of the agent's sockets, so a restart binds its admin port and
    orders again."""
    tmp, bind, gw = ca_stack
    # Validation waits a few seconds: the order is still open when the
    # agent is killed.
    pebble = Pebble(procs, tmp, gw.http_port, gw.tls_port, bind,
                    env={"PEBBLE_VA_NOSLEEP": "", "PEBBLE_VA_SLEEPTIME": "3"})
    ng = Nginx(procs, tmp, ca, NAME)
    admin = free_port()
    a, state = acme_agent(procs, tmp, gw, pebble, admin=admin)
    a.serve(NAME, tls=ng.tls, more=["certificate: acme"])
    gw.start()
    a.start()
    a.proc.wait_log(r"answering http-01 for app\.example\.test", timeout=30)
    with open(f"/proc/{a.proc.pid}/task/{a.proc.pid}/children") as f:
        kids = [int(x) for x in f.read().split()]
    assert len(kids) == 1, kids
    a.proc.p.kill()
    a.proc.p.wait()
    def gone():
        try:
            with open(f"/proc/{kids[0]}/stat") as f:
                return f.read().split()[2] == "Z"
        except FileNotFoundError:
            return True
    wait_until(gone, "end of the order process with the agent", timeout=1)
    a.start()
    a.proc.wait_log(rf"admin: status and metrics on http://127\.0\.0\.1:{admin}/")
    a.proc.wait_log(r"certificate obtained", timeout=60)
    check_cert(pebble, state)
