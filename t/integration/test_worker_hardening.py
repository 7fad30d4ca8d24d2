"""Workers that always start and always deliver: wake-up names others have
bound, many workers over several reloads, zone memory after SIGKILLs and
reloads, a subscriber with a lasting backlog, and idle time counted both
ways."""

import json
import re
import socket
import threading
import time

from groups_util import (kill_worker, nginx_expecting,  # noqa: F401
                         next_text, publish, spread_subscribers, stats,
                         subscribe)
from nginx_harness import pid_alive, wait_for
import wsclient
from wsclient import OP_CLOSE, OP_PING, OP_TEXT

CONF = """
realtime_zone rt 4m;
server {
    listen {port};
    location = /ws {
        realtime_websocket;
        realtime_subscribe $arg_g;
    }
    location = /publish {
        realtime_publish;
    }
    location = /stats {
        realtime_stats;
    }
}
"""


def _next_pids():
    with open("/proc/sys/kernel/ns_last_pid") as f:
        return int(f.read()) + 1


def _squat(names):
    """Binds abstract datagram sockets to names (those free); returns them."""
    socks = []
    for name in names:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            s.bind("\0" + name)
        except OSError:
            s.close()
            continue
        socks.append(s)
    return socks


def _deliver_everywhere(ngx, group="all"):
    """A subscriber on every current worker gets a publish (crosses workers)."""
    conns = spread_subscribers(ngx, f"/ws?g={group}", 4 * ngx.workers)
    marker = f"hello-{time.monotonic_ns()}"
    r = publish(ngx.port, {"group": group, "data": marker}).json()
    assert r["subscribers"] == len(conns), r
    for ws, _pid in conns:
        assert next_text(ws) == marker
    for ws, _pid in conns:
        ws.close()


def test_workers_start_and_deliver_whatever_names_others_hold(nginx_factory):
    """A local process binds the wake-up names the old scheme would use
    (ngx_realtime.<pid>) for the next few thousand pids: every worker still
    starts (at start and over two reloads) and delivers across workers."""
    first = _next_pids()
    squatters = _squat(f"ngx_realtime.{pid}" for pid in range(first, first + 3000))
    try:
        assert len(squatters) > 2500
        ngx = nginx_factory(CONF, workers=4)
        _deliver_everywhere(ngx)
        for _ in range(2):
            ngx.reload()
            assert len(ngx.worker_pids(shutting_down=False)) == 4
            _deliver_everywhere(ngx)
        failed = re.findall(r"exited with code [1-9]\d*", ngx.error_log())
        assert not failed, failed
    finally:
        for s in squatters:
            s.close()


def test_wake_up_names_are_random_and_recorded(nginx_factory):
    """Each worker's wake-up socket has an unpredictable abstract name (not
    derived from its pid), so two nginx in one network namespace never
    collide."""
    ngx = nginx_factory(CONF, workers=2)
    with open("/proc/net/unix") as f:
        names = [line.split()[-1] for line in f if "@ngx_rt." in line]
    pids = ngx.worker_pids()
    mine = [n for n in names if len(n) == len("@ngx_rt.") + 32]
    assert len(mine) >= len(pids), names
    assert not any(str(p) in n for p in pids for n in mine)


FORTY = """
realtime_zone rt 16m;
server {
    listen {port};
    location = /ws {
        realtime_websocket;
        realtime_subscribe $arg_g;
        realtime_ping_interval 0;
    }
    location = /publish {
        realtime_publish;
    }
    location = /stats {
        realtime_stats;
    }
}
"""


def _handshake_status(port, path):
    sock = wsclient.connect(port, timeout=10)
    sock.sendall(wsclient.build_request(path, port=port))
    resp, rest = wsclient.read_response(sock, timeout=10)
    return resp, wsclient.WS(sock, rest)


def test_forty_workers_and_three_reloads_never_refuse(nginx_factory):
    """worker_processes 40 and three reloads in a row while old workers
    still hold WebSockets (their clients never answer the 1001 close): every
    handshake of every generation is accepted, none gets 503."""
    ngx = nginx_factory(FORTY, workers=40)
    held = []
    refused = []
    for generation in range(4):
        if generation:
            ngx.reload(timeout=30)
        for _ in range(120):
            resp, ws = _handshake_status(ngx.port, "/ws?g=gen")
            if resp.status != 101:
                refused.append((generation, resp.status, resp.body[:100]))
            else:
                held.append(ws)  # kept open, never answers the close frame
    assert not refused, refused[:5]
    # after the reloads the old workers go; the zone holds only the new ones
    wait_for(lambda: len(stats(ngx.port)["workers"]) == 40, 20)
    assert len(stats(ngx.port)["workers"]) == 40


ZONE = """
realtime_zone rt 32m;
server {
    listen {port};
    location = /ws {
        realtime_websocket;
        realtime_subscribe $arg_g $arg_h;
        realtime_send_buffer_size 64m;
        realtime_ping_interval 0;
    }
    location = /publish {
        client_max_body_size 4m;
        realtime_publish;
    }
    location = /stats {
        realtime_stats;
    }
}
"""


