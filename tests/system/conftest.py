"""Fixtures for porch system tests: real binaries, real peers, loopback only.

Every process a test starts is registered with the `procs` fixture and
stopped (by PID) when the test ends, pass or fail.  Readiness is always a
log line or a successful connect, never a sleep.  Under PORCH_ASAN=1 the
daemons run the sanitizer build and every clean stop is checked for
sanitizer and leak reports.
"""

import hashlib
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.join(ROOT, os.environ.get("PORCH_BUILD", "build"))
GATEWAY = os.path.join(BUILD, "porch-gateway")
AGENT = os.path.join(BUILD, "porch-agent")
PORCHCTL = os.path.join(BUILD, "porchctl")
ASAN = os.environ.get("PORCH_ASAN") == "1"
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "SUMMARY: UndefinedBehaviorSanitizer")


_ports_given = set()


def free_port(family=socket.AF_INET, addr="127.0.0.1"):
    """A port nobody listens on right now (the kernel picks it), and
    never one this run handed out before: the kernel may offer a port
    again as soon as the probing socket is closed."""
    while True:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((addr, 0))
            port = s.getsockname()[1]
        if port not in _ports_given:
            _ports_given.add(port)
            return port


def wait_port(port, host="127.0.0.1", timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


class Proc:
    """A started process, its log file and a cursor for wait_log."""

    def __init__(self, name, argv, logdir, env=None, sanitized=False):
        self.name = name
        self.argv = argv
        self.sanitized = sanitized
        self.log_path = os.path.join(logdir, f"{name}.log")
        self.logf = open(self.log_path, "ab")
        self.mark = os.path.getsize(self.log_path)
        e = dict(os.environ)
        if sanitized:
            e["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0"
            e["UBSAN_OPTIONS"] = "print_stacktrace=1"
        if env:
            e.update(env)
        self.p = subprocess.Popen(argv, stdout=self.logf,
                                  stderr=subprocess.STDOUT, env=e)
        self.pid = self.p.pid

    def log(self):
        with open(self.log_path, "r", errors="replace") as f:
            return f.read()

    def log_since_mark(self):
        with open(self.log_path, "rb") as f:
            f.seek(self.mark)
            return f.read().decode(errors="replace")

    def set_mark(self):
        self.mark = os.path.getsize(self.log_path)

    def wait_log(self, pattern, timeout=10.0, since_mark=True):
        """Wait until the log (since the mark) matches pattern; returns
        the match.  Fails early if the process died."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            text = self.log_since_mark() if since_mark else self.log()
            m = rx.search(text)
            if m:
                return m
            if self.p.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited ({self.p.returncode}) before "
                    f"/{pattern}/; log:\n{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.name}: no /{pattern}/ within {timeout}s; "
                    f"log:\n{self.log()[-3000:]}")
            time.sleep(0.02)

    def count(self, pattern):
        return len(re.findall(pattern, self.log()))

    def alive(self):
        return self.p.poll() is None

    def send_signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Stop by PID; returns the exit code."""
        if self.alive():
            os.kill(self.pid, sig)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.p.wait()
        self.logf.close()
        return self.p.returncode

    def check_clean_exit(self, already_signalled=False):
        """A daemon stopped with SIGTERM must exit 0 with no sanitizer
        or leak report.  already_signalled: the test sent the signal;
        just wait (a second SIGTERM during the final cleanup would hit
        the default handler)."""
        if already_signalled:
            try:
                self.p.wait(60)
            except subprocess.TimeoutExpired:
                pass
        rc = self.stop()
        text = self.log()
        for mark in SANITIZER_MARKS:
            assert mark not in text, f"{self.name}: {mark}\n{text[-5000:]}"
        assert rc == 0, f"{self.name} exited {rc}\n{text[-3000:]}"


class Procs:
    def __init__(self, tmp):
        self.tmp = tmp
        self.all = []

    def start(self, name, argv, env=None, daemon=False):
        """daemon: a porch binary (sanitizer options, clean-exit check)."""
        p = Proc(name, argv, self.tmp, env=env, sanitized=daemon and ASAN)
        p.daemon = daemon
        self.all.append(p)
        return p

    def stop_all(self):
        """Stop everything; porch daemons still running must exit
        cleanly (status 0, no sanitizer or leak report)."""
        problems = []
        for p in reversed(self.all):
            try:
                if p.daemon and p.alive():
                    p.check_clean_exit()
                else:
                    p.stop(timeout=5)
            except AssertionError as e:
                problems.append(str(e))
            except Exception as e:  # keep stopping the others
                problems.append(f"{p.name}: {e!r}")
        return problems


@pytest.fixture
def procs(tmp_path):
    ps = Procs(str(tmp_path))
    yield ps
    problems = ps.stop_all()
    assert not problems, "\n".join(problems)


def keygen(path):
    out = subprocess.run([PORCHCTL, "keygen", path], check=True,
                         capture_output=True, text=True).stdout.strip()
    assert out.startswith("ed25519:"), out
    return out


class CA:
    """A throwaway CA and leaf certificates minted at test time."""

    def __init__(self, d):
        self.dir = d
        os.makedirs(d, exist_ok=True)
        self.crt = os.path.join(d, "ca.crt")
        self.key = os.path.join(d, "ca.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec",
                        "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", self.key, "-out", self.crt, "-days", "2",
                        "-subj", "/CN=porch test CA"],
                       check=True, capture_output=True)

    def leaf(self, name, *alt):
        """Returns (cert, key) for name (and alt names)."""
        crt = os.path.join(self.dir, f"{name}.crt")
        key = os.path.join(self.dir, f"{name}.key")
        csr = os.path.join(self.dir, f"{name}.csr")
        ext = os.path.join(self.dir, f"{name}.ext")
        sans = ",".join(f"DNS:{n}" for n in (name,) + alt)
        with open(ext, "w") as f:
            f.write(f"subjectAltName={sans}\n")
        subprocess.run(["openssl", "req", "-new", "-newkey", "ec",
                        "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", key, "-out", csr, "-subj", f"/CN={name}"],
                       check=True, capture_output=True)
        subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA",
                        self.crt, "-CAkey", self.key, "-CAcreateserial",
                        "-out", crt, "-days", "2", "-extfile", ext],
                       check=True, capture_output=True)
        return crt, key


