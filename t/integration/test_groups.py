"""Groups: realtime_subscribe (literal names, variables, empty values,
invalid names, duplicates), zones (default, zone=, several zones), fan-out
across 4 workers, unsubscription on close."""

import json

import pytest

from groups_util import (count, expect_nothing_more, http, next_text, nginx_test_config,
                         publish, recv_texts, spread_subscribers, stats, subscribe,
                         wait_count)
from nginx_harness import wait_for
from wsclient import OP_BINARY, assert_json_error, encode_frame, handshake

WORKERS = 4

CONF = """
realtime_zone rt 4m;
server {
    listen {port};
    location ~ ^/ws/chat/(?<room>\\w+)/$ {
        realtime_websocket;
        realtime_subscribe chat_$room global;
    }
    location = /fixed {
        realtime_websocket;
        realtime_subscribe $arg_g fixed;
    }
    location = /any {
        realtime_websocket;
        realtime_subscribe $arg_g $arg_h;
    }
    location = /dup {
        realtime_websocket;
        realtime_subscribe dup $arg_g dup $arg_g;
    }
    location = /plain {
        realtime_websocket;
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
"""


@pytest.fixture
def ngx(nginx_factory):
    return nginx_factory(CONF, workers=WORKERS)


# --------------------------------------------------------------------------
# realtime_subscribe


def test_subscribe_with_regex_capture(ngx):
    lobby = subscribe(ngx.port, "/ws/chat/lobby/")
    other = subscribe(ngx.port, "/ws/chat/other/")
    assert count(ngx.port, "chat_lobby") == 1
    assert count(ngx.port, "chat_other") == 1
    assert count(ngx.port, "global") == 2
    assert count(ngx.port, "chat_") == 0

    r = publish(ngx.port, {"group": "chat_lobby", "data": "to lobby"}).json()
    assert r == {"messages": 1, "subscribers": 1}
    assert next_text(lobby) == "to lobby"
    r = publish(ngx.port, {"group": "global", "data": "to all"}).json()
    assert r == {"messages": 1, "subscribers": 2}
    assert next_text(lobby) == "to all"
    # "other" never got the lobby message: the global one is next
    assert next_text(other) == "to all"
    expect_nothing_more(ngx.port, [lobby, other], "global")


def test_empty_variable_value_is_skipped(ngx):
    ws = subscribe(ngx.port, "/fixed")           # no ?g=: only "fixed"
    assert count(ngx.port, "fixed") == 1
    st = stats(ngx.port)
    assert st["groups"] == 1, st
    ws2 = subscribe(ngx.port, "/fixed?g=extra")
    assert count(ngx.port, "fixed") == 2
    assert count(ngx.port, "extra") == 1
    assert stats(ngx.port)["groups"] == 2
    publish(ngx.port, {"group": "extra", "data": "x"})
    assert next_text(ws2) == "x"
    expect_nothing_more(ngx.port, [ws, ws2], "fixed")


def test_connection_with_no_group_at_all(ngx):
    ws = subscribe(ngx.port, "/any")              # both values empty
    assert stats(ngx.port)["groups"] == 0
    ws2 = subscribe(ngx.port, "/any?h=only_h")
    assert count(ngx.port, "only_h") == 1
    publish(ngx.port, {"group": "only_h", "data": "h"})
    assert next_text(ws2) == "h"
    assert ws.is_open()


@pytest.mark.parametrize("query", [
    "g=bad%20name",            # $arg_ is not unescaped: '%' is invalid
    "g=slash/inside",
    "g=" + "a" * 101,          # too long
    "g=ok&h=no*star",          # second one invalid
    "g=%C3%A9",
    "g=semi;colon",
])
def test_invalid_group_from_variable_is_400(ngx, query):
    opened = stats(ngx.port)["connections_opened"]
    resp, ws = handshake(ngx.port, "/any?" + query)
    assert ws is None, resp
    doc = assert_json_error(resp, 400)
    assert "group" in doc["error"], doc
    # nothing joined, nothing left behind (not even the valid "ok"), no
    # connection counted as opened
    def settled():
        s = stats(ngx.port)
        return s if s["groups"] == 0 and s["connections"] == 0 else None
    st = wait_for(settled, 5)
    assert st, stats(ngx.port)
    assert st["connections_opened"] == opened, st
    assert count(ngx.port, "ok") == 0
    # the refused request left the worker healthy
    ws = subscribe(ngx.port, "/any?g=ok")
    publish(ngx.port, {"group": "ok", "data": "fine"})
    assert next_text(ws) == "fine"


@pytest.mark.parametrize("name", ["a", "A-Z_a.z:0-9", "x" * 100, "chat:lobby", "..", "-"])
def test_valid_group_names(ngx, name):
    ws = subscribe(ngx.port, "/any?g=" + name)
    assert count(ngx.port, name) == 1
    r = publish(ngx.port, {"group": name, "data": {"n": name}}).json()
    assert r["subscribers"] == 1
    assert json.loads(next_text(ws)) == {"n": name}


