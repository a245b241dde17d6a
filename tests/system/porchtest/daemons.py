"""porch-gateway and porch-agent on loopback, each with fresh ports, its
own key and a config written from what the test adds."""

import os
import re
import socket

from .certs import keygen
from .paths import AGENT, GATEWAY
from .ports import free_port


def yaml_list(items):
    return "[" + ", ".join(f'"{i}"' for i in items) + "]"


class Gateway:
    """porch-gateway on loopback with fresh ports and key."""

    def __init__(self, procs, tmp, name="gw", extra="", ipv6=False,
                 admin=False):
        """admin: also an admin listener, at self.admin ("127.0.0.1:PORT",
        the port also as self.admin_port)."""
        self.procs = procs
        self.admin_port = free_port() if admin else None
        self.admin = f"127.0.0.1:{self.admin_port}" if admin else None
        self.admin_listen = admin
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
        if self.admin_listen:
            lines.append(f'admin: "{self.admin}"')
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

    def start(self, args=(), preexec_fn=None):
        """preexec_fn: e.g. procs.nofile(256), a small open files limit."""
        self.write_config()
        self.proc = self.procs.start(self.name,
                                     [GATEWAY, "-c", self.conf, *args],
                                     daemon=True, preexec_fn=preexec_fn)
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

    def start(self, wait_serving=True, preexec_fn=None):
        self.write_config()
        self.proc = self.procs.start(self.name, [AGENT, "-c", self.conf],
                                     daemon=True, preexec_fn=preexec_fn)
        if wait_serving:
            for gw, _, _, _ in self.gateways:
                for host, _, _, _ in self.services:
                    self.proc.wait_log(
                        rf"gateway {re.escape(gw)}: serving "
                        rf"{re.escape(host)}\b", since_mark=False)
        return self.proc


def pair(procs, tmp, host, gw_extra="", agent_extra="", **service):
    """A gateway and one agent admitted for host and serving it from the
    given backend (service: tls=, http=, ... as Agent.serve); both
    started.  Returns (gateway, agent)."""
    gw = Gateway(procs, str(tmp), extra=gw_extra)
    ag = Agent(procs, str(tmp), extra=agent_extra)
    gw.admit(ag, [host])
    ag.use(gw)
    ag.serve(host, **service)
    gw.start()
    ag.start()
    return gw, ag
