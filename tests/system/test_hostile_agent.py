"""A hostile agent (tests/tools/rawagent.c: admitted, then raw frames):
frames that break the protocol end that agent's tunnel with a protocol
error, and nothing else (issue 14)."""

import os
import subprocess

from conftest import BUILD, Agent, Gateway, http_status

RAWAGENT = os.path.join(BUILD, "rawagent")


def hostile(gw, ag, *frames):
    assert os.path.exists(RAWAGENT), f"{RAWAGENT} is missing: make " \
        f"{os.path.relpath(RAWAGENT)}"
    r = subprocess.run([RAWAGENT, ag.key_path, gw.pub,
                        f"127.0.0.1:{gw.tunnel_port}", *frames],
                       capture_output=True, text=True, timeout=20)
    return r.stdout + r.stderr


def header(length, ftype, flags, stream):
    return (length.to_bytes(3, "big") + bytes([ftype, flags])
            + stream.to_bytes(4, "big")).hex()


def test_data_on_the_reserved_bit_alone_is_a_protocol_error(procs, tmp_path):
    gw = Gateway(procs, str(tmp_path))
    ag = Agent(procs, str(tmp_path))
    gw.admit(ag, ["*.example.test"])
    gw.start()
    # DATA whose stream id is only the reserved bit: stream 0, which DATA
    # may never use (PROTOCOL §3.1), however the R bit is set.
    out = hostile(gw, ag, header(4, 6, 0, 0x80000000) + "41424344")
    assert "authed" in out, out
    assert "closed: refused by peer" in out or "closed:" in out, out
    gw.proc.wait_log(r"protocol error: DATA on stream 0")


def test_data_on_stream_zero_is_a_protocol_error(procs, tmp_path):
    gw = Gateway(procs, str(tmp_path))
    ag = Agent(procs, str(tmp_path))
    gw.admit(ag, ["*.example.test"])
    gw.start()
    out = hostile(gw, ag, header(4, 6, 0, 0) + "41424344")
    assert "closed:" in out, out
    gw.proc.wait_log(r"protocol error: DATA on stream 0")


def test_hostile_agent_costs_the_others_nothing(procs, tmp_path, ca):
    from conftest import Nginx
    gw = Gateway(procs, str(tmp_path))
    good = Agent(procs, str(tmp_path), name="good")
    bad = Agent(procs, str(tmp_path), name="bad")
    ng = Nginx(procs, str(tmp_path), ca, "app.example.test")
    gw.admit(good, ["app.example.test"])
    gw.admit(bad, ["*.example.test"])
    good.use(gw)
    good.serve("app.example.test", http=ng.http)
    gw.start()
    good.start()
    # A claim frame that does not parse, then an oversized length.
    out = hostile(gw, bad, header(2, 2, 0, 0) + "0101",
                  "ffffff0600000000010000")
    assert "closed:" in out, out
    gw.proc.wait_log(r"protocol error: malformed claim")
    assert gw.proc.alive()
    assert good.proc.count(r"tunnel up") == 1
    assert http_status(gw.http_port, "app.example.test", "/whoami") == 200
