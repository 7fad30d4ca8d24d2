"""Server-side actions by user (POST {"action": ...} to the publish
location) against a real nginx with 4 workers: subscribe, unsubscribe and
disconnect reach every connection of the user on every worker and nobody
else, the answer counts them, invalid actions are refused with 400, and on
a presence location a subscribe action joins presence.

Each user's connections are put on distinct workers by probing a raw TCP
connection first (ws_on): a probe that lands elsewhere is closed before it
sends a request. A connection proves it got nothing else by answering an
app ping: {"type":"pong"} must be the next frame (synchronous within its
worker, so a frame queued before it would come first)."""

import json

import pytest

import wsclient
from groups_util import count, expect_nothing_more, http, next_text, publish
from jwt_util import claims, make_token, new_secret_file
from nginx_harness import wait_for
from wsclient import OP_CLOSE, WS, assert_json_error

WORKERS = 4


@pytest.fixture(scope="module")
def secret(tmp_path_factory):
    return new_secret_file(tmp_path_factory.mktemp("actions"))


def snippet(secret_file):
    return f"""
realtime_zone rt 16m;
server {{
    listen {{port}};
    realtime_ping_interval 0;

    location = /ws {{
        realtime_websocket;
        realtime_user $arg_u;
        realtime_subscribe $arg_g;
    }}
    location = /pws {{
        realtime_websocket;
        realtime_user $arg_u;
        realtime_subscribe $arg_g;
        realtime_presence on;
    }}
    location = /anon {{
        realtime_websocket;
        realtime_subscribe $arg_g;
    }}
    location = /jwt {{
        realtime_websocket;
        realtime_auth_jwt $arg_token;
        realtime_auth_jwt_key_file {secret_file};
        realtime_subscribe $arg_g;
    }}
    location = /publish {{
        realtime_publish;
    }}
}}
"""


@pytest.fixture
def ngx(nginx_factory, secret):
    return nginx_factory(snippet(secret[1]), workers=WORKERS)


# --------------------------------------------------------------------------
# helpers


def ws_on(ngx, path, avoid=(), tries=300):
    """A WebSocket to path accepted by a worker not in avoid: (WS, pid)."""
    avoid = set(avoid)
    for _ in range(tries):
        sock = wsclient.connect(ngx.port, timeout=10)
        pid = wait_for(lambda: ngx.worker_of(sock), 5, interval=0.005)
        assert pid is not None, "could not find the worker of a connection"
        if pid not in avoid:
            key = wsclient.new_key()
            sock.sendall(wsclient.build_request(path, port=ngx.port, key=key))
            resp, rest = wsclient.read_response(sock, 10)
            assert resp.status == 101, (path, resp.status_line, resp.body)
            return WS(sock, rest), pid
        sock.close()
    raise AssertionError(f"no connection avoiding {avoid}")


def spread(ngx, path, n):
    """n connections to path on n distinct workers."""
    conns, pids = [], set()
    for _ in range(n):
        ws, pid = ws_on(ngx, path, avoid=pids)
        conns.append(ws)
        pids.add(pid)
    return conns


def next_json(ws, timeout=10):
    return json.loads(next_text(ws, timeout))


def quiet(ws):
    """Nothing is pending for ws: an app ping's pong is the next frame."""
    ws.send_text('{"type":"ping","q":1}')
    got = next_json(ws)
    assert got == {"type": "pong", "q": 1}, f"expected nothing before the pong, got {got}"


def action(ngx, body, expect=200):
    resp = publish(ngx.port, body, expect=None)
    if expect == 200:
        assert resp.status == 200, resp
        assert resp.headers.get("Content-Type", "").startswith("application/json")
        return resp.json()
    return assert_json_error(resp, expect)


def presence(ngx, group):
    resp = http(ngx.port, "GET", f"/publish?presence={group}")
    assert resp.status == 200, resp
    return resp.json()


# --------------------------------------------------------------------------
# subscribe, unsubscribe


