"""realtime_redis with realtime_history: message ids numbered in Redis (the
same on every node), every node keeping what it receives, and a client
resuming on any node, including one that never followed its group (the
handshake reads the group's stream in Redis). Real redis-server, 2-3 real
nginx with 2 workers each."""

import json
import threading
import time

import pytest

from groups_util import http, next_text, publish, subscribe, close_ws  # noqa: F401
from nginx_harness import wait_for
from sse_client import Stream
from test_redis_cluster import (TIMEOUT, Redis, assert_nothing_pending, redis,  # noqa: F401
                                redis_factory, redis_stats, wait_numsub, wait_up)

CONF = """
realtime_zone rt 8m;
realtime_redis @URL@ timeout=1s;
server {
    listen {port};
    location = /ws {
        realtime_websocket;
        realtime_subscribe $arg_g;
        realtime_envelope on;
    }
    location = /plain {
        realtime_websocket;
        realtime_subscribe $arg_g;
        realtime_eventsource on;
    }
    location = /chat {
        realtime_websocket;
        realtime_subscribe $arg_g;
        realtime_client_publish $arg_g;
        realtime_envelope on;
        realtime_history 20;
    }
    location = /publish {
        realtime_publish;
        realtime_history 50;
    }
    location = /publish-short {
        realtime_publish;
        realtime_history 2;
    }
    location = /publish-ttl {
        realtime_publish;
        realtime_history 50 ttl=1s;
    }
    location = /publish-none {
        realtime_publish;
    }
    location = /stats {
        realtime_stats;
    }
}
"""


def nodes(nginx_factory, url, n=2, workers=2):
    out = [nginx_factory(CONF.replace("@URL@", url), workers=workers) for _ in range(n)]
    wait_up(*out)
    return out


def env(ws):
    return json.loads(next_text(ws))


def seq_of(message):
    epoch, seq = message["id"].split(":")
    return epoch, int(seq)


def test_ids_are_the_same_on_every_node(redis, nginx_factory):
    a, b = nodes(nginx_factory, redis.url)
    wa = subscribe(a.port, "/ws?g=news")
    wb = subscribe(b.port, "/ws?g=news")
    wait_numsub(redis, "news", 2)

    publish(a.port, {"group": "news", "data": 1})
    publish(b.port, {"group": "news", "data": 2})
    publish(a.port, {"group": "news", "data": 3})
    got_a = [env(wa) for _ in range(3)]
    got_b = [env(wb) for _ in range(3)]
    assert got_a == got_b, (got_a, got_b)
    assert [m["data"] for m in got_a] == [1, 2, 3]
    epochs = {seq_of(m)[0] for m in got_a}
    assert len(epochs) == 1, got_a
    assert [seq_of(m)[1] for m in got_a] == [1, 2, 3]

    # Redis holds them: the group's seq and its stream
    key = redis.cmd("HGETALL", "realtime:s:news")
    assert dict(zip(key[::2], key[1::2]))["s"] == "3", key
    assert redis.cmd("XLEN", "realtime:h:news") == 3

    # and each node's own history (GET ?history) has all three, same ids
    for node in (a, b):
        hist = json.loads(http(node.port, "GET", "/publish?history=news").body)
        assert [m["id"] for m in hist["messages"]] == [m["id"] for m in got_a], hist


def test_resume_on_a_node_that_never_had_the_group(redis, nginx_factory):
    a, b = nodes(nginx_factory, redis.url)
    wa = subscribe(a.port, "/ws?g=inbox")
    wait_numsub(redis, "inbox", 1)
    publish(a.port, {"group": "inbox", "data": "m1"})
    first = env(wa)
    close_ws(wa)

    # missed while away, published on both nodes
    publish(b.port, {"group": "inbox", "data": "m2"})
    publish(a.port, {"group": "inbox", "data": "m3"})

    # b never had a subscriber of inbox: its answer comes from Redis
    back = subscribe(b.port, f"/ws?g=inbox&last_id={first['id']}")
    assert [env(back)["data"] for _ in range(2)] == ["m2", "m3"]
    publish(a.port, {"group": "inbox", "data": "m4"})
    m4 = env(back)
    assert m4["data"] == "m4" and seq_of(m4)[1] == 4, m4
    assert_nothing_pending(back)


def test_resume_on_a_node_that_follows_the_group(redis, nginx_factory):
    """b has a subscriber all along: its own history answers (no Redis read)."""
    a, b = nodes(nginx_factory, redis.url)
    watcher = subscribe(b.port, "/ws?g=room")
    wa = subscribe(a.port, "/ws?g=room")
    wait_numsub(redis, "room", 2)
    publish(a.port, {"group": "room", "data": "m1"})
    first = env(wa)
    close_ws(wa)
    publish(a.port, {"group": "room", "data": "m2"})
    assert env(watcher)["data"] == "m1" and env(watcher)["data"] == "m2"

    back = subscribe(b.port, f"/ws?g=room&last_id=room@{first['id']}")
    assert env(back)["data"] == "m2"
    assert_nothing_pending(back)