@pytest.fixture
def ca(tmp_path):
    return CA(str(tmp_path / "ca"))


def yaml_list(items):
    return "[" + ", ".join(f'"{i}"' for i in items) + "]"


class Gateway:
    """porch-gateway on loopback with fresh ports and key."""

    def __init__(self, procs, tmp, name="gw", extra="", ipv6=False):
        self.procs = procs
        # ipv6: also a TLS entry on [::1] (tls6_port)
        self.tls6_port = free_port(socket.AF_INET6, "::1") if ipv6 else None
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir, exist_ok=True)
        self.name = name
        self.key_path = os.path.join(self.dir, "gateway.key")
        self.pub = keygen(self.key_path)
        self.tls_port = free_port()
        self.http_port = free_port()
        self.tunnel_port = free_port()
        self.agents = []
        self.peers = []     # (name, tunnel port, key, hostnames)
        self.extra = extra
        self.conf = os.path.join(self.dir, "gateway.yaml")
        self.proc = None

    def admit(self, agent, hostnames, more=()):
        """more: extra lines of the agent's entry, e.g. "acme: false"."""
        self.agents.append((agent.name, agent.pub, hostnames, list(more)))

    def peer(self, other, hostnames=("*.example.test",)):
        """List another Gateway as a peer of this one (do both).
        hostnames: the names its announcements are believed for; None
        leaves the key out (a config from before it existed)."""
        self.peers.append((other.name, other.tunnel_port, other.pub,
                           hostnames))

    def write_config(self):
        lines = [
            f"identity: {self.key_path}",
            "listen:",
            f'  tls: ["127.0.0.1:{self.tls_port}"'
            + (f', "[::1]:{self.tls6_port}"' if self.tls6_port else "") + "]",
            f'  http: ["127.0.0.1:{self.http_port}"]',
            f'  tunnel: ["127.0.0.1:{self.tunnel_port}"]',
        ]
        lines.append(self.extra)
        lines.append(f"name: {self.name}.example.test")
        if self.peers:
            lines.append("peers:")
            for name, port, key, *rest in self.peers:
                # Tests may append (name, port, key): the default grant.
                hosts = rest[0] if rest else ("*.example.test",)
                lines += [f"  - name: {name}",
                          f'    address: "127.0.0.1:{port}"',
                          f'    key: "{key}"']
                if hosts is not None:
                    lines.append(f"    hostnames: {yaml_list(hosts)}")
        lines.append("agents:" if self.agents else "agents: []")
        for name, pub, hosts, *more in self.agents:
            more = more[0] if more else ()
            lines += [f"  - name: {name}", f'    key: "{pub}"',
                      f"    hostnames: {yaml_list(hosts)}"]
            lines += [f"    {m}" for m in more]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self, args=()):
        self.write_config()
        self.proc = self.procs.start(self.name,
                                     [GATEWAY, "-c", self.conf, *args],
                                     daemon=True)
        self.proc.wait_log(r"porch-gateway started")
        return self.proc


