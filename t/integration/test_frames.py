"""Framing rules (RFC 6455 §5), observed through realtime_echo."""

import os
import socket
import time

import pytest

from nginx_harness import wait_for
from wsclient import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, WS,
                      accept_for, build_request, connect, encode_frame, new_key,
                      read_response, ws_connect)

CONF = """
server {
    listen {port};
    location /ws {
        realtime_websocket;
        realtime_echo on;
    }
    location /big {
        realtime_websocket;
        realtime_echo on;
        realtime_max_message_size 128k;
    }
    location /small {
        realtime_websocket;
        realtime_echo on;
        realtime_max_message_size 1k;
    }
}
"""


@pytest.fixture
def ngx(nginx_factory):
    return nginx_factory(CONF)


@pytest.fixture
def ws(ngx):
    return ws_connect(ngx.port, "/ws")[0]


# --------------------------------------------------------------------------
# lengths and fragmentation


@pytest.mark.parametrize("size, form", [(0, 7), (100, 7), (125, 7), (126, 16),
                                        (1000, 16), (65535, 16), (65536, 64)])
def test_echo_lengths(ngx, size, form):
    ws, _ = ws_connect(ngx.port, "/big")
    payload = os.urandom(size)
    frame = encode_frame(OP_BINARY, payload)
    assert frame[1] & 0x7F == (size if form == 7 else 126 if form == 16 else 127)
    ws.send_raw(frame)
    f = ws.expect_message(OP_BINARY, payload)
    # the server also uses the minimal length encoding: the header as it
    # came over the wire (RFC 6455 5.2: "the minimal number of bytes MUST be used")
    if form == 7:
        assert f.header == bytes([0x82, size]), f.header.hex()
    elif form == 16:
        assert f.header == bytes([0x82, 126]) + size.to_bytes(2, "big"), f.header.hex()
    else:
        assert f.header == bytes([0x82, 127]) + size.to_bytes(8, "big"), f.header.hex()
    assert f.length_form == form


def test_is_open_sees_an_unread_server_close(ngx):
    """The client's own check: a close frame waiting unread in the socket
    (or in the client's buffer) means the connection is no longer open."""
    ws, _ = ws_connect(ngx.port, "/ws")
    assert ws.is_open()
    ws.send_raw(encode_frame(OP_TEXT, b"x", mask=False))   # protocol error: 1002
    assert wait_for(lambda: not ws.is_open(), 5), "is_open() missed the server's close frame"
    assert not ws.is_open()
    # nothing was lost: the close frame is still there to read
    ws.expect_close(1002)
    assert not ws.is_open()


def test_echo_text_100(ws):
    text = ("ab" * 50).encode()
    ws.echo(text, OP_TEXT)


def test_echo_64bit_length(ngx):
    ws, _ = ws_connect(ngx.port, "/big")
    payload = os.urandom(70000)
    frame = encode_frame(OP_BINARY, payload)
    assert frame[1] & 0x7F == 127
    ws.send_raw(frame)
    f = ws.expect_message(OP_BINARY, payload)
    assert f.payload == payload


def test_non_minimal_length_encodings_accepted(ws):
    """A short payload announced with a 16- or 64-bit length is still valid."""
    ws.send_raw(encode_frame(OP_TEXT, b"sixteen", length_form=16))
    ws.expect_message(OP_TEXT, b"sixteen")
    ws.send_raw(encode_frame(OP_TEXT, b"sixty-four", length_form=64))
    ws.expect_message(OP_TEXT, b"sixty-four")


def test_fragmented_message_reassembled(ws):
    ws.send_frame(OP_BINARY, b"\x00\x01", fin=False)
    ws.send_frame(OP_CONT, b"\x02", fin=False)
    ws.send_frame(OP_CONT, b"", fin=False)
    ws.send_frame(OP_CONT, b"\x03\x04", fin=True)
    ws.expect_message(OP_BINARY, b"\x00\x01\x02\x03\x04")


def test_fragmented_text_keeps_opcode(ws):
    ws.send_frame(OP_TEXT, b"Hel", fin=False)
    ws.send_frame(OP_CONT, b"lo", fin=True)
    ws.expect_message(OP_TEXT, b"Hello")


def test_several_messages_in_one_write(ws):
    msgs = [f"m{i}".encode() for i in range(50)]
    ws.send_raw(b"".join(encode_frame(OP_TEXT, m) for m in msgs))
    for m in msgs:
        ws.expect_message(OP_TEXT, m)


def test_ping_inside_fragmented_message(ws):
    ws.send_frame(OP_TEXT, b"Hel", fin=False)
    ws.send_ping(b"mid")
    ws.send_frame(OP_CONT, b"lo", fin=True)
    pong = ws.recv_data()
    assert pong.opcode == OP_PONG and pong.fin and pong.payload == b"mid", pong
    ws.expect_message(OP_TEXT, b"Hello")


