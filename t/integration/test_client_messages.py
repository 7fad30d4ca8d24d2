"""Client messages (issue 9): what a connection's own frames do.

realtime_client_publish broadcasts a client's JSON objects to groups with
server-stamped fields (a sender no client can forge), echo=off, types=,
max_size=; realtime_client_rate; the module's own in-band messages (app
ping, subscribe/unsubscribe under realtime_allow_subscribe) and the
reserved types no client may broadcast; the realtime_welcome greeting; the
errors a client gets for frames nothing handles; and the configuration
errors nginx -t reports for these directives.

Identities come from HS256 JWTs (realtime_user defaults to the "sub"
claim). The chat tests run 4 workers and put the two users on different
workers, so every broadcast crosses the shared-memory zone."""

import json
import time

import pytest

from groups_util import (close_ws, count, expect_nothing_more, nginx_test_config, next_text,
                         publish, spread_subscribers, wait_count)
from jwt_util import claims, make_token, new_secret_file
from wsclient import OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, encode_frame, handshake

WORKERS = 4


@pytest.fixture(scope="module")
def secret(tmp_path_factory):
    return new_secret_file(tmp_path_factory.mktemp("clientmsg"))


CONF = r"""
realtime_zone rt 8m;

server {
    listen {port};
    realtime_ping_interval 0;
    realtime_auth_jwt $arg_token;
    realtime_auth_jwt_key_file @SECRET@;

    location = /publish {
        realtime_publish;
    }

    # the chat room: default stamp (sender = realtime_user), echo on
    location = /chat {
        realtime_websocket;
        realtime_subscribe room_$arg_room;
        realtime_client_publish room_$arg_room;
    }

    # the seeds' chat format, by configuration alone
    location = /seed {
        realtime_websocket;
        realtime_subscribe chat_$arg_room;
        realtime_client_publish chat_$arg_room;
        realtime_client_stamp type chat_message;
        realtime_client_stamp sender $realtime_user;
    }

    # a number stamped from a claim
    location = /stamped {
        realtime_websocket;
        realtime_subscribe stamped_$arg_room;
        realtime_client_publish stamped_$arg_room;
        realtime_client_stamp user_id $jwt_claim_user_id as=json;
    }

    # publish-only: not a member of the group it writes to
    location = /pubonly {
        realtime_websocket;
        realtime_client_publish plain_$arg_to;
    }

    location = /multi {
        realtime_websocket;
        realtime_subscribe multi_a multi_b;
        realtime_client_publish multi_a multi_b multi_a;
    }

    location = /quiet {
        realtime_websocket;
        realtime_subscribe quiet_$arg_room;
        realtime_client_publish quiet_$arg_room echo=off;
    }

    # typing / viewing indicators only
    location = /ticket {
        realtime_websocket;
        realtime_subscribe ticket_$arg_t;
        realtime_client_publish ticket_$arg_t types=user_typing,ticket_viewing;
    }

    location = /small {
        realtime_websocket;
        realtime_subscribe small_$arg_room;
        realtime_client_publish small_$arg_room max_size=100;
    }

    location = /big {
        realtime_websocket;
        realtime_subscribe big_$arg_room;
        realtime_client_publish big_$arg_room max_size=32k;
    }

    location = /rated {
        realtime_websocket;
        realtime_subscribe rated_$arg_room;
        realtime_client_publish rated_$arg_room echo=off;
        realtime_client_rate 5 r/s burst=2;
    }

    location = /noping {
        realtime_websocket;
        realtime_subscribe noping_$arg_room;
        realtime_client_publish noping_$arg_room;
        realtime_app_ping off;
    }

    location = /noping-plain {
        realtime_websocket;
        realtime_app_ping off;
    }

    # nothing handles a client's messages here
    location = /plain {
        realtime_websocket;
        realtime_subscribe plain_$arg_room;
    }

    location = /anon {
        realtime_websocket;
        realtime_auth_jwt off;
        realtime_subscribe anon_room;
        realtime_client_publish anon_room;
    }

    location = /welcome {
        realtime_websocket;
        realtime_subscribe welcome_room;
        realtime_presence on;
        realtime_welcome '{"type":"connection_established","user_id":$jwt_claim_user_id,"name":"$jwt_claim_name"}';
    }

    # subscribe on the fly
    location = /proj {
        realtime_websocket;
        realtime_subscribe static_$jwt_claim_sub;
        realtime_allow_subscribe project_${jwt_claim_project_id}_* lobby;
    }

    location = /rooms {
        realtime_websocket;
        realtime_allow_subscribe $jwt_claim_rooms;
    }
}
"""


