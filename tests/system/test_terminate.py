"""tls: terminate: the agent ends the visitor's TLS itself and relays
plain HTTP (or h2c) to the home backend.

The certificate is minted by the test's own CA and placed where ACME
would put it (STATE/certs/NAME/VERSION with a `current` link); the acme:
section points at a CA that does not answer, so nothing replaces it.
Renewal pick-up and tls-alpn-01 against a real CA are in test_acme.py.
"""

import os
import re
import shutil
import signal
import socket
import ssl
import threading
import time

from conftest import (Agent, Gateway, PlainNginx, assert_grew_less, big_file,
                      curl, free_port, get, rss_kib, sha256, slow_download,
                      tls_visit, wait_until)

NAME = "app.example.test"

def place_cert(state, name, crt, key, version="20260101T000000Z"):
    """Where ACME keeps a certificate: a version directory and a
    `current` link to it."""
    d = os.path.join(state, "certs", name, version)
    os.makedirs(d, mode=0o700)
    shutil.copy(crt, os.path.join(d, "fullchain.pem"))
    shutil.copy(crt, os.path.join(d, "cert.pem"))
    shutil.copy(key, os.path.join(d, "privkey.pem"))
    os.chmod(os.path.join(d, "privkey.pem"), 0o600)
    os.symlink(version, os.path.join(state, "certs", name, "current"))


def term_stack(procs, tmp, ca, h2c=False, cert=True, http=None, extra=()):
    """A gateway and an agent terminating NAME for the nginx above."""
    tmp = str(tmp)
    state = os.path.join(tmp, "state")
    os.makedirs(state, mode=0o700)
    if cert:
        crt, key = ca.leaf(NAME)
        place_cert(state, NAME, crt, key)
    ng = PlainNginx(procs, tmp)
    gw = Gateway(procs, tmp)
    acme = "\n".join(["acme:", "  directory: https://127.0.0.1:1/dir",
                      "  agree_tos: true", f"  state_dir: {state}",
                      "  retry: {min: 1h, max: 2h}", *extra])
    ag = Agent(procs, tmp, extra=acme)
    ag.state = state
    gw.admit(ag, ["*.example.test"])
    ag.use(gw)
    ag.serve(NAME, tls="terminate", http=http or ng.http,
             more=[f'h2c: "{ng.h2c}"'] if h2c else [])
    gw.start()
    ag.start()
    return gw, ag, ng


def served(gw, alpn=None):
    """The leaf certificate (DER) and the ALPN protocol the visitor got."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(alpn)
    with socket.create_connection(("127.0.0.1", gw.tls_port),
                                  timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=NAME) as s:
            return s.getpeercert(binary_form=True), \
                s.selected_alpn_protocol()


def der(path):
    with open(path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def test_terminate_http11(procs, tmp_path, ca):
    """The visitor verifies our certificate; the backend gets plain HTTP;
    without an h2c backend h2 is not offered."""
    gw, ag, ng = term_stack(procs, tmp_path, ca)
    body = get(gw, NAME, "/whoami", ca=ca)
    assert body == f"plain HTTP/1.1 {NAME}\n", body
    leaf, proto = served(gw, ["h2", "http/1.1"])
    assert leaf == der(os.path.join(ca.dir, f"{NAME}.crt"))
    assert proto == "http/1.1"
    # Only a protocol we do not speak: the handshake fails.
    assert "no application protocol" in tls_visit_alpn(gw.tls_port, ["h2"])
    ag.proc.wait_log(r"TLS handshake failed: visitor=127\.0\.0\.1:\d+: no "
                     r"ALPN protocol in common", since_mark=False)
    # Keep-alive: several requests on one TLS connection.
    r = curl(f"https://{NAME}:{gw.tls_port}/whoami", NAME, gw.tls_port,
             ca=ca.crt, extra=[f"https://{NAME}:{gw.tls_port}/whoami"])
    assert r.returncode == 0 and r.stdout.count("plain HTTP/1.1") == 2
    gw.proc.wait_log(r"stream=\d+ in=\d+ out=\d+ ms=\d+ reason=eof",
                     since_mark=False)


def tls_visit_alpn(port, alpn):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(alpn)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        try:
            with ctx.wrap_socket(s, server_hostname=NAME):
                return "ok"
        except ssl.SSLError as e:
            return str(e)


def test_terminate_h2_to_h2c(procs, tmp_path, ca):
    """With an h2c backend: h2 visitors reach it as cleartext HTTP/2,
    http/1.1 visitors still reach the http backend."""
    gw, ag, ng = term_stack(procs, tmp_path, ca, h2c=True)
    _, proto = served(gw, ["h2", "http/1.1"])
    assert proto == "h2"
    body = get(gw, NAME, "/whoami", ca=ca, extra=["--http2"])
    assert body == f"h2c HTTP/2.0 {NAME}\n", body
    body = get(gw, NAME, "/whoami", ca=ca, extra=["--http1.1"])
    assert body == f"plain HTTP/1.1 {NAME}\n", body
    # Several h2 streams on one connection.
    r = curl(f"https://{NAME}:{gw.tls_port}/whoami", NAME, gw.tls_port,
             ca=ca.crt, extra=["--http2", f"https://{NAME}:{gw.tls_port}"
                               "/whoami"])
    assert r.returncode == 0 and r.stdout.count("h2c HTTP/2.0") == 2
    ag.proc.wait_log(r"alpn=h2 backend=127\.0\.0\.1:%d" % ng.h2c_port,
                     since_mark=False)


def test_terminate_big_download_exact(procs, tmp_path, ca):
    """50 MiB through the agent's TLS, byte-exact, over http/1.1 and h2."""
    gw, ag, ng = term_stack(procs, tmp_path, ca, h2c=True)
    want = big_file(ng.root, 50)
    for proto in ("--http1.1", "--http2"):
        out = os.path.join(str(tmp_path), f"big{proto}.bin")
        r = curl(f"https://{NAME}:{gw.tls_port}/big.bin", NAME,
                 gw.tls_port, ca=ca.crt, extra=[proto], out=out, timeout=60)
        assert r.returncode == 0, r.stderr
        assert sha256(out) == want, proto


