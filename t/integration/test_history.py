"""History and resume (issue 11, items 1, 2, 3 and 5): per-group history in
the zone (size, ttl, eviction within the zone's budget), message ids
EPOCH:SEQ monotonic per group and across reloads, the envelope, resume with
?last_id (no gap, no duplicate, while messages are published), recovery
notices when the history does not cover the gap, and the HTTP history."""

import json
import threading
import time
import urllib.parse

import pytest

from groups_util import (Publisher, close_ws, http, next_text, publish, stats, subscribe,
                         wait_count)

CONF = """
realtime_zone rt 8m;
server {
    listen {port};
    realtime_ping_interval 0;

    location = /publish {
        realtime_publish;
        realtime_history 5;
    }
    location = /publish-ttl {
        realtime_publish;
        realtime_history 100 ttl=1s;
    }
    location = /publish-big {
        realtime_publish;
        realtime_history 10000;
        client_max_body_size 1m;
    }
    location = /publish-none {
        realtime_publish;
    }
    location = /stats {
        realtime_stats;
    }
    location = /ws {
        realtime_websocket;
        realtime_subscribe $arg_g;
        realtime_envelope on;
    }
    location = /plain {
        realtime_websocket;
        realtime_subscribe $arg_g;
    }
    location = /two {
        realtime_websocket;
        realtime_subscribe $arg_a $arg_b;
        realtime_envelope on;
    }
    location = /chat {
        realtime_websocket;
        realtime_subscribe $arg_g;
        realtime_envelope on;
        realtime_client_publish $arg_g;
        realtime_history 50;
    }
}
"""


@pytest.fixture
def ngx(nginx_factory):
    return nginx_factory(CONF, workers=2)


def history(ngx, group, since=None, path="/publish"):
    q = f"history={group}" + (f"&since={urllib.parse.quote(since)}" if since else "")
    r = http(ngx.port, "GET", f"{path}?{q}")
    assert r.status == 200, r
    return r.json()


def env(ws):
    return json.loads(next_text(ws))


_markers = [0]


def nothing_more(ngx, subscribers, group):
    """expect_nothing_more for enveloped subscribers: a marker published now
    must be the next message each one gets."""
    _markers[0] += 1
    marker = f"marker-{_markers[0]}"
    publish(ngx.port, {"group": group, "data": marker})
    for ws in subscribers:
        got = env(ws)
        assert got["data"] == marker, f"expected nothing before the marker, got {got!r}"


def seq(msg_id):
    epoch, s = msg_id.split(":")
    assert len(epoch) == 16 and int(epoch, 16) != 0, msg_id
    return int(s)


def test_history_keeps_the_last_messages_of_a_group_nobody_listens_to(ngx):
    for i in range(8):
        r = publish(ngx.port, {"group": "quiet", "data": {"i": i}}).json()
        assert r["subscribers"] == 0
    h = history(ngx, "quiet")
    assert [m["data"] for m in h["messages"]] == [{"i": i} for i in range(3, 8)]
    ids = [m["id"] for m in h["messages"]]
    assert [seq(i) for i in ids] == list(range(4, 9))          # monotonic, from 1
    assert len({i.split(":")[0] for i in ids}) == 1             # one epoch
    assert h["recovered"] is True
    # since: the ones after it; a string stays a string
    publish(ngx.port, {"group": "quiet", "data": "plain text"})
    h2 = history(ngx, "quiet", since=ids[-1])
    assert [m["data"] for m in h2["messages"]] == ["plain text"]
    # a location without history keeps nothing, but ids go on
    publish(ngx.port, {"group": "other", "data": 1}, path="/publish-none")
    assert history(ngx, "other")["messages"] == []


def test_history_ttl(ngx):
    publish(ngx.port, {"group": "fleeting", "data": 1}, path="/publish-ttl")
    assert len(history(ngx, "fleeting")["messages"]) == 1
    time.sleep(1.3)
    publish(ngx.port, {"group": "fleeting", "data": 2}, path="/publish-ttl")
    assert [m["data"] for m in history(ngx, "fleeting")["messages"]] == [2]
    time.sleep(1.3)
    assert history(ngx, "fleeting")["messages"] == []