@pytest.fixture
def ngx(nginx_factory, secret):
    return nginx_factory(CONF.replace("@SECRET@", str(secret[1])), workers=WORKERS)


def token(secret, sub, **extra):
    return make_token("HS256", secret[0], claims(sub=sub, **extra))


def connect(ngx, secret, path, sub="alice", query="", **claim):
    """A connection of user sub (a JWT with claim) to path?query."""
    sep = "&" if query else ""
    resp, ws = handshake(ngx.port, f"{path}?{query}{sep}token={token(secret, sub, **claim)}")
    assert resp.status == 101, (path, resp.status_line, resp.body)
    return ws


def connect_elsewhere(ngx, connect_one, avoid):
    """A connection (connect_one() -> WS) on a worker that holds none of the
    connections in avoid. Connections that land on a worker in use are
    closed (and have left their groups) before the next try."""
    used = {ngx.worker_of(w.sock) for w in avoid}
    for _ in range(200):
        ws = connect_one()
        if ngx.worker_of(ws.sock) not in used:
            return ws
        close_ws(ws)
    raise AssertionError(f"no connection reached a worker other than {used}")


def recv_json(ws):
    return json.loads(next_text(ws))


def expect_text(ws, text):
    got = next_text(ws)
    assert got == text, f"expected {text[:300]!r}, got {got[:300]!r}"


def error(code, group=None):
    e = {"type": "error", "error": code}
    if group is not None:
        e["group"] = group
    return json.dumps(e, separators=(",", ":"))


def pong_roundtrip(ws, ts):
    """Proves the connection is open and that no frame is queued before the
    answer to a ping sent now (replies go out in order)."""
    ws.send_text(json.dumps({"type": "ping", "ts": ts}))
    expect_text(ws, '{"type":"pong","ts":%d}' % ts)


def expect_close_code(ws, code, timeout=5):
    """The next frame (server pings skipped) must be a close with code;
    returns it."""
    while True:
        f = ws.recv_data(timeout=timeout)
        if f.opcode == OP_PING:
            continue
        assert f.opcode == OP_CLOSE, f"expected close {code}, got {f!r}"
        assert f.close_code == code, f
        return f


# --------------------------------------------------------------------------
# the chat room


def test_chat_across_workers_stamps_sender(ngx, secret):
    alice = connect(ngx, secret, "/chat", "alice", "room=1")
    bob = connect_elsewhere(ngx, lambda: connect(ngx, secret, "/chat", "bob", "room=1"), [alice])
    assert ngx.worker_of(alice.sock) != ngx.worker_of(bob.sock)
    assert count(ngx.port, "room_1") == 2

    alice.send_text('{"message":"hi"}')
    # echo is on by default: the sender gets it too, with the same stamp
    for ws in (bob, alice):
        expect_text(ws, '{"message":"hi","sender":"alice"}')

    # a forged sender is replaced in place (key order kept)
    bob.send_text('{"sender":"alice","message":"it was me","n":[1,{"a":null}]}')
    for ws in (alice, bob):
        expect_text(ws, '{"sender":"bob","message":"it was me","n":[1,{"a":null}]}')

    # non-ASCII and escapes survive the round trip
    alice.send_text(json.dumps({"message": "caf\u00e9 \"q\" \\ \n"}, ensure_ascii=False))
    for ws in (bob, alice):
        assert recv_json(ws) == {"message": "caf\u00e9 \"q\" \\ \n", "sender": "alice"}

    # a fragmented message is one message
    alice.send_frame(OP_TEXT, b'{"mess', fin=False)
    alice.send_ping(b"in between")
    alice.send_frame(OP_CONT, b'age":', fin=False)
    alice.send_frame(OP_CONT, b'"frag"}', fin=True)
    alice.expect_message(OP_PONG, b"in between")
    for ws in (bob, alice):
        expect_text(ws, '{"message":"frag","sender":"alice"}')

    # nothing else was delivered, to anyone
    expect_nothing_more(ngx.port, [alice, bob], "room_1")


