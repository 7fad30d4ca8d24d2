"""Presence (realtime_presence) against a real nginx with 4 workers: join
once and leave once per user however many tabs it has on however many
workers, leave_delay, the list and the count (GET ?presence= and the
in-band query), the per-member info, the capped list, an exact count at a
few hundred users, a worker killed with SIGKILL (its users leave, nobody
else), the seeds' own event formats by configuration alone, presence
through subscribe/unsubscribe on the fly, untracked connections, and a
reload without ghosts.

Observers are connections of a location without a user (not tracked): they
see the events published to a group and nothing of their own. A tab is put
on a chosen worker by probing a raw TCP connection first (ws_on): one that
lands elsewhere is closed before it sends a request, so it never joins."""

import json
import time

import pytest

import wsclient
from groups_util import (close_ws, expect_nothing_more, http, kill_worker,  # noqa: F401
                         nginx_expecting, next_text)
from jwt_util import claims, make_token, new_secret_file
from nginx_harness import pid_alive, wait_for
from wsclient import OP_CLOSE, WS, ConnectionClosed

WORKERS = 4


@pytest.fixture(scope="module")
def secret(tmp_path_factory):
    return new_secret_file(tmp_path_factory.mktemp("presence"))


def snippet(secret_file):
    return f"""
realtime_zone rt 16m;
server {{
    listen {{port}};
    realtime_ping_interval 0;

    # users named by ?u=, groups by ?g=
    location = /ws {{
        realtime_websocket;
        realtime_user $arg_u;
        realtime_subscribe $arg_g;
        realtime_allow_subscribe room_*;
        realtime_presence on;
    }}
    location = /delay {{
        realtime_websocket;
        realtime_user $arg_u;
        realtime_subscribe $arg_g;
        realtime_presence on leave_delay=1s;
    }}
    location = /wsmax {{
        realtime_websocket;
        realtime_user $arg_u;
        realtime_subscribe $arg_g;
        realtime_presence on;
        realtime_presence_max_list 3;
    }}
    # no user: never tracked (observers, and the untracked test)
    location = /obs {{
        realtime_websocket;
        realtime_subscribe $arg_g;
        realtime_allow_subscribe room_*;
    }}
    location = /anon {{
        realtime_websocket;
        realtime_subscribe $arg_g;
        realtime_presence on;
    }}
    # users from a token, with info
    location = /jwt {{
        realtime_websocket;
        realtime_auth_jwt $arg_token;
        realtime_auth_jwt_key_file {secret_file};
        realtime_subscribe $arg_g;
        realtime_presence on 'info={{"name":"$jwt_claim_name","n":$jwt_claim_n}}';
    }}
    # the seeds' formats
    location = /chat {{
        realtime_websocket;
        realtime_user $arg_u;
        realtime_subscribe $arg_g;
        realtime_presence on;
        realtime_presence_event join '{{"type":"user_event","message":"A user joined the room","event":"user_joined"}}';
        realtime_presence_event leave '{{"type":"user_event","message":"A user left the room","event":"user_left"}}';
    }}
    location = /ticket {{
        realtime_websocket;
        realtime_auth_jwt $arg_token;
        realtime_auth_jwt_key_file {secret_file};
        realtime_user $jwt_claim_user_id;
        realtime_subscribe ticket_$arg_t;
        realtime_presence on;
        realtime_presence_event join '{{"type":"user_status","action":"joined","username":"$jwt_claim_username","user_id":$jwt_claim_user_id}}';
        realtime_presence_event leave '{{"type":"user_status","action":"left","username":"$jwt_claim_username","user_id":$jwt_claim_user_id}}';
    }}
    location = /publish {{
        realtime_publish;
    }}
    location = /small {{
        realtime_publish;
        realtime_presence_max_list 3;
    }}
}}
"""


@pytest.fixture
def ngx(nginx_factory, secret):
    return nginx_factory(snippet(secret[1]), workers=WORKERS)


# --------------------------------------------------------------------------
# helpers


