"""Server pings, pong timeout (4000) and idle timeout (4001)."""

import time

import pytest

from wsclient import OP_CLOSE, OP_PING, OP_TEXT, ws_connect

CONF = """
server {
    listen {port};
    location /ws {
        realtime_websocket;
        realtime_echo on;
    }
    location /hb {
        realtime_websocket;
        realtime_echo on;
        realtime_ping_interval 1s;
        realtime_pong_timeout 1s;
    }
    location /idle {
        realtime_websocket;
        realtime_echo on;
        realtime_ping_interval 1s;
        realtime_pong_timeout 1s;
        realtime_idle_timeout 2s;
    }
    location /live {
        realtime_websocket;
        realtime_echo on;
        realtime_ping_interval 300ms;
        realtime_pong_timeout 1s;
    }
    location /noping {
        realtime_websocket;
        realtime_echo on;
        realtime_ping_interval 0;
        realtime_pong_timeout 500ms;
    }
    location /idle-only {
        realtime_websocket;
        realtime_echo on;
        realtime_idle_timeout 2s;
    }
}
"""


@pytest.fixture
def ngx(nginx_factory):
    return nginx_factory(CONF)


def converse(ws, duration, answer_pings=True, send_every=None):
    """Reads frames for duration seconds (or until a close frame arrives),
    answering pings and sending a text message every send_every seconds.
    Returns (frames, elapsed seconds when a close arrived or None)."""
    frames = []
    t0 = time.monotonic()
    next_send = t0 + send_every if send_every else None
    sent = 0
    while True:
        now = time.monotonic()
        if now - t0 >= duration:
            return frames, None
        wait = t0 + duration - now
        if next_send:
            wait = min(wait, max(next_send - now, 0.001))
        try:
            f = ws.recv_data(timeout=wait)
        except TimeoutError:
            f = None
        if f is not None:
            frames.append(f)
            if f.opcode == OP_CLOSE:
                return frames, time.monotonic() - t0
            if f.opcode == OP_PING and answer_pings:
                ws.send_pong(f.payload)
        if next_send and time.monotonic() >= next_send:
            ws.send_text(f"keepalive {sent}")
            sent += 1
            next_send += send_every


def test_server_sends_pings(ngx):
    ws, _ = ws_connect(ngx.port, "/hb")
    f = ws.recv_data(timeout=4)
    assert f.opcode == OP_PING and f.fin and len(f.payload) <= 125, f
    ws.send_pong(f.payload)
    ws.echo("alive")


def test_client_answering_pongs_stays_connected(ngx):
    ws, _ = ws_connect(ngx.port, "/hb")
    frames, closed_at = converse(ws, 4.5)
    assert closed_at is None, f"closed after {closed_at:.1f}s: {frames[-1]!r}"
    pings = [f for f in frames if f.opcode == OP_PING]
    assert len(pings) >= 3, frames
    assert all(f.opcode == OP_PING for f in frames), frames
    ws.echo("still here")


def test_silent_client_closed_with_4000(ngx):
    ws, _ = ws_connect(ngx.port, "/hb")
    frames, closed_at = converse(ws, 8, answer_pings=False)
    assert closed_at is not None, f"never closed; frames {frames}"
    close = frames[-1]
    assert close.close_code == 4000, close
    assert 1.0 <= closed_at <= 6.0, closed_at
    assert any(f.opcode == OP_PING for f in frames[:-1]), "closed before any ping was sent"
    ws.send_close(4000)
    assert ws.wait_eof(4)


def test_idle_timeout_4001_pongs_do_not_count(ngx):
    ws, _ = ws_connect(ngx.port, "/idle")
    ws.send_pong(b"unsolicited pongs do not count either")
    frames, closed_at = converse(ws, 8, answer_pings=True)
    assert closed_at is not None, f"never closed; frames {frames}"
    assert frames[-1].close_code == 4001, frames[-1]
    assert 1.5 <= closed_at <= 6.0, closed_at
    ws.send_close(4001)
    assert ws.wait_eof(4)


def test_idle_timeout_without_pings_4001(ngx):
    ws, _ = ws_connect(ngx.port, "/idle-only")
    frames, closed_at = converse(ws, 8, answer_pings=True)
    assert closed_at is not None, f"never closed; frames {frames}"
    assert frames[-1].close_code == 4001, frames[-1]
    assert 1.5 <= closed_at <= 6.0, closed_at
    ws.send_close(4001)
    assert ws.wait_eof(4)


def test_data_messages_reset_idle_timer(ngx):
    ws, _ = ws_connect(ngx.port, "/idle")
    frames, closed_at = converse(ws, 4.0, send_every=0.5)
    assert closed_at is None, f"closed after {closed_at:.1f}s although data flowed: {frames[-1]!r}"
    echoes = [f for f in frames if f.opcode == OP_TEXT]
    assert len(echoes) >= 6, frames
    frames, closed_at = converse(ws, 8)
    assert closed_at is not None and frames[-1].close_code == 4001, frames


def test_defaults_no_early_ping_no_idle_close(ngx):
    """Defaults: pings every 30 s, idle timeout off."""
    ws, _ = ws_connect(ngx.port, "/ws")
    frames, closed_at = converse(ws, 2.5, answer_pings=False)
    assert frames == [], frames
    ws.echo("defaults")


# --------------------------------------------------------------------------
# liveness: any traffic answers a ping


def test_text_instead_of_pongs_keeps_connection_open(ngx):
    """A client that never answers a ping but sends a text message every
    0.4 s (pings go out after 0.3 s of silence, and must be answered within
    1 s) stays connected for 4 s, several pong timeouts: README says "a pong,
    or anything else" proves the client is alive."""
    ws, _ = ws_connect(ngx.port, "/live")
    frames, closed_at = converse(ws, 4.0, answer_pings=False, send_every=0.4)
    assert closed_at is None, f"closed after {closed_at:.1f}s: {frames[-1]!r}"
    # the test really ran without answering pings
    assert any(f.opcode == OP_PING for f in frames), frames
    assert [f for f in frames if f.opcode == OP_TEXT], frames
    assert ws.is_open()
    ws.send_text("alive without a single pong")
    while True:   # skipping pings and the echo of the last keepalive still in flight
        f = ws.recv_data()
        assert f.opcode in (OP_PING, OP_TEXT), f
        if f.opcode == OP_TEXT and f.payload == b"alive without a single pong":
            break
    # and the same client, silent now, is closed with 4000: the pings were real
    frames, closed_at = converse(ws, 8, answer_pings=False)
    assert closed_at is not None and frames[-1].close_code == 4000, frames


def test_ping_interval_0_sends_no_pings(ngx):
    """realtime_ping_interval 0 disables pings: nothing arrives in 3 s of
    silence (with pings on, a short pong timeout would also close it)."""
    ws, _ = ws_connect(ngx.port, "/noping")
    ws.echo("first")
    frames, closed_at = converse(ws, 3.0, answer_pings=False)
    assert frames == [], frames
    assert ws.is_open()
    ws.echo("still open")
