"""The visitor entries' tolerance and what they report (issue 12, faults 6
and 7): an empty line before the HTTP request line, ClientHello record
versions 3.0 to 3.3, host= in the HTTP entry's log lines, an IP address
as SNI counted as no-sni, and the signals in porch-gateway -h."""

import re
import ssl
import struct
import subprocess
import urllib.request

from conftest import (GATEWAY, Gateway, connect, free_port, recv_until_eof,
                      resp_body, resp_status)


HOST = "app.example.test"


def http_visit(port, raw):
    with connect(port) as s:
        lport = s.getsockname()[1]
        s.sendall(raw)
        return lport, recv_until_eof(s)


def set_record_versions(flight, versions):
    """The client's first flight (one handshake record from Python's
    OpenSSL) as len(versions) records of about equal size, record i with
    version 3.versions[i]: what old or odd clients put in the record
    header that RFC 8446 5.1 says to ignore."""
    assert flight[0] == 0x16 and flight[5] == 0x01, flight[:8].hex()
    rlen = struct.unpack("!H", flight[3:5])[0]
    assert len(flight) == 5 + rlen, "expected a one-record hello"
    body = flight[5:]
    step = -(-len(body) // len(versions))
    out = b""
    for i, minor in enumerate(versions):
        part = body[i * step:(i + 1) * step]
        out += bytes([0x16, 3, minor]) + struct.pack("!H", len(part)) + part
    return out


def https_get_with_record_versions(port, ca, versions, timeout=5.0):
    """A real TLS client (Python's OpenSSL over memory BIOs) whose
    ClientHello goes out with the given record versions; the rest of the
    handshake and a GET / go through untouched.  Returns the response,
    or raises ssl.SSLError / ConnectionError when refused."""
    ctx = ssl.create_default_context(cafile=ca.crt)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname=HOST)
    with connect(port, timeout=timeout) as s:
        first = True
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                data = outgoing.read()
                if first:
                    data = set_record_versions(data, versions)
                    first = False
                if data:
                    s.sendall(data)
                chunk = s.recv(65536)
                if not chunk:
                    raise ConnectionError("closed during the handshake")
                incoming.write(chunk)
        tls.write(f"GET / HTTP/1.1\r\nHost: {HOST}\r\n"
                  f"Connection: close\r\n\r\n".encode())
        s.sendall(outgoing.read())
        resp = b""
        while len(resp) < 1 << 20:
            try:
                data = tls.read(65536)
                if not data:
                    break           # an unclean end, after all
                resp += data
                continue
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLZeroReturnError:
                break
            chunk = s.recv(65536)
            if not chunk:
                break
            incoming.write(chunk)
    return resp


def metrics(admin):
    return urllib.request.urlopen(f"http://{admin}/metrics",
                                  timeout=5).read().decode()


def rejected(text, result):
    m = re.search(rf'^porch_gateway_rejected_total\{{result="{result}"\}} '
                  rf'(\d+)$', text, re.M)
    assert m, text
    return int(m.group(1))


# ---------------------------------------------------------------- fault 7

def test_http_entry_ignores_one_leading_empty_line(stack):
    gw = stack.gw
    for lead in (b"\r\n", b"\n"):
        port, resp = http_visit(gw.http_port, lead +
                                f"GET /whoami HTTP/1.1\r\nHost: {HOST}\r\n"
                                f"Connection: close\r\n\r\n".encode())
        assert resp_status(resp) == 200, (lead, resp[:300])
        assert resp_body(resp) == f"{HOST} http {HOST}\n".encode(), resp
        gw.proc.wait_log(rf"entry=http peer=127\.0\.0\.1:{port} "
                         rf"host={re.escape(HOST)} agent=agent stream=")

    # Bounded: a second empty line is garbage, refused at once.
    port, resp = http_visit(gw.http_port, b"\r\n\r\nGET / HTTP/1.1\r\n"
                            + f"Host: {HOST}\r\n\r\n".encode())
    assert resp_status(resp) == 400, resp[:300]
    gw.proc.wait_log(rf"entry=http peer=127\.0\.0\.1:{port} host=- "
                     rf"result=malformed-request")