def test_duplicates_joined_once(ngx):
    ws = subscribe(ngx.port, "/dup?g=dup")       # dup dup dup dup
    assert count(ngx.port, "dup") == 1
    r = publish(ngx.port, {"group": "dup", "data": "once"}).json()
    assert r == {"messages": 1, "subscribers": 1}
    assert next_text(ws) == "once"
    expect_nothing_more(ngx.port, [ws], "dup")
    ws2 = subscribe(ngx.port, "/dup?g=other")
    assert count(ngx.port, "dup") == 2
    assert count(ngx.port, "other") == 1
    ws.close()
    ws2.close()
    wait_count(ngx.port, "dup", 0)
    wait_count(ngx.port, "other", 0)


def test_groups_publish_reaches_double_member_once(ngx):
    """One message to groups [a, b]: a connection in both gets it once; a
    group named twice is one destination."""
    both = subscribe(ngx.port, "/any?g=ga&h=gb")
    only_a = subscribe(ngx.port, "/any?g=ga")
    r = publish(ngx.port, {"groups": ["ga", "gb"], "data": "m"}).json()
    assert r == {"messages": 1, "subscribers": 2}, "connections are counted once"
    assert next_text(both) == "m"
    assert next_text(only_a) == "m"
    expect_nothing_more(ngx.port, [both, only_a], "ga")

    r = publish(ngx.port, {"groups": ["ga", "ga", "gb", "ga"], "data": "n"}).json()
    assert r == {"messages": 1, "subscribers": 2}
    assert next_text(both) == "n"
    assert next_text(only_a) == "n"
    expect_nothing_more(ngx.port, [both, only_a], "ga")

    r = publish(ngx.port, {"groups": ["ga", "ga"], "data": "o"}).json()
    assert r == {"messages": 1, "subscribers": 2}, "a group named twice counts once"
    assert next_text(both) == "o"
    assert next_text(only_a) == "o"
    expect_nothing_more(ngx.port, [both, only_a], "ga")


# --------------------------------------------------------------------------
# spread over the workers


def test_fan_out_to_40_connections_on_all_workers(ngx):
    conns = spread_subscribers(ngx, "/ws/chat/room1/", 40)
    n = len(conns)
    pids = set(ngx.worker_pids())
    assert len(pids) == WORKERS

    st = stats(ngx.port)
    per_worker = {w["pid"]: w["connections"] for w in st["workers"]}
    assert set(per_worker) == pids, (per_worker, pids)
    assert all(c > 0 for c in per_worker.values()), per_worker
    assert sum(per_worker.values()) == n == st["connections"], st
    # the stats agree with /proc on which worker holds how many
    for pid in pids:
        assert per_worker[pid] == sum(1 for _, p in conns if p == pid), (pid, per_worker)

    assert count(ngx.port, "chat_room1") == n
    for i in range(3):
        r = publish(ngx.port, {"group": "chat_room1", "data": {"i": i}}).json()
        assert r == {"messages": 1, "subscribers": n}, r
    for ws, _ in conns:
        assert [json.loads(t) for t in recv_texts(ws, 3)] == [{"i": 0}, {"i": 1}, {"i": 2}]
    expect_nothing_more(ngx.port, [ws for ws, _ in conns], "global")


def test_stats_fields(ngx):
    st = stats(ngx.port)
    for key in ("zone", "size", "used", "free", "generation", "groups", "connections",
                "connections_opened", "messages_published", "frames_delivered",
                "slow_consumer_closes", "publish_rejected_full", "presence_joins",
                "presence_leaves", "presence_events_lost", "workers"):
        assert key in st, (key, st)
    assert st["zone"] == "rt"
    assert st["size"] == 4 * 1024 * 1024
    assert st["used"] + st["free"] == st["size"]
    assert 0 < st["used"] < st["size"]
    assert st["generation"] == 0
    assert {w["pid"] for w in st["workers"]} == set(ngx.worker_pids())
    before = st

    a = subscribe(ngx.port, "/any?g=s1&h=s2")
    b = subscribe(ngx.port, "/any?g=s1")
    publish(ngx.port, {"group": "s1", "data": "x"})
    publish(ngx.port, {"group": "nobody", "data": "x"})
    next_text(a)
    next_text(b)

    def settled():
        s = stats(ngx.port)
        return s if s["frames_delivered"] - before["frames_delivered"] == 2 else None
    st = wait_for(settled, 10)
    assert st, stats(ngx.port)
    assert st["groups"] == 2
    assert st["connections"] == 2
    assert st["connections_opened"] - before["connections_opened"] == 2
    assert st["messages_published"] - before["messages_published"] == 2


