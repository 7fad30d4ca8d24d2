"""A deliberately low-level WebSocket client for tests: raw sockets, a frame
encoder that can also build invalid frames, and a strict parser for what the
server sends (server frames must be unmasked)."""

import base64
import hashlib
import os
import select
import socket
import ssl
import struct
import time
from dataclasses import dataclass

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

DEFAULT_TIMEOUT = 5.0

# Sockets opened by tests; the nginx fixture closes leftovers before stopping nginx.
_open_sockets = []


def close_all():
    while _open_sockets:
        s = _open_sockets.pop()
        try:
            s.close()
        except OSError:
            pass


def accept_for(key):
    digest = hashlib.sha1((key + GUID).encode()).digest()
    return base64.b64encode(digest).decode()


def new_key():
    return base64.b64encode(os.urandom(16)).decode()


def close_payload(code, reason=b""):
    if isinstance(reason, str):
        reason = reason.encode()
    return struct.pack("!H", code) + reason


# --------------------------------------------------------------------------
# frames


def encode_frame(opcode, payload=b"", fin=True, rsv=0, mask=True, mask_key=None,
                 length=None, length_form=None):
    """A client frame.

    rsv: the three RSV bits as a number 0..7 (4 = RSV1).
    mask: False sends the payload unmasked with the MASK bit clear.
    length: the length to declare (defaults to len(payload)).
    length_form: 7, 16 or 64 to force an encoding of the length.
    """
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    mbit = 0x80 if mask else 0
    if length_form is None:
        length_form = 7 if n < 126 else 16 if n < 65536 else 64
    if length_form == 7:
        header = struct.pack("!BB", b0, mbit | n)
    elif length_form == 16:
        header = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        header = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return header + payload
    if mask_key is None:
        mask_key = os.urandom(4)
    return header + mask_key + mask_bytes(payload, mask_key)


def mask_bytes(data, key):
    if not data:
        return b""
    # XOR via big integers: fast enough for megabytes
    reps = (len(data) + 3) // 4
    keystream = (key * reps)[:len(data)]
    x = int.from_bytes(data, "big") ^ int.from_bytes(keystream, "big")
    return x.to_bytes(len(data), "big")


@dataclass
class Frame:
    fin: bool
    rsv: int
    opcode: int
    payload: bytes
    masked: bool
    header: bytes = b""  # the frame's bytes before the payload, as on the wire

    @property
    def length_form(self):
        """7, 16 or 64: how the frame encoded its payload length on the wire."""
        n = self.header[1] & 0x7F
        return 7 if n < 126 else 16 if n == 126 else 64

    @property
    def close_code(self):
        if self.opcode != OP_CLOSE or len(self.payload) < 2:
            return None
        return struct.unpack("!H", self.payload[:2])[0]

    @property
    def close_reason(self):
        return self.payload[2:]

    def __repr__(self):
        p = self.payload if len(self.payload) <= 40 else self.payload[:40] + b"..."
        extra = f" code={self.close_code}" if self.opcode == OP_CLOSE else ""
        return (f"Frame(op={self.opcode:#x} fin={self.fin} rsv={self.rsv} "
                f"masked={self.masked} len={len(self.payload)}{extra} {p!r})")


class ConnectionClosed(Exception):
    """The server closed the TCP connection (EOF or reset)."""


# --------------------------------------------------------------------------
# HTTP


@dataclass
class HttpResponse:
    status_line: str
    status: int
    headers: list  # [(name, value)] in order
    body: bytes = b""

    def header(self, name):
        """The value of the only header called name (case-insensitive), or None."""
        values = self.header_all(name)
        assert len(values) <= 1, f"{name} appears {len(values)} times: {self.headers}"
        return values[0] if values else None

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]


def connect(port, host="127.0.0.1", ssl_context=None, server_hostname="localhost",
            timeout=DEFAULT_TIMEOUT, nodelay=True):
    s = socket.create_connection((host, port), timeout=timeout)
    if nodelay:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if ssl_context is not None:
        s = ssl_context.wrap_socket(s, server_hostname=server_hostname)
    _open_sockets.append(s)
    return s


