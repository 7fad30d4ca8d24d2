"""UTF-8 validation of text messages and close reasons; the closing handshake."""

import struct
import time

import pytest

from nginx_harness import wait_for
from wsclient import (OP_BINARY, OP_CLOSE, OP_CONT, OP_TEXT, encode_frame, ws_connect)

CONF = """
server {
    listen {port};
    location /ws {
        realtime_websocket;
        realtime_echo on;
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
# UTF-8 in text messages


def test_valid_multibyte_text_echoed(ws):
    text = "héllo € 𝄞 日本語 \u0000 \U0010FFFF"
    ws.echo(text.encode(), OP_TEXT)


@pytest.mark.parametrize("parts", [
    [b"a\xe2\x82", b"\xacb"],              # 3-byte € split 2|1
    [b"a\xe2", b"\x82\xacb"],              # split 1|2
    [b"\xf0", b"\x9d\x84", b"\x9e!"],      # 4-byte 𝄞 over three fragments
    [b"\xc3", b"\xa9"],                    # 2-byte é
    [b"", b"\xc3\xa9", b""],               # empty fragments around it
])
def test_code_point_split_across_fragments(ws, parts):
    for i, p in enumerate(parts):
        ws.send_frame(OP_TEXT if i == 0 else OP_CONT, p, fin=(i == len(parts) - 1))
    whole = b"".join(parts)
    whole.decode("utf-8")  # the test data itself is valid
    ws.expect_message(OP_TEXT, whole)


@pytest.mark.parametrize("payload", [
    b"\xff",
    b"abc\x80",                # lone continuation byte
    b"\xc0\xaf",               # overlong '/'
    b"\xe0\x80\xaf",           # overlong 3-byte
    b"\xed\xa0\x80",           # UTF-16 surrogate
    b"\xf4\x90\x80\x80",       # above U+10FFFF
    b"\xf8\x88\x80\x80\x80",   # 5-byte form
    b"abc\xe2\x82",            # message ends inside a sequence
    b"\xc3(",                  # bad continuation
])
def test_invalid_utf8_text_1007(ws, payload):
    ws.send_text(payload)
    ws.expect_close(1007)


def test_invalid_utf8_detected_in_first_fragment(ws):
    """Validation is incremental: no need to wait for the message's end."""
    ws.send_frame(OP_TEXT, b"ok so far \xff", fin=False)
    ws.expect_close(1007)


def test_invalid_utf8_across_fragment_boundary(ws):
    ws.send_frame(OP_TEXT, b"a\xe2\x82", fin=False)
    ws.send_frame(OP_CONT, b"(", fin=False)  # not a continuation byte
    ws.expect_close(1007)


def test_fragmented_text_ending_mid_sequence_1007(ws):
    ws.send_frame(OP_TEXT, b"a", fin=False)
    ws.send_frame(OP_CONT, b"\xe2\x82", fin=True)
    ws.expect_close(1007)


def test_binary_is_not_validated(ws):
    ws.echo(b"\xff\xfe\xed\xa0\x80\xc0", OP_BINARY)


def test_validator_reset_between_messages(ws):
    ws.echo("é".encode(), OP_TEXT)
    ws.echo(b"\xff\xff", OP_BINARY)       # a binary message in between
    ws.echo("€".encode(), OP_TEXT)


# --------------------------------------------------------------------------
# close frames


def test_client_close_echoed_then_tcp_closed(ws):
    ws.send_close(1000, "bye")
    f = ws.recv_data()
    assert f.opcode == OP_CLOSE and f.close_code == 1000, f
    assert ws.wait_eof(3), "server did not close TCP after the close handshake"


@pytest.mark.parametrize("code", [1000, 1001, 1003, 1007, 1011, 3000, 4000, 4999])
def test_valid_close_codes_echoed(ws, code):
    ws.send_close(code, "r")
    f = ws.recv_data()
    assert f.opcode == OP_CLOSE and f.close_code == code, f
    assert ws.wait_eof(3)


