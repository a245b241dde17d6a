"""The ACME order process holds nothing of the agent it does not need.

The order runs in a child forked from the agent.  While it waits for the
CA to validate, the test stops it and reads its memory and descriptors:
the agent's identity key (which lets its holder be this agent to every
gateway) and its admin secret (renewals, reloads) must not be there, nor
any socket of the agent's (tunnels, listeners).  The CA's http-01 probe goes to a listener of the test's that
holds the connection open, so the order is reliably in progress.
"""

import base64
import os
import re
import signal

from conftest import Bind, Gateway, Pebble, free_port, wait_until
from test_acme import NAME, acme_agent, records
from test_agent_limits import StallServer

# A readable mapping larger than this is sanitizer shadow memory, not
# anything the program wrote a key into.
MAP_MAX = 1 << 30


def key_seed(path):
    """The 32-byte Ed25519 seed of a porch key file (lib/key.c: comment
    lines, then the seed in base64)."""
    with open(path) as f:
        line = next(x for x in f if not x.startswith("#"))
    seed = base64.b64decode(line.strip())
    assert len(seed) == 32
    return seed


def memory_holds(pid, needle):
    """1 if needle occurs in any readable mapping of pid."""
    with open(f"/proc/{pid}/maps") as f:
        maps = f.read().splitlines()
    chunk = 8 << 20
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for line in maps:
            fields = line.split()
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            name = fields[5] if len(fields) > 5 else ""
            if "r" not in fields[1] or hi - lo > MAP_MAX or \
                    name in ("[vvar]", "[vsyscall]", "[vvar_vclock]"):
                continue
            tail = b""
            at = lo
            while at < hi:
                try:
                    mem.seek(at)
                    data = mem.read(min(chunk, hi - at))
                except OSError:
                    break
                if not data:
                    break
                if needle in tail + data:
                    return True
                tail = data[-(len(needle) - 1):]
                at += len(data)
    return False


def socket_inodes(pid):
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            m = re.fullmatch(r"socket:\[(\d+)\]",
                             os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            continue
        if m:
            out.add(int(m.group(1)))
    return out


def tcp_inodes_to(port):
    """Inodes of the TCP sockets whose remote port is port."""
    out = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if int(fields[2].rsplit(":", 1)[1], 16) == port:
                    out.add(int(fields[9]))
    return out


def children(pid):
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            out += [int(x) for x in f.read().split()]
    return out


def stopped(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] in ("T", "t")


def test_order_child_holds_no_key_or_sockets(procs, tmp_path):
    tmp = str(tmp_path)
    bind = Bind(procs, tmp, records(NAME))
    gw = Gateway(procs, tmp)
    # The CA's http-01 probe: accepted, never answered.
    hold = StallServer()
    try:
        pebble = Pebble(procs, tmp, hold.port, gw.tls_port, bind)
        a, _ = acme_agent(procs, tmp, gw, pebble, admin=free_port())
        a.serve(NAME, http=f"127.0.0.1:{free_port()}",
                more=["certificate: acme"])
        gw.start()
        a.start()
        seed = key_seed(a.key_path)
        # The CA probes while the order process waits for its verdict.
        hold.wait_conns(1, timeout=60)
        kids = children(a.proc.pid)
        assert len(kids) == 1, kids
        child = kids[0]
        os.kill(child, signal.SIGSTOP)
        try:
            wait_until(lambda: stopped(child), "stop of the order process",
                       interval=0.01)
            child_socks = socket_inodes(child)
            parent_socks = socket_inodes(a.proc.pid)
            tunnels = tcp_inodes_to(gw.tunnel_port) & parent_socks
            # The scan can see: the agent itself holds the key and a
            # tunnel.
            assert tunnels, "the agent holds no tunnel socket"
            assert memory_holds(a.proc.pid, seed)
            assert not child_socks & tunnels, "a tunnel in the child"
            assert not child_socks & parent_socks, \
                "the child shares sockets with the agent"
            assert not memory_holds(child, seed), \
                "the identity key is in the order process's memory"
            with open(os.path.join(a.dir, "admin.secret"), "rb") as f:
                secret = f.read().strip()
            assert len(secret) >= 32 and memory_holds(a.proc.pid, secret)
            assert not memory_holds(child, secret), \
                "the admin secret is in the order process's memory"
        finally:
            os.kill(child, signal.SIGCONT)
    finally:
        hold.close()