def ws_on(ngx, path, want=None, avoid=(), tries=300):
    """A WebSocket to path whose connection the worker `want` (any when None)
    accepted, and none of `avoid`. Returns (WS, worker pid)."""
    avoid = set(avoid)
    for _ in range(tries):
        sock = wsclient.connect(ngx.port, timeout=10)
        pid = wait_for(lambda: ngx.worker_of(sock), 5, interval=0.005)
        assert pid is not None, "could not find the worker of a connection"
        if (want is None or pid == want) and pid not in avoid:
            key = wsclient.new_key()
            sock.sendall(wsclient.build_request(path, port=ngx.port, key=key))
            resp, rest = wsclient.read_response(sock, 10)
            assert resp.status == 101, (path, resp.status_line, resp.body)
            return WS(sock, rest), pid
        sock.close()
    raise AssertionError(f"no connection landed on {want} avoiding {avoid}")


def handshake_ok(ngx, path):
    resp, ws = wsclient.handshake(ngx.port, path)
    assert resp.status == 101, (path, resp.status_line, resp.body)
    return ws


def next_json(ws, timeout=10):
    return json.loads(next_text(ws, timeout))


def event(ev, group, user, info=None):
    return {"type": "presence", "event": ev, "group": group, "user": user, "info": info}


def presence(ngx, group, path="/publish"):
    resp = http(ngx.port, "GET", f"{path}?presence={group}")
    assert resp.status == 200, resp
    assert resp.headers.get("Content-Type", "").startswith("application/json"), resp.headers
    return resp.json()


def by_user(doc):
    """The users of a presence answer as {user: (info, connections)}; asserts no duplicates."""
    users = {u["user"]: (u["info"], u["connections"]) for u in doc["users"]}
    assert len(users) == len(doc["users"]), doc
    for u in doc["users"]:
        assert set(u) == {"user", "info", "connections"}, u
    return users


def wait_presence(ngx, group, predicate, timeout=10, path="/publish"):
    last = [None]

    def ok():
        last[0] = presence(ngx, group, path)
        return predicate(last[0])
    assert wait_for(ok, timeout), f"presence of {group}: {last[0]}"
    return last[0]


def wait_connections(ngx, group, expected, timeout=10):
    """Waits until ?presence= says exactly expected ({user: connections})."""
    return wait_presence(
        ngx, group,
        lambda d: {u: c for u, (_i, c) in by_user(d).items()} == expected
        and d["count"] == len(expected), timeout)


def no_more(ngx, conns, group):
    """Nothing is pending for conns (all in group): a marker published now
    is the next thing each one gets."""
    expect_nothing_more(ngx.port, conns, group)


def query(ws, group):
    ws.send_text(json.dumps({"type": "presence", "group": group}))
    return next_json(ws)


# --------------------------------------------------------------------------
# join once, leave once


def test_three_tabs_across_workers_join_once_leave_once(ngx):
    obs, opid = ws_on(ngx, "/obs?g=room")
    t1, p1 = ws_on(ngx, "/ws?u=alice&g=room")
    join = event("join", "room", "alice")
    assert next_json(obs) == join
    assert next_json(t1) == join          # the joiner gets its own join
    no_more(ngx, [obs, t1], "room")

    t2, p2 = ws_on(ngx, "/ws?u=alice&g=room", avoid={p1})
    t3, p3 = ws_on(ngx, "/ws?u=alice&g=room", avoid={p1, p2})
    assert len({p1, p2, p3}) == 3
    no_more(ngx, [obs, t1, t2, t3], "room")  # no join for tabs 2 and 3

    doc = presence(ngx, "room")
    assert doc == {"group": "room", "count": 1,
                   "users": [{"user": "alice", "info": None, "connections": 3}]}

    # another user: every tab of alice sees bob's join once
    b, _ = ws_on(ngx, "/ws?u=bob&g=room")
    bjoin = event("join", "room", "bob")
    for ws in (obs, t1, t2, t3, b):
        assert next_json(ws) == bjoin
    no_more(ngx, [obs, t1, t2, t3, b], "room")

    close_ws(t1)
    wait_connections(ngx, "room", {"alice": 2, "bob": 1})
    close_ws(t2)
    wait_connections(ngx, "room", {"alice": 1, "bob": 1})
    no_more(ngx, [obs, t3, b], "room")    # no leave for tabs 1 and 2

    close_ws(t3)
    leave = event("leave", "room", "alice")
    assert next_json(obs) == leave
    assert next_json(b) == leave
    no_more(ngx, [obs, b], "room")
    assert presence(ngx, "room") == {"group": "room", "count": 1,
                                     "users": [{"user": "bob", "info": None,
                                                "connections": 1}]}

    close_ws(b)
    assert next_json(obs) == event("leave", "room", "bob")
    no_more(ngx, [obs], "room")
    assert presence(ngx, "room") == {"group": "room", "count": 0, "users": []}


