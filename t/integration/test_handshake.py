"""Opening handshake (RFC 6455 §4.2), subprotocols and Origin checks."""

import asyncio
import json

import pytest
import websockets

from jwt_util import claims, make_token, new_secret, new_secret_file
from wsclient import connect as wsclient_connect
from wsclient import WS, accept_for, assert_json_error, build_request, handshake, request, ws_connect

CONF = """
server {
    listen {port};
    location /ws {
        realtime_websocket;
        realtime_echo on;
    }
    location /sub {
        realtime_websocket;
        realtime_echo on;
        realtime_subprotocols a b;
    }
    location /origin {
        realtime_websocket;
        realtime_echo on;
        realtime_allowed_origins https://good.example;
    }
    location /origins2 {
        realtime_websocket;
        realtime_echo on;
        realtime_allowed_origins https://good.example https://other.example:8443;
    }
    location / {
        return 200 "plain\\n";
    }
}
"""

RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.fixture
def ngx(nginx_factory):
    return nginx_factory(CONF)


# --------------------------------------------------------------------------
# success


def test_valid_handshake_rfc_sample_key(ngx):
    ws, resp = ws_connect(ngx.port, key=RFC_KEY)
    assert resp.status_line == "HTTP/1.1 101 Switching Protocols"
    assert resp.header("Sec-WebSocket-Accept") == RFC_ACCEPT
    assert resp.header("Upgrade").lower() == "websocket"
    assert resp.header("Connection").lower() == "upgrade"
    assert resp.header("Sec-WebSocket-Protocol") is None
    assert resp.header("Content-Length") is None
    assert ws.buf == b"", "server sent bytes after the 101 head unprompted"
    ws.echo("hello")


def test_handshake_header_variants_accepted(ngx):
    """Tokens are case-insensitive and may sit inside comma lists."""
    key = "AQIDBAUGBwgJCgsMDQ4PEA=="
    req = build_request("/ws", port=ngx.port, key=key, upgrade="WebSocket",
                        connection="keep-alive, Upgrade")
    resp, sock, rest = request(ngx.port, req)
    assert resp.status == 101, resp
    assert resp.header("Sec-WebSocket-Accept") == accept_for(key)


def test_websockets_library_client(ngx):
    async def run():
        async with websockets.connect(f"ws://127.0.0.1:{ngx.port}/ws") as ws:
            await ws.send("héllo")
            assert await ws.recv() == "héllo"
            await ws.send(b"\x00\x01\x02")
            assert await ws.recv() == b"\x00\x01\x02"
            pong_waiter = await ws.ping(b"lib")
            await asyncio.wait_for(pong_waiter, 5)
        assert ws.close_code == 1000

    asyncio.run(run())


# --------------------------------------------------------------------------
# refusals


def test_missing_key_400(ngx):
    resp, _, _ = request(ngx.port, build_request("/ws", port=ngx.port, key=False))
    assert_json_error(resp, 400)


@pytest.mark.parametrize("key", [
    "",
    "abc",
    "dGhlIHNhbXBsZSBub25jZQ",            # no padding
    "dGhlIHNhbXBsZSBub25jZQ=",           # 23 characters
    "dGhlIHNhbXBsZSBub25j*Q==",          # not base64
    "dGhlIHNhbXBsZSBub25jZQ==dGhl",      # too long
    "dGhlIHNhbXBsZSBub25jZUE=",          # decodes to 17 bytes
    "AAAAAAAAAAAAAAAAAAAAAA",            # 16.5 bytes, no padding
])
def test_invalid_key_400(ngx, key):
    resp, _, _ = request(ngx.port, build_request("/ws", port=ngx.port, key=key))
    assert_json_error(resp, 400)


@pytest.mark.parametrize("version", ["12", "8", "14", "130", None])
def test_wrong_version_426(ngx, version):
    resp, _, _ = request(ngx.port, build_request("/ws", port=ngx.port, ws_version=version))
    assert_json_error(resp, 426)
    assert resp.header("Sec-WebSocket-Version") == "13"


