"""Cross-worker behaviour with 4 workers: per-group order under concurrent
publishers, slow consumers, a full zone, reload during traffic, and a
worker killed with SIGKILL."""

import json
import threading

import pytest

from groups_util import (count, drain_frames, expect_nothing_more, kill_worker,
                         nginx_expecting, next_text, publish, Publisher, recv_texts,  # noqa: F401
                         spread_subscribers, stalled_socket, stats, subscribe, wait_count)
from nginx_harness import pid_alive, wait_for
from wsclient import ConnectionClosed, assert_json_error

WORKERS = 4

CONF = """
realtime_zone rt 8m;
server {
    listen {port};
    location = /ws {
        realtime_websocket;
        realtime_subscribe $arg_g;
    }
    location = /publish {
        allow 127.0.0.1;
        deny all;
        realtime_publish;
    }
    location = /stats {
        realtime_stats;
    }
}
# slow consumers: a small kernel send buffer (no autotuning up to megabytes)
# so that output backs up into the module's queue after a few messages
server {
    listen {port2} sndbuf=32k;
    location = /slow {
        realtime_websocket;
        realtime_subscribe $arg_g;
        realtime_send_buffer_size 64k;
    }
}
"""

SMALL_ZONE = """
realtime_zone small 256k;
server {
    listen {port};
    location = /ws {
        realtime_websocket;
        realtime_subscribe $arg_g $arg_h;
    }
    location = /publish {
        client_max_body_size 1m;
        realtime_publish;
    }
    location = /stats {
        realtime_stats;
    }
}
"""


@pytest.fixture
def ngx(nginx_factory):
    return nginx_factory(CONF, workers=WORKERS)


def check_increasing(seqs, what):
    for a, b in zip(seqs, seqs[1:]):
        assert b > a, f"{what}: {b} after {a} in {seqs}"


# --------------------------------------------------------------------------
# order


def test_order_with_four_concurrent_publishers(ngx):
    conns = [ws for ws, _ in spread_subscribers(ngx, "/ws?g=ordered", 8)]
    pubs = [Publisher(ngx.port, "ordered", f"p{i}", n=50) for i in range(4)]
    for p in pubs:
        p.start()
    # read while publishing: nobody backs up
    received = [[] for _ in conns]
    try:
        for _ in range(200):
            for i, ws in enumerate(conns):
                received[i].append(json.loads(next_text(ws, timeout=20)))
    except TimeoutError:
        for p in pubs:          # a failed publisher explains a missing message
            assert p.error is None, f"publisher {p.name}: {p.error!r}"
        raise
    for p in pubs:
        p.finish()
    for i, msgs in enumerate(received):
        for p in pubs:
            seqs = [m["seq"] for m in msgs if m["p"] == p.name]
            assert seqs == list(range(50)), f"subscriber {i}, {p.name}: {seqs}"
    # every subscriber saw the same interleaving: one order per group
    for msgs in received[1:]:
        assert msgs == received[0]
    expect_nothing_more(ngx.port, conns, "ordered")


def test_order_within_a_batch(ngx):
    a = subscribe(ngx.port, "/ws?g=ba")
    batch = [{"group": "ba", "data": i} for i in range(100)]
    r = publish(ngx.port, batch).json()
    assert r["messages"] == 100 and r["subscribers"] == 100
    assert recv_texts(a, 100) == [str(i) for i in range(100)]


# --------------------------------------------------------------------------
# slow consumer