def test_pong_echoes_ping_payload(ws):
    payload = bytes(range(256))[:125]
    ws.send_ping(payload)
    pong = ws.recv_data()
    assert (pong.opcode, pong.fin, pong.payload) == (OP_PONG, True, payload), pong
    ws.send_ping(b"")
    pong = ws.recv_data()
    assert (pong.opcode, pong.payload) == (OP_PONG, b""), pong


def test_unsolicited_pong_ignored(ws):
    ws.send_pong(b"unsolicited")
    ws.send_pong(b"")
    ws.send_text("after")
    ws.expect_message(OP_TEXT, b"after")  # nothing (no pong, no close) before the echo
    ws.echo("still open")


# --------------------------------------------------------------------------
# protocol errors: each closes with 1002


def test_unmasked_frame_1002(ws):
    ws.send_raw(encode_frame(OP_TEXT, b"hello", mask=False))
    ws.expect_close(1002)


@pytest.mark.parametrize("rsv", [4, 2, 1, 7])
def test_rsv_bits_1002(ws, rsv):
    ws.send_raw(encode_frame(OP_TEXT, b"hello", rsv=rsv))
    ws.expect_close(1002)


@pytest.mark.parametrize("opcode", [0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF])
def test_reserved_opcode_1002(ws, opcode):
    ws.send_raw(encode_frame(opcode, b"x"))
    ws.expect_close(1002)


@pytest.mark.parametrize("opcode", [OP_PING, OP_PONG, OP_CLOSE])
def test_control_frame_over_125_1002(ws, opcode):
    payload = b"\x03\xe8" + b"x" * 124 if opcode == OP_CLOSE else b"x" * 126
    assert len(payload) == 126
    ws.send_raw(encode_frame(opcode, payload))
    ws.expect_close(1002)


def test_control_frame_125_ok(ws):
    ws.send_ping(b"y" * 125)
    pong = ws.recv_data()
    assert pong.opcode == OP_PONG and pong.payload == b"y" * 125


def test_control_frame_16bit_length_over_125_1002(ws):
    """126 bytes announced with the 16-bit form (the only way to exceed 125)."""
    ws.send_raw(encode_frame(OP_PING, b"z" * 200))
    ws.expect_close(1002)


@pytest.mark.parametrize("opcode", [OP_PING, OP_PONG])
def test_fragmented_control_frame_1002(ws, opcode):
    ws.send_raw(encode_frame(opcode, b"frag", fin=False))
    ws.expect_close(1002)


def test_continuation_without_start_1002(ws):
    ws.send_raw(encode_frame(OP_CONT, b"orphan", fin=True))
    ws.expect_close(1002)


def test_continuation_after_complete_message_1002(ws):
    ws.send_text("done")
    ws.expect_message(OP_TEXT, b"done")
    ws.send_raw(encode_frame(OP_CONT, b"late", fin=False))
    ws.expect_close(1002)


@pytest.mark.parametrize("second", [OP_TEXT, OP_BINARY])
def test_new_data_frame_inside_fragmented_message_1002(ws, second):
    ws.send_frame(OP_TEXT, b"first", fin=False)
    ws.send_frame(second, b"second", fin=True)
    ws.expect_close(1002)


def test_64bit_length_msb_set_1002(ws):
    header = bytes([0x82, 0x80 | 127]) + (1 << 63 | 5).to_bytes(8, "big") + os.urandom(4)
    ws.send_raw(header + b"hello")
    ws.expect_close(1002)


def test_protocol_error_logged_at_info(ngx):
    ws, _ = ws_connect(ngx.port, "/ws")
    ws.echo("warm up")
    ngx.mark_log()
    ws.send_raw(encode_frame(OP_TEXT, b"hello", mask=False))
    ws.expect_close(1002)

    def about_it(line):
        return "masked" in line or "1002" in line

    line = ngx.wait_log(lambda l: about_it(l) and "[info]" in l and "client: 127.0.0.1" in l)
    assert line, f"no [info] line about the error:\n{ngx.log_since_mark()}"
    worse = [l for l in ngx.log_since_mark().splitlines() if about_it(l)
             and any(lv in l for lv in ("[warn]", "[error]", "[crit]", "[alert]", "[emerg]"))]
    assert not worse, worse


# --------------------------------------------------------------------------
# message size limits


def test_default_max_message_size_64k(ngx):
    ws, _ = ws_connect(ngx.port, "/ws")
    ws.echo(os.urandom(65536), OP_BINARY)
    ws.send_binary(os.urandom(65537))
    ws.expect_close(1009)