def test_seed_chat_format_by_configuration(ngx, secret):
    alice = connect(ngx, secret, "/seed", "alice", "room=lobby")
    bob = connect_elsewhere(ngx, lambda: connect(ngx, secret, "/seed", "bob", "room=lobby"),
                            [alice])

    alice.send_text('{"message":"hi"}')
    for ws in (bob, alice):
        text = next_text(ws)
        assert json.loads(text) == {"message": "hi", "type": "chat_message", "sender": "alice"}
        assert text == '{"message":"hi","type":"chat_message","sender":"alice"}'

    # neither "sender" nor "type" can be forged
    bob.send_text('{"type":"admin_notice","message":"hi","sender":"alice"}')
    for ws in (alice, bob):
        assert recv_json(ws) == {"message": "hi", "type": "chat_message", "sender": "bob"}
    expect_nothing_more(ngx.port, [alice, bob], "chat_lobby")


def test_stamp_as_json_gives_a_number(ngx, secret):
    alice = connect(ngx, secret, "/stamped", "alice", "room=1", user_id=42)
    bob = connect_elsewhere(
        ngx, lambda: connect(ngx, secret, "/stamped", "bob", "room=1", user_id=7), [alice])

    alice.send_text('{"message":"hi","user_id":7}')
    for ws in (bob, alice):
        text = next_text(ws)
        assert text == '{"message":"hi","user_id":42,"sender":"alice"}'
        assert isinstance(json.loads(text)["user_id"], int)

    # a claim that is a string stays a string, an object an object, and a
    # missing one is null
    carol = connect(ngx, secret, "/stamped", "carol", "room=1", user_id="u-9")
    carol.send_text('{"m":1}')
    for ws in (alice, bob, carol):
        assert recv_json(ws) == {"m": 1, "user_id": "u-9", "sender": "carol"}
    dan = connect(ngx, secret, "/stamped", "dan", "room=1", user_id={"org": 1, "id": [2]})
    dan.send_text('{"m":2}')
    for ws in (alice, bob, carol, dan):
        assert recv_json(ws) == {"m": 2, "user_id": {"org": 1, "id": [2]}, "sender": "dan"}
    eve = connect(ngx, secret, "/stamped", "eve", "room=1")
    eve.send_text('{"m":3,"user_id":1}')
    for ws in (alice, bob, carol, dan, eve):
        text = next_text(ws)
        assert text == '{"m":3,"user_id":null,"sender":"eve"}'
    expect_nothing_more(ngx.port, [alice, bob, carol, dan, eve], "stamped_1")


def test_stamped_user_is_json_escaped(ngx, secret):
    user = 'o"brien\\ \u00e9'
    a = connect(ngx, secret, "/seed", user, "room=esc")
    a.send_text('{"message":"x"}')
    text = next_text(a)
    assert json.loads(text) == {"message": "x", "type": "chat_message", "sender": user}, text


def test_publish_only_and_several_groups(ngx, secret):
    sub = connect(ngx, secret, "/plain", "bob", "room=out")
    pub = connect_elsewhere(ngx, lambda: connect(ngx, secret, "/pubonly", "alice", "to=out"),
                            [sub])
    pub.send_text('{"m":1}')
    expect_text(sub, '{"m":1,"sender":"alice"}')
    # the publisher is not a member: it gets nothing back
    pong_roundtrip(pub, 9)
    expect_nothing_more(ngx.port, [sub], "plain_out")

    # an invalid name from the variable refuses the handshake
    resp, ws = handshake(ngx.port, f"/pubonly?to=a%20b&token={token(secret, 'alice')}")
    assert ws is None and resp.status == 400, resp

    # a connection in two of the groups gets one copy (and a group named twice is one)
    m1 = connect(ngx, secret, "/multi", "alice")
    m2 = connect_elsewhere(ngx, lambda: connect(ngx, secret, "/multi", "bob"), [m1])
    m1.send_text('{"m":"once"}')
    for ws in (m2, m1):
        expect_text(ws, '{"m":"once","sender":"alice"}')
    expect_nothing_more(ngx.port, [m1, m2], "multi_b")