def test_stats_and_publish_methods(ngx):
    resp = http(ngx.port, "POST", "/stats", body=b"{}",
                headers={"Content-Type": "application/json"})
    assert_json_error(resp, 405)
    resp = http(ngx.port, "HEAD", "/stats")
    assert resp.status == 200, resp


# --------------------------------------------------------------------------
# unsubscription


def test_closing_connections_unsubscribes(ngx):
    conns = spread_subscribers(ngx, "/ws/chat/bye/", 24)
    n = len(conns)
    assert count(ngx.port, "chat_bye") == n
    assert stats(ngx.port)["groups"] == 2
    for i, (ws, _) in enumerate(conns):
        if i % 3 == 0:
            ws.send_close(1000)
            ws.expect_close(1000, reply=False)
            assert ws.wait_eof(10)
        elif i % 3 == 1:
            ws.abort()                                # RST
        else:
            ws.send_raw(encode_frame(OP_BINARY, b"half", fin=False))
            ws.close()                                # FIN mid-message
    wait_count(ngx.port, "chat_bye", 0)
    wait_count(ngx.port, "global", 0)

    def empty():
        s = stats(ngx.port)
        return s if s["groups"] == 0 and s["connections"] == 0 else None
    st = wait_for(empty, 10)
    assert st, stats(ngx.port)
    assert all(w["connections"] == 0 for w in st["workers"]), st
    r = publish(ngx.port, {"group": "chat_bye", "data": "anyone?"}).json()
    assert r == {"messages": 1, "subscribers": 0}


def test_count_follows_joins_and_leaves(ngx):
    conns = [subscribe(ngx.port, "/any?g=cnt") for _ in range(6)]
    assert count(ngx.port, "cnt") == 6
    conns.pop().close()
    conns.pop().abort()
    wait_count(ngx.port, "cnt", 4)
    conns.append(subscribe(ngx.port, "/any?g=cnt"))
    assert count(ngx.port, "cnt") == 5
    r = publish(ngx.port, {"group": "cnt", "data": "five"}).json()
    assert r["subscribers"] == 5
    for ws in conns:
        assert next_text(ws) == "five"


def test_plain_websocket_location_joins_nothing(ngx):
    ws = subscribe(ngx.port, "/plain")
    st = stats(ngx.port)
    assert st["groups"] == 0, st
    assert ws.is_open()


# --------------------------------------------------------------------------
# configuration


PUB_STATS = """
    location = /publish { realtime_publish%s; }
    location = /stats { realtime_stats%s; }
"""


def conf_with(zones, ws_args="", pub_args="", stats_args="", subscribe="g1",
              extra=""):
    z = "\n".join(f"realtime_zone {name} {size};" for name, size in zones)
    sub = f"realtime_subscribe {subscribe};" if subscribe else ""
    return f"""
{z}
server {{
    listen {{port}};
    location = /ws {{ realtime_websocket{ws_args}; {sub} }}
    location = /publish {{ realtime_publish{pub_args}; }}
    location = /stats {{ realtime_stats{stats_args}; }}
    {extra}
}}
"""


def test_config_literal_invalid_group_name_fails():
    rc, out = nginx_test_config(conf_with([("rt", "1m")], subscribe="ok bad/name"))
    assert rc != 0, out
    assert "[emerg]" in out and "bad/name" in out, out
    rc, out = nginx_test_config(conf_with([("rt", "1m")], subscribe="x" * 101))
    assert rc != 0, out
    rc, out = nginx_test_config(conf_with([("rt", "1m")], subscribe="ok_name $arg_g"))
    assert rc == 0, out


def test_config_several_zones_need_zone_parameter():
    two = [("one", "1m"), ("two", "1m")]
    for kw in ({}, {"ws_args": " zone=one", "pub_args": " zone=one"},
               {"ws_args": " zone=one", "stats_args": " zone=one"},
               {"pub_args": " zone=one", "stats_args": " zone=one"}):
        rc, out = nginx_test_config(conf_with(two, **kw))
        assert rc != 0, (kw, out)
        assert "[emerg]" in out and "zone=NAME" in out, (kw, out)
    rc, out = nginx_test_config(conf_with(two, ws_args=" zone=one", pub_args=" zone=two",
                                          stats_args=" zone=one"))
    assert rc == 0, out
    rc, out = nginx_test_config(conf_with(two, ws_args=" zone=three", pub_args=" zone=one",
                                          stats_args=" zone=one"))
    assert rc != 0 and "three" in out, out


def test_config_zone_minimum_size():
    rc, out = nginx_test_config(conf_with([("rt", "255k")]))
    assert rc != 0 and "[emerg]" in out, out
    rc, out = nginx_test_config(conf_with([("rt", "256k")]))
    assert rc == 0, out