def build_request(path="/ws", port=None, method="GET", version="HTTP/1.1", key=None,
                  ws_version="13", upgrade="websocket", connection="Upgrade",
                  origin=None, protocols=None, extra_headers=(), host=None):
    """A handshake request. Pass None for a header to leave it out; protocols is
    a list of Sec-WebSocket-Protocol header values (one header each)."""
    if key is None:
        key = new_key()
    lines = [f"{method} {path} {version}"]
    lines.append(f"Host: {host or ('127.0.0.1:%s' % port if port else 'localhost')}")
    if upgrade is not None:
        lines.append(f"Upgrade: {upgrade}")
    if connection is not None:
        lines.append(f"Connection: {connection}")
    if key is not False:
        lines.append(f"Sec-WebSocket-Key: {key}")
    if ws_version is not None:
        lines.append(f"Sec-WebSocket-Version: {ws_version}")
    if origin is not None:
        lines.append(f"Origin: {origin}")
    for p in protocols or ():
        lines.append(f"Sec-WebSocket-Protocol: {p}")
    for name, value in extra_headers:
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_response(sock, timeout=DEFAULT_TIMEOUT, buf=b""):
    """Reads an HTTP response head (and a Content-Length body unless 101).
    Returns (HttpResponse, leftover bytes)."""
    deadline = time.monotonic() + timeout
    while b"\r\n\r\n" not in buf:
        buf += _recv_some(sock, deadline)
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status_line = lines[0]
    parts = status_line.split(" ", 2)
    status = int(parts[1])
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    resp = HttpResponse(status_line, status, headers)
    if status != 101:
        cl = resp.header("Content-Length")
        if cl is not None:
            n = int(cl)
            while len(rest) < n:
                rest += _recv_some(sock, deadline)
            resp.body, rest = rest[:n], rest[n:]
    return resp, rest


def _recv_some(sock, deadline):
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("timed out waiting for data")
    sock.settimeout(remaining)
    try:
        data = sock.recv(65536)
    except socket.timeout:
        raise TimeoutError("timed out waiting for data") from None
    except (ConnectionError, ssl.SSLError) as e:
        raise ConnectionClosed(repr(e)) from None
    if not data:
        raise ConnectionClosed("EOF")
    return data


def request(port, req_bytes, ssl_context=None, timeout=DEFAULT_TIMEOUT):
    """Sends raw request bytes; returns (HttpResponse, socket, leftover)."""
    s = connect(port, ssl_context=ssl_context, timeout=timeout)
    s.sendall(req_bytes)
    resp, rest = read_response(s, timeout)
    return resp, s, rest


# --------------------------------------------------------------------------
# WebSocket connection


class WS:
    def __init__(self, sock, buf=b""):
        self.sock = sock
        self.buf = buf

    # ---- sending

    def send_raw(self, data):
        self.sock.sendall(data)

    def send_frame(self, opcode, payload=b"", **kw):
        self.sock.sendall(encode_frame(opcode, payload, **kw))

    def send_text(self, text, **kw):
        self.send_frame(OP_TEXT, text.encode() if isinstance(text, str) else text, **kw)

    def send_binary(self, data, **kw):
        self.send_frame(OP_BINARY, data, **kw)

    def send_ping(self, payload=b"", **kw):
        self.send_frame(OP_PING, payload, **kw)

    def send_pong(self, payload=b"", **kw):
        self.send_frame(OP_PONG, payload, **kw)

    def send_close(self, code=None, reason=b"", **kw):
        payload = b"" if code is None else close_payload(code, reason)
        self.send_frame(OP_CLOSE, payload, **kw)

    # ---- receiving

    def _need(self, n, deadline):
        while len(self.buf) < n:
            self.buf += _recv_some(self.sock, deadline)

    def recv_frame(self, timeout=DEFAULT_TIMEOUT):
        """The next server frame. Raises TimeoutError or ConnectionClosed."""
        deadline = time.monotonic() + timeout
        self._need(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        masked = bool(b1 & 0x80)
        n = b1 & 0x7F
        pos = 2
        if n == 126:
            self._need(4, deadline)
            n = struct.unpack("!H", self.buf[2:4])[0]
            pos = 4
        elif n == 127:
            self._need(10, deadline)
            n = struct.unpack("!Q", self.buf[2:10])[0]
            pos = 10
        key = None
        if masked:
            self._need(pos + 4, deadline)
            key = self.buf[pos:pos + 4]
            pos += 4
        self._need(pos + n, deadline)
        header = bytes(self.buf[:pos])
        payload = self.buf[pos:pos + n]
        self.buf = self.buf[pos + n:]
        if masked:
            payload = mask_bytes(payload, key)
        return Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF, payload, masked, header)

    def recv_data(self, timeout=DEFAULT_TIMEOUT):
        """The next frame, which must be a well-formed final, unmasked server frame."""
        f = self.recv_frame(timeout)
        assert not f.masked, f"server frame is masked: {f!r}"
        assert f.rsv == 0, f"server frame has RSV bits: {f!r}"
        return f

    def expect_message(self, opcode, payload, timeout=DEFAULT_TIMEOUT):
        """Asserts that the next frame is an unfragmented message opcode/payload."""
        if isinstance(payload, str):
            payload = payload.encode()
        f = self.recv_data(timeout)
        assert f.opcode == opcode and f.fin and f.payload == payload, \
            f"expected op={opcode:#x} len={len(payload)} {payload[:40]!r}, got {f!r}"
        return f

    def echo(self, payload, opcode=OP_TEXT, timeout=DEFAULT_TIMEOUT):
        """Sends a message and asserts the echo."""
        if isinstance(payload, str):
            payload = payload.encode()
        self.send_frame(opcode, payload)
        return self.expect_message(opcode, payload, timeout)

    def expect_close(self, code, timeout=DEFAULT_TIMEOUT, reply=True, eof_within=5.0):
        """Asserts that the next frame is a close with code; then (reply=True)
        answers it and asserts the server closes TCP within eof_within s."""
        f = self.recv_data(timeout)
        assert f.opcode == OP_CLOSE, f"expected close {code}, got {f!r}"
        assert f.close_code == code, f"expected close code {code}, got {f!r}"
        if reply:
            try:
                self.send_close(code)
            except OSError:
                pass  # the server may already be gone
            assert self.wait_eof(eof_within), \
                f"server did not close TCP within {eof_within}s after the close handshake"
        return f

    def wait_eof(self, timeout=DEFAULT_TIMEOUT):
        """True if the server closes the connection (EOF or RST) within timeout.
        Bytes that arrive meanwhile are kept in self.buf."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return False
            except (ConnectionError, ssl.SSLError):
                return True
            if not data:
                return True
            self.buf += data

    def _read_available(self):
        """Reads whatever has already arrived (never blocks) into self.buf.
        Returns False if the server closed TCP (EOF or reset)."""
        while True:
            pending = isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()
            if not pending:
                r, _, _ = select.select([self.sock], [], [], 0)
                if not r:
                    return True
            # readable: for TLS a record may still be incomplete, hence a short timeout
            self.sock.settimeout(0.05)
            try:
                data = self.sock.recv(65536)
            except (socket.timeout, BlockingIOError, ssl.SSLWantReadError):
                return True
            except (ConnectionError, ssl.SSLError):
                return False
            if not data:
                return False
            self.buf += data

    def buffered_frames(self):
        """[(opcode, payload length)] of the complete frames in self.buf (not consumed)."""
        out, pos, buf = [], 0, self.buf
        while len(buf) - pos >= 2:
            op, n, hl = buf[pos] & 0xF, buf[pos + 1] & 0x7F, 2
            if n == 126:
                if len(buf) - pos < 4:
                    break
                n, hl = struct.unpack("!H", buf[pos + 2:pos + 4])[0], 4
            elif n == 127:
                if len(buf) - pos < 10:
                    break
                n, hl = struct.unpack("!Q", buf[pos + 2:pos + 10])[0], 10
            if buf[pos + 1] & 0x80:
                hl += 4
            if len(buf) - pos < hl + n:
                break
            out.append((op, n))
            pos += hl + n
        return out

    def is_open(self):
        """True if the server has neither sent a close frame nor closed TCP.
        Non-blocking: bytes that have arrived are read into self.buf (and
        stay there for recv_frame), and a close frame among them, read or
        not yet read by the test, counts as closed."""
        alive = self._read_available()
        if any(op == OP_CLOSE for op, _n in self.buffered_frames()):
            return False
        return alive

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def abort(self):
        """Closes with a TCP RST (SO_LINGER 0)."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()