def test_connection_without_user_is_stamped_null(ngx, secret):
    a = subscribe_plain(ngx, "/anon")
    a.send_text('{"message":"hi","sender":"root"}')
    expect_text(a, '{"message":"hi","sender":null}')
    # no JWT here: "refresh" is not handled, and reserved all the same
    a.send_text('{"type":"refresh","token":"x"}')
    expect_text(a, error("reserved_type"))
    expect_nothing_more(ngx.port, [a], "anon_room")


def subscribe_plain(ngx, path):
    resp, ws = handshake(ngx.port, path)
    assert resp.status == 101, resp
    return ws


def test_echo_off_skips_only_the_sending_connection(ngx, secret):
    tab1 = connect(ngx, secret, "/quiet", "alice", "room=1")
    tab2 = connect_elsewhere(ngx, lambda: connect(ngx, secret, "/quiet", "alice", "room=1"),
                             [tab1])
    bob = connect_elsewhere(ngx, lambda: connect(ngx, secret, "/quiet", "bob", "room=1"),
                            [tab1, tab2])

    tab1.send_text('{"message":"from tab 1"}')
    for ws in (tab2, bob):
        expect_text(ws, '{"message":"from tab 1","sender":"alice"}')
    # tab 1 did not get its own message: the marker comes first
    expect_nothing_more(ngx.port, [tab1, tab2, bob], "quiet_1")

    bob.send_text('{"message":"from bob"}')
    for ws in (tab1, tab2):
        expect_text(ws, '{"message":"from bob","sender":"bob"}')
    expect_nothing_more(ngx.port, [tab1, tab2, bob], "quiet_1")


# --------------------------------------------------------------------------
# types= and reserved types


def test_types_restrict_what_is_broadcast(ngx, secret):
    alice = connect(ngx, secret, "/ticket", "alice", "t=9")
    bob = connect_elsewhere(ngx, lambda: connect(ngx, secret, "/ticket", "bob", "t=9"), [alice])

    alice.send_text('{"type":"user_typing","typing":true}')
    for ws in (bob, alice):
        expect_text(ws, '{"type":"user_typing","typing":true,"sender":"alice"}')
    bob.send_text('{"type":"ticket_viewing"}')
    for ws in (alice, bob):
        expect_text(ws, '{"type":"ticket_viewing","sender":"bob"}')

    refused = [
        ('{"type":"chat_message","message":"x"}', "type_not_allowed"),
        ('{"message":"no type"}', "type_not_allowed"),
        ('{"type":42}', "type_not_allowed"),
        ('{"type":"user_typingX"}', "type_not_allowed"),
        ('{"type":"pong","ts":1}', "reserved_type"),
        ('{"type":"error","error":"fake"}', "reserved_type"),
        ('{"type":"presence","group":"ticket_9"}', "reserved_type"),   # presence is off
        ('{"type":"subscribe","group":"ticket_9"}', "reserved_type"),  # nothing allowed
        ('{"type":"subscribed","group":"ticket_9"}', "reserved_type"),
        ('{"type":"unsubscribed","group":"ticket_9"}', "reserved_type"),
    ]
    for text, code in refused:
        alice.send_text(text)
        expect_text(alice, error(code))
    # none of them reached the room
    expect_nothing_more(ngx.port, [alice, bob], "ticket_9")
    assert alice.is_open() and bob.is_open()


def test_reserved_types_are_never_broadcast(ngx, secret):
    alice = connect(ngx, secret, "/chat", "alice", "room=r")
    bob = connect_elsewhere(ngx, lambda: connect(ngx, secret, "/chat", "bob", "room=r"), [alice])
    for t in ("pong", "error", "presence", "subscribe", "subscribed", "unsubscribe",
              "unsubscribed"):
        alice.send_text(json.dumps({"type": t, "group": "room_r", "message": "x"}))
        expect_text(alice, error("reserved_type"))
    expect_nothing_more(ngx.port, [alice, bob], "room_r")


# --------------------------------------------------------------------------
# malformed frames


