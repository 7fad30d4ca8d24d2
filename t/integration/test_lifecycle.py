"""Workers, reload and quit with open connections, many and abruptly closed
connections."""

import os

import pytest

from groups_util import spread_subscribers
from nginx_harness import _proc_net_tcp, pid_alive, wait_for
from wsclient import OP_BINARY, OP_CLOSE, OP_TEXT, encode_frame, ws_connect

CONF = """
server {
    listen {port};
    location /ws {
        realtime_websocket;
        realtime_echo on;
    }
}
"""

CLOSE_BOUND = 10  # seconds within which a shutting-down server must close


@pytest.fixture
def ngx(nginx_factory):
    return nginx_factory(CONF, workers=2)


def server_side_sockets(port):
    """Server-side connections still held open by nginx: ESTABLISHED or
    CLOSE_WAIT (the peer is gone but nginx has not closed its socket)."""
    return [st for _lip, lport, _rport, st, _inode in _proc_net_tcp()
            if lport == port and st in ("01", "08")]


def expect_going_away(ws, reply=True):
    f = ws.recv_data(timeout=CLOSE_BOUND)
    assert f.opcode == OP_CLOSE and f.close_code == 1001, f
    if reply:
        ws.send_close(1001)
    assert ws.wait_eof(CLOSE_BOUND), "server did not close TCP after 1001"


# --------------------------------------------------------------------------


def test_master_and_two_workers(ngx):
    procs = ngx.processes()
    assert len(procs) == 2, procs
    assert all("worker process" in cmd for _, cmd in procs), procs


def test_connections_spread_over_workers(ngx):
    # no retry here: 40 connections that all miss a worker would be a bug
    conns = spread_subscribers(ngx, "/ws", 40, want_all_workers=False)
    served = {pid for _, pid in conns}
    assert None not in served, "could not find the worker of a connection"
    assert served == set(ngx.worker_pids()), (served, ngx.worker_pids())


def test_many_concurrent_connections(ngx):
    conns = [ws_connect(ngx.port, "/ws")[0] for _ in range(300)]
    for i, ws in enumerate(conns):
        ws.send_text(f"message {i}")
    for i, ws in enumerate(conns):
        ws.expect_message(OP_TEXT, f"message {i}")
    for i, ws in enumerate(conns):
        ws.send_close(1000)
    for ws in conns:
        f = ws.recv_data()
        assert f.opcode == OP_CLOSE and f.close_code == 1000, f
        assert ws.wait_eof(5)
    assert wait_for(lambda: not server_side_sockets(ngx.port), 5), \
        f"server kept sockets: {server_side_sockets(ngx.port)}"


def test_reload_sends_1001_and_old_workers_exit(ngx):
    conns = spread_subscribers(ngx, "/ws", 8)
    assert len({pid for _, pid in conns}) == 2
    ngx.mark_log()
    old, new = ngx.reload()
    for ws, _ in conns:
        expect_going_away(ws)
    gone = wait_for(lambda: not any(pid_alive(p) for p in old), CLOSE_BOUND)
    assert gone, f"old workers still running: {ngx.processes()}"
    assert set(ngx.worker_pids()) == new
    ws, _ = ws_connect(ngx.port, "/ws")
    ws.echo("after reload")
    assert ngx.worker_of(ws.sock) in new


def test_reload_with_clients_that_never_answer(ngx):
    conns = spread_subscribers(ngx, "/ws", 6)
    # one client in the middle of a fragmented message
    conns[0][0].send_frame(OP_BINARY, b"half", fin=False)
    old, new = ngx.reload()
    for ws, _ in conns:
        f = ws.recv_data(timeout=CLOSE_BOUND)
        assert f.opcode == OP_CLOSE and f.close_code == 1001, f
    # nobody answers the close: the workers still go away
    gone = wait_for(lambda: not any(pid_alive(p) for p in old), CLOSE_BOUND)
    assert gone, f"old workers still running: {ngx.processes()}"
    for ws, _ in conns:
        assert ws.wait_eof(1)
    ws, _ = ws_connect(ngx.port, "/ws")
    ws.echo("after reload")


def test_reload_applies_new_config(ngx):
    ws, resp = ws_connect(ngx.port, "/ws", protocols=["v2"])
    assert resp.header("Sec-WebSocket-Protocol") is None
    ngx.write_snippet(CONF.replace("realtime_echo on;",
                                   "realtime_echo on; realtime_subprotocols v2;"))
    ngx.reload()
    expect_going_away(ws)
    ws2, resp = ws_connect(ngx.port, "/ws", protocols=["v1, v2"])
    assert resp.header("Sec-WebSocket-Protocol") == "v2"
    ws2.echo("new config")


def test_quit_sends_1001_and_nginx_exits(ngx):
    conns = spread_subscribers(ngx, "/ws", 8)
    workers = ngx.worker_pids()
    ngx.quit()
    for ws, _ in conns:
        expect_going_away(ws)
    assert ngx.wait_exit(CLOSE_BOUND), f"nginx still running: {ngx.processes()}"
    assert not any(pid_alive(p) for p in workers)


def test_sigquit_with_silent_clients(ngx):
    conns = spread_subscribers(ngx, "/ws", 6)
    ngx.proc.send_signal(3)  # SIGQUIT
    for ws, _ in conns:
        f = ws.recv_data(timeout=CLOSE_BOUND)
        assert f.opcode == OP_CLOSE and f.close_code == 1001, f
    assert ngx.wait_exit(CLOSE_BOUND), f"nginx still running: {ngx.processes()}"


def test_abrupt_client_close_of_100_connections(ngx):
    workers = ngx.worker_pids()
    conns = [ws_connect(ngx.port, "/ws")[0] for _ in range(100)]
    for i, ws in enumerate(conns):
        ws.echo(f"m{i}")
    for i, ws in enumerate(conns):
        if i % 4 == 0:
            ws.abort()                                   # RST
        elif i % 4 == 1:
            ws.close()                                   # FIN, no close frame
        elif i % 4 == 2:
            ws.send_raw(encode_frame(OP_TEXT, os.urandom(2000).hex().encode())[:500])
            ws.abort()                                   # RST in mid-frame
        else:
            ws.send_frame(OP_BINARY, b"part", fin=False)
            ws.close()                                   # FIN in mid-message
    assert wait_for(lambda: not server_side_sockets(ngx.port), 5), \
        f"server kept sockets: {server_side_sockets(ngx.port)}"
    assert ngx.worker_pids() == workers, "a worker was replaced"
    ws, _ = ws_connect(ngx.port, "/ws")
    ws.echo("still healthy")
    for _ in range(10):
        ws2, _ = ws_connect(ngx.port, "/ws")
        ws2.echo("x")


def test_client_close_after_server_close_with_rst(ngx):
    """The peer resetting during the server's close wait is harmless."""
    ws, _ = ws_connect(ngx.port, "/ws")
    ws.send_raw(encode_frame(OP_TEXT, b"x", mask=False))
    f = ws.recv_data()
    assert f.opcode == OP_CLOSE and f.close_code == 1002
    ws.abort()
    assert wait_for(lambda: not server_side_sockets(ngx.port), 5), \
        f"server kept sockets after the RST: {server_side_sockets(ngx.port)}"
    ws2, _ = ws_connect(ngx.port, "/ws")
    ws2.echo("fine")
