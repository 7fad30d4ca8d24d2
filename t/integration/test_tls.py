"""wss: the same WebSocket location behind `listen ... ssl`."""

import asyncio
import os
import time

import pytest
import websockets

from wsclient import (OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, WS, accept_for,
                      build_request, connect, encode_frame, new_key, read_response,
                      ws_connect)

CONF = """
server {
    listen {port};
    listen {ssl_port} ssl;
    ssl_certificate {cert};
    ssl_certificate_key {key};

    location /ws {
        realtime_websocket;
        realtime_echo on;
        realtime_max_message_size 256k;
    }
    location /hb {
        realtime_websocket;
        realtime_ping_interval 1s;
        realtime_pong_timeout 1s;
    }
}
"""


@pytest.fixture
def ngx(nginx_factory):
    return nginx_factory(CONF)


def test_wss_handshake_echo_close(ngx, client_ssl_context):
    ws, resp = ws_connect(ngx.ssl_port, "/ws", ssl_context=client_ssl_context)
    assert resp.header("Upgrade").lower() == "websocket"
    ws.echo("over tls")
    ws.echo(os.urandom(1000), OP_BINARY)
    ws.send_close(1000, "bye")
    f = ws.recv_data()
    assert f.opcode == OP_CLOSE and f.close_code == 1000, f
    assert ws.wait_eof(3)


def test_wss_large_message(ngx, client_ssl_context):
    ws, _ = ws_connect(ngx.ssl_port, "/ws", ssl_context=client_ssl_context)
    payload = os.urandom(200000)
    ws.echo(payload, OP_BINARY, timeout=10)


def test_wss_thousand_pings_one_write(ngx, client_ssl_context):
    ws, _ = ws_connect(ngx.ssl_port, "/ws", ssl_context=client_ssl_context)
    ws.send_raw(b"".join(encode_frame(OP_PING, str(i).encode()) for i in range(1000)))
    for i in range(1000):
        f = ws.recv_data()
        assert f.opcode == OP_PONG and f.payload == str(i).encode(), (i, f)


def test_wss_frame_in_handshake_write(ngx, client_ssl_context):
    key = new_key()
    s = connect(ngx.ssl_port, ssl_context=client_ssl_context)
    s.sendall(build_request("/ws", port=ngx.ssl_port, key=key)
              + encode_frame(OP_TEXT, b"early"))
    resp, rest = read_response(s)
    assert resp.status == 101 and resp.header("Sec-WebSocket-Accept") == accept_for(key)
    WS(s, rest).expect_message(OP_TEXT, b"early")


def test_wss_protocol_error(ngx, client_ssl_context):
    ws, _ = ws_connect(ngx.ssl_port, "/ws", ssl_context=client_ssl_context)
    ws.send_raw(encode_frame(OP_TEXT, b"x", mask=False))
    ws.expect_close(1002)


def test_wss_pong_timeout(ngx, client_ssl_context):
    ws, _ = ws_connect(ngx.ssl_port, "/hb", ssl_context=client_ssl_context)
    t0 = time.monotonic()
    while True:
        f = ws.recv_data(timeout=8)
        if f.opcode != OP_PING:
            break
    assert f.opcode == OP_CLOSE and f.close_code == 4000, f
    assert time.monotonic() - t0 < 7


def test_wss_websockets_library(ngx, tls_cert, client_ssl_context):
    async def run():
        async with websockets.connect(f"wss://localhost:{ngx.ssl_port}/ws",
                                      ssl=client_ssl_context) as ws:
            for i in range(20):
                await ws.send(f"tls {i}")
                assert await ws.recv() == f"tls {i}"
        assert ws.close_code == 1000

    asyncio.run(run())


def test_plain_and_tls_side_by_side(ngx, client_ssl_context):
    a, _ = ws_connect(ngx.port, "/ws")
    b, _ = ws_connect(ngx.ssl_port, "/ws", ssl_context=client_ssl_context)
    a.echo("plain")
    b.echo("tls")


def test_wss_reload_sends_1001(ngx, client_ssl_context):
    ws, _ = ws_connect(ngx.ssl_port, "/ws", ssl_context=client_ssl_context)
    ws.echo("before")
    ngx.reload()
    f = ws.recv_data(timeout=10)
    assert f.opcode == OP_CLOSE and f.close_code == 1001, f
    ws.send_close(1001)
    assert ws.wait_eof(10)
    ws2, _ = ws_connect(ngx.ssl_port, "/ws", ssl_context=client_ssl_context)
    ws2.echo("after")
