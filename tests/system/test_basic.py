"""The foundation path: a visitor reaches a home nginx through a gateway
and an agent; TLS ends at home, byte for byte."""

import hashlib
import os
import subprocess

from conftest import curl


def test_tls_passthrough_reaches_backend(stack):
    r = curl(f"https://app.example.test:{stack.gw.tls_port}/",
             "app.example.test", stack.gw.tls_port, ca=stack.ca.crt)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hello from app.example.test\n"
    # The gateway logged the routed connection with its agent.
    stack.gw.proc.wait_log(r"conn=\w+ entry=tls peer=127\.0\.0\.1:\d+ "
                           r"sni=app\.example\.test agent=agent .*"
                           r"reason=eof")


def test_certificate_is_the_backends(stack):
    """openssl s_client sees the home backend's certificate: the gateway
    did not terminate TLS."""
    r = subprocess.run(
        ["openssl", "s_client", "-connect",
         f"127.0.0.1:{stack.gw.tls_port}", "-servername",
         "app.example.test", "-CAfile", stack.ca.crt, "-verify_return_error",
         "-showcerts"], input="", capture_output=True, text=True, timeout=20)
    assert "Verify return code: 0 (ok)" in r.stdout, r.stdout + r.stderr
    served = subprocess.run(["openssl", "x509", "-noout", "-fingerprint",
                             "-sha256"], input=r.stdout, capture_output=True,
                            text=True).stdout
    home = subprocess.run(["openssl", "x509", "-noout", "-fingerprint",
                           "-sha256", "-in", stack.nginx.crt],
                          capture_output=True, text=True).stdout
    assert served and served == home


def test_http_entry_routes_by_host(stack):
    r = curl(f"http://app.example.test:{stack.gw.http_port}/whoami",
             "app.example.test", stack.gw.http_port)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "app.example.test http app.example.test\n"


def test_large_transfer_is_byte_exact(stack, tmp_path):
    """100 MiB from nginx through the tunnel, sha256 on both ends, in both
    directions of the relay (download, and an upload nginx discards)."""
    src = os.path.join(stack.nginx.root, "big.bin")
    h = hashlib.sha256()
    with open(src, "wb") as f:
        for _ in range(100):
            chunk = os.urandom(1 << 20)
            h.update(chunk)
            f.write(chunk)
    out = str(tmp_path / "got.bin")
    r = curl(f"https://app.example.test:{stack.gw.tls_port}/big.bin",
             "app.example.test", stack.gw.tls_port, ca=stack.ca.crt,
             timeout=120, out=out)
    assert r.returncode == 0, r.stderr
    g = hashlib.sha256()
    with open(out, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            g.update(chunk)
    assert os.path.getsize(out) == 100 << 20
    assert g.hexdigest() == h.hexdigest()