def test_config_publish_without_zone_fails():
    rc, out = nginx_test_config(conf_with([]))
    assert rc != 0 and "[emerg]" in out, out


TWO_ZONES = """
realtime_zone za 1m;
realtime_zone zb 1m;
server {
    listen {port};
    location = /wsa { realtime_websocket zone=za; realtime_subscribe same; }
    location = /wsb { realtime_websocket zone=zb; realtime_subscribe same; }
    location = /pa { realtime_publish zone=za; }
    location = /pb { realtime_publish zone=zb; }
    location = /sa { realtime_stats zone=za; }
    location = /sb { realtime_stats zone=zb; }
}
"""


def test_zones_are_separate(nginx_factory):
    ngx = nginx_factory(TWO_ZONES, workers=WORKERS)
    a = subscribe(ngx.port, "/wsa")
    b1 = subscribe(ngx.port, "/wsb")
    b2 = subscribe(ngx.port, "/wsb")
    assert count(ngx.port, "same", path="/pa") == 1
    assert count(ngx.port, "same", path="/pb") == 2
    assert stats(ngx.port, "/sa")["zone"] == "za"
    assert stats(ngx.port, "/sb")["connections"] == 2
    r = publish(ngx.port, {"group": "same", "data": "for a"}, path="/pa").json()
    assert r["subscribers"] == 1
    r = publish(ngx.port, {"group": "same", "data": "for b"}, path="/pb").json()
    assert r["subscribers"] == 2
    assert next_text(a) == "for a"
    assert next_text(b1) == "for b"
    assert next_text(b2) == "for b"
    expect_nothing_more(ngx.port, [a], "same", path="/pa")
    expect_nothing_more(ngx.port, [b1, b2], "same", path="/pb")


# --------------------------------------------------------------------------
# a subscription that does not fit the zone


FULL_ZONE = """
realtime_zone tiny 256k;
server {
    listen {port};
    location = /ws {
        realtime_websocket;
        realtime_subscribe $arg_a $arg_b $arg_c $arg_d $arg_e $arg_f $arg_g $arg_h all;
    }
    location = /publish { realtime_publish; }
    location = /stats { realtime_stats; }
}
"""


def _long_groups(i):
    """Eight distinct 100-byte group names for connection i, as a query."""
    return "&".join(f"{k}=" + f"{k}{i:06d}_".ljust(100, "x") for k in "abcdefgh")


def test_subscription_that_does_not_fit_is_503(nginx_factory):
    """The smallest zone fills with distinct long group names: the handshake
    that cannot be held gets 503 with a JSON error (and joins nothing), the
    connections already there keep receiving, and once some leave a new
    subscription fits again."""
    ngx = nginx_factory(FULL_ZONE, workers=2)
    witness = subscribe(ngx.port, "/ws?a=witness")
    held = []
    refused = None
    for i in range(1500):
        resp, ws = handshake(ngx.port, "/ws?" + _long_groups(i))
        if ws is None:
            refused = (i, resp)
            break
        held.append(ws)
    assert refused is not None, f"{len(held)} connections of 8 long groups each fit a 256k zone"
    i, resp = refused
    assert held, "not even one subscription fit"
    assert_json_error(resp, 503)
    # the refused connection joined none of its groups
    for k in "abcdefgh":
        name = f"{k}{i:06d}_".ljust(100, "x")
        assert count(ngx.port, name) == 0, name
    st = stats(ngx.port)
    assert st["connections"] == len(held) + 1, st

    # the others are not affected: still open, still receiving
    assert all(ws.is_open() for ws in held)
    # (a message names its groups: one to a short name fits where one to a
    # 100-byte name may not, which the publish API would answer with 507)
    r = publish(ngx.port, {"group": "all", "data": "still here"}).json()
    assert r == {"messages": 1, "subscribers": len(held) + 1}, r
    for ws in [witness] + held:
        assert next_text(ws) == "still here"
    assert wait_for(lambda: all(w["queued"] == 0 for w in stats(ngx.port)["workers"]), 10)
    r = publish(ngx.port, {"group": "witness", "data": "only you"}).json()
    assert r == {"messages": 1, "subscribers": 1}, r
    assert next_text(witness) == "only you"

    # some leave: their groups are freed, a new subscription fits again
    for ws in held[-20:]:
        ws.close()
    del held[-20:]
    assert wait_for(lambda: stats(ngx.port)["connections"] == len(held) + 1, 10), stats(ngx.port)
    ws = subscribe(ngx.port, "/ws?" + _long_groups(99999))
    last = "h099999_".ljust(100, "x")
    assert count(ngx.port, last) == 1
    r = publish(ngx.port, {"group": last, "data": "fits again"}).json()
    assert r == {"messages": 1, "subscribers": 1}, r
    assert next_text(ws) == "fits again"
