"""RFC 2136 updates signed with TSIG (ddns/), against real servers.

Each test runs against BIND 9 and against Knot DNS, so that the updates
are not tuned to one server: tests/tools/ddnsc.c sends one update with
the library the agent uses, and dig reads what the server then holds.
"""
import os
import socket
import subprocess
import time

import pytest

from conftest import BUILD, free_port

ZONE = "example.test"
SECRET = "SZzKmj7RIpcrxgGSllJ6CiZo21PJbjHylizxcNDDp4g="
ZONE_FILE = f"""$ORIGIN {ZONE}.
$TTL 60
@ IN SOA ns1.{ZONE}. hostmaster.{ZONE}. 1 60 60 600 1
@ IN NS ns1.{ZONE}.
ns1 IN A 127.0.0.1
keep IN A 198.51.100.7
"""


def key_file(d, name="porch-key", secret=SECRET, mode=0o600):
    path = os.path.join(d, f"{name}-{secret[:4]}.key")
    with open(path, "w") as f:
        f.write(f'key "{name}" {{\n\talgorithm hmac-sha256;\n'
                f'\tsecret "{secret}";\n}};\n')
    os.chmod(path, mode)
    return path


def wait_soa(port, proc):
    deadline = time.monotonic() + 10
    while True:
        r = subprocess.run(["dig", "+time=1", "+tries=1", "+norec",
                            "@127.0.0.1", "-p", str(port), ZONE, "SOA"],
                           capture_output=True, text=True)
        if "status: NOERROR" in r.stdout:
            return
        assert proc.alive(), proc.log()
        assert time.monotonic() < deadline, proc.log()
        time.sleep(0.05)


def start_bind(procs, d, txt_only):
    """BIND 9, authoritative for ZONE; key porch-key may update every
    type below it, or only TXT (txt_only, for REFUSED)."""
    port = free_port()
    with open(os.path.join(d, f"{ZONE}.zone"), "w") as f:
        f.write(ZONE_FILE)
    types = "TXT" if txt_only else "ANY"
    with open(os.path.join(d, "named.conf"), "w") as f:
        f.write(f"""key "porch-key" {{ algorithm hmac-sha256;
  secret "{SECRET}"; }};
options {{
  directory "{d}"; pid-file "{d}/named.pid";
  session-keyfile "{d}/session.key"; managed-keys-directory "{d}";
  port {port}; listen-on {{ 127.0.0.1; }}; listen-on-v6 {{ none; }};
  recursion no; dnssec-validation no; notify no;
  allow-transfer {{ none; }};
}};
controls {{ }};
zone "{ZONE}" {{ type primary; file "{d}/{ZONE}.zone";
  update-policy {{ grant porch-key zonesub {types}; }}; }};
""")
    proc = procs.start("named", ["/usr/sbin/named", "-g", "-4", "-c",
                                 os.path.join(d, "named.conf")])
    wait_soa(port, proc)
    return port, proc


def start_knot(procs, d, txt_only):
    """Knot DNS, the same zone and key."""
    port = free_port()
    with open(os.path.join(d, f"{ZONE}.zone"), "w") as f:
        f.write(ZONE_FILE)
    types = "\n    update-type: [TXT]" if txt_only else ""
    conf = os.path.join(d, "knot.conf")
    with open(conf, "w") as f:
        f.write(f"""server:
    listen: 127.0.0.1@{port}
    rundir: {d}
    pidfile: {d}/knot.pid
database:
    storage: {d}
log:
  - target: stderr
    any: info
key:
  - id: porch-key
    algorithm: hmac-sha256
    secret: {SECRET}
acl:
  - id: update
    key: porch-key
    action: update{types}
template:
  - id: default
    storage: {d}
    file: "%s.zone"
    zonefile-sync: -1
zone:
  - domain: {ZONE}
    acl: update
""")
    proc = procs.start("knotd", ["/usr/sbin/knotd", "-c", conf])
    wait_soa(port, proc)
    return port, proc


SERVERS = {"bind": start_bind, "knot": start_knot}


