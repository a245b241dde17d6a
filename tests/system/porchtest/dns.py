"""BIND 9 (named) as the authoritative server of the test zone."""

import os
import subprocess

from .ports import free_port
from .wait import wait_until


class Bind:
    """BIND 9 (named) as the authoritative server of example.test, on a
    loopback port, started and stopped by the test (see
    ../shared/recipes/dns-bind9.md for the pitfalls this avoids)."""

    def __init__(self, procs, tmp, records, zone="example.test"):
        self.dir = os.path.join(tmp, "bind")
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.zone = zone
        zf = os.path.join(self.dir, f"{zone}.zone")
        with open(zf, "w") as f:
            f.write(f"$ORIGIN {zone}.\n$TTL 60\n"
                    f"@ IN SOA ns1.{zone}. hostmaster.{zone}. 1 60 60 600 1\n"
                    f"@ IN NS ns1.{zone}.\nns1 IN A 127.0.0.1\n")
            for r in records:
                f.write(r + "\n")
        conf = os.path.join(self.dir, "named.conf")
        with open(conf, "w") as f:
            f.write(f"""options {{
  directory "{self.dir}";
  pid-file "{self.dir}/named.pid";
  session-keyfile "{self.dir}/session.key";
  managed-keys-directory "{self.dir}";
  port {self.port};
  listen-on {{ 127.0.0.1; }}; listen-on-v6 {{ none; }};
  recursion no; dnssec-validation no; notify no;
  allow-transfer {{ none; }};
}};
controls {{ }};
zone "{zone}" {{ type primary; file "{zf}"; }};
""")
        self.proc = procs.start("named", ["/usr/sbin/named", "-g", "-4",
                                          "-c", conf])
        # Ready when it answers for the zone (named -g logs "running"
        # but may not listen yet).
        def answers():
            assert self.proc.alive(), self.proc.log()
            r = subprocess.run(["dig", "+time=1", "+tries=1", "+norec",
                                "@127.0.0.1", "-p", str(self.port), zone,
                                "SOA"], capture_output=True, text=True)
            return "status: NOERROR" in r.stdout
        wait_until(answers, lambda: f"answer from named; log:\n"
                   f"{self.proc.log()}", interval=0.05)

    @property
    def server(self):
        return f"127.0.0.1:{self.port}"
