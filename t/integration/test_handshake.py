"""Opening handshake (RFC 6455 §4.2), subprotocols and Origin checks."""

import asyncio
import json

import pytest
import websockets

from wsclient import accept_for, assert_json_error, build_request, handshake, request, ws_connect

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