class Dns:
    def __init__(self, procs, tmp, kind, txt_only=False):
        self.dir = os.path.join(tmp, kind)
        os.makedirs(self.dir, exist_ok=True)
        self.port, self.proc = SERVERS[kind](procs, self.dir, txt_only)
        self.key = key_file(self.dir)

    @property
    def server(self):
        """host:port, for Pebble's -dnsserver."""
        return f"127.0.0.1:{self.port}"

    def update(self, *args, key=None, server=None, env=None, timeout=20):
        """Run ddnsc; returns (exit code, its one line)."""
        argv = [os.path.join(BUILD, "ddnsc"),
                server or f"127.0.0.1:{self.port}", ZONE, key or self.key,
                *args]
        r = subprocess.run(argv, capture_output=True, text=True,
                           timeout=timeout, env=env)
        return r.returncode, (r.stdout + r.stderr).strip()

    def get_name(self, name, rtype):
        return self.get(name, rtype)

    def get(self, name, rtype="A"):
        r = subprocess.run(["dig", "+short", "+norec", "@127.0.0.1", "-p",
                            str(self.port), name, rtype],
                           capture_output=True, text=True, check=True)
        return sorted(r.stdout.split())


@pytest.fixture(params=sorted(SERVERS))
def dns(request, procs, tmp_path):
    return Dns(procs, str(tmp_path), request.param)


def test_adds_and_deletes_single_records(dns):
    rc, out = dns.update("add", "home.example.test", "60", "A", "192.0.2.1",
                         "add", "home.example.test", "60", "A", "192.0.2.2",
                         "add", "home.example.test", "60", "AAAA", "2001:db8::1")
    assert rc == 0 and out == "ok NOERROR udp", out
    assert dns.get("home.example.test") == ["192.0.2.1", "192.0.2.2"]
    assert dns.get("home.example.test", "AAAA") == ["2001:db8::1"]
    # Another writer's record in the same RRset survives our changes:
    # only single records are ever added or deleted.
    rc, out = dns.update("add", "keep.example.test", "60", "A", "192.0.2.3")
    assert rc == 0, out
    rc, out = dns.update("del", "keep.example.test", "A", "192.0.2.3",
                         "del", "home.example.test", "A", "192.0.2.1")
    assert rc == 0, out
    assert dns.get("keep.example.test") == ["198.51.100.7"]
    assert dns.get("home.example.test") == ["192.0.2.2"]


def test_prerequisite_stops_an_update_made_from_a_stale_read(dns):
    rc, out = dns.update("absent", "app.example.test", "A",
                         "add", "app.example.test", "60", "A", "192.0.2.1")
    assert rc == 0, out
    # A second writer that also read "absent" must not go ahead.
    rc, out = dns.update("absent", "app.example.test", "A",
                         "add", "app.example.test", "60", "A", "192.0.2.9")
    assert rc == 3 and out.startswith("prereq: YXRRSET"), out
    # Nor one that read a set that has changed since.
    rc, out = dns.update("exists", "app.example.test", "A",
                         "192.0.2.1,192.0.2.5",
                         "del", "app.example.test", "A", "192.0.2.1")
    assert rc == 3 and out.startswith("prereq: NXRRSET"), out
    assert dns.get("app.example.test") == ["192.0.2.1"]
    # A fresh read goes through.
    rc, out = dns.update("exists", "app.example.test", "A", "192.0.2.1",
                         "add", "app.example.test", "60", "A", "192.0.2.9")
    assert rc == 0, out
    assert dns.get("app.example.test") == ["192.0.2.1", "192.0.2.9"]


def test_large_update_goes_by_tcp(dns):
    args = []
    for i in range(40):
        args += ["add", "big.example.test", "60", "TXT", f'"{"x" * 60}{i}"']
    rc, out = dns.update(*args)
    assert rc == 0 and out == "ok NOERROR tcp", out
    assert len(dns.get("big.example.test", "TXT")) == 40