def test_envelope_and_plain_subscribers(ngx):
    e = subscribe(ngx.port, "/ws?g=news")
    p = subscribe(ngx.port, "/plain?g=news")
    wait_count(ngx.port, "news", 2)
    publish(ngx.port, {"group": "news", "data": {"title": "a"}})
    publish(ngx.port, {"group": "news", "data": "text \"quoted\""})
    m1, m2 = env(e), env(e)
    assert m1["group"] == "news" and m1["data"] == {"title": "a"}
    assert m2["data"] == "text \"quoted\""
    assert seq(m2["id"]) == seq(m1["id"]) + 1
    assert next_text(p) == '{"title":"a"}'
    assert next_text(p) == 'text "quoted"'
    assert [m["id"] for m in history(ngx, "news")["messages"]] == [m1["id"], m2["id"]]


def test_resume_gets_what_was_missed_then_live(ngx):
    ws = subscribe(ngx.port, "/ws?g=feed")
    wait_count(ngx.port, "feed", 1)
    publish(ngx.port, {"group": "feed", "data": 0})
    last = env(ws)["id"]
    close_ws(ws)
    wait_count(ngx.port, "feed", 0)
    for i in range(1, 4):
        publish(ngx.port, {"group": "feed", "data": i})
    back = subscribe(ngx.port, f"/ws?g=feed&last_id={urllib.parse.quote(last)}")
    assert [env(back)["data"] for _ in range(3)] == [1, 2, 3]
    publish(ngx.port, {"group": "feed", "data": 4})
    assert env(back)["data"] == 4
    nothing_more(ngx, [back], "feed")
    # resuming from the newest id: nothing to replay
    again = subscribe(ngx.port, f"/ws?g=feed&last_id={urllib.parse.quote(last.split(':')[0])}:"
                                f"{seq(history(ngx, 'feed')['messages'][-1]['id'])}")
    nothing_more(ngx, [again], "feed")


class BigPublisher(Publisher):
    """Publisher through /publish-big (a history of 10,000)."""

    def run(self):
        try:
            while not self.stop.is_set():
                publish(self.port, {"group": self.group, "data": {"p": self.name, "seq": self.sent}},
                        path="/publish-big")
                self.sent += 1
                time.sleep(self.pause)
        except BaseException as e:
            self.error = e


def test_resume_while_publishing_has_no_gap_and_no_duplicate(ngx):
    """A publisher keeps publishing while clients drop and resume; every
    client sees every message exactly once, in order."""
    stop = threading.Event()
    pub = BigPublisher(ngx.port, "busy", "p", stop=stop, pause=0)
    ws = subscribe(ngx.port, "/ws?g=busy")
    wait_count(ngx.port, "busy", 1)
    # published before the first connection joined are not its business
    pub.start()
    seen = []
    try:
        for round_ in range(40):
            for _ in range(3):
                m = env(ws)
                seen.append((seq(m["id"]), m["data"]["seq"]))
            last = m["id"]
            ws.close()  # abrupt: whatever was in flight is lost with the socket
            ws = subscribe(ngx.port, f"/ws?g=busy&last_id={urllib.parse.quote(last)}")
    finally:
        stop.set()
        pub.finish()
    # drain what is left up to the last published message
    total = pub.sent
    while seen[-1][1] < total - 1:
        m = env(ws)
        seen.append((seq(m["id"]), m["data"]["seq"]))
    seqs = [s for s, _ in seen]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "gap or duplicate"
    datas = [d for _, d in seen]
    assert datas == list(range(datas[0], datas[0] + len(datas)))