def test_terminate_slow_visitor_stalls_backend(procs, tmp_path, ca):
    """A visitor reading at 1 MB/s: the agent holds a bounded amount,
    not the file (nginx would send all 40 MiB at once, and does send
    only a little more than the visitor took); the visitor cutting the
    download frees the connection on both sides."""
    gw, ag, ng = term_stack(procs, tmp_path, ca)
    big_file(ng.root, 40)
    before = rss_kib(ag.proc.pid)
    out = os.path.join(str(tmp_path), "slow.bin")
    dl = slow_download(procs, gw, ca, NAME, out, rate="1M", first=2 << 20)
    # Once the visitor has taken 1.5 MiB more (1.5 s at 1 MB/s), nginx
    # could have sent all 40 MiB had nothing held it back.
    wait_until(lambda: os.path.getsize(out) >= (2 << 20) + (3 << 19),
               "progress of the slow download", timeout=20)
    grown = rss_kib(ag.proc.pid) - before
    ag.proc.set_mark()
    dl.stop()           # the visitor goes away mid-transfer
    took = os.path.getsize(out)
    ag.proc.wait_log(rf"sni={re.escape(NAME)} tls=terminate .*reason=")
    log = os.path.join(ng.dir, "access.log")
    m = wait_until(lambda: re.search(r"/big\.bin (\d+)", open(log).read()),
                   "abort in nginx's access log")
    sent = int(m.group(1))
    # Socket buffers on the way hold a few MiB; the file is 40.
    assert sent - took < 16 << 20, (sent, took)
    assert get(gw, NAME, "/whoami", ca=ca) == f"plain HTTP/1.1 {NAME}\n"
    assert_grew_less("the agent", grown, 12 * 1024)


def test_terminate_missing_certificate(procs, tmp_path, ca):
    """No certificate yet: not fatal; visitors get unrecognized_name and
    the log says why, once however many visitors come."""
    gw, ag, ng = term_stack(procs, tmp_path, ca, cert=False)
    for _ in range(3):
        assert tls_visit(gw.tls_port, NAME) == "TLSV1_UNRECOGNIZED_NAME"
    ag.proc.wait_log(r"TLS handshake failed: visitor=127\.0\.0\.1:\d+: no "
                     r"certificate for app\.example\.test", since_mark=False)
    line = (r"no certificate for app\.example\.test yet \(ACME has not "
            r"obtained one; see porchctl cert status\)")
    assert ag.proc.count(line) == 1, ag.proc.log()
    # Plain HTTP visitors are not affected.
    r = curl(f"http://{NAME}:{gw.http_port}/whoami", NAME, gw.http_port)
    assert r.returncode == 0 and "plain HTTP/1.1" in r.stdout, r.stderr


def test_terminate_backend_refused(procs, tmp_path, ca):
    """A dead backend: the visitor's TLS is closed cleanly (close_notify,
    no reset) and one warning names the backend."""
    dead = free_port()
    gw, ag, ng = term_stack(procs, tmp_path, ca, http=f"127.0.0.1:{dead}")
    ctx = ssl.create_default_context(cafile=ca.crt)
    with socket.create_connection(("127.0.0.1", gw.tls_port),
                                  timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=NAME) as s:
            s.sendall(f"GET / HTTP/1.1\r\nHost: {NAME}\r\n\r\n".encode())
            assert s.recv(4096) == b""      # close_notify: a clean EOF
    ag.proc.wait_log(rf"backend 127\.0\.0\.1:{dead}: Connection refused "
                     rf"\(visitor for {re.escape(NAME)} gets closed\)")