@pytest.mark.parametrize("what", ["secret", "name", "clock"])
def test_key_problems_are_named_and_change_nothing(dns, what):
    if what == "secret":
        key, env, want = key_file(dns.dir, secret="A" * 43 + "="), None, \
            "refused: NOTAUTH/BADSIG: the server's secret for key " \
            "porch-key. differs from ours"
    elif what == "name":
        key, env, want = key_file(dns.dir, name="stranger"), None, \
            "refused: NOTAUTH/BADKEY: the server does not know key " \
            "stranger."
    else:
        # The real library under a clock an hour ahead (libfaketime).
        key, want = dns.key, "refused: NOTAUTH/BADTIME: this host's " \
            "clock and the server's differ by more than 300 s"
        # (Under ASan the preload goes first: ASan allows it when told.)
        env = dict(os.environ, LD_PRELOAD=faketime_lib(),
                   FAKETIME="+1h", DONT_FAKE_MONOTONIC="1",
                   ASAN_OPTIONS="verify_asan_link_order=0")
    rc, out = dns.update("add", "x.example.test", "60", "A", "192.0.2.1",
                         key=key, env=env)
    assert rc == 1 and out.startswith(want), out
    assert dns.get("x.example.test") == []


def faketime_lib():
    for d in ("/usr/lib/x86_64-linux-gnu/faketime",
              "/usr/lib/aarch64-linux-gnu/faketime"):
        p = os.path.join(d, "libfaketime.so.1")
        if os.path.exists(p):
            return p
    pytest.fail("libfaketime missing: make deps installs the faketime "
                "package")


@pytest.mark.parametrize("kind", sorted(SERVERS))
def test_policy_refusal_is_named(procs, tmp_path, kind):
    dns = Dns(procs, str(tmp_path), kind, txt_only=True)
    rc, out = dns.update("add", "t.example.test", "60", "TXT", '"ok"')
    assert rc == 0, out
    rc, out = dns.update("add", "x.example.test", "60", "A", "192.0.2.1")
    # BIND says REFUSED; Knot answers a signed update its ACL refuses
    # with NOTAUTH/BADKEY, and the line says that this may be why.
    want = {"bind": "refused: REFUSED: the server does not let key "
            "porch-key. make this change in zone example.test; grant it "
            "in the zone's update-policy",
            "knot": "refused: NOTAUTH/BADKEY: the server does not know "
            "key porch-key. (name or algorithm differ), or its ACL does "
            "not let the key make this change in zone example.test"}[kind]
    assert rc == 1 and out.startswith(want), out
    assert dns.get("x.example.test") == []


def test_other_zone_is_notauth(dns):
    k = dns.key
    argv = [os.path.join(BUILD, "ddnsc"), f"127.0.0.1:{dns.port}",
            "other.test", k, "add", "x.other.test", "60", "A", "192.0.2.1"]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stdout.startswith("refused: NOTAUTH: the server is not "
                               "authoritative for zone other.test"), r.stdout


def test_no_server_and_a_silent_server(tmp_path):
    key = key_file(str(tmp_path))
    port = free_port()
    r = subprocess.run([os.path.join(BUILD, "ddnsc"), f"127.0.0.1:{port}",
                        ZONE, key, "add", "x.example.test", "60", "A",
                        "192.0.2.1"], capture_output=True, text=True,
                       timeout=20)
    assert r.returncode == 1
    assert r.stdout.strip() == ("network: no DNS server at "
                                f"127.0.0.1:{port}: Connection refused")
    # A socket that takes the datagrams and never answers.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        silent = s.getsockname()[1]
        t0 = time.monotonic()
        r = subprocess.run([os.path.join(BUILD, "ddnsc"),
                            f"127.0.0.1:{silent}", ZONE, key,
                            "add", "x.example.test", "60", "A",
                            "192.0.2.1"], capture_output=True, text=True,
                           timeout=20)
        took = time.monotonic() - t0
        sent = 0
        s.setblocking(False)
        while True:
            try:
                s.recv(4096)
                sent += 1
            except BlockingIOError:
                break
    assert r.returncode == 1
    assert r.stdout.strip() == ("timeout: no answer in 7 s from "
                                f"127.0.0.1:{silent}"), r.stdout
    assert sent == 3, sent              # sent at 0, 1 and 3 s
    assert took < 15, took