def test_a_user_in_two_groups_joins_each_once(ngx):
    obs1, _ = ws_on(ngx, "/obs?g=ga")
    obs2, _ = ws_on(ngx, "/obs?g=gb")
    a, pa = ws_on(ngx, "/ws?u=al&g=ga")
    assert next_json(obs1) == event("join", "ga", "al")
    assert next_json(a) == event("join", "ga", "al")
    a2, _ = ws_on(ngx, "/ws?u=al&g=gb", avoid={pa})
    assert next_json(obs2) == event("join", "gb", "al")
    assert next_json(a2) == event("join", "gb", "al")
    no_more(ngx, [obs1, a], "ga")
    no_more(ngx, [obs2, a2], "gb")
    close_ws(a)
    assert next_json(obs1) == event("leave", "ga", "al")
    no_more(ngx, [obs2, a2], "gb")
    assert presence(ngx, "gb")["count"] == 1
    assert presence(ngx, "ga")["count"] == 0


# --------------------------------------------------------------------------
# leave_delay


def test_leave_delay_cancels_a_quick_reconnect_and_delays_the_leave(ngx):
    obs, _ = ws_on(ngx, "/obs?g=lobby")
    a1, p1 = ws_on(ngx, "/delay?u=carol&g=lobby")
    join = event("join", "lobby", "carol")
    assert next_json(obs) == join
    assert next_json(a1) == join
    no_more(ngx, [obs, a1], "lobby")

    # page navigation: closed and back (on another worker) within the delay
    close_ws(a1)
    a2, _ = ws_on(ngx, "/delay?u=carol&g=lobby", avoid={p1})
    time.sleep(1.6)                   # beyond the delay: nothing was pending
    no_more(ngx, [obs, a2], "lobby")
    assert by_user(presence(ngx, "lobby")) == {"carol": (None, 1)}

    # gone for good: the leave comes after about the delay
    a2.send_close(1000)
    assert a2.wait_eof(5)
    closed = time.monotonic()
    a2.close()
    # pending: still listed, with no connection
    doc = presence(ngx, "lobby")
    if time.monotonic() - closed < 0.7:
        assert doc["count"] == 1 and by_user(doc) == {"carol": (None, 0)}, doc
    got = next_json(obs, timeout=5)
    elapsed = time.monotonic() - closed
    assert got == event("leave", "lobby", "carol")
    assert 0.8 <= elapsed <= 3.0, elapsed
    no_more(ngx, [obs], "lobby")
    assert presence(ngx, "lobby") == {"group": "lobby", "count": 0, "users": []}


def test_leave_delay_with_the_worker_of_the_last_tab_gone_idle(ngx):
    """The pending leave is published although nothing else happens on
    any worker (the timer, or the sweep, publishes it)."""
    obs, opid = ws_on(ngx, "/obs?g=idle")
    a, _ = ws_on(ngx, "/delay?u=dan&g=idle", avoid={opid})
    assert next_json(obs) == event("join", "idle", "dan")
    a.abort()                          # an RST, no close frame
    closed = time.monotonic()
    assert next_json(obs, timeout=5) == event("leave", "idle", "dan")
    assert 0.8 <= time.monotonic() - closed <= 3.0
    no_more(ngx, [obs], "idle")


# --------------------------------------------------------------------------
# the list and the count


def jwt_path(secret, sub, name, n, group):
    tok = make_token("HS256", secret, claims(sub=sub, name=name, n=n))
    return f"/jwt?g={group}&token={tok}"