def test_max_message_size_exact_limit_ok(ngx):
    ws, _ = ws_connect(ngx.port, "/small")
    ws.echo(b"a" * 1024, OP_TEXT)


def test_max_message_size_single_frame_1009(ngx):
    ws, _ = ws_connect(ngx.port, "/small")
    ws.send_text(b"a" * 1025)
    ws.expect_close(1009)


def test_max_message_size_assembled_1009(ngx):
    ws, _ = ws_connect(ngx.port, "/small")
    ws.send_frame(OP_BINARY, b"a" * 600, fin=False)
    ws.send_frame(OP_CONT, b"b" * 600, fin=True)
    ws.expect_close(1009)


def test_max_message_size_announced_length_1009(ngx):
    """The limit applies to the announced length: no need to send the payload."""
    ws, _ = ws_connect(ngx.port, "/small")
    ws.send_raw(encode_frame(OP_BINARY, b"", length=10 * 1024 * 1024)[:14])
    ws.expect_close(1009)


def test_control_frames_do_not_count_toward_message_size(ngx):
    ws, _ = ws_connect(ngx.port, "/small")
    ws.send_frame(OP_TEXT, b"a" * 1000, fin=False)
    for _ in range(3):
        ws.send_ping(b"p" * 125)
    ws.send_frame(OP_CONT, b"b" * 24, fin=True)
    for _ in range(3):
        assert ws.recv_data().opcode == OP_PONG
    ws.expect_message(OP_TEXT, b"a" * 1000 + b"b" * 24)


# --------------------------------------------------------------------------
# how bytes arrive


def test_thousand_pings_in_one_write(ws):
    data = b"".join(encode_frame(OP_PING, str(i).encode()) for i in range(1000))
    ws.send_raw(data)
    for i in range(1000):
        f = ws.recv_data()
        assert f.opcode == OP_PONG and f.fin and f.payload == str(i).encode(), (i, f)
    ws.echo("after the pings")


def test_handshake_one_byte_at_a_time(ngx):
    key = new_key()
    req = build_request("/ws", port=ngx.port, key=key)
    s = connect(ngx.port)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for i in range(len(req)):
        s.send(req[i:i + 1])
        time.sleep(0.001)
    resp, rest = read_response(s)
    assert resp.status == 101
    assert resp.header("Sec-WebSocket-Accept") == accept_for(key)
    ws = WS(s, rest)
    ws.echo("byte by byte")


def test_frame_header_split_across_segments(ws):
    frame = encode_frame(OP_TEXT, b"split header")
    ws.send_raw(frame[:1])
    time.sleep(0.1)
    ws.send_raw(frame[1:])
    ws.expect_message(OP_TEXT, b"split header")


def test_frame_split_at_every_header_position(ws):
    """A 16-bit-length frame has an 8-byte header: cut it everywhere."""
    for cut in (1, 2, 3, 4, 5, 6, 7, 8, 9, 100):
        payload = os.urandom(300)
        frame = encode_frame(OP_BINARY, payload)
        ws.send_raw(frame[:cut])
        time.sleep(0.02)
        ws.send_raw(frame[cut:])
        ws.expect_message(OP_BINARY, payload)


def test_large_frame_trickled(ngx):
    ws, _ = ws_connect(ngx.port, "/big")
    payload = os.urandom(70000)
    frame = encode_frame(OP_BINARY, payload)
    for i in range(0, len(frame), 7000):
        ws.send_raw(frame[i:i + 7000])
        time.sleep(0.005)
    ws.expect_message(OP_BINARY, payload)


def test_frame_in_same_write_as_handshake(ngx):
    key = new_key()
    req = build_request("/ws", port=ngx.port, key=key)
    s = connect(ngx.port)
    s.sendall(req + encode_frame(OP_TEXT, b"early bird") + encode_frame(OP_PING, b"p"))
    resp, rest = read_response(s)
    assert resp.status == 101
    assert resp.header("Sec-WebSocket-Accept") == accept_for(key)
    ws = WS(s, rest)
    ws.expect_message(OP_TEXT, b"early bird")
    f = ws.recv_data()
    assert f.opcode == OP_PONG and f.payload == b"p"


def test_connections_are_independent(ngx):
    a, _ = ws_connect(ngx.port, "/ws")
    b, _ = ws_connect(ngx.port, "/ws")
    a.send_frame(OP_TEXT, b"a-part", fin=False)
    b.echo("b whole")
    a.send_frame(OP_CONT, b"-end", fin=True)
    a.expect_message(OP_TEXT, b"a-part-end")
    b.send_raw(encode_frame(OP_TEXT, b"bad", mask=False))
    b.expect_close(1002)
    a.echo("a still fine")