def test_client_hello_record_versions_are_ignored(stack):
    gw = stack.gw
    # 3.0 as some clients send, 3.3, and a hello over two records that
    # disagree: each reaches nginx, which answers.
    for versions in ([0], [3], [1], [0, 3]):
        resp = https_get_with_record_versions(gw.tls_port, stack.ca,
                                              versions)
        assert resp_status(resp) == 200, (versions, resp[:300])
        assert resp_body(resp) == f"hello from {HOST}\n".encode(), resp
    gw.proc.wait_log(rf"entry=tls peer=127\.0\.0\.1:\d+ "
                     rf"sni={re.escape(HOST)} agent=agent stream=")
    assert "malformed-hello" not in gw.proc.log()


# ---------------------------------------------------------------- fault 6

def test_http_entry_logs_say_host(stack):
    gw = stack.gw
    port, resp = http_visit(gw.http_port,
                            f"GET /whoami HTTP/1.1\r\nHost: {HOST}\r\n"
                            f"Connection: close\r\n\r\n".encode())
    assert resp_status(resp) == 200, resp[:300]
    gw.proc.wait_log(rf"entry=http peer=127\.0\.0\.1:{port} "
                     rf"host={re.escape(HOST)} agent=agent stream=\d+ "
                     rf".*reason=")
    port, resp = http_visit(gw.http_port, b"GET / HTTP/1.1\r\n"
                            b"Host: nope.example.test\r\n\r\n")
    assert resp_status(resp) == 404, resp[:300]
    gw.proc.wait_log(rf"entry=http peer=127\.0\.0\.1:{port} "
                     rf"host=nope\.example\.test result=no-route")
    # The TLS entry keeps sni=.
    r = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{gw.tls_port}",
         "-servername", "nope.example.test"],
        input="", capture_output=True, text=True, timeout=20)
    assert "unrecognized name" in r.stderr.lower(), r.stdout + r.stderr
    gw.proc.wait_log(r"entry=tls peer=127\.0\.0\.1:\d+ "
                     r"sni=nope\.example\.test result=no-route")
    http_lines = [l for l in gw.proc.log().splitlines() if "entry=http" in l]
    assert http_lines
    assert not [l for l in http_lines if " sni=" in l], http_lines


def test_ip_literal_sni_counts_as_no_sni(procs, tmp_path):
    admin = f"127.0.0.1:{free_port()}"
    gw = Gateway(procs, str(tmp_path), extra=f'admin: "{admin}"')
    gw.start()
    before = metrics(admin)
    assert rejected(before, "no-sni") == 0
    assert rejected(before, "no-route") == 0
    # openssl s_client sends whatever -servername says, as some clients
    # send an address although RFC 6066 forbids it.
    for n, name in enumerate(("127.0.0.1", "::1"), 1):
        r = subprocess.run(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{gw.tls_port}",
             "-servername", name],
            input="", capture_output=True, text=True, timeout=20)
        gw.proc.wait_log(r"entry=tls peer=127\.0\.0\.1:\d+ sni=\S+ "
                         r"result=")
        after = metrics(admin)
        assert (name, rejected(after, "no-sni"),
                rejected(after, "no-route"),
                rejected(after, "malformed-hello")) == (name, n, 0, 0), after
        assert "unrecognized name" in r.stderr.lower(), r.stdout + r.stderr
    assert len(re.findall(r"entry=tls peer=127\.0\.0\.1:\d+ sni=- "
                          r"result=no-sni", gw.proc.log())) == 2, \
        gw.proc.log()


def test_gateway_usage_describes_signals():
    r = subprocess.run([GATEWAY, "-h"], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 0, r.stderr
    text = " ".join(r.stdout.split())
    assert "SIGHUP" in text, r.stdout
    assert re.search(r"SIGHUP reloads the configuration, keeping "
                     r"established connections", text), r.stdout
    assert re.search(r"SIGTERM/SIGINT stop accepting.*drain", text) or \
        re.search(r"SIGTERM/SIGINT .*finish.*then stop", text), r.stdout