def test_list_and_count_across_workers_with_info(ngx, secret):
    key = secret[0]
    tricky = 'Ann "the" Admin \\ </script>\n'
    obs, _ = ws_on(ngx, "/obs?g=team")
    tabs = []
    seen = set()
    for _ in range(3):
        ws, pid = ws_on(ngx, jwt_path(key, "ann", tricky, 7, "team"), avoid=seen)
        seen.add(pid)
        tabs.append(ws)
    ann_info = {"name": tricky, "n": 7}
    assert next_json(obs) == event("join", "team", "ann", ann_info)
    bob, _ = ws_on(ngx, jwt_path(key, "bob", "Bob", 1.5, "team"))
    bob_info = {"name": "Bob", "n": 1.5}
    assert next_json(obs) == event("join", "team", "bob", bob_info)
    no_more(ngx, [obs], "team")

    expected = {"ann": (ann_info, 3), "bob": (bob_info, 1)}
    doc = presence(ngx, "team")
    assert doc["group"] == "team" and doc["count"] == 2 and "truncated" not in doc, doc
    assert by_user(doc) == expected
    assert set(doc) == {"group", "count", "users"}

    # in-band, from a member on any worker: the same with "type"
    for ws in (tabs[0], tabs[2], bob):
        while not next_text(ws).startswith("marker-"):  # what it got so far
            pass
        doc = query(ws, "team")
        assert doc["type"] == "presence" and doc["group"] == "team" and doc["count"] == 2, doc
        assert set(doc) == {"type", "group", "count", "users"}
        assert by_user(doc) == expected

    # not in the group: not_member; a bad name: invalid_group
    other, _ = ws_on(ngx, jwt_path(key, "eve", "Eve", 0, "elsewhere"))
    assert next_json(other) == event("join", "elsewhere", "eve", {"name": "Eve", "n": 0})
    assert query(other, "team") == {"type": "error", "error": "not_member"}
    assert query(other, "no spaces")["error"] == "invalid_group"
    doc = query(other, "elsewhere")
    assert doc["count"] == 1 and by_user(doc) == {"eve": ({"name": "Eve", "n": 0}, 1)}

    # an empty group, an invalid name at the publish location, and the
    # internal group of a user, which nobody can name
    assert presence(ngx, "nobody") == {"group": "nobody", "count": 0, "users": []}
    for arg in ("bad%20name", "~user:ann", "%7Euser%3Aann", ""):
        resp = http(ngx.port, "GET", f"/publish?presence={arg}")
        wsclient.assert_json_error(resp, 400)
    resp = http(ngx.port, "GET", "/publish?group=~user:ann")
    wsclient.assert_json_error(resp, 400)


def test_info_over_the_limit_is_not_kept(ngx, secret):
    obs, _ = ws_on(ngx, "/obs?g=huge")
    ngx.mark_log()
    ws, _ = ws_on(ngx, jwt_path(secret[0], "huge", "h" * 4200, 1, "huge"))
    assert next_json(obs) == event("join", "huge", "huge", None)
    assert by_user(presence(ngx, "huge")) == {"huge": (None, 1)}
    assert ngx.wait_log(lambda ln: "presence info of" in ln and "over the 4096-byte limit" in ln)
    close_ws(ws)
    assert next_json(obs) == event("leave", "huge", "huge", None)


def test_max_list_truncates_the_list_not_the_count(ngx):
    users = [f"user{i}" for i in range(5)]
    conns = [ws_on(ngx, f"/wsmax?u={u}&g=big5")[0] for u in users]

    doc = presence(ngx, "big5", path="/small")
    assert doc["count"] == 5 and doc["truncated"] is True, doc
    assert len(doc["users"]) == 3
    assert set(by_user(doc)) <= set(users)

    full = presence(ngx, "big5")          # default 1000
    assert full["count"] == 5 and "truncated" not in full
    assert set(by_user(full)) == set(users)

    # in-band: the WebSocket location's realtime_presence_max_list
    ws = conns[-1]
    assert next_json(ws) == event("join", "big5", "user4")  # its own, the last one
    doc = query(ws, "big5")
    assert doc["count"] == 5 and doc["truncated"] is True and len(doc["users"]) == 3, doc

    # exactly max: not truncated
    close_ws(conns[0])
    close_ws(conns[1])
    doc = wait_presence(ngx, "big5", lambda d: d["count"] == 3, path="/small")
    assert len(doc["users"]) == 3 and "truncated" not in doc, doc


