"""realtime_redis + realtime_presence: presence across nodes, with a real
redis-server and real nginx nodes (2 workers each): a join on one node is
told on the others once, a second tab elsewhere is silent and counted, the
leave comes when the last tab anywhere closes (with and without
leave_delay), a node started later lists who is there, a node killed with
SIGKILL has its users leave after node_expiry, the subscriber worker killed
hands over without losing presence, and Redis killed and
restarted leaves every node with everyone's users again.

Observers (/obs, no user: not tracked) see the events of a group."""

import json
import os
import signal
import time

import pytest

from groups_util import (close_ws, http, kill_worker, next_text, nginx_expecting,  # noqa: F401
                         nginx_test_config, spread_subscribers, subscribe)
from nginx_harness import pid_alive, wait_for
# the private redis-server and the node helpers of the cluster tests
from test_redis_cluster import (Redis, assert_nothing_pending, redis, redis_factory,  # noqa: F401
                                redis_stats, wait_numsub, wait_up)

TIMEOUT = 10.0

CONF = """
realtime_zone rt 8m;
realtime_redis @URL@ node_expiry=2s;
server {
    listen {port};
    realtime_ping_interval 0;
    location = /ws {
        realtime_websocket;
        realtime_user $arg_u;
        realtime_subscribe $arg_g;
        realtime_presence on 'info={"name":"$arg_u"}';
    }
    location = /delay {
        realtime_websocket;
        realtime_user $arg_u;
        realtime_subscribe $arg_g;
        realtime_presence on leave_delay=1s 'info={"name":"$arg_u"}';
    }
    location = /obs {
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


def conf(url):
    return CONF.replace("@URL@", url)


def start_nodes(nginx_factory, url, n=2):
    nodes = [nginx_factory(conf(url), workers=2) for _ in range(n)]
    wait_up(*nodes)
    return nodes


def event(ev, group, user):
    return {"type": "presence", "event": ev, "group": group, "user": user,
            "info": {"name": user}}


def next_event(ws, timeout=TIMEOUT):
    return json.loads(next_text(ws, timeout))


def presence(node, group):
    resp = http(node.port, "GET", f"/publish?presence={group}")
    assert resp.status == 200, resp
    return resp.json()


def connections(doc):
    return {u["user"]: u["connections"] for u in doc["users"]}


def wait_connections(node, group, expected, timeout=TIMEOUT):
    last = [None]

    def ok():
        last[0] = presence(node, group)
        return connections(last[0]) == expected and last[0]["count"] == len(expected)
    assert wait_for(ok, timeout), f"{node.prefix}: presence of {group}: {last[0]}, " \
                                  f"want {expected}"
    return last[0]


def observe(node, group):
    return subscribe(node.port, f"/obs?g={group}")


def kill_node(node):
    """SIGKILL to the master and every worker at once: nothing is told."""
    pids = node.worker_pids()
    node.proc.send_signal(signal.SIGKILL)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    node.proc.wait(10)


# --------------------------------------------------------------------------


def test_node_expiry_is_checked_by_nginx_t():
    for bad in ("node_expiry=abc", "node_expiry=1s", "node_expiry=0", "node_expiry="):
        rc, out = nginx_test_config(f"""
realtime_zone rt 1m;
realtime_redis redis://127.0.0.1:6399 {bad};
""")
        assert rc != 0, (bad, out)
        assert "node_expiry" in out, (bad, out)
    rc, out = nginx_test_config("""