def test_slow_consumer_is_closed_others_get_everything(ngx):
    slow_port = ngx.ports["port2"]
    healthy = [subscribe(slow_port, "/slow?g=flood") for _ in range(3)]
    stalled = stalled_socket(slow_port, "/slow?g=flood", rcvbuf=4096)
    assert count(ngx.port, "flood") == 4
    before = stats(ngx.port)["slow_consumer_closes"]
    ngx.mark_log()

    chunk = "z" * 10_000
    closed_at = None
    for i in range(1000):        # up to 10 MB: far beyond 64k plus kernel buffers
        r = publish(ngx.port, {"group": "flood", "data": f"{i:05d}{chunk}"}).json()
        assert r["messages"] == 1
        for ws in healthy:       # lockstep: the healthy ones never back up
            got = next_text(ws)
            assert got[:5] == f"{i:05d}" and len(got) == 10_005, (i, got[:20])
        if closed_at is None and "client reads too slowly" in ngx.log_since_mark():
            closed_at = i
        if closed_at is not None and i >= closed_at + 20:
            break
    assert closed_at is not None, "the stalled subscriber was never closed"

    line = ngx.wait_log(lambda ln: "client reads too slowly" in ln, timeout=10)
    assert line and "[info]" in line, ngx.log_since_mark()[-2000:]
    st = stats(ngx.port)
    assert st["slow_consumer_closes"] - before == 1, st
    wait_count(ngx.port, "flood", 3)

    # the others keep receiving
    publish(ngx.port, {"group": "flood", "data": "after"})
    for ws in healthy:
        assert next_text(ws) == "after"
    expect_nothing_more(ngx.port, healthy, "flood")

    # the stalled client, reading at last: whole frames in order, then the
    # close 4008 (or the connection is simply gone)
    texts, close, how = drain_frames(stalled, timeout=10)
    seqs = [int(t[:5]) for t in texts]
    assert all(len(t) == 10_005 for t in texts)
    assert seqs == list(range(len(seqs))), seqs
    assert len(seqs) < i + 1
    if close is not None:
        assert close.close_code == 4008, close
        assert close.close_reason == b"send buffer full", close


def test_nothing_sent_after_slow_consumer_close(ngx):
    """Once the 4008 close frame is queued, no data frame may follow it
    (RFC 6455 5.5.1), even though publishing goes on during the close wait."""
    stalled = stalled_socket(ngx.ports["port2"], "/slow?g=after", rcvbuf=4096)
    ngx.mark_log()
    chunk = "y" * 10_000
    closed_at = None
    for i in range(1000):
        publish(ngx.port, {"group": "after", "data": f"{i:05d}{chunk}"})
        if closed_at is None and "client reads too slowly" in ngx.log_since_mark():
            closed_at = i
        if closed_at is not None and i >= closed_at + 10:
            break
    assert closed_at is not None, "the stalled subscriber was never closed"
    # read everything now (within the server's 3 s close wait)
    texts, close, how = drain_frames(stalled, timeout=10)
    seqs = [int(t[:5]) for t in texts]
    assert seqs == list(range(len(seqs))), seqs
    assert seqs and seqs[-1] < closed_at, (seqs[-1:], closed_at)
    # read within the server's close wait, so the close frame is there
    assert close is not None, f"no close frame ({how}) after {len(seqs)} messages"
    assert close.close_code == 4008 and close.close_reason == b"send buffer full", close
    extra = []
    while True:
        try:
            extra.append(stalled.recv_data(timeout=10))
        except (ConnectionClosed, TimeoutError):
            break
    assert extra == [], f"frames after the close frame: {extra[:3]} ({len(extra)})"


# --------------------------------------------------------------------------
# full zone


def test_zone_full_is_507_and_subscribers_keep_working(nginx_factory):
    ngx = nginx_factory(SMALL_ZONE, workers=WORKERS)
    conns = [ws for ws, _ in spread_subscribers(ngx, "/ws?g=big", 8)]
    n = len(conns)
    before = stats(ngx.port)

    resp = publish(ngx.port, {"group": "big", "data": "x" * 300_000}, expect=None)
    assert_json_error(resp, 507, "realtime zone is full")
    assert resp.json() == {"error": "realtime zone is full", "published": 0}
    st = stats(ngx.port)
    assert st["publish_rejected_full"] - before["publish_rejected_full"] == 1, st

    # a batch: the messages before the one that does not fit go out
    resp = publish(ngx.port, [{"group": "big", "data": "small one"},
                              {"group": "big", "data": "x" * 300_000},
                              {"group": "big", "data": "small two"}], expect=None)
    assert_json_error(resp, 507, "realtime zone is full")
    assert resp.json() == {"error": "realtime zone is full", "published": 1}
    for ws in conns:
        assert next_text(ws) == "small one"
    expect_nothing_more(ngx.port, conns, "big")

    # still healthy: large-but-fitting and small messages, joins, counts
    r = publish(ngx.port, {"group": "big", "data": "y" * 100_000}).json()
    assert r == {"messages": 1, "subscribers": n}
    for ws in conns:
        assert next_text(ws) == "y" * 100_000
    late = subscribe(ngx.port, "/ws?g=big")
    assert count(ngx.port, "big") == n + 1
    publish(ngx.port, {"group": "big", "data": "after"})
    for ws in conns + [late]:
        assert next_text(ws) == "after"

    # the rejected messages left nothing behind in the zone
    def drained():
        s = stats(ngx.port)
        return s if all(w["queued"] == 0 for w in s["workers"]) else None
    st = wait_for(drained, 10)
    assert st and st["used"] <= before["used"] + 8192, (before, stats(ngx.port))