def test_subscribe_and_unsubscribe_every_connection_of_a_user(ngx):
    alice = spread(ngx, "/ws?u=alice&g=home", 3)
    bob = spread(ngx, "/ws?u=bob&g=home", 2)
    other = ws_on(ngx, "/anon?g=home")[0]
    alike = ws_on(ngx, "/ws?u=alice2&g=home")[0]   # a name that starts alike

    r = action(ngx, {"action": "subscribe", "user": "alice", "group": "g"})
    assert r == {"action": "subscribe", "user": "alice", "connections": 3}
    for ws in alice:
        assert next_json(ws) == {"type": "subscribed", "group": "g"}
    for ws in bob + [other, alike]:
        quiet(ws)
    assert count(ngx.port, "g") == 3

    r = publish(ngx.port, {"group": "g", "data": "to g"}).json()
    assert r == {"messages": 1, "subscribers": 3}
    for ws in alice:
        assert next_text(ws) == "to g"
    expect_nothing_more(ngx.port, alice + bob + [other, alike], "home")

    # again: already members, confirmed again, still one membership each
    r = action(ngx, {"action": "subscribe", "user": "alice", "group": "g"})
    assert r["connections"] == 3
    for ws in alice:
        assert next_json(ws) == {"type": "subscribed", "group": "g"}
    assert count(ngx.port, "g") == 3
    expect_nothing_more(ngx.port, alice, "g")

    r = action(ngx, {"action": "unsubscribe", "user": "alice", "group": "g"})
    assert r == {"action": "unsubscribe", "user": "alice", "connections": 3}
    for ws in alice:
        assert next_json(ws) == {"type": "unsubscribed", "group": "g"}
    assert count(ngx.port, "g") == 0
    assert publish(ngx.port, {"group": "g", "data": "gone"}).json()["subscribers"] == 0
    for ws in alice + bob + [alike]:
        quiet(ws)

    # not a member: counted, nothing said
    r = action(ngx, {"action": "unsubscribe", "user": "alice", "group": "g"})
    assert r["connections"] == 3
    for ws in alice:
        quiet(ws)

    # unsubscribing from a group of the handshake works the same way
    r = action(ngx, {"action": "unsubscribe", "user": "bob", "group": "home"})
    assert r == {"action": "unsubscribe", "user": "bob", "connections": 2}
    for ws in bob:
        assert next_json(ws) == {"type": "unsubscribed", "group": "home"}
    assert count(ngx.port, "home") == 5
    expect_nothing_more(ngx.port, alice + [other, alike], "home")
    for ws in bob:
        quiet(ws)


def test_a_user_with_only_some_members(ngx):
    """Only the connections that were members are told "unsubscribed"."""
    a_in = ws_on(ngx, "/ws?u=carol&g=club")[0]
    a_out = ws_on(ngx, "/ws?u=carol")[0]
    r = action(ngx, {"action": "unsubscribe", "user": "carol", "group": "club"})
    assert r["connections"] == 2
    assert next_json(a_in) == {"type": "unsubscribed", "group": "club"}
    quiet(a_out)
    quiet(a_in)


def test_user_without_connections(ngx):
    ws_on(ngx, "/ws?u=somebody&g=x")
    for act in ({"action": "subscribe", "user": "nobody", "group": "g"},
                {"action": "unsubscribe", "user": "nobody", "group": "g"},
                {"action": "disconnect", "user": "nobody"}):
        r = action(ngx, act)
        assert r == {"action": act["action"], "user": "nobody", "connections": 0}, r


def test_connections_without_a_user_are_not_reached(ngx):
    anon = [ws_on(ngx, "/anon?g=a")[0] for _ in range(2)]
    for user in ("~user:", "*", "anonymous"):
        r = action(ngx, {"action": "subscribe", "user": user, "group": "g"})
        assert r["connections"] == 0, r
    for ws in anon:
        quiet(ws)
    assert count(ngx.port, "g") == 0


# --------------------------------------------------------------------------
# disconnect