def test_plain_get_without_upgrade_426(ngx):
    req = (f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{ngx.port}\r\n\r\n").encode()
    resp, _, _ = request(ngx.port, req)
    assert_json_error(resp, 426)
    # RFC 9110 §15.5.22: a 426 must carry Upgrade
    assert (resp.header("Upgrade") or "").lower() == "websocket"


def test_upgrade_to_other_protocol_426(ngx):
    resp, _, _ = request(ngx.port, build_request("/ws", port=ngx.port, upgrade="h2c"))
    assert_json_error(resp, 426)


def test_post_405(ngx):
    req = build_request("/ws", port=ngx.port, method="POST",
                        extra_headers=[("Content-Length", "0")])
    resp, _, _ = request(ngx.port, req)
    assert_json_error(resp, 405)
    assert resp.header("Allow") == "GET"


def test_http10_400(ngx):
    resp, _, _ = request(ngx.port, build_request("/ws", port=ngx.port, version="HTTP/1.0"))
    assert_json_error(resp, 400)


def test_refused_handshake_logged_at_info(ngx):
    ngx.mark_log()
    resp, _, _ = request(ngx.port, build_request("/ws", port=ngx.port, key=False))
    assert resp.status == 400
    line = ngx.wait_log(lambda l: "[info]" in l and "client: 127.0.0.1" in l
                        and "Sec-WebSocket-Key" in l)
    assert line, ngx.log_since_mark()


def test_plain_location_unaffected(ngx):
    resp, _, _ = request(ngx.port, build_request("/", port=ngx.port))
    assert resp.status == 200 and resp.body == b"plain\n"


# --------------------------------------------------------------------------
# subprotocols (realtime_subprotocols a b)


@pytest.mark.parametrize("offered, chosen", [
    (["b, a"], "b"),            # the client's order wins
    (["a, b"], "a"),
    (["x, a"], "a"),
    (["x", "b"], "b"),          # several headers
    (["x,b,a"], "b"),           # no spaces
    (["x"], None),              # nothing matches
    ([], None),                 # nothing offered
    (["A"], None),              # names are case-sensitive tokens
    (["ab"], None),             # whole tokens only
])
def test_subprotocol_selection(ngx, offered, chosen):
    ws, resp = ws_connect(ngx.port, "/sub", protocols=offered)
    assert resp.status == 101
    assert resp.header("Sec-WebSocket-Protocol") == chosen
    ws.echo("ok")


def test_subprotocol_never_chosen_without_config(ngx):
    ws, resp = ws_connect(ngx.port, "/ws", protocols=["a, b"])
    assert resp.header("Sec-WebSocket-Protocol") is None


def test_subprotocol_with_library_client(ngx):
    async def run():
        async with websockets.connect(f"ws://127.0.0.1:{ngx.port}/sub",
                                      subprotocols=["chat", "b", "a"]) as ws:
            assert ws.subprotocol == "b"
            await ws.send("x")
            assert await ws.recv() == "x"

    asyncio.run(run())


# --------------------------------------------------------------------------
# Origin (realtime_allowed_origins https://good.example)


@pytest.mark.parametrize("origin", [
    "https://evil.example",
    "http://good.example",
    "https://good.example.evil",
    "https://good.example:8443",
    "null",
])
def test_origin_not_listed_403(ngx, origin):
    resp, _, _ = request(ngx.port, build_request("/origin", port=ngx.port, origin=origin))
    assert_json_error(resp, 403)


def test_origin_listed_101(ngx):
    ws, resp = ws_connect(ngx.port, "/origin", origin="https://good.example")
    ws.echo("from good")


@pytest.mark.parametrize("origin", ["https://good.example", "https://other.example:8443"])
def test_origin_list_with_two_entries(ngx, origin):
    """Every origin of a multi-value realtime_allowed_origins is allowed."""
    ws, resp = ws_connect(ngx.port, "/origins2", origin=origin)
    ws.echo("listed")


def test_origin_list_with_two_entries_refuses_others(ngx):
    resp, _, _ = request(ngx.port, build_request("/origins2", port=ngx.port,
                                                 origin="https://other.example"))
    assert_json_error(resp, 403)


def test_no_origin_header_101(ngx):
    ws, resp = ws_connect(ngx.port, "/origin")
    ws.echo("no origin")


def test_origins_unset_allows_any(ngx):
    ws, resp = ws_connect(ngx.port, "/ws", origin="https://evil.example")
    ws.echo("any origin")


def test_handshake_with_body_not_upgraded(ngx):
    """A handshake request must not carry a body; it is never upgraded."""
    req = build_request("/ws", port=ngx.port, extra_headers=[("Content-Length", "3")]) + b"abc"
    resp, _, _ = request(ngx.port, req)
    assert_json_error(resp, 400)


# --------------------------------------------------------------------------
# the walk over the request headers


def test_connection_keep_alive_alone_400(ngx):
    """Connection must contain the token "upgrade"; keep-alive alone is not enough."""
    resp, ws = handshake(ngx.port, "/ws", connection="keep-alive")
    assert ws is None, resp
    assert_json_error(resp, 400)


def test_connection_split_over_two_lines_101(ngx):
    """Connection: keep-alive and Connection: Upgrade on two lines form one
    list (RFC 9110 5.3): the upgrade token is in the second line."""
    resp, ws = handshake(ngx.port, "/ws", connection="keep-alive",
                         headers=[("Connection", "Upgrade")])
    assert resp.status == 101, resp
    ws.echo("two lines")


def test_two_sec_websocket_keys_400(ngx):
    """Two keys: which one would the accept hash answer? Refused."""
    resp, ws = handshake(ngx.port, "/ws", headers=[("Sec-WebSocket-Key", "AQIDBAUGBwgJCgsMDQ4PEA==")])
    assert ws is None, resp
    assert_json_error(resp, 400)


def _raw_handshake_with_many_headers(port, key, protocol_value, n_before=25):
    lines = ["GET /jwt HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"X-Filler-{i:02d}: value {i} " + "f" * (i * 7) for i in range(n_before)]
    lines += ["Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
              "Sec-WebSocket-Version: 13", f"Sec-WebSocket-Protocol: {protocol_value}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_key_and_bearer_subprotocol_after_25_headers(nginx_factory, tmp_path):
    """25 unrelated headers come before the key; the key, the version and a
    bearer.<JWT> subprotocol are all still found, the token verified and
    "chat" selected (a walk that stops after a fixed number of headers, or
    forgets one it saw early, fails here)."""
    secret, _ = new_secret_file(tmp_path)
    ngx = nginx_factory(f"""
server {{
    listen {{port}};
    location = /jwt {{
        realtime_websocket;
        realtime_echo on;
        realtime_auth_jwt $realtime_protocol_token;
        realtime_auth_jwt_key_file {tmp_path}/hs.secret;
        realtime_subprotocols chat;
    }}
}}
""")
    good = make_token("HS256", secret, claims("walker"))
    key = "AQIDBAUGBwgJCgsMDQ4PEA=="
    resp, sock, rest = request(ngx.port, _raw_handshake_with_many_headers(
        ngx.port, key, "chat, bearer." + good))
    assert resp.status == 101, (resp.status_line, resp.body)
    assert resp.header("Sec-WebSocket-Accept") == accept_for(key)
    assert resp.header("Sec-WebSocket-Protocol") == "chat"
    WS(sock, rest).echo("walked")

    # the same request with a forged token is refused: the token was read
    bad = make_token("HS256", new_secret(), claims("walker"))
    resp, sock, _ = request(ngx.port, _raw_handshake_with_many_headers(
        ngx.port, key, "chat, bearer." + bad))
    assert_json_error(resp, 401, "bad signature")


# --------------------------------------------------------------------------
# HTTP/2 (h2c with prior knowledge; nginx 1.22 has no RFC 8441 WebSockets)


def _h2_frame(ftype, flags, stream, payload=b""):
    return len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + stream.to_bytes(4, "big") + payload


def _hpack_literal(name, value):
    """A literal header field without indexing, new name, no Huffman (RFC 7541 6.2.2)."""
    name, value = name.encode(), value.encode()
    assert len(name) < 127 and len(value) < 127
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def _h2_status(block):
    """The :status of a response header block (nginx puts it first)."""
    b0 = block[0]
    static = {8: 200, 9: 204, 10: 206, 11: 304, 12: 400, 13: 404, 14: 500}
    if b0 & 0x80:
        return static[b0 & 0x7F]
    # a literal with the indexed name :status (index 8), with or without indexing
    name_index = b0 & 0x3F if b0 & 0x40 else b0 & 0x0F
    assert name_index == 8, block[:16].hex()
    n = block[1]
    assert not n & 0x80, "Huffman-coded status"
    return int(block[2:2 + n])


def test_http2_400(nginx_factory):
    ngx = nginx_factory("""
server {
    listen {port} http2;
    location /ws {
        realtime_websocket;
        realtime_echo on;
    }
}
""")
    s = wsclient_connect(ngx.port)
    headers = b"".join(_hpack_literal(k, v) for k, v in [
        (":method", "GET"), (":scheme", "http"), (":path", "/ws"),
        (":authority", f"127.0.0.1:{ngx.port}"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="), ("sec-websocket-version", "13")])
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + _h2_frame(0x4, 0, 0)
              + _h2_frame(0x1, 0x4 | 0x1, 1, headers))   # HEADERS, END_HEADERS|END_STREAM
    buf, status, body, ended = b"", None, b"", False
    s.settimeout(10)
    while not ended:
        while len(buf) < 9 or len(buf) < 9 + int.from_bytes(buf[:3], "big"):
            data = s.recv(65536)
            assert data, f"connection closed; status {status}, body {body!r}"
            buf += data
        n = int.from_bytes(buf[:3], "big")
        ftype, flags, stream = buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
        payload, buf = buf[9:9 + n], buf[9 + n:]
        assert ftype != 0x7, f"GOAWAY {payload!r}"
        assert ftype != 0x3, f"RST_STREAM {payload!r}"
        if ftype == 0x4 and not flags & 0x1:
            s.sendall(_h2_frame(0x4, 0x1, 0))               # SETTINGS ACK
        elif ftype == 0x1 and stream == 1:
            status = _h2_status(payload)
            ended = bool(flags & 0x1)
        elif ftype == 0x0 and stream == 1:
            body += payload
            ended = bool(flags & 0x1)
    assert status == 400, (status, body)
    doc = json.loads(body)
    assert isinstance(doc.get("error"), str) and doc["error"], doc