def _zone_at_rest(port):
    st = stats(port)
    return st if st["connections"] == 0 and st["groups"] == 0 else None


def test_zone_usage_returns_to_baseline_after_kills_and_reloads(nginx_expecting):
    """Under traffic, workers are SIGKILLed (many times, so some kills land
    while a worker is delivering what it took from its queue) and nginx
    reloads; once clients leave, the zone's used bytes are exactly what
    they were before any client came."""
    ngx, allowed = nginx_expecting(ZONE, workers=2)
    baseline = stats(ngx.port)
    assert baseline["groups"] == 0
    base_used = baseline["used"]

    # batches of big messages to many local subscribers: a delivery takes
    # long enough for kills to land inside it
    batch = json.dumps([{"group": "load", "data": f"{i}:" + "x" * 30000}
                        for i in range(40)])
    stop = threading.Event()

    def flood():
        while not stop.is_set():
            try:
                publish(ngx.port, batch, expect=None)
            except OSError:
                pass    # its worker was killed while answering

    for round_ in range(2):
        conns = spread_subscribers(ngx, f"/ws?g=load&h=r{round_}", 300)
        floods = [threading.Thread(target=flood, daemon=True) for _ in range(2)]
        for t in floods:
            t.start()
        for k in range(6):
            time.sleep(0.05 + 0.037 * k)
            victim = ngx.worker_pids(shutting_down=False)[k % 2]
            kill_worker(ngx, victim, allowed)
            wait_for(lambda: not pid_alive(victim), 5)
            wait_for(lambda: len(ngx.worker_pids(shutting_down=False)) == 2, 10)
        ngx.reload()
        stop.set()
        for t in floods:
            t.join(60)
        stop.clear()
        for ws, _pid in conns:
            ws.abort()

    st = wait_for(lambda: _zone_at_rest(ngx.port), 20)
    assert st, stats(ngx.port)
    # the used bytes settle once every worker has drained
    assert wait_for(lambda: stats(ngx.port)["used"] == base_used, 10), \
        (base_used, stats(ngx.port))


BACKLOG = """
realtime_zone rt 64m;
server {
    listen {port} sndbuf=16k;
    location = /ws {
        realtime_websocket;
        realtime_subscribe $arg_g;
        realtime_send_buffer_size 16m;
        realtime_ping_interval 400ms;
        realtime_pong_timeout 400ms;
    }
    location = /publish {
        client_max_body_size 1m;
        realtime_publish;
    }
}
"""


def test_subscriber_with_a_backlog_is_not_closed_as_dead(nginx_factory):
    """A subscriber that is slow to read broadcasts (its backlog stays far
    over 64 KiB for seconds) but keeps answering pings with pongs is alive:
    it is not closed with 4000, and once it reads it gets everything."""
    ngx = nginx_factory(BACKLOG, workers=2)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    s.connect(("127.0.0.1", ngx.port))
    wsclient._open_sockets.append(s)
    s.sendall(wsclient.build_request("/ws?g=slow", port=ngx.port))
    resp, rest = wsclient.read_response(s, 10)
    assert resp.status == 101
    ws = wsclient.WS(s, rest)

    chunk = "y" * 100000
    for i in range(30):     # 3 MB queued: the kernel buffers hold ~40 KB
        publish(ngx.port, {"group": "slow", "data": f"{i}:{chunk}"})

    # 3 s (over 7 pong timeouts) without reading, sending pongs meanwhile
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        ws.send_pong(b"alive")
        time.sleep(0.15)

    got = []
    while len(got) < 30:
        f = ws.recv_data(timeout=10)
        if f.opcode == OP_PING:
            continue
        assert f.opcode == OP_TEXT, f"closed instead of delivering: {f!r}"
        got.append(f.payload.decode().split(":", 1)[0])
    assert got == [str(i) for i in range(30)]
    assert ws.is_open(), "closed after its backlog"
    assert "no pong from client" not in ngx.error_log()


IDLE = """
realtime_zone rt 4m;
server {
    listen {port};
    location = /ws {
        realtime_websocket;
        realtime_subscribe $arg_g;
        realtime_idle_timeout 1s;
        realtime_ping_interval 0;
    }
    location = /publish {
        realtime_publish;
    }
}
"""


def test_idle_timeout_counts_messages_either_way(nginx_factory):
    """A subscriber that only receives is not idle: messages to it keep it
    open past the idle timeout; when they stop, it is closed with 4001."""
    ngx = nginx_factory(IDLE, workers=2)
    ws = subscribe(ngx.port, "/ws?g=feed")
    start = time.monotonic()
    i = 0
    while time.monotonic() - start < 3:
        publish(ngx.port, {"group": "feed", "data": f"m{i}"})
        assert next_text(ws) == f"m{i}"
        i += 1
        time.sleep(0.3)
    assert ws.is_open()
    f = ws.recv_data(timeout=5)
    assert f.opcode == OP_CLOSE and f.close_code == 4001, f
