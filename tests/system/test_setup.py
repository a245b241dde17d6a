"""What a new operator meets setting porch up from the README: keygen into
a directory that does not exist yet, every example config (the loopback
ones and the production ones) passing -t, a gateway without the
capability to bind port 443, and `make install` putting the examples
where the daemons' -h points."""

import filecmp
import glob
import os
import re
import shutil
import socket
import stat
import subprocess
import tempfile

import pytest
import yaml

from conftest import AGENT, GATEWAY, PORCHCTL, ROOT, wait_port

EXAMPLES = os.path.join(ROOT, "config", "examples")
IS_ROOT = os.geteuid() == 0
NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def run(argv, cwd=None, umask=-1, env=None, timeout=20):
    return subprocess.run(argv, capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, umask=umask, env=env)


def keygen(path):
    r = run([PORCHCTL, "keygen", path])
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def world_dir():
    """A scratch directory other users can traverse (pytest's tmp_path is
    0700, so nobody could not reach a file in it)."""
    d = tempfile.mkdtemp(prefix="porch-setup-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


# --- porchctl keygen: the README's first command ----------------------------

def test_keygen_makes_missing_key_directory(tmp_path):
    etc = tmp_path / "etc"
    etc.mkdir()
    os.chmod(etc, 0o751)
    key = etc / "porch" / "sub" / "gateway.key"
    # A permissive umask must not make the new directories readable.
    r = run([PORCHCTL, "keygen", str(key)], umask=0)
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(r"ed25519:[A-Za-z0-9+/]{43}=\n", r.stdout), r.stdout
    assert mode(key) == 0o600
    for d in (etc / "porch", etc / "porch" / "sub"):
        assert mode(d) == 0o700, (d, oct(mode(d)))
        assert f"created directory {d} (mode 0700)" in r.stderr, r.stderr
    # The directory that was there is left alone.
    assert mode(etc) == 0o751
    assert str(etc) + " " not in r.stderr, r.stderr

    # A second key in the now existing directory: nothing created, and the
    # directory's mode, even if the operator changed it, is kept.
    os.chmod(etc / "porch", 0o750)
    r = run([PORCHCTL, "keygen", str(etc / "porch" / "agent.key")])
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert mode(etc / "porch") == 0o750

    # A relative path works the same, from the current directory.
    r = run([PORCHCTL, "keygen", "rel/dir/x.key"], cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert mode(tmp_path / "rel") == 0o700
    assert mode(tmp_path / "rel" / "dir" / "x.key") == 0o600


def test_keygen_directory_errors_name_the_path(tmp_path):
    # A file where a directory should be.
    f = tmp_path / "file"
    f.write_text("x")
    r = run([PORCHCTL, "keygen", str(f / "porch" / "gw.key")])
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stdout == ""
    assert str(f) in r.stderr and "ot a directory" in r.stderr, r.stderr
    assert r.stderr.startswith("porchctl: ")


@pytest.mark.skipif(not IS_ROOT, reason="needs root to drop to nobody")
def test_keygen_unwritable_directory_names_the_path(world_dir):
    # As an unprivileged user under a root-owned directory, as with
    # `porchctl keygen /etc/porch/gateway.key` run without sudo.
    want = os.path.join(world_dir, "porch")
    r = run(NOBODY + [PORCHCTL, "keygen", os.path.join(want, "gw.key")])
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stdout == ""
    assert f"cannot create directory {want}: Permission denied" \
        in r.stderr, r.stderr
    assert not os.path.exists(want)


# --- every example config passes -t ----------------------------------------

def example_files():
    return sorted(glob.glob(os.path.join(EXAMPLES, "*.yaml")))


def test_production_examples_exist():
    names = [os.path.basename(p) for p in example_files()]
    for n in ("gateway.yaml", "agent.yaml", "gateway-production.yaml",
              "agent-production.yaml"):
        assert n in names, names


@pytest.mark.parametrize("path", example_files(), ids=os.path.basename)
def test_example_config_checks_ok(tmp_path, path):
    """Each example, with its identity pointed at a fresh key and every
    public key in it replaced by a distinct fresh one, passes -t."""
    base = os.path.basename(path)
    daemon = GATEWAY if base.startswith("gateway") else AGENT
    assert base.startswith(("gateway", "agent")), base
    with open(path) as f:
        text = f.read()
    key = str(tmp_path / "identity.key")
    pub = keygen(key)
    text, n = re.subn(r"(?m)^identity: .*$", f"identity: {key}", text)
    assert n == 1, "an example should have one identity line"
    count = [0]

    def fresh(_m):
        count[0] += 1
        return keygen(str(tmp_path / f"other{count[0]}.key"))
    text = re.sub(r"ed25519:[A-Za-z0-9+/=]+", fresh, text)
    # A TSIG key as tsig-keygen writes it, where the example names one
    # (-t reads it too).
    tsig = tmp_path / "dns.key"
    tsig.write_text('key "porch-dns" {\n\talgorithm hmac-sha256;\n\t'
                    'secret "SZzKmj7RIpcrxgGSllJ6CiZo21PJbjHylizxcNDDp4g=";'
                    '\n};\n')
    tsig.chmod(0o600)
    text = re.sub(r"(?m)^(\s*tsig_key:) .*$", rf"\1 {tsig}", text)
    conf = tmp_path / base
    conf.write_text(text)
    r = run([daemon, "-t", "-c", str(conf)])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "configuration OK" in r.stdout and pub in r.stdout, r.stdout


def test_production_gateway_example_is_complete():
    """What the README promises of it: every address on 443 and 80, the
    tunnel port, its name, admin on loopback, agents and peers."""
    with open(os.path.join(EXAMPLES, "gateway-production.yaml")) as f:
        c = yaml.safe_load(f)
    assert c["identity"] == "/etc/porch/gateway.key"
    assert sorted(c["listen"]["tls"]) == ["0.0.0.0:443", "[::]:443"]
    assert sorted(c["listen"]["http"]) == ["0.0.0.0:80", "[::]:80"]
    assert sorted(c["listen"]["tunnel"]) == ["0.0.0.0:7443", "[::]:7443"]
    assert "." in c["name"]
    assert c["admin"].startswith("127.0.0.1:")
    assert c["agents"] and c["peers"]
    with open(os.path.join(EXAMPLES, "agent-production.yaml")) as f:
        a = yaml.safe_load(f)
    assert a["identity"] == "/etc/porch/agent.key"
    # The agent example dials both gateways of the cluster.
    assert [g["address"] for g in a["gateways"]] == \
        ["gw1.example.net:7443", c["peers"][0]["address"]]


# --- a privileged port without the capability -------------------------------

def free_low_port():
    """A port below 1024 (privileged here) free on 127.0.0.1."""
    with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
        start = int(f.read())
    for port in range(min(start, 1024) - 1, 0, -1):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    pytest.skip("no privileged port on this machine")


@pytest.mark.skipif(not IS_ROOT, reason="needs root to drop to nobody")
def test_low_port_without_capability_names_the_fix(procs, world_dir):
    port = free_low_port()
    tunnel = socket.socket()
    tunnel.bind(("127.0.0.1", 0))
    tport = tunnel.getsockname()[1]
    tunnel.close()
    # The gateway's user must own its key (mode 0600) and read its config.
    exe = os.path.join(world_dir, "porch-gateway")
    shutil.copy(GATEWAY, exe)
    os.chmod(exe, 0o755)
    key = os.path.join(world_dir, "gateway.key")
    keygen(key)
    conf = os.path.join(world_dir, "gateway.yaml")
    with open(conf, "w") as f:
        f.write(f"identity: {key}\n"
                f'listen:\n  tls: ["127.0.0.1:{port}"]\n'
                f'  tunnel: ["127.0.0.1:{tport}"]\n'
                "agents: []\n")
    os.chown(key, 65534, 65534)
    os.chmod(conf, 0o644)

    p = procs.start("gw-nobody", NOBODY + [exe, "-c", conf], daemon=True)
    rc = p.p.wait(timeout=10)
    log = p.log()
    assert rc == 1, log
    assert f"listen 127.0.0.1:{port}: bind: Permission denied" in log, log
    # The message names both ways to grant the capability, for this binary.
    assert f"setcap cap_net_bind_service=+ep {exe}" in log, log
    assert "AmbientCapabilities=CAP_NET_BIND_SERVICE" in log, log
    assert "porch-gateway started" not in log

    # And the fix it names works.
    if shutil.which("setcap") is None:
        return
    r = run(["setcap", "cap_net_bind_service=+ep", exe])
    if r.returncode != 0:
        pytest.skip(f"setcap not supported here: {r.stderr}")
    p = procs.start("gw-nobody-cap", NOBODY + [exe, "-c", conf], daemon=True)
    p.wait_log(r"porch-gateway started")
    wait_port(port)
    p.check_clean_exit()


# --- make install -------------------------------------------------------------

def test_make_install_puts_examples_where_help_points(tmp_path):
    dest = tmp_path / "dest"
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}
    r = run(["make", "-s", "install", f"DESTDIR={dest}", "PREFIX=/usr"],
            cwd=ROOT, env=env, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    for b in ("porch-gateway", "porch-agent", "porchctl"):
        path = dest / "usr" / "bin" / b
        assert mode(path) == 0o755, path
    ex = dest / "usr" / "share" / "doc" / "porch" / "examples"
    installed = sorted(os.listdir(ex))
    assert installed == sorted(os.path.basename(p) for p in example_files())
    for n in installed:
        assert mode(ex / n) == 0o644
        assert filecmp.cmp(ex / n, os.path.join(EXAMPLES, n), shallow=False)
    # The installed daemons' -h names the installed examples.
    for b in ("porch-gateway", "porch-agent"):
        r = run([str(dest / "usr" / "bin" / b), "-h"])
        assert r.returncode == 0
        assert "share/doc/porch/examples/" in r.stdout, r.stdout


@pytest.mark.parametrize("binary", [GATEWAY, AGENT], ids=["gateway", "agent"])
def test_help_names_installed_examples(binary):
    r = run([binary, "-h"])
    assert r.returncode == 0, r.stderr
    assert "/usr/local/share/doc/porch/examples/" in r.stdout, r.stdout
