"""A home behind a slow uplink (issue 13): the home (nginx and the agent)
in its own network namespace, its uplink limited to 50 Mbit/s with tbf,
the gateway and the visitors outside.  Two visitors download big files
while a third makes small requests: none of those may wait for a
download to end, and the two downloads share the link.

Figures are not asserted (they are measured in bench/uplink.py); what is
asserted is behaviour: every small request completes while both
downloads still run, and neither download is starved."""

import os
import subprocess
import time

import pytest

from conftest import AGENT, Agent, Gateway, Nginx, big_file, wait_until

APP = "app.example.test"
HOME_IP, GW_IP = "10.77.13.2", "10.77.13.1"


@pytest.fixture
def home_ns(procs):
    """A namespace "home" joined to this one by a veth pair; its egress
    (the uplink) limited to 50 Mbit/s."""
    ns = f"porch-home-{os.getpid()}"
    veth = f"ph{os.getpid() % 100000}"
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)
    run("ip", "netns", "add", ns)
    try:
        run("ip", "link", "add", veth, "type", "veth", "peer", "name",
            "uplink", "netns", ns)
        run("ip", "addr", "add", f"{GW_IP}/24", "dev", veth)
        run("ip", "link", "set", veth, "up")
        run("ip", "-n", ns, "addr", "add", f"{HOME_IP}/24", "dev", "uplink")
        run("ip", "-n", ns, "link", "set", "uplink", "up")
        run("ip", "-n", ns, "link", "set", "lo", "up")
        run("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev",
            "uplink", "root", "tbf", "rate", "50mbit", "burst", "64kb",
            "latency", "100ms")
        yield ns
    finally:
        subprocess.run(["ip", "link", "del", veth], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


class WideGateway(Gateway):
    """Agents reach the tunnel listener across the veth."""

    def write_config(self):
        super().write_config()
        with open(self.conf) as f:
            text = f.read()
        text = text.replace(f'tunnel: ["127.0.0.1:{self.tunnel_port}"]',
                            f'tunnel: ["{GW_IP}:{self.tunnel_port}"]')
        with open(self.conf, "w") as f:
            f.write(text)


def test_small_requests_are_not_starved_by_downloads(procs, tmp_path, ca,
                                                     home_ns):
    tmp = str(tmp_path)
    ng = Nginx(procs, tmp, ca, APP, addr=HOME_IP,
               wrap=["ip", "netns", "exec", home_ns])
    big_file(ng.root, mib=96)
    gw = WideGateway(procs, tmp)
    ag = Agent(procs, tmp)
    gw.admit(ag, ["*.example.test"])
    ag.gateways.append((gw.name, f"{GW_IP}:{gw.tunnel_port}", gw.pub, None))
    ag.serve(APP, tls=ng.tls)
    gw.start()
    ag.write_config()
    ag.proc = procs.start("agent", ["ip", "netns", "exec", home_ns, AGENT,
                                    "-c", ag.conf], daemon=True)
    ag.proc.wait_log(r"gateway gw: serving app\.example\.test")

    def curl_args(path, out, max_time):
        return ["curl", "-sS", "--max-time", str(max_time), "--cacert",
                ca.crt, "--resolve", f"{APP}:{gw.tls_port}:127.0.0.1",
                "-o", out, "-w", "%{size_download} %{time_total}\n",
                f"https://{APP}:{gw.tls_port}{path}"]

    # Two downloads that outlast the small requests (96 MiB each would
    # take 30 s at 50 Mbit/s; curl stops them after 12 s).
    outs = [str(tmp_path / f"dl{i}.bin") for i in range(2)]
    dls = [procs.start(f"dl{i}", curl_args("/big.bin", outs[i], 12))
           for i in range(2)]
    # Both under way (1 MiB each) before the small requests start.
    wait_until(lambda: all(os.path.exists(o) and
                           os.path.getsize(o) > (1 << 20) for o in outs),
               "start of both downloads")
    small = []
    for i in range(15):
        t0 = time.monotonic()
        r = subprocess.run(curl_args("/whoami", "-", 10),
                           capture_output=True, text=True)
        small.append((r.returncode, time.monotonic(), r.stdout, r.stderr))
        assert all(d.alive() for d in dls), "a download ended early"
        # Pacing, not waiting: five small requests a second is the load.
        time.sleep(max(0.0, 0.2 - (time.monotonic() - t0)))
    for d in dls:
        d.p.wait(30)
    # Every small request completed, while both downloads still ran.
    for rc, done, out, err in small:
        assert rc == 0 and APP in out, (rc, out, err)
    got = []
    for d in dls:
        line = d.log().strip().splitlines()[-1]
        got.append(float(line.split()[0]))
    assert min(got) > 0, got
    # Neither download starved: each has at least a third of the bytes.
    share = min(got) / sum(got)
    assert share > 1 / 3, f"downloads split {got}"