def expect_close(ws, code, reason):
    while True:
        f = ws.recv_data(timeout=10)
        if f.opcode == OP_CLOSE:
            break
        raise AssertionError(f"expected a close frame, got {f!r}")
    assert f.close_code == code and f.close_reason == reason, f
    ws.send_close(code)
    assert ws.wait_eof(5)


def test_disconnect_closes_every_connection_of_the_user(ngx):
    alice = spread(ngx, "/ws?u=alice&g=room", 3)
    bob = spread(ngx, "/ws?u=bob&g=room", 2)
    assert count(ngx.port, "room") == 5

    reason = "banned: spam (débâcle)"
    r = action(ngx, {"action": "disconnect", "user": "alice", "code": 4001, "reason": reason})
    assert r == {"action": "disconnect", "user": "alice", "connections": 3}
    for ws in alice:
        expect_close(ws, 4001, reason.encode())
    for ws in bob:
        assert ws.is_open()
    r = publish(ngx.port, {"group": "room", "data": "still here"}).json()
    assert r["subscribers"] == 2
    for ws in bob:
        assert next_text(ws) == "still here"

    # gone: the next action finds nobody
    assert action(ngx, {"action": "disconnect", "user": "alice"})["connections"] == 0

    # the defaults: 1000, no reason
    r = action(ngx, {"action": "disconnect", "user": "bob"})
    assert r == {"action": "disconnect", "user": "bob", "connections": 2}
    for ws in bob:
        expect_close(ws, 1000, b"")
    assert count(ngx.port, "room") == 0


def test_disconnect_with_the_longest_reason_and_code_1000(ngx):
    ws = ws_on(ngx, "/ws?u=dave")[0]
    reason = "r" * 123
    r = action(ngx, {"action": "disconnect", "user": "dave", "code": 1000, "reason": reason})
    assert r["connections"] == 1
    expect_close(ws, 1000, reason.encode())


def test_many_connections_of_one_user(ngx):
    conns = [wsclient.handshake(ngx.port, "/ws?u=many")[1] for _ in range(60)]
    assert all(conns)
    r = action(ngx, {"action": "subscribe", "user": "many", "group": "m"})
    assert r["connections"] == 60
    for ws in conns:
        assert next_json(ws) == {"type": "subscribed", "group": "m"}
    assert count(ngx.port, "m") == 60
    r = action(ngx, {"action": "disconnect", "user": "many", "code": 4999})
    assert r["connections"] == 60
    for ws in conns:
        expect_close(ws, 4999, b"")
    assert count(ngx.port, "m") == 0


# --------------------------------------------------------------------------
# users from tokens


def test_users_with_any_characters(ngx, secret):
    key = secret[0]
    names = ['a"b\\c', "ünï cødé/1", "x" * 200]
    conns = {}
    for name in names:
        tok = make_token("HS256", key, claims(sub=name))
        conns[name] = spread(ngx, f"/jwt?token={tok}", 2)
    for name in names:
        r = action(ngx, {"action": "subscribe", "user": name, "group": "tok"})
        assert r == {"action": "subscribe", "user": name, "connections": 2}, r
        for ws in conns[name]:
            assert next_json(ws) == {"type": "subscribed", "group": "tok"}
        for other in names:
            if other != name:
                for ws in conns[other]:
                    quiet(ws)
    assert count(ngx.port, "tok") == 6
    r = action(ngx, {"action": "disconnect", "user": names[1], "code": 4002, "reason": "x"})
    assert r["connections"] == 2
    for ws in conns[names[1]]:
        expect_close(ws, 4002, b"x")
    assert count(ngx.port, "tok") == 4


# --------------------------------------------------------------------------
# invalid actions