realtime_zone rt 1m;
realtime_redis redis://127.0.0.1:6399 node_expiry=5s;
""")
    assert rc == 0, out


def test_join_once_second_tab_elsewhere_silent_leave_with_the_last(redis, nginx_factory):
    a, b = start_nodes(nginx_factory, redis.url)
    oa, ob = observe(a, "room"), observe(b, "room")
    wait_numsub(redis, "room", 2)

    t1 = subscribe(a.port, "/ws?g=room&u=alice")
    assert next_event(oa) == event("join", "room", "alice")
    assert next_event(ob) == event("join", "room", "alice")

    # a second tab on the other node: no event anywhere, counted everywhere
    t2 = subscribe(b.port, "/ws?g=room&u=alice")
    for node in (a, b):
        doc = wait_connections(node, "room", {"alice": 2})
        assert doc["users"][0]["info"] == {"name": "alice"}, doc
    # the in-band query too
    t2.send_text(json.dumps({"type": "presence", "group": "room"}))
    ans = next_event(t2)
    assert ans["type"] == "presence" and ans["count"] == 1, ans
    assert connections(ans) == {"alice": 2}, ans
    assert_nothing_pending(oa, 0.5)
    assert_nothing_pending(ob, 0.1)

    # the first tab closes: still present (on b)
    close_ws(t1)
    for node in (a, b):
        wait_connections(node, "room", {"alice": 1})
    assert_nothing_pending(oa, 0.5)
    assert_nothing_pending(ob, 0.1)

    # the last one: one leave on each node
    close_ws(t2)
    assert next_event(oa) == event("leave", "room", "alice")
    assert next_event(ob) == event("leave", "room", "alice")
    for node in (a, b):
        wait_connections(node, "room", {})
    assert_nothing_pending(oa, 0.5)
    assert_nothing_pending(ob, 0.1)

    st = redis_stats(a)
    assert st["presence_sent"] >= 2 and st["dropped"] == 0, st
    assert redis_stats(b)["presence_remote"] == 0


def test_leave_delay_across_nodes(redis, nginx_factory):
    a, b = start_nodes(nginx_factory, redis.url)
    oa, ob = observe(a, "slow"), observe(b, "slow")
    wait_numsub(redis, "slow", 2)

    t1 = subscribe(a.port, "/delay?g=slow&u=bob")
    assert next_event(oa) == event("join", "slow", "bob")
    assert next_event(ob) == event("join", "slow", "bob")

    # bob leaves a and comes back on b within the delay: nothing at all
    close_ws(t1)
    time.sleep(0.3)
    t2 = subscribe(b.port, "/delay?g=slow&u=bob")
    assert_nothing_pending(oa, 1.5)     # past a's leave_delay
    assert_nothing_pending(ob, 0.1)
    for node in (a, b):
        wait_connections(node, "slow", {"bob": 1})

    # the last tab: the leave after the delay, once per node
    closed = time.monotonic()
    close_ws(t2)
    assert_nothing_pending(ob, 0.6)
    assert next_event(ob) == event("leave", "slow", "bob")
    assert next_event(oa) == event("leave", "slow", "bob")
    assert time.monotonic() - closed >= 0.9
    assert_nothing_pending(oa, 0.3)
    assert_nothing_pending(ob, 0.1)


def test_a_node_started_later_lists_who_is_there(redis, nginx_factory):
    (a,) = start_nodes(nginx_factory, redis.url, n=1)
    oa = observe(a, "hall")
    tabs = [subscribe(a.port, f"/ws?g=hall&u={u}") for u in ("ann", "bob", "bob")]
    assert next_event(oa) == event("join", "hall", "ann")
    assert next_event(oa) == event("join", "hall", "bob")

    (b,) = start_nodes(nginx_factory, redis.url, n=1)
    ob = observe(b, "hall")
    wait_numsub(redis, "hall", 2)
    wait_connections(b, "hall", {"ann": 1, "bob": 2})
    # told quietly: a joiner is not sent events for those already there
    assert_nothing_pending(ob, 0.3)

    # then changes come as events
    tabs.append(subscribe(a.port, "/ws?g=hall&u=cid"))
    assert next_event(ob) == event("join", "hall", "cid")
    close_ws(tabs[0])
    assert next_event(ob) == event("leave", "hall", "ann")
    wait_connections(b, "hall", {"bob": 2, "cid": 1})
    # a's own users count b's too
    tb = subscribe(b.port, "/ws?g=hall&u=bob")
    wait_connections(a, "hall", {"bob": 3, "cid": 1})
    assert_nothing_pending(ob, 0.3)
    del tb


def test_a_killed_node_s_users_leave_after_node_expiry(redis, nginx_factory):
    a, b = start_nodes(nginx_factory, redis.url)
    oa = observe(a, "k")
    ob = observe(b, "k")
    wait_numsub(redis, "k", 2)
    subscribe(b.port, "/ws?g=k&u=dora")
    subscribe(a.port, "/ws?g=k&u=ed")
    got = {next_event(oa)["user"], next_event(oa)["user"]}
    assert got == {"dora", "ed"}
    wait_connections(a, "k", {"dora": 1, "ed": 1})

    killed = time.monotonic()
    kill_node(b)
    # nothing before the expiry (2 s) ...
    assert_nothing_pending(oa, 1.0)
    assert connections(presence(a, "k")) == {"dora": 1, "ed": 1}
    # ... then dora leaves, once, and ed stays
    got = next_event(oa, timeout=8)
    assert got == event("leave", "k", "dora")
    assert time.monotonic() - killed >= 1.5
    wait_connections(a, "k", {"ed": 1})
    assert_nothing_pending(oa, 0.5)
    # Redis forgot it too: only a is left
    assert len(redis.cmd("KEYS", "realtime:pg:*")) == 1
    assert len(redis.cmd("ZRANGE", "realtime:nodes", 0, -1)) == 1
    fields = redis.cmd("HKEYS", "realtime:p:k")
    assert len(fields) == 1 and fields[0].endswith("\ned"), fields
    del ob


def test_redis_killed_and_restarted(redis, nginx_factory):
    a, b = start_nodes(nginx_factory, redis.url)
    oa, ob = observe(a, "r"), observe(b, "r")
    wait_numsub(redis, "r", 2)
    ta = subscribe(a.port, "/ws?g=r&u=alice")
    tb = subscribe(b.port, "/ws?g=r&u=bob")
    td = subscribe(b.port, "/ws?g=r&u=dave")
    for node in (a, b):
        wait_connections(node, "r", {"alice": 1, "bob": 1, "dave": 1})
    for ws in (oa, ob):
        for _ in range(3):
            next_event(ws)

    redis.kill()
    assert wait_for(lambda: redis_stats(a)["state"] != "up", TIMEOUT)

    # local presence keeps working on each node
    tc = subscribe(a.port, "/ws?g=r&u=carol")
    assert next_event(oa) == event("join", "r", "carol")
    assert connections(presence(a, "r"))["carol"] == 1
    close_ws(td)      # dave leaves during the outage (on b: told there)
    assert next_event(ob) == event("leave", "r", "dave")

    # back: every node lists everyone again, and dave left on a too
    redis.start()
    wait_up(a, b, timeout=20)
    for node in (a, b):
        wait_connections(node, "r", {"alice": 1, "bob": 1, "carol": 1}, timeout=15)
    seen = []
    deadline = time.monotonic() + TIMEOUT
    while event("leave", "r", "dave") not in seen and time.monotonic() < deadline:
        seen.append(next_event(oa))
    assert event("leave", "r", "dave") in seen, seen
    del ta, tb, tc


def test_a_node_without_the_group_answers_from_redis(redis, nginx_factory):
    a, b = start_nodes(nginx_factory, redis.url)
    tabs = [subscribe(a.port, f"/ws?g=far&u={u}") for u in ("ann", "ann", "bob")]
    wait_connections(a, "far", {"ann": 2, "bob": 1})
    # b has nobody in "far" and follows it not: it asks Redis
    doc = wait_connections(b, "far", {"ann": 2, "bob": 1})
    assert {u["user"]: u["info"] for u in doc["users"]} == \
        {"ann": {"name": "ann"}, "bob": {"name": "bob"}}, doc
    tb = subscribe(b.port, "/ws?g=far&u=bob")
    wait_connections(a, "far", {"ann": 2, "bob": 2})
    close_ws(tb)
    close_ws(tabs[2])
    wait_numsub(redis, "far", 1)    # b follows it no more (a does)
    wait_connections(b, "far", {"ann": 2})
    assert presence(b, "nowhere") == {"group": "nowhere", "count": 0, "users": []}
    # Redis down: what b knows (nothing), not an error
    redis.kill()
    assert wait_for(lambda: redis_stats(b)["state"] != "up", TIMEOUT)
    assert presence(b, "far")["count"] == 0


def test_subscriber_worker_killed_presence_carries_on(redis, nginx_expecting, nginx_factory):
    a, allowed = nginx_expecting(conf(redis.url), workers=2)
    b = nginx_factory(conf(redis.url), workers=2)
    wait_up(a, b)
    ob = observe(b, "sk")
    wait_numsub(redis, "sk", 1)
    conns = spread_subscribers(a, "/ws?g=sk&u=sam", 2)     # tabs on each worker
    assert next_event(ob) == event("join", "sk", "sam")
    wait_connections(b, "sk", {"sam": len(conns)})

    old = redis_stats(a)["subscriber_pid"]
    kill_worker(a, old, allowed)

    def taken_over():
        st = redis_stats(a)
        return st["state"] == "up" and st["subscriber_pid"] not in (0, old) \
            and pid_alive(st["subscriber_pid"])
    assert wait_for(taken_over, 8), redis_stats(a)
    # the killed worker's tabs are gone, sam is still there through the other
    left = sum(1 for _ws, pid in conns if pid != old)
    wait_connections(b, "sk", {"sam": left})
    assert_nothing_pending(ob, 0.3)
    # and the new subscriber tells what changes
    subscribe(a.port, "/ws?g=sk&u=tia")
    assert next_event(ob) == event("join", "sk", "tia")
    for ws, pid in conns:
        if pid != old:
            close_ws(ws)
    assert next_event(ob) == event("leave", "sk", "sam")