def test_key_file_must_be_private(tmp_path):
    key = key_file(str(tmp_path), mode=0o644)
    r = subprocess.run([os.path.join(BUILD, "ddnsc"), "127.0.0.1:53", ZONE,
                        key, "add", "x.example.test", "60", "A",
                        "192.0.2.1"], capture_output=True, text=True,
                       timeout=20)
    assert r.returncode == 2
    assert "TSIG key file is accessible by others (mode 644); run " \
        f"'chmod 600 {key}'" in r.stderr, r.stderr


def sync(dns, name, want, dead, rtype="A"):
    """ddns_sync() through ddnsc: (exit code, line)."""
    return dns.update("sync", name, rtype, "60", ",".join(want) or "-",
                      ",".join(dead) or "-")


def test_sync_touches_only_what_it_owns(dns):
    # An admin's record and a record of a gateway this writer does not
    # know share the RRset with ours.
    rc, out = dns.update("add", "app.example.test", "60", "A", "203.0.113.5")
    assert rc == 0, out
    rc, out = sync(dns, "app.example.test", ["192.0.2.1", "192.0.2.2"], [])
    assert rc == 0 and out.startswith("ok 2 changes:"), out
    assert dns.get("app.example.test") == ["192.0.2.1", "192.0.2.2",
                                           "203.0.113.5"]
    # Nothing to do: nothing sent.
    rc, out = sync(dns, "app.example.test", ["192.0.2.1", "192.0.2.2"], [])
    assert rc == 0 and out.startswith("ok 0 changes:"), out
    # A gateway given up by the cluster goes; the unknown record stays.
    rc, out = sync(dns, "app.example.test", ["192.0.2.2"], ["192.0.2.1"])
    assert rc == 0 and out in ("ok 1 changes: 192.0.2.2,203.0.113.5",
                               "ok 1 changes: 203.0.113.5,192.0.2.2"), out
    # Nothing wanted (the other family has the live gateways): the dead
    # address goes, the unknown one stays.
    rc, out = sync(dns, "app.example.test", [], ["192.0.2.2"])
    assert rc == 0 and out == "ok 1 changes: 203.0.113.5", out
    assert dns.get("app.example.test") == ["203.0.113.5"]
    rc, out = sync(dns, "app.example.test", ["192.0.2.2"], [])
    assert rc == 0, out
    # IPv6 in any spelling compares as the server writes it.
    rc, out = sync(dns, "app.example.test", ["2001:DB8:0:0::1"], [], "AAAA")
    assert rc == 0 and out == "ok 1 changes: 2001:db8::1", out
    rc, out = sync(dns, "app.example.test", ["2001:db8::1"], [], "AAAA")
    assert rc == 0 and out == "ok 0 changes: 2001:db8::1", out


def test_concurrent_writers_lose_nothing(dns):
    """Eight replicas write the same RRset at once, each from its own
    read: the prerequisite turns the losers of each race into a fresh
    read, so every address lands and none is lost."""
    n = 8
    argv = [os.path.join(BUILD, "ddnsc"), f"127.0.0.1:{dns.port}", ZONE,
            dns.key]
    ps = [subprocess.Popen(argv + ["sync", "race.example.test", "A", "60",
                                   f"192.0.2.100,192.0.2.{i + 1}", "-"],
                           stdout=subprocess.PIPE, text=True)
          for i in range(n)]
    outs = [p.communicate(timeout=30)[0].strip() for p in ps]
    assert all(p.returncode == 0 for p in ps), outs
    assert dns.get("race.example.test") == sorted(
        ["192.0.2.100"] + [f"192.0.2.{i + 1}" for i in range(n)])


def test_read_refused_zone_is_named(dns):
    rc, out = dns.update("sync", "x.other.test", "A", "60", "192.0.2.1", "-")
    assert rc == 1 and out.startswith("timeout: cannot read the records:"), out
    assert "is it authoritative for the zone?" in out