def test_malformed_frames_get_an_error_and_keep_the_connection(ngx, secret):
    alice = connect(ngx, secret, "/small", "alice", "room=1")
    bob = connect_elsewhere(ngx, lambda: connect(ngx, secret, "/small", "bob", "room=1"), [alice])

    cases = [
        ("hello", "not_json"),
        ("{", "not_json"),
        ('{"a":1} trailing', "not_json"),
        ("[" * 90, "not_json"),
        ("", "not_json"),
        ("[1,2]", "not_object"),
        ('"a string"', "not_object"),
        ("42", "not_object"),
        ("null", "not_object"),
        ('{"message":"' + "x" * 90 + '"}', "too_large"),  # 105 bytes > max_size=100
    ]
    for text, code in cases:
        alice.send_text(text)
        expect_text(alice, error(code))
    alice.send_binary(b'{"message":"binary"}')
    expect_text(alice, error("not_json"))
    # the module's own types are not looked for in binary frames either
    alice.send_binary(b'{"type":"ping"}')
    expect_text(alice, error("not_json"))

    # exactly max_size is accepted
    ok = '{"message":"' + "y" * 86 + '"}'
    assert len(ok) == 100
    alice.send_text(ok)
    for ws in (bob, alice):
        assert recv_json(ws) == {"message": "y" * 86, "sender": "alice"}

    # the connection still gets broadcasts, from the API and from clients
    publish(ngx.port, {"group": "small_1", "data": {"n": 1}})
    for ws in (alice, bob):
        assert recv_json(ws) == {"n": 1}
    bob.send_text('{"m":2}')
    for ws in (alice, bob):
        expect_text(ws, '{"m":2,"sender":"bob"}')
    expect_nothing_more(ngx.port, [alice, bob], "small_1")


def test_max_size_above_the_default(ngx, secret):
    alice = connect(ngx, secret, "/big", "alice", "room=1")
    bob = connect_elsewhere(ngx, lambda: connect(ngx, secret, "/big", "bob", "room=1"), [alice])
    body = "z" * (32 * 1024 - 20)
    text = '{"message":"%s"}' % body
    assert 16 * 1024 < len(text) <= 32 * 1024
    alice.send_text(text)
    for ws in (bob, alice):
        expect_text(ws, '{"message":"%s","sender":"alice"}' % body)
    alice.send_text('{"message":"%s"}' % (body + "z" * 10))
    expect_text(alice, error("too_large"))
    # a ping over the default 16k is still a ping
    pad = "p" * 20000
    alice.send_text('{"type":"ping","pad":"%s"}' % pad)
    assert next_text(alice) == '{"type":"pong","pad":"%s"}' % pad
    expect_nothing_more(ngx.port, [alice, bob], "big_1")


def test_invalid_utf8_still_closes_1007(ngx, secret):
    alice = connect(ngx, secret, "/chat", "alice", "room=u")
    alice.send_text(b'{"message":"\xff"}')
    alice.expect_close(1007)


# --------------------------------------------------------------------------
# rate limit


def test_rate_limit_burst_then_refill(ngx, secret):
    sender = connect(ngx, secret, "/rated", "alice", "room=1")
    observer = connect_elsewhere(ngx, lambda: connect(ngx, secret, "/rated", "bob", "room=1"),
                                 [sender])

    # burst=2: three at once are accepted, the fourth refused
    sender.send_raw(b"".join(
        _frame('{"n":%d}' % i) for i in range(4)))
    expect_text(sender, error("rate_limited"))
    for i in range(3):
        expect_text(observer, '{"n":%d,"sender":"alice"}' % i)
    # (echo=off: the sender gets nothing but the refusal)
    expect_nothing_more(ngx.port, [sender, observer], "rated_1")

    # one second later (5 r/s) it is accepted again
    time.sleep(1.1)
    sender.send_text('{"n":10}')
    expect_text(observer, '{"n":10,"sender":"alice"}')
    # and the sender got no error for it (echo=off: nothing at all)
    expect_nothing_more(ngx.port, [sender, observer], "rated_1")


def test_rate_limit_counts_pings(ngx, secret):
    ws = connect(ngx, secret, "/rated", "alice", "room=3")
    ws.send_raw(b"".join(_frame('{"type":"ping","ts":%d}' % i) for i in range(4)))
    for i in range(3):
        expect_text(ws, '{"type":"pong","ts":%d}' % i)
    expect_text(ws, error("rate_limited"))