def test_resume_beyond_the_history_says_so(ngx):
    ws = subscribe(ngx.port, "/ws?g=long")
    wait_count(ngx.port, "long", 1)
    publish(ngx.port, {"group": "long", "data": 0})
    first = env(ws)["id"]
    close_ws(ws)
    wait_count(ngx.port, "long", 0)
    for i in range(1, 10):      # history keeps 5
        publish(ngx.port, {"group": "long", "data": i})
    back = subscribe(ngx.port, f"/ws?g=long&last_id={urllib.parse.quote(first)}")
    assert env(back) == {"type": "recovery", "group": "long", "recovered": False}
    publish(ngx.port, {"group": "long", "data": "live"})
    assert env(back)["data"] == "live"
    # an id of another epoch (a lost history) too
    other = subscribe(ngx.port, "/ws?g=long&last_id=00000000deadbeef:3")
    assert env(other) == {"type": "recovery", "group": "long", "recovered": False}
    # over HTTP: all that is retained, recovered false
    h = history(ngx, "long", since=first)
    assert h["recovered"] is False
    assert [m["data"] for m in h["messages"]] == [5, 6, 7, 8, 9, "live"][-5:]


def test_resume_several_groups(ngx):
    ws = subscribe(ngx.port, "/two?a=ga&b=gb")
    wait_count(ngx.port, "gb", 1)
    publish(ngx.port, {"group": "ga", "data": "a0"})
    publish(ngx.port, {"group": "gb", "data": "b0"})
    ida, idb = env(ws)["id"], env(ws)["id"]
    close_ws(ws)
    wait_count(ngx.port, "gb", 0)
    publish(ngx.port, {"group": "ga", "data": "a1"})
    publish(ngx.port, {"group": "gb", "data": "b1"})
    publish(ngx.port, {"group": "gb", "data": "b2"})
    last = urllib.parse.quote(f"ga@{ida},gb@{idb}")
    back = subscribe(ngx.port, f"/two?a=ga&b=gb&last_id={last}")
    got = [env(back) for _ in range(3)]
    assert [(m["group"], m["data"]) for m in got] == [("ga", "a1"), ("gb", "b1"), ("gb", "b2")]


def test_ids_survive_a_reload(ngx):
    publish(ngx.port, {"group": "kept", "data": 1})
    before = history(ngx, "kept")["messages"][-1]["id"]
    ngx.reload()
    publish(ngx.port, {"group": "kept", "data": 2})
    h = history(ngx, "kept")["messages"]
    assert [m["data"] for m in h] == [1, 2]
    assert h[-1]["id"].split(":")[0] == before.split(":")[0]
    assert seq(h[-1]["id"]) == seq(before) + 1
    # a client resumes across the reload
    ws = subscribe(ngx.port, f"/ws?g=kept&last_id={urllib.parse.quote(before)}")
    assert env(ws)["data"] == 2


def test_client_messages_have_history(ngx):
    a = subscribe(ngx.port, "/chat?g=room")
    wait_count(ngx.port, "room", 1)
    a.send_text('{"m":"hi"}')
    m = env(a)
    assert m["data"] == {"m": "hi", "sender": None}
    assert history(ngx, "room")["messages"] == [{"id": m["id"], "data": {"m": "hi", "sender": None}}]


def test_a_full_zone_evicts_history_not_publishes(nginx_factory):
    ngx = nginx_factory(CONF.replace("realtime_zone rt 8m;", "realtime_zone rt 1m;"), workers=2)
    big = "x" * 20000
    for i in range(150):     # about 3 MB through a 1 MB zone
        r = publish(ngx.port, {"group": f"g{i % 3}", "data": big}, path="/publish-big")
        assert r.status == 200, (i, r)
    st = stats(ngx.port)
    assert st["history_evicted"] > 0, st
    # the newest are kept
    h = history(ngx, "g2")["messages"]
    assert h and seq(h[-1]["id"]) == 50


def test_history_query_errors(ngx):
    r = http(ngx.port, "GET", "/publish?history=bad%20name")
    assert r.status == 400
    r = http(ngx.port, "GET", "/publish?history=g&since=nope")
    assert r.status == 400