class ReadToEof:
    """A backend that reads until EOF, then answers with the count and
    closes: it only answers if the agent passes the visitor's EOF on."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.got = 0
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        self.sock.settimeout(20)
        try:
            c, _ = self.sock.accept()
        finally:
            self.sock.close()
        c.settimeout(20)
        while True:
            b = c.recv(65536)
            if not b:
                break
            self.got += len(b)
        c.sendall(b"got %d bytes\n" % self.got + b"x" * (1 << 20))
        c.close()


def test_terminate_half_close(procs, tmp_path, ca):
    """The visitor sends, then close_notify and FIN, and still reads: the
    backend sees EOF, answers, and the visitor gets all of it, then our
    close_notify."""
    be = ReadToEof()
    gw, ag, ng = term_stack(procs, tmp_path, ca,
                            http=f"127.0.0.1:{be.port}")
    ctx = ssl.create_default_context(cafile=ca.crt)
    inc, outg = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(inc, outg, server_hostname=NAME)
    raw = socket.create_connection(("127.0.0.1", gw.tls_port), timeout=10)

    def pump():
        data = outg.read()
        if data:
            raw.sendall(data)

    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            pump()
            b = raw.recv(65536)
            assert b, "EOF during the handshake"
            inc.write(b)
    payload = b"y" * 300000
    tls.write(payload)
    try:
        tls.unwrap()        # our close_notify; theirs has not come yet
    except ssl.SSLWantReadError:
        pass
    pump()
    raw.shutdown(socket.SHUT_WR)
    got = b""
    while True:
        b = raw.recv(65536)
        if not b:
            break
        inc.write(b)
        while True:
            try:
                chunk = tls.read(65536)
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                break
            if not chunk:
                break
            got += chunk
    raw.close()
    be.t.join(5)
    assert be.got == len(payload)
    assert got == b"got %d bytes\n" % len(payload) + b"x" * (1 << 20)
    gw.proc.wait_log(r"reason=eof", since_mark=False)


def test_terminate_stalled_handshake_times_out(procs, tmp_path, ca):
    """A visitor that sends its ClientHello and nothing else is dropped
    after the handshake bound, with an info line naming it."""
    gw, ag, ng = term_stack(procs, tmp_path, ca)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, outg = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(inc, outg, server_hostname=NAME)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    with socket.create_connection(("127.0.0.1", gw.tls_port),
                                  timeout=20) as raw:
        raw.sendall(outg.read())
        t0 = time.monotonic()
        try:
            while raw.recv(65536):
                pass                # ServerHello..., then the close
        except ConnectionResetError:
            pass
        assert 8 < time.monotonic() - t0 < 15
    ag.proc.wait_log(r"TLS handshake failed: visitor=127\.0\.0\.1:\d+: no "
                     r"handshake within 10 s", since_mark=False)


def test_terminate_follows_reloaded_services(procs, tmp_path, ca):
    """SIGHUP: a new terminating service gets its certificate loaded, an
    h2c backend added to a running one makes h2 appear, and a removed
    service's certificate is no longer offered."""
    gw, ag, ng = term_stack(procs, tmp_path, ca)
    assert served(gw, ["h2", "http/1.1"])[1] == "http/1.1"
    other = "other.example.test"
    crt, key = ca.leaf(other)
    place_cert(ag.state, other, crt, key)
    ag.services = []
    ag.serve(NAME, tls="terminate", http=ng.http, more=[f'h2c: "{ng.h2c}"'])
    ag.serve(other, tls="terminate", http=ng.http)
    ag.write_config()
    ag.proc.set_mark()
    ag.proc.send_signal(signal.SIGHUP)
    ag.proc.wait_log(r"reloaded .*services \(\+1 -0")
    ag.proc.wait_log(r"terminate other\.example\.test: certificate loaded",
                     since_mark=False)
    ag.proc.wait_log(r"gateway gw: serving other\.example\.test")
    assert served(gw, ["h2", "http/1.1"])[1] == "h2"
    r = curl(f"https://{other}:{gw.tls_port}/whoami", other, gw.tls_port,
             ca=ca.crt)
    assert r.returncode == 0 and r.stdout == f"plain HTTP/1.1 {other}\n", \
        r.stderr
    # Removed again: its visitors are no longer answered with it.
    ag.services = []
    ag.serve(NAME, tls="terminate", http=ng.http)
    ag.write_config()
    ag.proc.set_mark()
    ag.proc.send_signal(signal.SIGHUP)
    ag.proc.wait_log(r"reloaded .*services \(\+0 -1")
    assert served(gw, ["h2", "http/1.1"])[1] == "http/1.1"
    assert tls_visit(gw.tls_port, other) != "ok"


def test_terminate_agent_stops_mid_transfer(procs, tmp_path, ca):
    """SIGTERM while a visitor downloads through the agent's TLS: the
    drain bound cuts it and the agent exits cleanly (no leak, no
    sanitizer report under PORCH_ASAN=1)."""
    gw, ag, ng = term_stack(procs, tmp_path, ca)
    ag.extra = ag.extra.replace("acme:", "timeouts: { drain: 500ms }\nacme:")
    ag.write_config()
    ag.proc.send_signal(signal.SIGHUP)
    ag.proc.wait_log(r"reloaded ")
    big_file(ng.root, 20)
    out = os.path.join(str(tmp_path), "cut.bin")
    dl = slow_download(procs, gw, ca, NAME, out, rate="1M")
    ag.proc.check_clean_exit()
    assert dl.p.wait(20) != 0       # cut, not completed