def test_count_is_exact_with_three_hundred_users(ngx):
    n = 300
    conns = []
    for i in range(n):
        conns.append(handshake_ok(ngx, f"/ws?u=m{i}&g=crowd"))
    # a second tab for some: still one member each
    extra = [handshake_ok(ngx, f"/ws?u=m{i}&g=crowd") for i in range(0, n, 10)]
    doc = presence(ngx, "crowd")
    assert doc["count"] == n and len(doc["users"]) == n, doc["count"]
    conn_of = {u: c for u, (_i, c) in by_user(doc).items()}
    assert conn_of == {f"m{i}": (2 if i % 10 == 0 else 1) for i in range(n)}

    # a hundred leave abruptly (half of them still have a second tab)
    for i in range(100):
        conns[i].abort()
    gone = {f"m{i}" for i in range(100) if i % 10}
    doc = wait_presence(ngx, "crowd", lambda d: d["count"] == n - len(gone), timeout=15)
    assert set(by_user(doc)) == {f"m{i}" for i in range(n)} - gone
    for ws in extra:
        ws.abort()
    wait_connections(ngx, "crowd", {f"m{i}": 1 for i in range(100, n)}, timeout=15)


def test_a_user_that_is_not_utf8_is_listed_as_its_events_name_it(ngx):
    """realtime_user from raw request bytes: the events repair it (U+FFFD),
    and so do the lists, so that the in-band answer is a valid text frame."""
    sock = wsclient.connect(ngx.port, timeout=10)
    req = wsclient.build_request("/ws?u=USER&g=bytes", port=ngx.port)
    sock.sendall(req.replace(b"u=USER", b"u=ok\xff\xfe"))
    resp, rest = wsclient.read_response(sock, 10)
    assert resp.status == 101, resp
    ws = WS(sock, rest)
    name = "ok\ufffd\ufffd"
    f = ws.recv_data(timeout=10)
    assert f.payload.decode("utf-8") and json.loads(f.payload) == event("join", "bytes", name)
    ws.send_text(json.dumps({"type": "presence", "group": "bytes"}))
    f = ws.recv_data(timeout=10)
    doc = json.loads(f.payload.decode("utf-8"))    # strict: valid UTF-8
    assert by_user(doc) == {name: (None, 1)}, doc
    resp = http(ngx.port, "GET", "/publish?presence=bytes")
    assert by_user(json.loads(resp.body.decode("utf-8"))) == {name: (None, 1)}


# --------------------------------------------------------------------------
# SIGKILL


def test_sigkill_its_users_leave_others_stay(nginx_expecting, secret):
    ngx, allowed = nginx_expecting(snippet(secret[1]), workers=WORKERS)
    obs, opid = ws_on(ngx, "/obs?g=k")
    victim = [p for p in ngx.worker_pids() if p != opid][0]
    a1, _ = ws_on(ngx, "/ws?u=a1&g=k", want=victim)
    a2, _ = ws_on(ngx, "/ws?u=a2&g=k", want=victim)
    a2b, _ = ws_on(ngx, "/ws?u=a2&g=k", want=victim)   # two tabs, both there
    c1, _ = ws_on(ngx, "/ws?u=c&g=k", want=victim)
    c2, _ = ws_on(ngx, "/ws?u=c&g=k", avoid={victim})
    d, _ = ws_on(ngx, "/ws?u=d&g=k", avoid={victim})
    for u in ("a1", "a2", "c", "d"):
        assert next_json(obs) == event("join", "k", u)
    no_more(ngx, [obs], "k")
    for ws in (c2, d):                   # what they got so far, up to the marker
        while not next_text(ws).startswith("marker-"):
            pass
    wait_connections(ngx, "k", {"a1": 1, "a2": 2, "c": 2, "d": 1})

    kill_worker(ngx, victim, allowed)
    for ws in (a1, a2, a2b, c1):
        assert ws.wait_eof(10)
    start = time.monotonic()
    got = [next_json(obs, timeout=10) for _ in range(2)]
    assert time.monotonic() - start < 8
    assert sorted(got, key=lambda e: e["user"]) == [event("leave", "k", "a1"),
                                                    event("leave", "k", "a2")]
    for ws in (c2, d):
        got = [next_json(ws, timeout=10) for _ in range(2)]
        assert sorted(got, key=lambda e: e["user"]) == [event("leave", "k", "a1"),
                                                        event("leave", "k", "a2")]
    no_more(ngx, [obs, c2, d], "k")         # c and d do not leave
    doc = presence(ngx, "k")
    assert doc["count"] == 2 and by_user(doc) == {"c": (None, 1), "d": (None, 1)}, doc

    # the respawned worker serves presence too: a1 comes back there
    before = set(ngx.worker_pids())
    now = wait_for(lambda: (set(ngx.worker_pids()) if len(ngx.worker_pids()) == WORKERS
                            and victim not in ngx.worker_pids() else None), 10)
    assert now, ngx.processes()
    respawned = (now - before) or (now - {opid, ngx.worker_of(c2.sock), ngx.worker_of(d.sock)})
    back, _ = ws_on(ngx, "/ws?u=a1&g=k", want=sorted(respawned)[0])
    assert next_json(obs) == event("join", "k", "a1")
    assert by_user(presence(ngx, "k")) == {"a1": (None, 1), "c": (None, 1), "d": (None, 1)}
    close_ws(back)
    assert next_json(obs) == event("leave", "k", "a1")
    no_more(ngx, [obs], "k")


