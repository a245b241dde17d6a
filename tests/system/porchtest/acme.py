"""Pebble, the ACME test CA, validating for real against our BIND."""

import json
import os
import ssl
import subprocess
import urllib.request

from .ports import free_port
from .wait import wait_until


class Pebble:
    """Pebble, the ACME test CA, with real validation: its DNS is our
    BIND, and it probes http-01 and tls-alpn-01 on the given ports (a
    gateway's HTTP and TLS entries).  Never PEBBLE_VA_ALWAYS_VALID."""

    def __init__(self, procs, tmp, http_port, tls_port, dns, env=None,
                 config=None):
        self.dir = os.path.join(tmp, "pebble")
        os.makedirs(self.dir, exist_ok=True)
        d = self.dir
        self.port = free_port()
        self.mgmt_port = free_port()
        ssl_run = lambda *a: subprocess.run(a, check=True,
                                            capture_output=True)
        # The package ships no API certificate: make a throw-away CA.
        self.api_ca = os.path.join(d, "api-ca.pem")
        ssl_run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
                f"{d}/api-ca.key", "-out", self.api_ca, "-days", "2",
                "-subj", "/CN=porch test pebble API CA", "-addext",
                "basicConstraints=critical,CA:TRUE", "-addext",
                "keyUsage=critical,keyCertSign,cRLSign")
        ssl_run("openssl", "req", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
                f"{d}/api.key", "-out", f"{d}/api.csr", "-subj",
                "/CN=localhost")
        with open(f"{d}/api.ext", "w") as f:
            f.write("basicConstraints=critical,CA:FALSE\n"
                    "keyUsage=critical,digitalSignature\n"
                    "extendedKeyUsage=serverAuth\n"
                    "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        ssl_run("openssl", "x509", "-req", "-in", f"{d}/api.csr", "-CA",
                self.api_ca, "-CAkey", f"{d}/api-ca.key", "-CAcreateserial",
                "-days", "2", "-extfile", f"{d}/api.ext", "-out",
                f"{d}/api.pem")
        cfg = {"listenAddress": f"127.0.0.1:{self.port}",
               "managementListenAddress": f"127.0.0.1:{self.mgmt_port}",
               "certificate": f"{d}/api.pem", "privateKey": f"{d}/api.key",
               "httpPort": http_port, "tlsPort": tls_port,
               "ocspResponderURL": "",
               "externalAccountBindingRequired": False}
        cfg.update(config or {})
        conf = os.path.join(d, "pebble.json")
        with open(conf, "w") as f:
            json.dump({"pebble": cfg}, f)
        e = {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0",
             "PEBBLE_AUTHZREUSE": "0"}
        e.update(env or {})
        assert "PEBBLE_VA_ALWAYS_VALID" not in e
        self.proc = procs.start("pebble", ["pebble", "-config", conf,
                                           "-strict=false", "-dnsserver",
                                           dns.server], env=e)
        self.directory = f"https://127.0.0.1:{self.port}/dir"
        ctx = ssl.create_default_context(cafile=self.api_ca)
        def answers():
            try:
                return urllib.request.urlopen(self.directory, context=ctx,
                                              timeout=2).read()
            except OSError:
                assert self.proc.alive(), self.proc.log()
                return None
        wait_until(answers, lambda: f"ACME directory from pebble; log:\n"
                   f"{self.proc.log()}", timeout=15, interval=0.05)
        # The issuing hierarchy is new at every start.
        self.root = os.path.join(d, "issuer-root.pem")
        self.intermediate = os.path.join(d, "issuer-intermediate.pem")
        for path, url in ((self.root, "roots/0"),
                          (self.intermediate, "intermediates/0")):
            with open(path, "wb") as f:
                f.write(urllib.request.urlopen(
                    f"https://127.0.0.1:{self.mgmt_port}/{url}",
                    context=ctx, timeout=5).read())

    def acme_section(self, state_dir, extra=()):
        """The agent's acme: section for this CA."""
        return "\n".join(["acme:", f"  directory: {self.directory}",
                          f"  ca_bundle: {self.api_ca}",
                          "  email: admin@example.test", "  agree_tos: true",
                          f"  state_dir: {state_dir}"]
                         + [f"  {x}" for x in extra])