@pytest.mark.parametrize("body", [
    {"action": "disconnect", "user": "alice", "code": 1234},
    {"action": "disconnect", "user": "alice", "code": 1001},
    {"action": "disconnect", "user": "alice", "code": 3999},
    {"action": "disconnect", "user": "alice", "code": 5000},
    {"action": "disconnect", "user": "alice", "code": "4001"},
    {"action": "disconnect", "user": "alice", "code": 4001.5},
    {"action": "disconnect", "user": "alice", "reason": 5},
    {"action": "disconnect", "user": "alice", "reason": "r" * 124},
    {"action": "disconnect"},
    {"action": "disconnect", "user": ""},
    {"action": "disconnect", "user": 7},
    {"action": "disconnect", "user": "u" * 201},
    {"action": "kick", "user": "alice"},
    {"action": 1, "user": "alice"},
    {"action": "subscribe", "user": "alice"},
    {"action": "subscribe", "user": "alice", "group": "bad group"},
    {"action": "subscribe", "user": "alice", "group": "~user:bob"},
    {"action": "subscribe", "user": "alice", "group": ""},
    {"action": "unsubscribe", "user": "alice", "group": "g" * 101},
    {"action": "unsubscribe", "user": "alice", "group": ["g"]},
], ids=lambda b: json.dumps(b)[:60])
def test_invalid_actions_are_400(ngx, body):
    alice = ws_on(ngx, "/ws?u=alice&g=g")[0]
    action(ngx, body, expect=400)
    quiet(alice)
    assert count(ngx.port, "g") == 1


def test_a_publish_that_mentions_action_is_a_publish(ngx):
    ws = ws_on(ngx, "/ws?u=alice&g=news")[0]
    r = publish(ngx.port, {"group": "news", "data": {"action": "disconnect", "user": "alice"}})
    assert r.json() == {"messages": 1, "subscribers": 1}
    assert next_json(ws) == {"action": "disconnect", "user": "alice"}
    r = publish(ngx.port, [{"group": "news", "data": "action"}])
    assert r.json()["messages"] == 1
    assert next_text(ws) == "action"
    quiet(ws)


# --------------------------------------------------------------------------
# presence


def pev(ev, group, user):
    return {"type": "presence", "event": ev, "group": group, "user": user, "info": None}


def test_subscribe_action_joins_presence(ngx):
    obs = ws_on(ngx, "/anon?g=pg")[0]
    tabs = spread(ngx, "/pws?u=erin", 2)
    plain = ws_on(ngx, "/ws?u=erin")[0]      # no presence at that location

    r = action(ngx, {"action": "subscribe", "user": "erin", "group": "pg"})
    assert r["connections"] == 3
    assert next_json(obs) == pev("join", "pg", "erin")
    for ws in tabs + [plain]:
        assert next_json(ws) == {"type": "subscribed", "group": "pg"}
    # the join reached the ones that were members by then, once
    publish(ngx.port, {"group": "pg", "data": "mark"})
    joins = 0
    for ws in tabs + [plain]:
        got = []
        while (t := next_text(ws)) != "mark":
            got.append(json.loads(t))
        assert got in ([], [pev("join", "pg", "erin")]), got
        joins += len(got)
    assert joins >= 1      # the first tab to join at least
    assert next_text(obs) == "mark"
    expect_nothing_more(ngx.port, [obs] + tabs + [plain], "pg")
    doc = presence(ngx, "pg")
    assert doc == {"group": "pg", "count": 1,
                   "users": [{"user": "erin", "info": None, "connections": 2}]}

    r = action(ngx, {"action": "unsubscribe", "user": "erin", "group": "pg"})
    assert r["connections"] == 3
    assert next_json(obs) == pev("leave", "pg", "erin")
    expect_nothing_more(ngx.port, [obs], "pg")
    for ws in tabs + [plain]:
        assert next_json(ws) == {"type": "unsubscribed", "group": "pg"}
        quiet(ws)
    assert presence(ngx, "pg") == {"group": "pg", "count": 0, "users": []}

    # disconnect: the leave, once
    r = action(ngx, {"action": "subscribe", "user": "erin", "group": "pg"})
    assert next_json(obs) == pev("join", "pg", "erin")
    r = action(ngx, {"action": "disconnect", "user": "erin", "code": 4003})
    assert r["connections"] == 3
    assert next_json(obs) == pev("leave", "pg", "erin")
    expect_nothing_more(ngx.port, [obs], "pg")
    assert presence(ngx, "pg")["count"] == 0