class Agent:
    """porch-agent with its own key; services and gateways added by tests."""

    def __init__(self, procs, tmp, name="agent", extra=""):
        self.procs = procs
        self.name = name
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir, exist_ok=True)
        self.key_path = os.path.join(self.dir, "agent.key")
        self.pub = keygen(self.key_path)
        self.gateways = []
        self.services = []
        self.health = {}    # hostname -> health section (dict or YAML)
        self.replica = {}   # hostname -> (priority, policy)
        self.more = {}      # hostname -> extra service lines
        self.extra = extra
        self.conf = os.path.join(self.dir, "agent.yaml")
        self.proc = None

    def use(self, gw, key=None, port=None, server_name=None):
        """port: dial another port of gw (its TLS entry, say) instead of
        its tunnel listener; server_name: the SNI to send."""
        self.gateways.append((gw.name,
                              f"127.0.0.1:{port or gw.tunnel_port}",
                              key or gw.pub, server_name))

    def serve(self, hostname, tls=None, http=None, proxy=None, health=None,
              priority=None, policy=None, more=()):
        """health: the service's health section, as a dict (e.g.
        {"check": "tcp", "interval": "200ms"}) or a flow-style YAML
        string ("{ check: tcp }").  more: extra lines of the service,
        e.g. "certificate: acme"."""
        self.services.append((hostname, tls, http, proxy))
        self.more[hostname] = list(more)
        if health:
            self.health[hostname] = health
        if priority is not None or policy is not None:
            self.replica[hostname] = (priority, policy)

    def write_config(self):
        lines = [f"identity: {self.key_path}", f"name: {self.name}",
                 "reconnect: { min: 100ms, max: 1s }", "gateways:"]
        for name, addr, key, sni in self.gateways:
            lines += [f"  - name: {name}", f'    address: "{addr}"',
                      f'    key: "{key}"']
            if sni:
                lines.append(f"    server_name: {sni}")
        lines.append(self.extra)
        lines.append("services:")
        for host, tls, http, proxy in self.services:
            lines.append(f'  - hostname: "{host}"')
            if tls:
                lines.append(f'    tls: "{tls}"')
            if http:
                lines.append(f'    http: "{http}"')
            if proxy:
                lines.append(f"    proxy_protocol: {proxy}")
            prio, policy = self.replica.get(host, (None, None))
            if prio is not None:
                lines.append(f"    priority: {prio}")
            if policy is not None:
                lines.append(f"    policy: {policy}")
            health = self.health.get(host)
            if isinstance(health, dict):
                health = "{ " + ", ".join(f"{k}: {v}" for k, v in
                                          health.items()) + " }"
            if health:
                lines.append(f"    health: {health}")
            lines += [f"    {m}" for m in self.more.get(host, ())]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self, wait_serving=True):
        self.write_config()
        self.proc = self.procs.start(self.name, [AGENT, "-c", self.conf],
                                     daemon=True)
        if wait_serving:
            for gw, _, _, _ in self.gateways:
                for host, _, _, _ in self.services:
                    self.proc.wait_log(
                        rf"gateway {re.escape(gw)}: serving "
                        rf"{re.escape(host)}\b", since_mark=False)
        return self.proc


NGINX_CONF = """
{user}
daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/tmp;
    proxy_temp_path {dir}/tmp;
    fastcgi_temp_path {dir}/tmp;
    uwsgi_temp_path {dir}/tmp;
    scgi_temp_path {dir}/tmp;
    keepalive_requests 100000;
    server {{
        listen 127.0.0.1:{tls_port} ssl;
        listen 127.0.0.1:{http_port};
        server_name {name};
        ssl_certificate {crt};
        ssl_certificate_key {key};
        root {root};
        location /whoami {{ return 200 "{tag} $scheme $host\\n"; }}
    }}
}}
"""


def nginx_start(procs, name, d, ports):
    """nginx with d/nginx.conf, prefix d; returns once every port
    listens."""
    p = procs.start(name, [shutil.which("nginx") or "/usr/sbin/nginx",
                           "-p", d, "-c", os.path.join(d, "nginx.conf")])
    for port in ports:
        wait_port(port)
    return p


class Nginx:
    """A real nginx serving files from root over TLS and plain HTTP."""

    def __init__(self, procs, tmp, ca, name, tag=None, tls_port=None,
                 http_port=None):
        """tls_port/http_port: fixed ports (e.g. a restarted backend
        taking over the ports of a stopped one); default fresh ones."""
        self.dir = os.path.join(tmp, f"nginx-{name}-{tag or 'x'}")
        self.root = os.path.join(self.dir, "root")
        os.makedirs(os.path.join(self.dir, "tmp"), exist_ok=True)
        os.makedirs(self.root, exist_ok=True)
        self.tls_port = tls_port or free_port()
        self.http_port = http_port or free_port()
        self.name = name
        self.tag = tag or name
        self.crt, self.key = ca.leaf(name)
        with open(os.path.join(self.dir, "nginx.conf"), "w") as f:
            f.write(NGINX_CONF.format(dir=self.dir, tls_port=self.tls_port,
                                      http_port=self.http_port, name=name,
                                      crt=self.crt, key=self.key,
                                      root=self.root, tag=self.tag,
                                      user="user root;" if os.geteuid() == 0
                                      else ""))
        with open(os.path.join(self.root, "index.html"), "w") as f:
            f.write(f"hello from {self.tag}\n")
        self.proc = nginx_start(procs, f"nginx-{name}-{self.tag}", self.dir,
                                (self.tls_port, self.http_port))

    @property
    def tls(self):
        return f"127.0.0.1:{self.tls_port}"

    @property
    def http(self):
        return f"127.0.0.1:{self.http_port}"