def _frame(text):
    """A text frame's bytes: several sent in one write arrive together."""
    return encode_frame(OP_TEXT, text.encode())


def test_rate_limit_flood_closes_1008_others_unaffected(ngx, secret):
    flooder = connect(ngx, secret, "/rated", "mallory", "room=2")
    observer = connect_elsewhere(ngx, lambda: connect(ngx, secret, "/rated", "bob", "room=2"),
                                 [flooder])
    other = connect(ngx, secret, "/rated", "carol", "room=2")

    flooder.send_raw(b"".join(_frame('{"n":%d}' % i) for i in range(30)))
    # 3 accepted (burst), then max(5, 2+1) = 5 refusals answered, and the
    # sixth refusal in a row closes with 1008
    for _ in range(5):
        expect_text(flooder, error("rate_limited"))
    f = expect_close_code(flooder, 1008)
    assert f.close_reason == b"rate limit exceeded", f
    flooder.send_close(1008)
    assert flooder.wait_eof(5)

    for ws in (observer, other):
        for i in range(3):
            expect_text(ws, '{"n":%d,"sender":"mallory"}' % i)

    # another connection's budget is its own
    other.send_raw(b"".join(_frame('{"c":%d}' % i) for i in range(3)))
    for i in range(3):
        expect_text(observer, '{"c":%d,"sender":"carol"}' % i)
    expect_nothing_more(ngx.port, [observer, other], "rated_2")
    wait_count(ngx.port, "rated_2", 2)


# --------------------------------------------------------------------------
# app ping


def test_app_ping_pong(ngx, secret):
    alice = connect(ngx, secret, "/chat", "alice", "room=p")
    bob = connect_elsewhere(ngx, lambda: connect(ngx, secret, "/chat", "bob", "room=p"), [alice])
    alice.send_text('{"type":"ping","ts":123}')
    expect_text(alice, '{"type":"pong","ts":123}')
    alice.send_text('{"ts":1.5,"type":"ping","extra":{"k":[1,"two"]}}')
    expect_text(alice, '{"ts":1.5,"type":"pong","extra":{"k":[1,"two"]}}')
    alice.send_text('{"type":"ping"}')
    expect_text(alice, '{"type":"pong"}')
    # never broadcast
    expect_nothing_more(ngx.port, [alice, bob], "room_p")

    # a location that handles nothing still answers pings
    plain = connect(ngx, secret, "/plain", "carol", "room=1")
    plain.send_text('{"type":"ping","ts":5}')
    expect_text(plain, '{"type":"pong","ts":5}')


def test_app_ping_off(ngx, secret):
    alice = connect(ngx, secret, "/noping", "alice", "room=1")
    bob = connect_elsewhere(ngx, lambda: connect(ngx, secret, "/noping", "bob", "room=1"),
                            [alice])
    alice.send_text('{"type":"ping","ts":123}')
    expect_text(alice, error("reserved_type"))
    expect_nothing_more(ngx.port, [alice, bob], "noping_1")

    plain = connect(ngx, secret, "/noping-plain", "carol")
    plain.send_text('{"type":"ping","ts":123}')
    expect_text(plain, error("unhandled"))


# --------------------------------------------------------------------------
# greeting, unhandled


def test_welcome_is_the_first_frame(ngx, secret):
    name = 'Zo\u00eb "Z" O\'Neil \\ back\\"slash </script>'
    ws = connect(ngx, secret, "/welcome", "zoe", user_id=17, name=name)
    first = next_text(ws)
    doc = json.loads(first)
    assert doc == {"type": "connection_established", "user_id": 17, "name": name}, first
    assert isinstance(doc["user_id"], int)
    # then the presence join (the joiner gets it too): the greeting came first
    assert recv_json(ws) == {"type": "presence", "event": "join", "group": "welcome_room",
                             "user": "zoe", "info": None}

    # a string user_id stays a string, a missing name is an empty string
    ws2 = connect(ngx, secret, "/welcome", "yan", user_id="abc")
    assert recv_json(ws2) == {"type": "connection_established", "user_id": "abc", "name": ""}


