"""Raw sockets: visitors that send exactly the bytes a test wants (a
ClientHello cut into records or segments, a stalled head) and read
whatever comes back."""

import re
import socket
import ssl
import struct
import time


def client_hello(server_name, alpn=None):
    """The bytes of a real ClientHello from Python's OpenSSL, as a real
    client sends them first (then waits for the server's answer)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(alpn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = outgoing.read()
    assert hello[0] == 0x16 and hello[5] == 0x01, hello[:8].hex()
    return hello


def reframe(hello, parts):
    """The handshake message of a one-record hello, cut into `parts`
    records of roughly equal size."""
    rlen = struct.unpack("!H", hello[3:5])[0]
    assert len(hello) == 5 + rlen, "expected a single-record hello"
    body = hello[5:]
    step = -(-len(body) // parts)
    out = b""
    for i in range(0, len(body), step):
        piece = body[i:i + step]
        out += bytes([0x16]) + hello[1:3] + struct.pack("!H", len(piece))
        out += piece
    return out


def connect(port, bind_port=0, nodelay=False, timeout=5.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind(("127.0.0.1", bind_port))
    if nodelay:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.connect(("127.0.0.1", port))
    return s


def send_chunked(s, data, size, pause):
    """Send in small pieces with a pause between: separate TCP segments."""
    for i in range(0, len(data), size):
        s.sendall(data[i:i + size])
        if i + size < len(data):
            # The pause is the point: the gateway must see separate
            # segments, whatever Nagle or the kernel would merge.
            time.sleep(pause)


def recv_until_eof(s, timeout=5.0, limit=1 << 20):
    """Everything until the peer closes; a reset ends it too."""
    s.settimeout(timeout)
    buf = b""
    try:
        while len(buf) < limit:
            b = s.recv(65536)
            if not b:
                break
            buf += b
    except ConnectionResetError:
        pass
    return buf


def recv_some(s, n=1, timeout=5.0):
    """At least n bytes (or what came before EOF)."""
    s.settimeout(timeout)
    buf = b""
    while len(buf) < n:
        b = s.recv(65536)
        if not b:
            break
        buf += b
    return buf


def resp_status(resp):
    """The status code of a raw HTTP/1.x response."""
    m = re.match(rb"HTTP/1\.[01] (\d{3}) ", resp)
    assert m, resp[:200]
    return int(m.group(1))


def resp_body(resp):
    """What follows the head of a raw HTTP/1.x response."""
    return resp.split(b"\r\n\r\n", 1)[1]