def test_message_to_several_groups_is_stored_once_and_all_or_nothing(nginx_factory):
    """A message to two groups is stored once in the zone: one that fits
    once reaches both groups; one that does not fit reaches neither, and
    the 507 says "published": 0 truthfully."""
    ngx = nginx_factory(SMALL_ZONE, workers=WORKERS)
    a = subscribe(ngx.port, "/ws?g=ga")
    b = subscribe(ngx.port, "/ws?g=gb")
    free = stats(ngx.port)["free"]

    fits = "m" * (free * 2 // 3)      # one copy fits, two would not
    resp = publish(ngx.port, {"groups": ["ga", "gb"], "data": fits}, expect=None)
    assert resp.status == 200, resp
    assert resp.json() == {"messages": 1, "subscribers": 2}
    assert next_text(a) == fits
    assert next_text(b) == fits

    too_big = "x" * (free + 4096)
    resp = publish(ngx.port, {"groups": ["ga", "gb"], "data": too_big}, expect=None)
    assert_json_error(resp, 507, "realtime zone is full")
    assert resp.json()["published"] == 0, resp
    expect_nothing_more(ngx.port, [a], "ga")
    expect_nothing_more(ngx.port, [b], "gb")


# --------------------------------------------------------------------------
# reload


def test_reload_during_traffic(ngx):
    old_conns = [ws for ws, _ in spread_subscribers(ngx, "/ws?g=live", 8)]
    st0 = stats(ngx.port)
    assert st0["generation"] == 0
    stop = threading.Event()
    pub = Publisher(ngx.port, "live", "reloader", stop=stop, pause=0.005)
    pub.start()
    # every old subscriber gets traffic before the reload
    for ws in old_conns:
        next_text(ws)

    old, new = ngx.reload()

    # old connections: messages in order, then 1012 (service restart:
    # a reload), nothing after it
    # (checked at the end, so that the rest of the test runs regardless)
    after_close = []
    for ws in old_conns:
        texts, close, how = drain_frames(ws, timeout=15)
        assert close is not None, f"no close frame ({how}) after {len(texts)} messages"
        assert close.close_code == 1012, close
        check_increasing([json.loads(t)["seq"] for t in texts], "old subscriber")
        try:
            ws.send_close(1012)
        except OSError:
            pass
        extra = []
        while True:
            try:
                extra.append(ws.recv_data(timeout=10))
            except (ConnectionClosed, TimeoutError):
                break
        after_close += extra

    # new connections land on the new workers and receive the ongoing traffic
    new_conns = spread_subscribers(ngx, "/ws?g=live", 8)
    assert {pid for _, pid in new_conns} <= new
    seen = []
    for ws, _ in new_conns:
        seqs = [json.loads(t)["seq"] for t in recv_texts(ws, 5)]
        check_increasing(seqs, "new subscriber")
        seen.append(seqs)
    stop.set()
    pub.finish()
    assert pub.sent > 0

    assert wait_for(lambda: not any(pid_alive(p) for p in old), 15), ngx.processes()
    wait_count(ngx.port, "live", len(new_conns))
    st = stats(ngx.port)
    assert st["generation"] == st0["generation"] + 1, st
    assert st["messages_published"] == st0["messages_published"] + pub.sent, (st0, st, pub.sent)
    assert st["connections_opened"] == st0["connections_opened"] + len(new_conns), st
    assert st["connections"] == len(new_conns), st
    assert {w["pid"] for w in st["workers"]} == new, (st["workers"], new)
    per_worker = {w["pid"]: w["connections"] for w in st["workers"]}
    for pid in new:
        assert per_worker[pid] == sum(1 for _, p in new_conns if p == pid), per_worker
    conns = [ws for ws, _ in new_conns]
    for ws, seqs in zip(conns, seen):   # everything up to the last message, in order
        while seqs[-1] < pub.sent - 1:
            seqs.append(json.loads(next_text(ws))["seq"])
        assert seqs == list(range(seqs[0], pub.sent)), seqs
    expect_nothing_more(ngx.port, conns, "live")
    assert after_close == [], \
        f"data frames after the 1012 close frame: {after_close[:3]} ({len(after_close)})"


def test_second_reload_keeps_counting(ngx):
    ws = subscribe(ngx.port, "/ws?g=r")
    publish(ngx.port, {"group": "r", "data": "1"})
    assert next_text(ws) == "1"
    m0 = stats(ngx.port)["messages_published"]
    for gen in (1, 2):
        old, new = ngx.reload()
        assert wait_for(lambda: not any(pid_alive(p) for p in old), 15), ngx.processes()
        st = stats(ngx.port)
        assert st["generation"] == gen, st
        assert st["messages_published"] == m0, st
        assert {w["pid"] for w in st["workers"]} == new, st
    wait_count(ngx.port, "r", 0)
    ws = subscribe(ngx.port, "/ws?g=r")
    publish(ngx.port, {"group": "r", "data": "2"})
    assert next_text(ws) == "2"
    assert stats(ngx.port)["messages_published"] == m0 + 1


# --------------------------------------------------------------------------
# SIGKILL


def test_sigkill_of_a_worker(nginx_expecting):
    """A killed worker's connections and slot are reclaimed by its
    replacement. nginx logs "[alert] ... worker process N exited on signal 9"
    for it: the nginx_expecting fixture (groups_util) allows exactly that
    line and still fails the test on any other alert."""
    ngx, allowed = nginx_expecting(CONF, workers=WORKERS)
    conns = spread_subscribers(ngx, "/ws?g=k", 40)
    assert count(ngx.port, "k") == len(conns)
    publish(ngx.port, {"group": "k", "data": "before"})
    for ws, _ in conns:
        assert next_text(ws) == "before"

    victim = conns[0][1]
    doomed = [ws for ws, pid in conns if pid == victim]
    survivors = [ws for ws, pid in conns if pid != victim]
    assert doomed and survivors
    kill_worker(ngx, victim, allowed)

    for ws in doomed:
        assert ws.wait_eof(10), "a connection of the killed worker stayed open"
    workers = wait_for(lambda: (len(ngx.worker_pids()) == WORKERS
                                and victim not in ngx.worker_pids()
                                and set(ngx.worker_pids())), 10)
    assert workers, f"worker not respawned: {ngx.processes()}"

    wait_count(ngx.port, "k", len(survivors))
    st = stats(ngx.port)
    pids = {w["pid"] for w in st["workers"]}
    assert victim not in pids, st["workers"]
    assert pids == workers, (st["workers"], workers)
    assert st["connections"] == len(survivors), st

    r = publish(ngx.port, {"group": "k", "data": "after"}).json()
    assert r == {"messages": 1, "subscribers": len(survivors)}, r
    for ws in survivors:
        assert next_text(ws) == "after"

    # the respawned worker serves subscribers too
    fresh = spread_subscribers(ngx, "/ws?g=k", 8)
    respawned = workers - {pid for _, pid in conns}
    assert respawned and respawned <= {pid for _, pid in fresh}
    r = publish(ngx.port, {"group": "k", "data": "all"}).json()
    assert r["subscribers"] == len(survivors) + len(fresh)
    for ws in survivors + [ws for ws, _ in fresh]:
        assert next_text(ws) == "all"

    # only the expected death notice is in the log (checked again at teardown)
    deaths = [ln for ln in ngx.error_log().splitlines() if "exited on signal" in ln]
    assert len(deaths) == 1 and f"worker process {victim} " in deaths[0], deaths