def curl(url, host, port, ca=None, timeout=20, extra=(), out=None):
    """curl through the gateway: --resolve pins host to loopback."""
    argv = ["curl", "-sS", "--max-time", str(timeout), "--resolve",
            f"{host}:{port}:127.0.0.1"]
    if ca:
        argv += ["--cacert", ca]
    if out:
        argv += ["-o", out]
    argv += list(extra) + [url]
    return subprocess.run(argv, capture_output=True, text=out is None)


def tls_visit(port, sni, timeout=5.0):
    """A TLS visitor for sni on the gateway's TLS entry.  Returns "ok" when
    the handshake completes, else the SSL error's reason (e.g.
    "TLSV1_UNRECOGNIZED_NAME")."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            with ctx.wrap_socket(s, server_hostname=sni):
                return "ok"
        except ssl.SSLError as e:
            return e.reason or str(e)


def http_status(port, host, path="/", timeout=5.0):
    """Status line code of a plain HTTP/1.1 request to the HTTP entry."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n"
                  f"Connection: close\r\n\r\n".encode())
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    m = re.match(rb"HTTP/1\.[01] (\d{3}) ", data)
    assert m, f"no HTTP status line from the gateway: {data[:200]!r}"
    return int(m.group(1))


def big_file(root, mib=20):
    """mib MiB of random bytes as root/big.bin; returns its sha256."""
    h = hashlib.sha256()
    with open(os.path.join(root, "big.bin"), "wb") as f:
        for _ in range(mib):
            chunk = os.urandom(1 << 20)
            h.update(chunk)
            f.write(chunk)
    return h.hexdigest()


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def slow_download(procs, gw, ca, host, out, rate="4M", first=1 << 20):
    """curl of big.bin through the gateway's TLS entry at a limited rate
    (20 MiB at 4 MB/s: about five seconds), started via procs; returns
    once the first bytes (1 MiB by default) have arrived."""
    p = procs.start(f"curl-{host}",
                    ["curl", "-sS", "--max-time", "60", "--limit-rate", rate,
                     "--cacert", ca.crt, "--resolve",
                     f"{host}:{gw.tls_port}:127.0.0.1", "-o", out,
                     f"https://{host}:{gw.tls_port}/big.bin"])
    deadline = time.monotonic() + 20
    while not os.path.exists(out) or os.path.getsize(out) < first:
        assert p.alive(), f"curl ended early:\n{p.log()}"
        assert time.monotonic() < deadline, "the download does not start"
        time.sleep(0.02)
    return p


def finish(dl, out, want):
    """The download ends well and byte-exact."""
    assert dl.p.wait(60) == 0, dl.log()
    assert sha256(out) == want


@pytest.fixture
def stack(procs, tmp_path, ca):
    """A gateway, an agent admitted for *.example.test, and an nginx
    backend for app.example.test: the demo's shape, ready to use."""
    gw = Gateway(procs, str(tmp_path))
    ag = Agent(procs, str(tmp_path))
    ng = Nginx(procs, str(tmp_path), ca, "app.example.test")
    gw.admit(ag, ["*.example.test"])
    ag.use(gw)
    ag.serve("app.example.test", tls=ng.tls, http=ng.http)
    gw.start()
    ag.start()

    class S:
        pass
    s = S()
    s.gw, s.agent, s.nginx, s.ca = gw, ag, ng, ca
    return s


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
        deadline = time.monotonic() + 10
        while True:
            r = subprocess.run(["dig", "+time=1", "+tries=1", "+norec",
                                "@127.0.0.1", "-p", str(self.port), zone,
                                "SOA"], capture_output=True, text=True)
            if "status: NOERROR" in r.stdout:
                break
            assert self.proc.alive(), self.proc.log()
            assert time.monotonic() < deadline, self.proc.log()
            time.sleep(0.05)

    @property
    def server(self):
        return f"127.0.0.1:{self.port}"


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
        import json
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
        deadline = time.monotonic() + 15
        import urllib.request
        while True:
            try:
                urllib.request.urlopen(self.directory, context=ctx,
                                       timeout=2).read()
                break
            except OSError:
                assert self.proc.alive(), self.proc.log()
                assert time.monotonic() < deadline, self.proc.log()
                time.sleep(0.05)
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