def handshake(port, path="/ws", headers=(), protocols=None, ssl_context=None,
              timeout=10.0, **req_kw):
    """A raw handshake that may be refused. headers: extra (name, value)
    pairs. Returns (HttpResponse, WS) after a 101, else (HttpResponse, None)
    with the socket closed."""
    req = build_request(path, port=port, protocols=protocols, extra_headers=headers, **req_kw)
    resp, sock, rest = request(port, req, ssl_context=ssl_context, timeout=timeout)
    if resp.status == 101:
        return resp, WS(sock, rest)
    sock.close()
    return resp, None


def assert_json_error(resp, status, error=None):
    """Asserts a refusal as README promises it: the status, Content-Type
    application/json and a body {"error": "..."} (with that text when error
    is given). resp: an HttpResponse or groups_util.Response. Returns the
    parsed body."""
    import json
    got = resp.status
    body = resp.body
    assert got == status, f"expected {status}, got {got} {body[:300]!r}"
    if isinstance(resp, HttpResponse):
        ctype = resp.header("Content-Type") or ""
        assert resp.header("Sec-WebSocket-Accept") is None, resp.headers
    else:
        ctype = resp.headers.get("Content-Type", "")
    assert ctype.startswith("application/json"), f"{status} with Content-Type {ctype!r}: {body[:300]!r}"
    try:
        doc = json.loads(body)
    except ValueError:
        raise AssertionError(f"{status} body is not JSON: {body[:300]!r}") from None
    assert isinstance(doc, dict) and isinstance(doc.get("error"), str) and doc["error"], doc
    if error is not None:
        assert doc["error"] == error, doc
    return doc


def ws_connect(port, path="/ws", ssl_context=None, timeout=DEFAULT_TIMEOUT, **req_kw):
    """Performs a handshake that must succeed; returns (WS, HttpResponse)."""
    key = req_kw.pop("key", None) or new_key()
    resp, sock, rest = request(port, build_request(path, port=port, key=key, **req_kw),
                               ssl_context=ssl_context, timeout=timeout)
    assert resp.status == 101, f"handshake failed: {resp.status_line} {resp.body!r}"
    assert resp.header("Sec-WebSocket-Accept") == accept_for(key)
    return WS(sock, rest), resp