def test_unhandled_message(ngx, secret):
    ws = connect(ngx, secret, "/plain", "alice", "room=1")
    for text in ('{"message":"hi"}', '{"type":"chat"}', "not json", "[1]"):
        ws.send_text(text)
        expect_text(ws, error("unhandled"))
    ws.send_binary(b"\x00\x01")
    expect_text(ws, error("unhandled"))
    # subscribe is not allowed here: nothing handles it
    ws.send_text('{"type":"subscribe","group":"plain_1"}')
    expect_text(ws, error("unhandled"))
    publish(ngx.port, {"group": "plain_1", "data": "still here"})
    expect_text(ws, "still here")


# --------------------------------------------------------------------------
# subscribe on the fly


def subscribe_msg(ws, group, kind="subscribe"):
    ws.send_text(json.dumps({"type": kind, "group": group}))


def test_subscribe_by_pattern_across_workers(ngx, secret):
    conns = spread_subscribers(
        ngx, "/proj", 4,
        connect=lambda port, path: connect(ngx, secret, path, "alice", project_id=7))
    wss = [ws for ws, _ in conns]
    for ws in wss:
        subscribe_msg(ws, "project_7_tickets")
        expect_text(ws, '{"type":"subscribed","group":"project_7_tickets"}')
    assert count(ngx.port, "project_7_tickets") == len(wss)

    r = publish(ngx.port, {"group": "project_7_tickets", "data": {"ticket": 1}})
    assert r.json()["subscribers"] == len(wss)
    for ws in wss:
        assert recv_json(ws) == {"ticket": 1}

    # a plain name in the list is allowed as it is
    a = wss[0]
    subscribe_msg(a, "lobby")
    expect_text(a, '{"type":"subscribed","group":"lobby"}')
    # again: already a member, still confirmed
    subscribe_msg(a, "lobby")
    expect_text(a, '{"type":"subscribed","group":"lobby"}')
    assert count(ngx.port, "lobby") == 1

    # denied: another project, the bare prefix, a longer name that is not the pattern
    for g in ("project_8_tickets", "project_7_", "project_77_x", "lobby2", "xproject_7_a"):
        subscribe_msg(a, g)
        expect_text(a, error("not_allowed", g))
        assert count(ngx.port, g) == 0
    r = publish(ngx.port, {"group": "project_8_tickets", "data": "secret"})
    assert r.json()["subscribers"] == 0

    # unsubscribe stops delivery
    subscribe_msg(a, "project_7_tickets", "unsubscribe")
    expect_text(a, '{"type":"unsubscribed","group":"project_7_tickets"}')
    assert count(ngx.port, "project_7_tickets") == len(wss) - 1
    publish(ngx.port, {"group": "project_7_tickets", "data": {"ticket": 2}})
    for ws in wss[1:]:
        assert recv_json(ws) == {"ticket": 2}
    expect_nothing_more(ngx.port, [a], "lobby")
    expect_nothing_more(ngx.port, wss[1:], "project_7_tickets")

    # unsubscribing a group not allowed is refused like a subscribe
    subscribe_msg(a, "static_alice", "unsubscribe")
    expect_text(a, error("not_allowed", "static_alice"))
    assert count(ngx.port, "static_alice") == len(wss)

    # groups joined in-band are left at close
    for ws in wss[1:]:
        close_ws(ws)
    wait_count(ngx.port, "project_7_tickets", 0)
    close_ws(a)
    wait_count(ngx.port, "lobby", 0)
    wait_count(ngx.port, "static_alice", 0)


def test_subscribe_invalid_group(ngx, secret):
    ws = connect(ngx, secret, "/proj", "alice", project_id=7)
    for msg in ({"type": "subscribe", "group": "project_7_bad name"},
                {"type": "subscribe", "group": "project_7_" + "x" * 100},
                {"type": "subscribe", "group": "~user:alice"},
                {"type": "subscribe", "group": 7},
                {"type": "subscribe"},
                {"type": "unsubscribe", "group": ""}):
        ws.send_text(json.dumps(msg))
        expect_text(ws, error("invalid_group"))
    pong_roundtrip(ws, 1)