def test_resume_past_what_redis_keeps_is_not_recovered(redis, nginx_factory):
    a, b = nodes(nginx_factory, redis.url)
    wa = subscribe(a.port, "/ws?g=short")
    wait_numsub(redis, "short", 1)
    publish(a.port, {"group": "short", "data": "m1"}, path="/publish-short")
    first = env(wa)
    close_ws(wa)
    for n in range(2, 6):
        publish(a.port, {"group": "short", "data": f"m{n}"}, path="/publish-short")
    assert redis.cmd("XLEN", "realtime:h:short") == 2

    back = subscribe(b.port, f"/ws?g=short&last_id={first['id']}")
    notice = json.loads(next_text(back))
    assert notice == {"type": "recovery", "group": "short", "recovered": False}, notice
    assert_nothing_pending(back)

    # a client that missed only what is kept gets it
    again = subscribe(b.port, "/ws?g=short&last_id=" + first["id"].split(":")[0] + ":3")
    assert [env(again)["data"] for _ in range(2)] == ["m4", "m5"]


def test_expired_messages_are_not_recovered(redis, nginx_factory):
    a, b = nodes(nginx_factory, redis.url)
    wa = subscribe(a.port, "/ws?g=brief")
    wait_numsub(redis, "brief", 1)
    publish(a.port, {"group": "brief", "data": "m1"}, path="/publish-ttl")
    first = env(wa)
    close_ws(wa)
    publish(a.port, {"group": "brief", "data": "m2"}, path="/publish-ttl")
    time.sleep(1.3)
    back = subscribe(b.port, f"/ws?g=brief&last_id={first['id']}")
    notice = json.loads(next_text(back))
    assert notice.get("recovered") is False, notice


def test_another_epoch_is_not_recovered(redis, nginx_factory):
    a, b = nodes(nginx_factory, redis.url)
    wa = subscribe(a.port, "/ws?g=gone")
    wait_numsub(redis, "gone", 1)
    publish(a.port, {"group": "gone", "data": "m1"})
    first = env(wa)
    close_ws(wa)
    # the group's history is lost in Redis (flushed, expired): a new epoch
    redis.cmd("DEL", "realtime:s:gone", "realtime:h:gone")
    publish(a.port, {"group": "gone", "data": "m2"})
    back = subscribe(b.port, f"/ws?g=gone&last_id={first['id']}")
    notice = json.loads(next_text(back))
    assert notice.get("recovered") is False, notice


def test_client_messages_are_numbered_and_resumable_across_nodes(redis, nginx_factory):
    a, b = nodes(nginx_factory, redis.url)
    alice = subscribe(a.port, "/chat?g=lobby")
    bob = subscribe(b.port, "/chat?g=lobby")
    wait_numsub(redis, "lobby", 2)
    alice.send_text('{"text":"hi"}')
    got_b = env(bob)
    got_a = env(alice)
    assert got_b == got_a and got_b["data"]["text"] == "hi", (got_a, got_b)
    close_ws(bob)
    alice.send_text('{"text":"still there?"}')
    assert env(alice)["data"]["text"] == "still there?"

    # bob comes back through the other node
    bob = subscribe(a.port, f"/chat?g=lobby&last_id={got_b['id']}")
    again = env(bob)
    assert again["data"]["text"] == "still there?" and seq_of(again)[1] == 2, again


def test_without_history_no_ids_and_no_stream(redis, nginx_factory):
    a, b = nodes(nginx_factory, redis.url)
    wb = subscribe(b.port, "/ws?g=live")
    wait_numsub(redis, "live", 1)
    publish(a.port, {"group": "live", "data": "x"}, path="/publish-none")
    assert env(wb) == {"group": "live", "data": "x"}
    assert redis.cmd("EXISTS", "realtime:h:live") == 0


def test_redis_down_numbered_publish_is_refused_client_messages_stay_local(redis, nginx_factory):
    a, b = nodes(nginx_factory, redis.url)
    alice = subscribe(a.port, "/chat?g=down")
    carol = subscribe(a.port, "/chat?g=down")
    wait_numsub(redis, "down", 1)
    redis.kill()
    assert wait_for(lambda: redis_stats(a)["state"] != "up", TIMEOUT)
    r = publish(a.port, {"group": "down", "data": "x"}, expect=503)
    assert r.json() == {"error": "redis unavailable"}
    # a client message still reaches the node's own subscribers (no id)
    alice.send_text('{"text":"local"}')
    got = env(carol)
    assert got["group"] == "down" and got["data"]["text"] == "local", got
    assert "id" not in got, got     # not numbered: Redis is away