# --------------------------------------------------------------------------
# the seeds' formats


def test_chat_room_user_events(ngx):
    obs, _ = ws_on(ngx, "/obs?g=chat")
    a, _ = ws_on(ngx, "/chat?u=ann&g=chat")
    joined = {"type": "user_event", "message": "A user joined the room", "event": "user_joined"}
    left = {"type": "user_event", "message": "A user left the room", "event": "user_left"}
    assert next_text(obs) == json.dumps(joined, separators=(",", ":"))
    assert next_json(a) == joined
    b, _ = ws_on(ngx, "/chat?u=ben&g=chat")
    assert next_json(obs) == joined
    assert next_json(a) == joined
    assert next_json(b) == joined
    close_ws(a)
    assert next_json(obs) == left
    assert next_json(b) == left
    no_more(ngx, [obs, b], "chat")


def test_ticket_presence_user_status(ngx, secret):
    key = secret[0]
    obs, _ = ws_on(ngx, "/obs?g=ticket_17")
    tok = make_token("HS256", key, claims(sub="x", user_id=42, username='d"ave'))
    t1, p1 = ws_on(ngx, f"/ticket?t=17&token={tok}")
    t2, _ = ws_on(ngx, f"/ticket?t=17&token={tok}", avoid={p1})
    joined = {"type": "user_status", "action": "joined", "username": 'd"ave', "user_id": 42}
    got = next_json(obs)
    assert got == joined and isinstance(got["user_id"], int), got
    assert next_json(t1) == joined
    no_more(ngx, [obs, t1, t2], "ticket_17")
    doc = presence(ngx, "ticket_17")
    assert by_user(doc) == {"42": (None, 2)}
    close_ws(t1)
    close_ws(t2)
    got = next_json(obs)
    assert got == {"type": "user_status", "action": "left", "username": 'd"ave', "user_id": 42}
    no_more(ngx, [obs], "ticket_17")


# --------------------------------------------------------------------------
# subscribe on the fly


def test_subscribe_on_the_fly_joins_and_unsubscribe_leaves(ngx):
    obs, _ = ws_on(ngx, "/obs?g=room_1")
    a, pa = ws_on(ngx, "/ws?u=amy&g=room_2")
    assert next_json(a) == event("join", "room_2", "amy")

    a.send_text(json.dumps({"type": "subscribe", "group": "room_1"}))
    assert next_json(a) == {"type": "subscribed", "group": "room_1"}
    assert next_json(a) == event("join", "room_1", "amy")
    assert next_json(obs) == event("join", "room_1", "amy")
    no_more(ngx, [obs, a], "room_1")
    assert by_user(presence(ngx, "room_1")) == {"amy": (None, 1)}

    # a second tab subscribing: no event
    a2, _ = ws_on(ngx, "/ws?u=amy", avoid={pa})
    a2.send_text(json.dumps({"type": "subscribe", "group": "room_1"}))
    assert next_json(a2) == {"type": "subscribed", "group": "room_1"}
    no_more(ngx, [obs, a, a2], "room_1")
    assert by_user(presence(ngx, "room_1")) == {"amy": (None, 2)}

    a2.send_text(json.dumps({"type": "unsubscribe", "group": "room_1"}))
    assert next_json(a2) == {"type": "unsubscribed", "group": "room_1"}
    wait_connections(ngx, "room_1", {"amy": 1})
    no_more(ngx, [obs, a], "room_1")

    # the last one: the leave, to the others only
    a.send_text(json.dumps({"type": "unsubscribe", "group": "room_1"}))
    assert next_json(a) == {"type": "unsubscribed", "group": "room_1"}
    assert next_json(obs) == event("leave", "room_1", "amy")
    no_more(ngx, [obs], "room_1")
    no_more(ngx, [a], "room_2")               # the leaver did not get it
    assert presence(ngx, "room_1")["count"] == 0
    assert by_user(presence(ngx, "room_2")) == {"amy": (None, 1)}


