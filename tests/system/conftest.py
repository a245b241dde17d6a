"""Fixtures for porch system tests: real binaries, real peers, loopback
only.  The helpers live in the porchtest package (see its __init__);
this file holds the pytest fixtures and re-exports the helpers' names,
so test files import them from here as they always have.

Every process a test starts is registered with the `procs` fixture and
stopped (by PID) when the test ends, pass or fail.  Readiness is always a
log line or a successful connect, never a sleep.  Under PORCH_ASAN=1 the
daemons run the sanitizer build and every clean stop is checked for
sanitizer and leak reports.
"""

import pytest

from porchtest.acme import Pebble
from porchtest.backends import Sink
from porchtest.certs import CA, keygen
from porchtest.daemons import Agent, Gateway, pair, yaml_list
from porchtest.dns import Bind
from porchtest.nginx import (NGINX_CONF, Nginx, PlainNginx,
                             nginx_start)
from porchtest.paths import (AGENT, ASAN, BUILD, GATEWAY,
                             PORCHCTL, ROOT, SANITIZER_MARKS)
from porchtest.ports import free_port, wait_port
from porchtest.raw import (client_hello, connect, recv_some, recv_until_eof,
                           reframe, resp_body, resp_status, send_chunked)
from porchtest.procs import (Proc, Procs, assert_grew_less,
                             nofile, nofile_limits, rss_kib)
from porchtest.visit import (admin_metrics, admin_status, assert_no_route,
                             big_file, curl, fetch, finish, get, http_status,
                             porchctl_status, sha256, slow_download,
                             tls_visit)
from porchtest.wait import wait_until

# The helpers' names, for `from conftest import ...`.
__all__ = [
    "AGENT", "ASAN", "Agent", "BUILD", "Bind", "CA", "GATEWAY", "Gateway",
    "NGINX_CONF", "Nginx", "PORCHCTL", "Pebble", "PlainNginx", "Proc",
    "Procs", "ROOT", "SANITIZER_MARKS", "Sink", "admin_metrics",
    "admin_status", "assert_grew_less", "assert_no_route", "big_file",
    "client_hello", "connect", "curl", "fetch", "finish", "free_port",
    "get", "http_status", "keygen", "nginx_start", "nofile",
    "nofile_limits", "pair", "porchctl_status", "recv_some",
    "recv_until_eof", "reframe", "resp_body", "resp_status", "rss_kib",
    "send_chunked", "sha256", "slow_download", "tls_visit", "wait_port",
    "wait_until", "yaml_list"]


@pytest.fixture
def procs(tmp_path):
    ps = Procs(str(tmp_path))
    yield ps
    problems = ps.stop_all()
    assert not problems, "\n".join(problems)


@pytest.fixture
def ca(tmp_path):
    return CA(str(tmp_path / "ca"))


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
