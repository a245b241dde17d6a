"""The command line an operator meets first: porchctl keys, `-t` config
checks with errors that point at file:line:col, `-h`, and a gateway that
cannot get its port."""

import os
import re
import socket
import stat
import subprocess

import pytest

from conftest import AGENT, GATEWAY, PORCHCTL, ROOT, Gateway, curl

EXAMPLES = os.path.join(ROOT, "config", "examples")


# --- helpers (local to this file) -------------------------------------------

def run(argv, cwd=None, umask=-1):
    return subprocess.run(argv, capture_output=True, text=True, timeout=20,
                          cwd=cwd, umask=umask)


def seed_of(key_path):
    """The secret line of a key file: the first line that is not a
    comment (a base64 Ed25519 seed)."""
    with open(key_path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                return line
    raise AssertionError(f"{key_path}: no key material")


def pos_of(text, needle, nth=1):
    """1-based (line, column) of the nth occurrence of needle."""
    i = -1
    for _ in range(nth):
        i = text.index(needle, i + 1)
    line = text.count("\n", 0, i) + 1
    col = i - (text.rfind("\n", 0, i) + 1) + 1
    return line, col


def fresh_examples(d):
    """The example configs copied into d with fresh keys substituted.
    Returns (gateway.yaml text, agent.yaml text, gw pub, agent pub)."""
    gpub = run([PORCHCTL, "keygen", os.path.join(d, "gateway.key")])
    apub = run([PORCHCTL, "keygen", os.path.join(d, "agent.key")])
    assert gpub.returncode == 0 and apub.returncode == 0
    gpub, apub = gpub.stdout.strip(), apub.stdout.strip()
    with open(os.path.join(EXAMPLES, "gateway.yaml")) as f:
        gtext = f.read()
    with open(os.path.join(EXAMPLES, "agent.yaml")) as f:
        atext = f.read()
    # The gateway admits the agent's key; the agent pins the gateway's.
    gtext, n = re.subn(r'ed25519:[A-Za-z0-9+/=]+', apub, gtext)
    assert n == 1, "gateway example should list exactly one agent key"
    atext, n = re.subn(r'ed25519:[A-Za-z0-9+/=]+', gpub, atext)
    assert n == 1, "agent example should pin exactly one gateway key"
    return gtext, atext, gpub, apub


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


# --- porchctl ----------------------------------------------------------------

def test_keygen_pubkey_and_no_secret_in_logs(tmp_path, stack):
    key = str(tmp_path / "id.key")
    # Even a permissive umask must not make a world-readable key.
    r = run([PORCHCTL, "keygen", key], umask=0)
    assert r.returncode == 0, r.stderr
    pub = r.stdout.strip()
    assert re.fullmatch(r"ed25519:[A-Za-z0-9+/]{43}=", pub), r.stdout
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    seed = seed_of(key)
    assert seed not in r.stdout + r.stderr

    r = run([PORCHCTL, "pubkey", key])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == pub

    # Never overwrite a key: exit 1, a reason, the file untouched.
    with open(key, "rb") as f:
        before = f.read()
    r = run([PORCHCTL, "keygen", key])
    assert r.returncode == 1
    assert key in r.stderr and "refusing to overwrite" in r.stderr, r.stderr
    assert r.stdout == ""
    with open(key, "rb") as f:
        assert f.read() == before

    # Two keys are two keys.
    r2 = run([PORCHCTL, "keygen", str(tmp_path / "other.key")])
    assert r2.returncode == 0 and r2.stdout.strip() != pub

    # A normal run of both daemons (traffic, then a clean stop) never logs
    # key material, while it does log the public keys.
    r = curl(f"https://app.example.test:{stack.gw.tls_port}/",
             "app.example.test", stack.gw.tls_port, ca=stack.ca.crt)
    assert r.returncode == 0, r.stderr
    stack.agent.proc.check_clean_exit()
    stack.gw.proc.check_clean_exit()
    gw_log, ag_log = stack.gw.proc.log(), stack.agent.proc.log()
    assert stack.gw.pub in gw_log and stack.agent.pub in ag_log
    for secret in (seed_of(stack.gw.key_path), seed_of(stack.agent.key_path)):
        assert secret not in gw_log
        assert secret not in ag_log


def test_pubkey_errors(tmp_path):
    missing = str(tmp_path / "nope.key")
    r = run([PORCHCTL, "pubkey", missing])
    assert r.returncode == 1 and missing in r.stderr, r.stderr
    junk = write(str(tmp_path / "junk.key"), "not a key\n")
    os.chmod(junk, 0o600)
    r = run([PORCHCTL, "pubkey", junk])
    assert r.returncode == 1 and "not a porch key file" in r.stderr, r.stderr
    r = run([PORCHCTL, "frobnicate"])
    assert r.returncode != 0 and "usage:" in r.stderr


# --- -t, -h ------------------------------------------------------------------

def test_example_configs_check_ok(tmp_path):
    d = str(tmp_path)
    gtext, atext, gpub, apub = fresh_examples(d)
    g = write(os.path.join(d, "gateway.yaml"), gtext)
    a = write(os.path.join(d, "agent.yaml"), atext)
    # From another directory: relative key paths are read next to the file.
    elsewhere = str(tmp_path / "elsewhere")
    os.makedirs(elsewhere)
    r = run([GATEWAY, "-t", "-c", g], cwd=elsewhere)
    assert r.returncode == 0, r.stderr
    assert "configuration OK" in r.stdout and gpub in r.stdout, r.stdout
    r = run([AGENT, "-t", "-c", a], cwd=elsewhere)
    assert r.returncode == 0, r.stderr
    assert "configuration OK" in r.stdout and apub in r.stdout, r.stdout


def broken_cases():
    """(daemon, name, edit(text) -> text, needle, nth, token, message)
    where the error must point at the nth occurrence of needle in the
    edited text.  needle None: the first top-level key."""
    return [
        ("gateway", "unknown-key",
         lambda t: t.replace("  keepalive: 1s", "  keepalve: 1s", 1),
         "keepalve", 1, "keepalve", "unknown key"),
        ("gateway", "bad-address",
         lambda t: t.replace('"127.0.0.1:8080"', '"127.0.0.1:80800"', 1),
         '"127.0.0.1:80800"', 1, "127.0.0.1:80800", "bad address"),
        ("gateway", "duplicate-hostname",
         lambda t: t.replace('"*.example.test"]',
                             '"*.example.test", "APP.example.test"]', 1),
         '"APP.example.test"', 1, "APP.example.test", "duplicate hostname"),
        ("gateway", "missing-identity",
         lambda t: t.replace("identity: gateway.key\n", "", 1),
         None, 1, "identity", "missing required key"),
        ("gateway", "bad-yaml",
         lambda t: t.replace("identity: gateway.key",
                             "identity: gateway: key", 1),
         ": key", 1, None, "YAML syntax error"),
        ("agent", "unknown-key",
         lambda t: t.replace("  dead_peer: 4s", "  dead_per: 4s", 1),
         "dead_per", 1, "dead_per", "unknown key"),
        ("agent", "bad-address",
         lambda t: t.replace('"127.0.0.1:9443"', '"127.0.0.1:94430"', 1),
         '"127.0.0.1:94430"', 1, "127.0.0.1:94430", "bad address"),
        ("agent", "duplicate-hostname",
         lambda t: t + '  - hostname: APP.example.test\n'
                       '    http: "127.0.0.1:9081"\n',
         "APP.example.test", 1, "APP.example.test", "duplicate hostname"),
        ("agent", "missing-identity",
         lambda t: t.replace("identity: agent.key\n", "", 1),
         None, 1, "identity", "missing required key"),
        ("agent", "bad-yaml",
         lambda t: t.replace("name: demo-home", "name: demo: home", 1),
         ": home", 1, None, "YAML syntax error"),
    ]


@pytest.mark.parametrize("case", broken_cases(),
                         ids=lambda c: f"{c[0]}-{c[1]}")
def test_broken_config_names_file_line_col(tmp_path, case):
    daemon, name, edit, needle, nth, token, message = case
    d = str(tmp_path)
    gtext, atext, _, _ = fresh_examples(d)
    text = edit(gtext if daemon == "gateway" else atext)
    assert text != (gtext if daemon == "gateway" else atext), "edit missed"
    path = write(os.path.join(d, f"{name}.yaml"), text)
    if needle is None:
        line = next(i for i, l in enumerate(text.split("\n"), 1)
                    if re.match(r"[a-z]", l))
        col = 1
    else:
        line, col = pos_of(text, needle, nth)
    r = run([GATEWAY if daemon == "gateway" else AGENT, "-t", "-c", path])
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "configuration OK" not in r.stdout
    err = r.stderr
    assert f"{path}:{line}:{col}:" in err, (line, col, err)
    assert message in err, err
    if token is not None:
        assert f"'{token}'" in err, err
    assert len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("daemon", ["gateway", "agent"])
def test_world_readable_key_refused(tmp_path, daemon):
    d = str(tmp_path)
    gtext, atext, _, _ = fresh_examples(d)
    conf = write(os.path.join(d, f"{daemon}.yaml"),
                 gtext if daemon == "gateway" else atext)
    key = os.path.join(d, f"{daemon}.key")
    os.chmod(key, 0o644)
    r = run([GATEWAY if daemon == "gateway" else AGENT, "-t", "-c", conf])
    assert r.returncode == 1, r.stdout + r.stderr
    assert "configuration OK" not in r.stdout
    assert key in r.stderr and re.search(r"mode 0?644", r.stderr), r.stderr
    assert re.search(r"chmod 600 \S*" + re.escape(os.path.basename(key)),
                     r.stderr), r.stderr
    # porchctl reads keys the same way.
    r = run([PORCHCTL, "pubkey", key])
    assert r.returncode == 1 and "chmod 600" in r.stderr, r.stderr
    # Fixed: accepted.
    os.chmod(key, 0o600)
    r = run([GATEWAY if daemon == "gateway" else AGENT, "-t", "-c", conf])
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("binary", [GATEWAY, AGENT, PORCHCTL],
                         ids=["gateway", "agent", "porchctl"])
def test_help(binary):
    r = run([binary, "-h"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: "), r.stdout
    assert os.path.basename(binary) in r.stdout
    if binary != PORCHCTL:
        assert "-c FILE" in r.stdout and "-t" in r.stdout


@pytest.mark.parametrize("binary", [GATEWAY, AGENT],
                         ids=["gateway", "agent"])
def test_no_config_is_a_usage_error(binary):
    r = run([binary])
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "usage:" in r.stderr and r.stdout == ""


# --- a busy port -------------------------------------------------------------

@pytest.mark.parametrize("entry", ["tls", "http", "tunnel"])
def test_gateway_refuses_busy_port(procs, tmp_path, entry):
    gw = Gateway(procs, str(tmp_path))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        setattr(gw, f"{entry}_port", port)
        gw.write_config()
        p = procs.start("gw-busy", [GATEWAY, "-c", gw.conf], daemon=True)
        rc = p.p.wait(timeout=10)
        log = p.log()
        assert rc == 1, log
        assert f"listen 127.0.0.1:{port}: bind: Address already in use" \
            in log, log
        assert "porch-gateway started" not in log
        # Our listener is untouched.
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
