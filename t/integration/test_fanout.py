"""Fan-out in time slices on one worker: a publish to a group of ~800
connections is written in slices of 0.3 ms per event-loop turn, and
messages published meanwhile join the pending connections' queues. With
concurrent publishers every subscriber must still get every message exactly
once, and all of them in the same order (one order per group)."""

import json
import selectors
import time

from groups_util import (Publisher, close_ws, count, expect_nothing_more, next_text, publish,
                         stalled_socket, stats, subscribe, wait_count)
from nginx_harness import wait_for
from wsclient import OP_PING, OP_TEXT

SUBSCRIBERS = 800
PUBLISHERS = 4
MESSAGES = 40          # per publisher
DEADLINE = 120         # seconds for everything to arrive: generous, not a measurement

CONF = """
realtime_zone rt 16m;
server {
    listen {port};
    location = /ws {
        realtime_websocket;
        realtime_subscribe $arg_g;
    }
    location = /publish { realtime_publish; }
    location = /stats { realtime_stats; }
}
"""


def read_all(conns, expected, deadline):
    """Reads text messages from every connection at once (epoll) until each
    has `expected` of them or the deadline passes. Returns a list of lists."""
    got = [[] for _ in conns]
    sel = selectors.DefaultSelector()
    for i, ws in enumerate(conns):
        sel.register(ws.sock, selectors.EVENT_READ, i)
    pending = len(conns)
    try:
        while pending and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=1.0):
                i = key.data
                ws = conns[i]
                data = ws.sock.recv(1 << 20)
                assert data, f"subscriber {i} was disconnected after {len(got[i])} messages"
                ws.buf += data
                for _ in range(len(ws.buffered_frames())):
                    f = ws.recv_data(timeout=1)
                    if f.opcode == OP_PING:
                        continue
                    assert f.opcode == OP_TEXT and f.fin, (i, f)
                    got[i].append(json.loads(f.payload))
                if len(got[i]) >= expected:
                    sel.unregister(ws.sock)
                    pending -= 1
    finally:
        sel.close()
    return got


def test_fan_out_slices_with_concurrent_publishers(nginx_factory):
    ngx = nginx_factory(CONF, workers=1)
    conns = [subscribe(ngx.port, "/ws?g=crowd") for _ in range(SUBSCRIBERS)]
    assert count(ngx.port, "crowd") == SUBSCRIBERS
    before = stats(ngx.port)

    pubs = [Publisher(ngx.port, "crowd", f"p{i}", n=MESSAGES) for i in range(PUBLISHERS)]
    for p in pubs:
        p.start()
    total = PUBLISHERS * MESSAGES
    got = read_all(conns, total, time.monotonic() + DEADLINE)
    for p in pubs:
        p.finish(timeout=DEADLINE)
        assert p.subscribers == [SUBSCRIBERS] * MESSAGES, (p.name, p.subscribers)

    short = [(i, len(m)) for i, m in enumerate(got) if len(m) != total]
    assert not short, f"subscribers with a wrong number of messages (of {total}): {short[:10]}"
    first = got[0]
    # every message exactly once, each publisher's in its own order
    assert sorted((m["p"], m["seq"]) for m in first) == sorted(
        (p.name, s) for p in pubs for s in range(MESSAGES))
    for p in pubs:
        assert [m["seq"] for m in first if m["p"] == p.name] == list(range(MESSAGES))
    # the same total order everywhere
    for i, msgs in enumerate(got[1:], 1):
        assert msgs == first, f"subscriber {i} saw another order"

    # the zone counted exactly one frame per message and subscriber
    want = before["frames_delivered"] + total * SUBSCRIBERS
    assert wait_for(lambda: stats(ngx.port)["frames_delivered"] == want, 10), \
        (stats(ngx.port)["frames_delivered"], want)
    assert stats(ngx.port)["messages_published"] == before["messages_published"] + total
    expect_nothing_more(ngx.port, conns, "crowd")


def test_leaves_in_any_order_keep_everyone_else_served(nginx_factory):
    """A worker's fan-out list of a group is an array whose leaves move the
    last entry into the hole (and give room back when most have left).
    Connections leaving from the front, the back and the middle, in a
    shuffled order, must leave every remaining one served exactly once and
    the gone ones forgotten; joins after the shrink must be served too."""
    import random
    rnd = random.Random(14)
    ngx = nginx_factory(CONF, workers=1)
    n = 300
    conns = [subscribe(ngx.port, "/ws?g=churn") for _ in range(n)]
    # some are also in a second group: leaving "churn" must not touch it
    others = [subscribe(ngx.port, "/ws?g=churn2") for _ in range(5)]
    alive = list(range(n))
    order = [0, n - 1, n // 2] + rnd.sample(range(1, n - 1), n - 3)
    order = list(dict.fromkeys(order))
    rounds = 0
    for cut in (3, 60, 150, 260, 290):          # leave down to 10 (a shrink)
        while n - len(alive) < cut:
            i = order[n - len(alive)]
            alive.remove(i)
            close_ws(conns[i])
        wait_count(ngx.port, "churn", len(alive))
        rounds += 1
        body = f"round-{rounds}"
        r = publish(ngx.port, {"group": "churn", "data": body}).json()
        assert r["subscribers"] == len(alive), r
        for i in alive:
            assert next_text(conns[i]) == body, i
    fresh = [subscribe(ngx.port, "/ws?g=churn") for _ in range(80)]
    wait_count(ngx.port, "churn", len(alive) + 80)
    everyone = [conns[i] for i in alive] + fresh
    r = publish(ngx.port, {"group": "churn", "data": "after"}).json()
    assert r["subscribers"] == len(everyone), r
    for ws in everyone:
        assert next_text(ws) == "after"
    expect_nothing_more(ngx.port, everyone, "churn")
    expect_nothing_more(ngx.port, others, "churn2")


def test_paced_messages_to_a_paused_reader_arrive_whole_and_in_order(nginx_factory):
    """One message per drain is written straight from the delivery where
    nothing is queued before it; once a paused reader's socket is full, a
    frame is written in part and its rest queued, and later ones queue
    behind it. When the reader reads again, every message must arrive whole
    and in order, as for a reader that never paused (under the send buffer
    limit: nothing is closed). The kernel takes a few MB before the
    socket is full, hence the size."""
    conf = CONF.replace("realtime_websocket;",
                        "realtime_websocket;\n        realtime_send_buffer_size 32m;")
    ngx = nginx_factory(conf, workers=1)
    paused = stalled_socket(ngx.port, "/ws?g=pause", rcvbuf=4096)
    reader = subscribe(ngx.port, "/ws?g=pause")
    chunk = "z" * 9_973                     # not a divisor of any buffer size
    n = 800                                 # ~8 MB: past the kernel's buffers, under 32m
    for i in range(n):
        r = publish(ngx.port, {"group": "pause", "data": f"{i:05d}{chunk}"}).json()
        assert r["subscribers"] == 2, r
        assert next_text(reader) == f"{i:05d}{chunk}"
    texts = []
    while len(texts) < n:
        f = paused.recv_data(timeout=10)
        if f.opcode == OP_PING:
            continue
        assert f.opcode == OP_TEXT and f.fin, f
        texts.append(f.payload.decode())
    assert [t[:5] for t in texts] == [f"{i:05d}" for i in range(n)]
    assert all(t[5:] == chunk for t in texts)
    assert stats(ngx.port)["slow_consumer_closes"] == 0
    expect_nothing_more(ngx.port, [reader, paused], "pause")