def test_resume_on_another_node_under_a_steady_stream_loses_nothing(redis, nginx_factory):
    """A publisher keeps publishing through node a; a client reads some,
    goes away, and comes back through node b (which never had the group)
    while messages keep coming: it gets every number once, in order."""
    a, b = nodes(nginx_factory, redis.url)
    total = 120
    stop = threading.Event()
    errors = []

    ws = subscribe(a.port, "/ws?g=stream")
    wait_numsub(redis, "stream", 1)

    def publisher():
        try:
            for n in range(1, total + 1):
                publish(a.port if n % 2 else b.port, {"group": "stream", "data": n})
                time.sleep(0.01)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)
        finally:
            stop.set()

    t = threading.Thread(target=publisher)
    t.start()
    seen = []
    try:
        while len(seen) < 30:
            m = env(ws)
            seen.append(m)
        close_ws(ws)
        time.sleep(0.1)
        ws = subscribe(b.port, f"/ws?g=stream&last_id={seen[-1]['id']}")
        while seen[-1]["data"] != total:
            m = json.loads(next_text(ws))
            assert "id" in m, m     # never a recovery notice
            seen.append(m)
    finally:
        t.join(60)
    assert not errors, errors
    assert [m["data"] for m in seen] == list(range(1, total + 1))
    assert [seq_of(m)[1] for m in seen] == list(range(1, total + 1))
    assert_nothing_pending(ws)


def test_history_query_answers_the_same_on_every_node(redis, nginx_factory):
    """GET ?history= reads the group's stream in Redis: a node that never
    followed the group answers what the others do."""
    a, b, c = nodes(nginx_factory, redis.url, n=3)
    wa = subscribe(a.port, "/ws?g=feed")
    wait_numsub(redis, "feed", 1)
    for n in range(1, 5):
        publish(a.port if n % 2 else b.port, {"group": "feed", "data": {"n": n}})
    got = [env(wa) for _ in range(4)]
    ids = [m["id"] for m in got]

    for node in (a, b, c):
        hist = json.loads(http(node.port, "GET", "/publish?history=feed").body)
        assert [m["id"] for m in hist["messages"]] == ids, (node.port, hist)
        assert [m["data"] for m in hist["messages"]] == [{"n": n} for n in range(1, 5)]
        assert hist["recovered"] is True
        since = json.loads(http(node.port, "GET", f"/publish?history=feed&since={ids[1]}").body)
        assert [m["id"] for m in since["messages"]] == ids[2:], since
        assert since["recovered"] is True

    # a since from another epoch: everything kept, not recovered
    other = json.loads(http(c.port, "GET", "/publish?history=feed&since=abc:1").body)
    assert other["recovered"] is False and len(other["messages"]) == 4, other
    # a group nobody published to
    empty = json.loads(http(c.port, "GET", "/publish?history=nothing").body)
    assert empty == {"group": "nothing", "messages": [], "recovered": True}, empty


def test_event_stream_resumes_on_another_node(redis, nginx_factory):
    """Last-Event-ID works across nodes as ?last_id= does."""
    a, b = nodes(nginx_factory, redis.url)
    first = Stream(a.port, "/plain?g=ticker")
    assert first.status == 200, first.status
    wait_numsub(redis, "ticker", 1)
    publish(a.port, {"group": "ticker", "data": "t1"})
    ev = first.next_event()
    eid, data = ev.get("id"), ev["data"]
    assert data == "t1" and eid, ev
    first.close()
    publish(b.port, {"group": "ticker", "data": "t2"})
    publish(a.port, {"group": "ticker", "data": "t3"})

    back = Stream(b.port, "/plain?g=ticker", headers=[("Last-Event-ID", eid)])
    assert back.status == 200
    ev2, ev3 = back.next_event(), back.next_event()
    assert (ev2["data"], ev3["data"]) == ("t2", "t3"), (ev2, ev3)
    assert int(ev3["id"].split(":")[1]) == int(eid.split(":")[1]) + 2
    back.close()


def test_scripts_flushed_in_redis_are_loaded_again(redis, nginx_factory):
    """SCRIPT FLUSH (or a failover to a server without them): a publish
    fails with 503 at worst, the link is made again and loads them."""
    # one worker: the publishes go through the link that loaded them
    a, b = nodes(nginx_factory, redis.url, workers=1)
    wb = subscribe(b.port, "/ws?g=flush")
    wait_numsub(redis, "flush", 1)
    publish(a.port, {"group": "flush", "data": 1})
    assert env(wb)["data"] == 1
    assert redis.cmd("SCRIPT", "FLUSH") == "OK"

    statuses = []

    def delivered_again():
        r = publish(a.port, {"group": "flush", "data": 2}, expect=None)
        statuses.append(r.status)
        return r.status == 200
    assert wait_for(delivered_again, TIMEOUT), statuses
    assert set(statuses) <= {200, 503}, statuses
    assert statuses[0] == 503, "the first one met the flushed server"
    m = env(wb)
    assert m["data"] == 2 and seq_of(m)[1] == 2, m