# --------------------------------------------------------------------------
# untracked connections


def test_connections_without_a_user_are_not_tracked(ngx):
    conns = [ws_on(ngx, "/anon?g=quiet")[0] for _ in range(3)]
    no_more(ngx, conns, "quiet")
    assert presence(ngx, "quiet") == {"group": "quiet", "count": 0, "users": []}
    # the in-band query works there (presence is on), and says the same
    assert query(conns[0], "quiet") == {"type": "presence", "group": "quiet",
                                        "count": 0, "users": []}
    close_ws(conns[0])
    no_more(ngx, conns[1:], "quiet")
    assert presence(ngx, "quiet")["count"] == 0


# --------------------------------------------------------------------------
# reload


def drain_to_close(ws, timeout=15):
    """Frames until the close frame; returns (texts, close code)."""
    texts = []
    while True:
        try:
            f = ws.recv_data(timeout=timeout)
        except (ConnectionClosed, TimeoutError) as e:
            return texts, repr(e)
        if f.opcode == OP_CLOSE:
            try:
                ws.send_close(f.close_code or 1000)
            except OSError:
                pass
            return texts, f.close_code
        texts.append(f.payload.decode())


def test_reload_without_ghosts(ngx):
    users = ["r0", "r1", "r2", "r3", "r4", "r5"]
    old_conns = []
    for i, u in enumerate(users):
        old_conns.append(handshake_ok(ngx, f"/ws?u={u}&g=rl"))
        old_conns.append(handshake_ok(ngx, f"/delay?u={u}&g=rld"))
    wait_connections(ngx, "rl", {u: 1 for u in users})
    wait_connections(ngx, "rld", {u: 1 for u in users})

    old, new = ngx.reload()
    for ws in old_conns:
        _texts, code = drain_to_close(ws)
        assert code == 1012, code
        assert ws.wait_eof(5)
        ws.close()
    # the old workers let them go: nobody is left in rl (rld: pending)
    wait_connections(ngx, "rl", {})

    obs = handshake_ok(ngx, "/obs?g=rl")
    # back on the new workers: r0..r3 return, r4 and r5 do not
    back = []
    for u in users[:4]:
        back.append(handshake_ok(ngx, f"/ws?u={u}&g=rl"))
        assert next_json(obs) == event("join", "rl", u)
        back.append(handshake_ok(ngx, f"/delay?u={u}&g=rld"))
    no_more(ngx, [obs], "rl")
    assert wait_for(lambda: not any(pid_alive(p) for p in old), 15), ngx.processes()
    wait_connections(ngx, "rl", {u: 1 for u in users[:4]})
    # leave_delay: the ones that did not return leave once the delay is over
    wait_connections(ngx, "rld", {u: 1 for u in users[:4]})
    time.sleep(1.5)
    assert by_user(presence(ngx, "rld")) == {u: (None, 1) for u in users[:4]}
    assert by_user(presence(ngx, "rl")) == {u: (None, 1) for u in users[:4]}

    # events after the reload are right: one leave, one join
    for ws in back:
        ws.abort()
    leaves = [next_json(obs) for _ in users[:4]]
    assert sorted(leaves, key=lambda e: e["user"]) == [event("leave", "rl", u)
                                                       for u in users[:4]]
    no_more(ngx, [obs], "rl")
    wait_connections(ngx, "rl", {})
    newcomer = handshake_ok(ngx, "/ws?u=r9&g=rl")
    assert next_json(obs) == event("join", "rl", "r9")
    assert next_json(newcomer) == event("join", "rl", "r9")
    assert by_user(presence(ngx, "rl")) == {"r9": (None, 1)}
    wait_connections(ngx, "rld", {})
