"""ACME dns-01 through the agent's dns: section (issue 16 item 5): the
TXT record published by RFC 2136, seen at the zone's name server before
the CA is asked, removed afterwards; wildcard certificates; and no need
for any gateway.  Pebble validates for real against BIND."""
import os
import re
import subprocess

from conftest import Agent, Gateway, Pebble, free_port
from test_acme import check_cert
from test_ddns import Dns

NAME = "app.example.test"
WILD = "*.w.example.test"


def test_dns01_certificate_with_a_wildcard_while_every_gateway_is_down(
        procs, tmp_path):
    tmp = str(tmp_path)
    bind = Dns(procs, tmp, "bind")
    # A gateway the agent is configured for, never started: dns-01 needs
    # no way in for the CA.
    gw = Gateway(procs, tmp)
    pebble = Pebble(procs, tmp, free_port(), free_port(), bind)
    state = os.path.join(tmp, "agent", "state")
    acme = pebble.acme_section(state, ["challenge: [dns-01]",
                                       "caa_pin: true",
                                       "caa_identity: pebble.test",
                                       "retry: {min: 2s, max: 4s}"])
    a = Agent(procs, tmp, extra=acme + f"""
dns:
  provider: rfc2136
  server: "{bind.server}"
  zone: example.test
  tsig_key: {bind.key}
  ttl: 5s""")
    a.use(gw)
    gw.admit(a, [NAME, WILD])
    a.serve(NAME, tls="127.0.0.1:9",
            more=["certificate: acme", f'certificate_names: ["{WILD}"]'])
    a.start(wait_serving=False)
    a.proc.wait_log(r"acme app\.example\.test: certificate obtained",
                    timeout=90)
    assert "order failed" not in a.proc.log()
    check_cert(pebble, state, names=(NAME, WILD))
    # Each answer was seen at the name server before the CA was asked.
    assert a.proc.count(r"dns: _acme-challenge\.app\.example\.test TXT is "
                        r"at every name server") >= 1
    assert a.proc.count(r"dns: _acme-challenge\.w\.example\.test TXT is "
                        r"at every name server") >= 1
    # ... and is gone afterwards.
    for owner in ("_acme-challenge.app.example.test",
                  "_acme-challenge.w.example.test"):
        from porchtest.wait import wait_until
        wait_until(lambda: bind.get_name(owner, "TXT") == [],
                   f"{owner} TXT removed", timeout=15)
    # CAA pinning (RFC 8657): the CA's identity and this agent's
    # account, "issue" for the name and "issuewild" for the wildcard's
    # base, published before the order.
    m = re.search(r"acme: using account (\S+)", a.proc.log())
    assert m, a.proc.log()
    account = m.group(1).rstrip(";")
    def caa(owner):
        return subprocess.run(["dig", "+short", "+norec", "@127.0.0.1", "-p",
                               str(bind.port), owner, "CAA"],
                              capture_output=True, text=True,
                              check=True).stdout.strip()
    assert caa(NAME) == f'0 issue "pebble.test; accounturi={account}"', \
        caa(NAME)
    assert caa("w.example.test") == \
        f'0 issuewild "pebble.test; accounturi={account}"', \
        caa("w.example.test")
    log = a.proc.log()
    assert log.index("pinning CAA of app.example.test") < \
        log.index("answering dns-01 for")