def test_empty_close_answered(ws):
    ws.send_close()
    f = ws.recv_data()
    assert f.opcode == OP_CLOSE, f
    assert f.payload == b"" or f.close_code == 1000, f
    assert ws.wait_eof(3)


def test_close_with_utf8_reason(ws):
    ws.send_close(1000, "au revoir, été")
    f = ws.recv_data()
    assert f.opcode == OP_CLOSE and f.close_code == 1000
    assert ws.wait_eof(3)


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535])
def test_invalid_close_code_1002(ws, code):
    ws.send_close(code, "x")
    ws.expect_close(1002)


def test_close_one_byte_payload_1002(ws):
    ws.send_frame(OP_CLOSE, b"\x03")
    ws.expect_close(1002)


@pytest.mark.parametrize("reason", [b"\xff", b"ok\xc0\xaf", b"\xed\xa0\x80", b"cut\xe2\x82"])
def test_close_reason_invalid_utf8_1007(ws, reason):
    ws.send_frame(OP_CLOSE, struct.pack("!H", 1000) + reason)
    ws.expect_close(1007)


def test_nothing_processed_after_close(ws):
    """Data after the client's close frame is neither echoed nor answered."""
    ws.send_raw(encode_frame(OP_CLOSE, struct.pack("!H", 1000))
                + encode_frame(OP_TEXT, b"after close")
                + encode_frame(0x9, b"ping after close"))
    f = ws.recv_data()
    assert f.opcode == OP_CLOSE and f.close_code == 1000, f
    assert ws.wait_eof(3)
    assert ws.buf == b"", f"server sent more after its close frame: {ws.buf!r}"


def test_close_in_middle_of_fragmented_message(ws):
    ws.send_frame(OP_TEXT, b"unfinished", fin=False)
    ws.send_close(1000, "bye")
    f = ws.recv_data()
    assert f.opcode == OP_CLOSE and f.close_code == 1000, f
    assert ws.wait_eof(3)
    assert ws.buf == b""


# --------------------------------------------------------------------------
# server-initiated close


def test_server_close_waits_for_client_reply(ngx, ws):
    """After a protocol error the server keeps the connection (it may half-close
    it with a FIN) until the client's close arrives, then releases it."""
    ws.send_raw(encode_frame(OP_TEXT, b"x", mask=False))
    f = ws.recv_data()
    assert f.opcode == OP_CLOSE and f.close_code == 1002, f
    time.sleep(0.3)
    assert ngx.worker_of(ws.sock) is not None, \
        "server closed its socket without waiting for the client's close"
    ws.send_close(1002)
    assert wait_for(lambda: ngx.worker_of(ws.sock) is None, 2), \
        "server still holds the connection after the client's close reply"
    assert ws.wait_eof(2)


def test_server_close_gives_up_without_reply(ngx, ws):
    """No close reply: the server lets go of the connection after at most ~3 s."""
    ws.send_raw(encode_frame(OP_TEXT, b"x", mask=False))
    f = ws.recv_data()
    t0 = time.monotonic()
    assert f.opcode == OP_CLOSE and f.close_code == 1002, f
    assert wait_for(lambda: ngx.worker_of(ws.sock) is None, 6), \
        "server holds the connection although the client never answered its close"
    assert time.monotonic() - t0 < 6
    assert ws.wait_eof(2)


def test_no_data_after_server_close(ws):
    """After its close frame, the server echoes nothing more."""
    ws.send_raw(encode_frame(OP_TEXT, b"x", mask=False))
    f = ws.recv_data()
    assert f.opcode == OP_CLOSE and f.close_code == 1002
    try:
        ws.send_text("after error")
        ws.send_close(1002)
    except OSError:
        pass
    assert ws.wait_eof(5)
    assert ws.buf == b"", f"server sent data after its close frame: {ws.buf!r}"
