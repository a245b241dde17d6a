"""Real nginx backends: Nginx serves files over TLS and plain HTTP (the
usual home service), PlainNginx plain HTTP/1.1 and h2c (behind an agent
that terminates TLS itself).  One config skeleton for both."""

import os
import shutil

from .ports import free_port, wait_port

# Everything nginx writes stays in the test's directory.
_HEAD = """
{user}
daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    client_body_temp_path {dir}/tmp;
    proxy_temp_path {dir}/tmp;
    fastcgi_temp_path {dir}/tmp;
    uwsgi_temp_path {dir}/tmp;
    scgi_temp_path {dir}/tmp;
"""

# Nginx: / is index.html ("hello from TAG"), /whoami says "TAG scheme host".
NGINX_CONF = _HEAD + """    access_log off;
    keepalive_requests 100000;
    server {{
        listen {addr}:{tls_port} ssl;
        listen {addr}:{http_port};
        server_name {name};
        ssl_certificate {crt};
        ssl_certificate_key {key};
        root {root};
        location /whoami {{ return 200 "{tag} $scheme $host\\n"; }}
    }}
}}
"""

# PlainNginx: /whoami says "plain|h2c PROTOCOL host"; access.log has
# "URI BYTES_SENT" per request.
PLAIN_CONF = _HEAD + """    log_format sent '$request_uri $bytes_sent';
    access_log {dir}/access.log sent;
    server {{
        listen 127.0.0.1:{http_port};
        root {root};
        location /whoami {{ return 200 "plain $server_protocol $host\\n"; }}
    }}
    server {{
        listen 127.0.0.1:{h2c_port} http2;
        root {root};
        location /whoami {{ return 200 "h2c $server_protocol $host\\n"; }}
    }}
}}
"""


def _user():
    return "user root;" if os.geteuid() == 0 else ""


def _dirs(d):
    root = os.path.join(d, "root")
    os.makedirs(os.path.join(d, "tmp"), exist_ok=True)
    os.makedirs(root, exist_ok=True)
    return root


def nginx_start(procs, name, d, ports, host="127.0.0.1", wrap=()):
    """nginx with d/nginx.conf, prefix d; returns once every port
    listens on host.  wrap: argv to run it under (ip netns exec NS)."""
    p = procs.start(name, [*wrap, shutil.which("nginx") or "/usr/sbin/nginx",
                           "-p", d, "-c", os.path.join(d, "nginx.conf")])
    for port in ports:
        wait_port(port, host=host)
    return p


class Nginx:
    """A real nginx serving files from root over TLS and plain HTTP."""

    def __init__(self, procs, tmp, ca, name, tag=None, tls_port=None,
                 http_port=None, addr="127.0.0.1", wrap=()):
        """tls_port/http_port: fixed ports (e.g. a restarted backend
        taking over the ports of a stopped one); default fresh ones.
        addr: where it listens; wrap: argv to run nginx under."""
        self.dir = os.path.join(tmp, f"nginx-{name}-{tag or 'x'}")
        self.root = _dirs(self.dir)
        self.tls_port = tls_port or free_port()
        self.http_port = http_port or free_port()
        self.addr = addr
        self.name = name
        self.tag = tag or name
        self.crt, self.key = ca.leaf(name)
        with open(os.path.join(self.dir, "nginx.conf"), "w") as f:
            f.write(NGINX_CONF.format(dir=self.dir, addr=addr,
                                      tls_port=self.tls_port,
                                      http_port=self.http_port, name=name,
                                      crt=self.crt, key=self.key,
                                      root=self.root, tag=self.tag,
                                      user=_user()))
        with open(os.path.join(self.root, "index.html"), "w") as f:
            f.write(f"hello from {self.tag}\n")
        self.proc = nginx_start(procs, f"nginx-{name}-{self.tag}", self.dir,
                                (self.tls_port, self.http_port), host=addr,
                                wrap=wrap)

    @property
    def tls(self):
        return f"{self.addr}:{self.tls_port}"

    @property
    def http(self):
        return f"{self.addr}:{self.http_port}"


class PlainNginx:
    """nginx with a plain HTTP/1.1 port and an h2c (prior knowledge)
    port, both serving root; access.log in dir."""

    def __init__(self, procs, tmp, name="nginx-term"):
        self.dir = os.path.join(tmp, name)
        self.root = _dirs(self.dir)
        self.http_port = free_port()
        self.h2c_port = free_port()
        with open(os.path.join(self.dir, "nginx.conf"), "w") as f:
            f.write(PLAIN_CONF.format(
                dir=self.dir, root=self.root, http_port=self.http_port,
                h2c_port=self.h2c_port, user=_user()))
        self.proc = nginx_start(procs, name, self.dir,
                                (self.http_port, self.h2c_port))

    @property
    def http(self):
        return f"127.0.0.1:{self.http_port}"

    @property
    def h2c(self):
        return f"127.0.0.1:{self.h2c_port}"