def test_subscribe_by_array_claim(ngx, secret):
    rooms = ["room_a", "team.b", "c:1"]
    ws = connect(ngx, secret, "/rooms", "alice", rooms=rooms)
    for g in rooms:
        subscribe_msg(ws, g)
        expect_text(ws, json.dumps({"type": "subscribed", "group": g}, separators=(",", ":")))
    for g in ("room_b", "room_", "room_a2", "team", "room_a,team.b"):
        subscribe_msg(ws, g)
        expect_text(ws, error("not_allowed", g) if g != "room_a,team.b"
                    else error("invalid_group"))
    for g in rooms:
        r = publish(ngx.port, {"group": g, "data": g})
        assert r.json()["subscribers"] == 1
        expect_text(ws, g)

    # a token without the claim allows nothing
    bare = connect(ngx, secret, "/rooms", "bob")
    subscribe_msg(bare, "room_a")
    expect_text(bare, error("not_allowed", "room_a"))


def test_too_many_in_band_groups(ngx, secret):
    ws = connect(ngx, secret, "/proj", "alice", project_id=3)
    ws.send_raw(b"".join(
        _frame(json.dumps({"type": "subscribe", "group": f"project_3_{i}"})) for i in range(100)))
    for i in range(100):
        expect_text(ws, '{"type":"subscribed","group":"project_3_%d"}' % i)
    subscribe_msg(ws, "project_3_100")
    expect_text(ws, error("too_many_groups", "project_3_100"))
    # one already joined is still confirmed
    subscribe_msg(ws, "project_3_5")
    expect_text(ws, '{"type":"subscribed","group":"project_3_5"}')
    # the static group does not count, and leaving one makes room
    subscribe_msg(ws, "project_3_0", "unsubscribe")
    expect_text(ws, '{"type":"unsubscribed","group":"project_3_0"}')
    subscribe_msg(ws, "project_3_100")
    expect_text(ws, '{"type":"subscribed","group":"project_3_100"}')
    subscribe_msg(ws, "project_3_101")
    expect_text(ws, error("too_many_groups", "project_3_101"))
    # unsubscribing a group it is not in does not make room
    subscribe_msg(ws, "project_3_0", "unsubscribe")
    expect_text(ws, '{"type":"unsubscribed","group":"project_3_0"}')
    subscribe_msg(ws, "project_3_101")
    expect_text(ws, error("too_many_groups", "project_3_101"))
    assert count(ngx.port, "project_3_100") == 1
    assert count(ngx.port, "project_3_101") == 0


# --------------------------------------------------------------------------
# configuration errors


def conf_error(location_body, http_extra="realtime_zone rt 1m;"):
    rc, out = nginx_test_config(f"""
{http_extra}
server {{
    listen {{port}};
    location = /ws {{
{location_body}
    }}
}}""")
    assert rc != 0, out
    return out


def test_config_types_with_reserved_type():
    out = conf_error("realtime_websocket; realtime_client_publish g types=chat,pong;")
    assert 'type "pong" is handled by the module' in out, out


def test_config_max_size_over_max_message_size():
    out = conf_error("realtime_websocket; realtime_max_message_size 1k;"
                     " realtime_client_publish g max_size=2k;")
    assert "max_size=2048" in out and '"realtime_max_message_size" 1024' in out, out


def test_config_allow_subscribe_star():
    out = conf_error("realtime_websocket; realtime_allow_subscribe ok_* *;")
    assert '"*" alone would allow every group' in out, out


def test_config_client_publish_needs_websocket():
    out = conf_error("realtime_client_publish g;")
    assert 'need "realtime_websocket" in the same location' in out, out
    out = conf_error("realtime_allow_subscribe g_*;")
    assert 'need "realtime_websocket" in the same location' in out, out


def test_config_invalid_welcome():
    out = conf_error("""realtime_websocket; realtime_welcome '{"type":"hello",}';""")
    assert "invalid JSON template" in out, out
    out = conf_error("""realtime_websocket; realtime_welcome '["hello"]';""")
    assert '"realtime_welcome" must be a JSON object' in out, out


def test_config_client_publish_needs_a_zone():
    out = conf_error("realtime_websocket; realtime_client_publish g;", http_extra="")
    assert 'need a "realtime_zone"' in out, out
    out = conf_error("realtime_websocket; realtime_allow_subscribe g_*;", http_extra="")
    assert 'need a "realtime_zone"' in out, out
