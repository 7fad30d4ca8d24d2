"""The relay (issue 10): client messages and connect/disconnect events POSTed
to the app over HTTP, the app's answer sent back and published.

The app is a real Django project (relay_app/, sqlite, `manage.py
runserver`), started once for the module: notifications with mark-as-read,
a chat saved to the database, connect/disconnect events recorded, and a few
test-only message types (echo_order, slow, fail, answer). Tests that need a
fast or programmable app use django_app.TrivialUpstream instead.

Users are JWT identities (realtime_user $jwt_claim_user_id, as with Django
SimpleJWT); each test makes its own users, so tests sharing the app never
see each other's rows. Messages of a test are found in the app's request
log by X-Realtime-User.
"""

import itertools
import json
import os
import shutil
import tempfile
import time

import pytest

from django_app import DjangoApp, Raw, TrivialUpstream, closed_port
from groups_util import close_ws, expect_nothing_more, next_text, publish, wait_count
from jwt_util import claims, make_token, new_secret_file
from nginx_harness import wait_for
from wsclient import OP_CLOSE, OP_PONG, OP_TEXT, encode_frame, handshake

WORKERS = 2
RELAY_SECRET = "relay-test-secret-7f3a"


@pytest.fixture(scope="module")
def jwt_secret(tmp_path_factory):
    return new_secret_file(tmp_path_factory.mktemp("relay"))


@pytest.fixture(scope="module")
def django_app():
    app = DjangoApp(RELAY_SECRET).start()
    yield app
    app.cleanup()


@pytest.fixture
def app(django_app):
    """The module's Django app, running (a test may have stopped it)."""
    return django_app.start()


@pytest.fixture
def trivial():
    """A trivial upstream, programmable per test (trivial.answer = ...)."""
    up = TrivialUpstream()
    yield up
    up.stop()


CONF = r"""
realtime_zone rt 8m;

upstream django_pair {
    server 127.0.0.1:@DOWN@;
    server 127.0.0.1:@DJANGO@;
}

server {
    listen {port};
    realtime_ping_interval 0;
    realtime_auth_jwt $arg_token;
    realtime_auth_jwt_key_file @KEYFILE@;
    realtime_user $jwt_claim_user_id;

    location = /publish {
        realtime_publish;
    }

    # the notifications + chat app: Django, with connect/disconnect events
    location = /app {
        realtime_websocket;
        realtime_subscribe user_${jwt_claim_user_id}_notifications chat_$arg_room;
        realtime_allow_subscribe extra_*;
        realtime_relay http://127.0.0.1:@DJANGO@/realtime/relay;
        realtime_relay_header X-Relay-Secret @RELAY_SECRET@;
        realtime_relay_header Cookie $http_cookie;
        realtime_relay_events connect disconnect;
    }

    # the same without events (no greeting)
    location = /quiet {
        realtime_websocket;
        realtime_subscribe user_${jwt_claim_user_id}_notifications chat_$arg_room;
        realtime_relay http://127.0.0.1:@DJANGO@/realtime/relay;
        realtime_relay_header X-Relay-Secret @RELAY_SECRET@;
    }

    location = /nosecret {
        realtime_websocket;
        realtime_subscribe user_${jwt_claim_user_id}_notifications;
        realtime_relay http://127.0.0.1:@DJANGO@/realtime/relay;
    }

    # the module broadcasts chat_message itself; everything else goes to the app
    location = /typed {
        realtime_websocket;
        realtime_subscribe user_${jwt_claim_user_id}_notifications chat_$arg_room;
        realtime_client_publish chat_$arg_room types=chat_message;
        realtime_relay http://127.0.0.1:@DJANGO@/realtime/relay;
        realtime_relay_header X-Relay-Secret @RELAY_SECRET@;
    }

    # two servers, the first one down
    location = /pair {
        realtime_websocket;
        realtime_subscribe user_${jwt_claim_user_id}_notifications;
        realtime_relay http://django_pair/realtime/relay;
        realtime_relay_header X-Relay-Secret @RELAY_SECRET@;
    }

    location = /timeout {
        realtime_websocket;
        realtime_subscribe user_${jwt_claim_user_id}_notifications;
        realtime_relay http://127.0.0.1:@DJANGO@/realtime/relay;
        realtime_relay_header X-Relay-Secret @RELAY_SECRET@;
        realtime_relay_timeout 1s;
    }

    location = /queue {
        realtime_websocket;
        realtime_subscribe user_${jwt_claim_user_id}_notifications;
        realtime_relay http://127.0.0.1:@DJANGO@/realtime/relay;
        realtime_relay_header X-Relay-Secret @RELAY_SECRET@;
        realtime_relay_queue 2;
    }

    # the trivial upstream, with events
    location = /trivial {
        realtime_websocket;
        realtime_subscribe lobby;
        realtime_relay @TRIVIAL@;
        realtime_relay_events connect disconnect;
    }

    location = /trivial-quiet {
        realtime_websocket;
        realtime_subscribe lobby;
        realtime_relay @TRIVIAL@;
    }
}
"""


def make_conf(jwt_secret, django_port, trivial_url, down_port=None):
    return (CONF.replace("@KEYFILE@", str(jwt_secret[1]))
            .replace("@DJANGO@", str(django_port))
            .replace("@DOWN@", str(down_port or closed_port()))
            .replace("@RELAY_SECRET@", RELAY_SECRET)
            .replace("@TRIVIAL@", trivial_url))


@pytest.fixture
def ngx(nginx_factory, jwt_secret, app, trivial):
    return nginx_factory(make_conf(jwt_secret, app.port, trivial.url("/relay")),
                         workers=WORKERS)


# --------------------------------------------------------------------------
# helpers

_user_ids = itertools.count(1000)


def new_user(app, *titles):
    """A user of this test only, with one unread notification per title.
    Returns (user id, notification ids)."""
    uid = next(_user_ids)
    return uid, app.seed(uid, *titles)


def token(jwt_secret, uid):
    return make_token("HS256", jwt_secret[0], claims(sub=f"user{uid}", user_id=uid))


def connect(ngx, jwt_secret, uid, path="/app", room="lobby", headers=(), hello=None):
    """A connection of user uid to path?room=room. hello: the unread count
    the connect event's answer must greet with (read first), or None when
    the location has no events."""
    resp, ws = handshake(ngx.port, f"{path}?room={room}&token={token(jwt_secret, uid)}",
                         headers=headers)
    assert resp.status == 101, (path, resp.status_line, resp.body)
    if hello is not None:
        assert recv_json(ws) == {"type": "hello", "unread": hello}
    return ws


def connect_elsewhere(ngx, connect_one, avoid):
    """A connection (connect_one() -> WS) on a worker holding none of avoid's."""
    used = {ngx.worker_of(w.sock) for w in avoid}
    for _ in range(200):
        ws = connect_one()
        if ngx.worker_of(ws.sock) not in used:
            return ws
        close_ws(ws)
    raise AssertionError(f"no connection reached a worker other than {used}")


def connect_on(ngx, connect_one, worker):
    """A connection (connect_one() -> WS) on that worker."""
    for _ in range(200):
        ws = connect_one()
        if ngx.worker_of(ws.sock) == worker:
            return ws
        close_ws(ws)
    raise AssertionError(f"no connection reached worker {worker}")


def recv_json(ws, timeout=10):
    return json.loads(next_text(ws, timeout=timeout))


def send(ws, message):
    ws.send_text(json.dumps(message))


def relay_failed(status):
    return {"type": "error", "error": "relay_failed", "status": status}


def requests_of(app, uid, state=None):
    """The relayed requests of user uid, in arrival order."""
    state = state or app.state()
    return [r for r in state["requests"] if r["headers"]["X-Realtime-User"] == str(uid)]


def wait_requests(app, uid, n, timeout=10, answered=True):
    """Waits until n requests of user uid reached the app (and were
    answered); returns them."""
    got = [[]]

    def enough():
        got[0] = requests_of(app, uid)
        return len(got[0]) >= n and (not answered or all("answered" in r for r in got[0][:n]))
    assert wait_for(enough, timeout, interval=0.05), \
        f"{len(got[0])} requests of user {uid} reached the app, expected {n}: " \
        f"{[r['body'] for r in got[0]]}"
    return got[0]


def events_of(app, uid, state=None):
    state = state or app.state()
    return [e for e in state["events"] if e["user"] == str(uid)]


def wait_events(app, uid, n, timeout=10):
    got = [[]]

    def enough():
        got[0] = events_of(app, uid)
        return len(got[0]) >= n
    assert wait_for(enough, timeout, interval=0.05), \
        f"user {uid} has events {got[0]}, expected {n}"
    return got[0]


def notification(app, nid):
    return next(n for n in app.state()["notifications"] if n["id"] == nid)


def pong_within(ws, ts, bound):
    """An app ping answered within bound seconds; returns the delay."""
    t0 = time.monotonic()
    send(ws, {"type": "ping", "ts": ts})
    assert recv_json(ws, timeout=bound + 5) == {"type": "pong", "ts": ts}
    delay = time.monotonic() - t0
    assert delay < bound, f"pong after {delay:.2f}s"
    return delay


def raw_pong_within(ws, payload, bound):
    """A protocol ping frame answered with its pong within bound seconds."""
    t0 = time.monotonic()
    ws.send_ping(payload)
    f = ws.recv_data(timeout=bound + 5)
    delay = time.monotonic() - t0
    assert f.opcode == OP_PONG and f.payload == payload, f
    assert delay < bound, f"pong frame after {delay:.2f}s"
    return delay


# --------------------------------------------------------------------------
# the notifications app: mark-as-read


def test_mark_read_marks_only_own_notification_replies_and_publishes_badge(ngx, jwt_secret,
                                                                           app):
    alice, (a1, a2, a3) = new_user(app, "a1", "a2", "a3")
    bob, (b1,) = new_user(app, "b1")
    tab1 = connect(ngx, jwt_secret, alice, hello=3)
    tab2 = connect_elsewhere(ngx, lambda: connect(ngx, jwt_secret, alice, hello=3), [tab1])
    bobs = connect(ngx, jwt_secret, bob, hello=1)
    assert ngx.worker_of(tab1.sock) != ngx.worker_of(tab2.sock)

    send(tab1, {"type": "mark_read", "id": a2})
    badge = {"type": "badge", "unread": 2}
    # the reply goes to the sending tab only; the badge to every tab of alice
    got = [recv_json(tab1), recv_json(tab1)]
    assert {"type": "unread", "count": 2} in got and badge in got, got
    assert recv_json(tab2) == badge
    assert [notification(app, n)["read"] for n in (a1, a2, a3)] == [False, True, False]

    # bob's notification id from alice's connection: the app sees alice
    # (X-Realtime-User), so bob's row is not touched
    send(tab1, {"type": "mark_read", "id": b1})
    got = [recv_json(tab1), recv_json(tab1)]
    assert {"type": "unread", "count": 2} in got and badge in got, got
    assert recv_json(tab2) == badge
    assert notification(app, b1)["read"] is False
    expect_nothing_more(ngx.port, [bobs], f"user_{bob}_notifications")
    expect_nothing_more(ngx.port, [tab1, tab2], f"user_{alice}_notifications")


def test_relayed_request_headers_and_body(ngx, jwt_secret, app):
    uid, _ = new_user(app)
    cookie = "sessionid=abc123; csrftoken=xyz"
    ws1 = connect(ngx, jwt_secret, uid, room="r7", headers=[("Cookie", cookie)], hello=0)
    ws2 = connect(ngx, jwt_secret, uid, room="r7", headers=[("Cookie", cookie)], hello=0)
    body = '{"type":  "echo_order", "n": 1, "text": "caf\u00e9 \\u00e9"}'
    ws1.send_text(body)
    ws1.send_text(body.replace('"n": 1', '"n": 2'))
    ws2.send_text(body.replace('"n": 1', '"n": 3'))
    reqs = wait_requests(app, uid, 5)  # 2 connects and 3 messages
    msgs = [r for r in reqs if "echo_order" in r["body"]]
    assert sorted(json.loads(r["body"])["n"] for r in msgs) == [1, 2, 3]
    conn_of = {json.loads(r["body"])["n"]: r["headers"]["X-Realtime-Connection"] for r in msgs}
    # unique per connection, stable for its life (the connect event's too)
    assert conn_of[1] == conn_of[2] != conn_of[3], conn_of
    assert {r["headers"]["X-Realtime-Connection"] for r in reqs
            if r["body"] == '{"type":"connect"}'} == {conn_of[1], conn_of[3]}
    for r in msgs:
        h = r["headers"]
        assert r["method"] == "POST"
        assert r["body"] == body.replace('"n": 1', '"n": %d' % json.loads(r["body"])["n"])
        assert h["Host"] == f"127.0.0.1:{ngx.port}", h
        assert h["Content-Type"] == "application/json", h
        assert h["X-Realtime-User"] == str(uid)
        assert set(h["X-Realtime-Groups"].split(",")) == {f"user_{uid}_notifications",
                                                          "chat_r7"}, h
        assert h["X-Relay-Secret"] == RELAY_SECRET
        assert h["Cookie"] == cookie
        assert r["status"] == 200


def test_connect_event_reply_carries_app_state(ngx, jwt_secret, app):
    uid, (n1, n2) = new_user(app, "x", "y")
    ws = connect(ngx, jwt_secret, uid, hello=2)
    send(ws, {"type": "mark_read", "id": n1})
    assert recv_json(ws) in ({"type": "unread", "count": 1}, {"type": "badge", "unread": 1})
    close_ws(ws)
    connect(ngx, jwt_secret, uid, hello=1)


# --------------------------------------------------------------------------
# chat


def test_chat_message_saved_and_broadcast_with_its_db_id(ngx, jwt_secret, app):
    alice, _ = new_user(app)
    bob, _ = new_user(app)
    carol, _ = new_user(app)
    a = connect(ngx, jwt_secret, alice, room="r1", hello=0)
    b = connect_elsewhere(ngx, lambda: connect(ngx, jwt_secret, bob, room="r1", hello=0), [a])
    c = connect(ngx, jwt_secret, carol, room="r2", hello=0)

    send(a, {"type": "chat", "room": "r1", "message": "hello from alice"})
    got_a, got_b = recv_json(a), recv_json(b)
    assert got_a == got_b, (got_a, got_b)
    rows = [m for m in app.state()["chat"] if m["sender_id"] == alice]
    assert len(rows) == 1, rows
    assert rows[0]["room"] == "r1" and rows[0]["text"] == "hello from alice"
    assert got_a == {"type": "chat_message", "id": rows[0]["id"], "message": "hello from alice",
                     "sender": alice}

    send(b, {"type": "chat", "room": "r1", "message": "hi alice"})
    got = recv_json(a)
    assert got == recv_json(b)
    assert got["sender"] == bob and got["id"] > rows[0]["id"], got

    # the app checks the room against the connection's groups (X-Realtime-Groups)
    send(c, {"type": "chat", "room": "r1", "message": "intruder"})
    assert recv_json(c) == {"type": "error", "error": "not_in_room"}
    assert not [m for m in app.state()["chat"] if m["sender_id"] == carol]
    expect_nothing_more(ngx.port, [a, b], "chat_r1")


# --------------------------------------------------------------------------
# connect / disconnect events


def test_events_recorded_with_close_codes(ngx, jwt_secret, app):
    polite, _ = new_user(app)
    dropped, _ = new_user(app)
    reset, _ = new_user(app)

    ws = connect(ngx, jwt_secret, polite, hello=0)
    for i in range(3):
        send(ws, {"type": "echo_order", "n": i})
    ws.send_close(1000)
    f = ws.recv_data(timeout=5)
    assert f.opcode == OP_CLOSE and f.close_code == 1000, f
    assert ws.wait_eof(5)
    events = wait_events(app, polite, 2)
    assert [(e["kind"], e["code"]) for e in events] == [("connect", None), ("disconnect", 1000)]
    assert events[0]["connection"] == events[1]["connection"]
    # the disconnect event comes after all of the connection's messages
    bodies = [json.loads(r["body"]) for r in requests_of(app, polite)]
    assert bodies == [{"type": "connect"}] + [{"type": "echo_order", "n": i} for i in range(3)] \
        + [{"type": "disconnect", "code": 1000}], bodies

    # TCP closed without a close frame: 1006 (FIN, then RST)
    ws = connect(ngx, jwt_secret, dropped, hello=0)
    ws.close()
    ws = connect(ngx, jwt_secret, reset, hello=0)
    ws.abort()
    for uid in (dropped, reset):
        events = wait_events(app, uid, 2)
        assert [(e["kind"], e["code"]) for e in events] == \
            [("connect", None), ("disconnect", 1006)], (uid, events)


def test_disconnect_event_on_reload_is_1012(ngx, jwt_secret, app):
    users = [new_user(app)[0] for _ in range(4)]
    conns = [connect(ngx, jwt_secret, uid, hello=0) for uid in users]
    ngx.reload()
    for ws in conns:
        f = ws.recv_data(timeout=10)
        assert f.opcode == OP_CLOSE and f.close_code == 1012, f
        ws.send_close(1012)
        assert ws.wait_eof(10)
    for uid in users:
        events = wait_events(app, uid, 2)
        assert [(e["kind"], e["code"]) for e in events] == \
            [("connect", None), ("disconnect", 1012)], (uid, events)
    # the new workers relay too
    uid, _ = new_user(app, "n")
    connect(ngx, jwt_secret, uid, hello=1)


def test_disconnect_event_waits_for_the_request_in_flight(ngx, jwt_secret, app):
    uid, _ = new_user(app)
    ws = connect(ngx, jwt_secret, uid, hello=0)
    send(ws, {"type": "slow", "seconds": 1})
    wait_requests(app, uid, 2, answered=False)
    ws.send_close(1000)
    f = ws.recv_data(timeout=5)
    assert f.opcode == OP_CLOSE and f.close_code == 1000, f
    assert ws.wait_eof(5)
    events = wait_events(app, uid, 2)
    assert [(e["kind"], e["code"]) for e in events] == [("connect", None), ("disconnect", 1000)]
    reqs = requests_of(app, uid)
    assert [json.loads(r["body"])["type"] for r in reqs] == ["connect", "slow", "disconnect"]
    assert reqs[2]["arrived"] >= reqs[1]["answered"], "two requests of a connection in flight"
    # the slow answer found its connection gone: the worker is fine
    uid2, _ = new_user(app)
    connect(ngx, jwt_secret, uid2, hello=0)


def test_reload_with_a_request_in_flight_still_sends_the_disconnect(ngx, jwt_secret, app):
    """The old worker closes with 1012 (within realtime_reload_spread), and
    relays the disconnect event after the answer it was waiting for, before
    it exits."""
    uid, _ = new_user(app)
    ws = connect(ngx, jwt_secret, uid, hello=0)
    old_worker = ngx.worker_of(ws.sock)
    send(ws, {"type": "slow", "seconds": 1.5})
    for i in range(3):
        send(ws, {"type": "echo_order", "n": i})
    wait_requests(app, uid, 2, answered=False)
    ngx.reload()
    # answers keep coming until the close, which comes within the spread
    while True:
        f = ws.recv_data(timeout=5)
        if f.opcode != OP_TEXT:
            break
    assert f.opcode == OP_CLOSE and f.close_code == 1012, f
    ws.send_close(1012)
    events = wait_events(app, uid, 2)
    assert [(e["kind"], e["code"]) for e in events] == [("connect", None), ("disconnect", 1012)]
    reqs = requests_of(app, uid)
    assert [json.loads(r["body"])["type"] for r in reqs] == \
        ["connect", "slow"] + ["echo_order"] * 3 + ["disconnect"]
    assert wait_for(lambda: old_worker not in ngx.worker_pids(), 10), "the old worker stays"


def test_server_close_code_reaches_the_app(ngx, jwt_secret, app):
    """A close the server starts (the publish API's disconnect action, 4001)."""
    uid, _ = new_user(app)
    ws = connect(ngx, jwt_secret, uid, hello=0)
    r = publish(ngx.port, {"action": "disconnect", "user": str(uid), "code": 4001})
    assert r.json()["connections"] == 1, r
    f = ws.recv_data(timeout=5)
    assert f.opcode == OP_CLOSE and f.close_code == 4001, f
    ws.send_close(4001)
    events = wait_events(app, uid, 2)
    assert [(e["kind"], e["code"]) for e in events] == [("connect", None), ("disconnect", 4001)]


# --------------------------------------------------------------------------
# order and bounds


def test_order_of_100_rapid_messages_per_connection(ngx, jwt_secret, app):
    uid, _ = new_user(app)
    ws1 = connect(ngx, jwt_secret, uid, path="/quiet")
    ws2 = connect(ngx, jwt_secret, uid, path="/quiet")
    frames1 = b"".join(encode_frame(OP_TEXT, json.dumps({"type": "echo_order", "n": i}).encode())
                       for i in range(100))
    frames2 = b"".join(encode_frame(OP_TEXT, json.dumps({"type": "echo_order", "n": i}).encode())
                       for i in range(100, 200))
    ws1.send_raw(frames1)
    ws2.send_raw(frames2)
    reqs = wait_requests(app, uid, 200, timeout=30)
    conns = {r["headers"]["X-Realtime-Connection"] for r in reqs}
    assert len(conns) == 2
    state = app.state()
    orders = sorted(state["orders"][c] for c in conns)
    assert orders == [list(range(100)), list(range(100, 200))]
    # one request in flight per connection
    assert not [o for o in state["overlaps"] if o["headers"]["X-Realtime-User"] == str(uid)]
    # both connections are fine afterwards
    pong_within(ws1, 1, 2)
    pong_within(ws2, 2, 2)


def test_full_queue_pauses_reading_and_loses_nothing(ngx, jwt_secret, app):
    """realtime_relay_queue 2: a slow message in flight and more than two
    waiting; the connection's socket is not read any further until there is
    room, so a ping sent after that is answered only after the slow answer;
    every message still reaches the app, in order. (Frames that arrived in
    the same read as the ones that filled the queue are queued all the same:
    the bound holds at read granularity.)"""
    uid, _ = new_user(app)
    ws = connect(ngx, jwt_secret, uid, path="/queue")
    n = 40
    t0 = time.monotonic()
    send(ws, {"type": "slow", "seconds": 2, "tag": "q"})
    ws.send_raw(b"".join(encode_frame(OP_TEXT, json.dumps({"type": "echo_order", "n": i}).encode())
                         for i in range(n)))
    time.sleep(0.5)  # read by now: the queue is full
    send(ws, {"type": "ping", "ts": 5})
    # meanwhile the app has only the slow one
    time.sleep(0.5)
    assert len(requests_of(app, uid)) == 1
    assert recv_json(ws, timeout=10) == {"type": "slow_done", "tag": "q"}
    assert recv_json(ws, timeout=10) == {"type": "pong", "ts": 5}
    waited = time.monotonic() - t0
    assert waited >= 1.8, f"pong after {waited:.2f}s: the ping was read past a full queue"
    reqs = wait_requests(app, uid, n + 1)
    bodies = [json.loads(r["body"]) for r in reqs]
    assert bodies == [{"type": "slow", "seconds": 2, "tag": "q"}] + \
        [{"type": "echo_order", "n": i} for i in range(n)]
    conn = reqs[0]["headers"]["X-Realtime-Connection"]
    assert app.state()["orders"][conn] == list(range(n))
    pong_within(ws, 6, 2)


def test_full_queue_client_keeps_writing_into_the_socket(ngx, jwt_secret, app):
    """With reading paused, a client writing a lot blocks in its socket
    buffers; nothing is dropped, all of it reaches the app once the slow
    answer is in."""
    uid, _ = new_user(app)
    ws = connect(ngx, jwt_secret, uid, path="/queue")
    send(ws, {"type": "slow", "seconds": 2})
    n = 1000
    pad = "x" * 1000
    data = b"".join(encode_frame(OP_TEXT, json.dumps(
        {"type": "echo_order", "n": i, "pad": pad}).encode()) for i in range(n))
    ws.sock.settimeout(30)
    ws.send_raw(data)  # ~1 MB: may block until the relay reads again
    assert recv_json(ws, timeout=10) == {"type": "slow_done", "tag": None}
    reqs = wait_requests(app, uid, n + 1, timeout=60)
    conn = reqs[0]["headers"]["X-Realtime-Connection"]
    assert app.state()["orders"][conn] == list(range(n))


# --------------------------------------------------------------------------
# failures


def test_app_down_error_reply_connection_kept_and_recovers(ngx, jwt_secret, app):
    uid, (nid,) = new_user(app, "n")
    ws = connect(ngx, jwt_secret, uid, path="/quiet")
    send(ws, {"type": "echo_order", "n": 0})
    wait_requests(app, uid, 1)
    app.stop()
    try:
        for i in range(3):
            send(ws, {"type": "mark_read", "id": nid})
            assert recv_json(ws) == relay_failed(502)
        pong_within(ws, 1, 2)  # the connection is kept
    finally:
        app.start()
    send(ws, {"type": "mark_read", "id": nid})
    got = [recv_json(ws), recv_json(ws)]
    assert {"type": "unread", "count": 0} in got, got
    assert notification(app, nid)["read"] is True


def test_app_slow_other_connections_unaffected(ngx, jwt_secret, app):
    waiting_user, _ = new_user(app)
    other, (nid,) = new_user(app, "n")
    waiting = connect(ngx, jwt_secret, waiting_user, path="/quiet")
    worker = ngx.worker_of(waiting.sock)
    # others on the same worker (whose event loop must not wait) and on another one
    same = connect_on(ngx, lambda: connect(ngx, jwt_secret, other, path="/quiet"), worker)
    elsewhere = connect_elsewhere(ngx, lambda: connect(ngx, jwt_secret, other, path="/quiet"),
                                  [waiting])
    t0 = time.monotonic()
    send(waiting, {"type": "slow", "seconds": 2, "tag": "w"})
    wait_requests(app, waiting_user, 1, answered=False)
    for i, ws in enumerate((same, elsewhere)):
        pong_within(ws, i, 0.5)
        raw_pong_within(ws, b"raw%d" % i, 0.5)
    # the waiting connection itself still answers protocol pings
    raw_pong_within(waiting, b"waiting", 0.5)
    # publishes arrive on time
    t1 = time.monotonic()
    publish(ngx.port, {"group": f"user_{other}_notifications", "data": "pub"})
    assert next_text(same) == "pub" and next_text(elsewhere) == "pub"
    assert time.monotonic() - t1 < 0.5
    # another connection's relayed message is answered meanwhile
    t1 = time.monotonic()
    send(same, {"type": "mark_read", "id": nid})
    got = [recv_json(same), recv_json(same)]
    assert {"type": "unread", "count": 0} in got, got
    assert recv_json(elsewhere) == {"type": "badge", "unread": 0}
    assert time.monotonic() - t1 < 1.0
    assert time.monotonic() - t0 < 1.9, "the checks above took as long as the slow answer"
    assert recv_json(waiting, timeout=10) == {"type": "slow_done", "tag": "w"}


def test_app_500_is_relay_failed_500(ngx, jwt_secret, app):
    uid, _ = new_user(app)
    ws = connect(ngx, jwt_secret, uid, path="/quiet")
    send(ws, {"type": "fail"})
    assert recv_json(ws) == relay_failed(500)
    send(ws, {"type": "fail", "status": 404})
    assert recv_json(ws) == relay_failed(404)
    send(ws, {"type": "no_such_type"})  # the app answers 400
    assert recv_json(ws) == relay_failed(400)
    pong_within(ws, 1, 2)


def test_missing_secret_is_403(ngx, jwt_secret, app):
    uid, (nid,) = new_user(app, "n")
    ws = connect(ngx, jwt_secret, uid, path="/nosecret")
    send(ws, {"type": "mark_read", "id": nid})
    assert recv_json(ws) == relay_failed(403)
    assert notification(app, nid)["read"] is False
    assert requests_of(app, uid)[-1]["headers"]["X-Relay-Secret"] is None


def test_timeout_is_504(ngx, jwt_secret, app):
    uid, (nid,) = new_user(app, "n")
    ws = connect(ngx, jwt_secret, uid, path="/timeout")
    t0 = time.monotonic()
    send(ws, {"type": "slow", "seconds": 2})
    assert recv_json(ws, timeout=10) == relay_failed(504)
    took = time.monotonic() - t0
    assert 0.8 <= took < 1.9, f"504 after {took:.2f}s with realtime_relay_timeout 1s"
    # the connection goes on, and so does the relay
    pong_within(ws, 1, 2)
    send(ws, {"type": "mark_read", "id": nid})
    got = [recv_json(ws), recv_json(ws)]
    assert {"type": "unread", "count": 0} in got, got


def test_upstream_block_with_one_server_down(ngx, jwt_secret, app):
    """upstream { server <refuses connections>; server <django>; }: every
    message reaches the app (a refused connect goes on to the next server)."""
    uid, ids = new_user(app, *[f"n{i}" for i in range(6)])
    ws = connect(ngx, jwt_secret, uid, path="/pair")
    failed = []
    for i, nid in enumerate(ids):
        send(ws, {"type": "mark_read", "id": nid})
        got = recv_json(ws)
        if got.get("error") == "relay_failed":
            failed.append((i, got))
            continue
        got = [got, recv_json(ws)]
        assert {"type": "unread", "count": 6 - (i + 1 - len(failed))} in got, (i, got)
    assert not failed, f"{len(failed)} of {len(ids)} messages failed: {failed}"
    ws2 = connect(ngx, jwt_secret, uid, path="/pair")
    send(ws2, {"type": "mark_read", "id": ids[0]})
    got = [recv_json(ws2), recv_json(ws2)]
    assert {"type": "unread", "count": 0} in got, got


# --------------------------------------------------------------------------
# what is relayed


def test_module_messages_are_not_relayed(ngx, jwt_secret, app):
    uid, _ = new_user(app)
    ws = connect(ngx, jwt_secret, uid, room="r1", hello=0)
    send(ws, {"type": "ping", "ts": 1})
    assert recv_json(ws) == {"type": "pong", "ts": 1}
    send(ws, {"type": "subscribe", "group": "extra_1"})
    assert recv_json(ws) == {"type": "subscribed", "group": "extra_1"}
    send(ws, {"type": "echo_order", "n": 1})
    send(ws, {"type": "unsubscribe", "group": "extra_1"})
    assert recv_json(ws) == {"type": "unsubscribed", "group": "extra_1"}
    send(ws, {"type": "subscribe", "group": "forbidden"})
    assert recv_json(ws)["error"] == "not_allowed"
    # the module's own types: never sent to the app
    for t in ("pong", "subscribed", "unsubscribed", "error"):
        send(ws, {"type": t})
        assert recv_json(ws)["type"] == "error", t
    ws.send_binary(b"\x00\x01")
    assert recv_json(ws) == {"type": "error", "error": "unhandled"}
    send(ws, {"type": "echo_order", "n": 2})
    reqs = wait_requests(app, uid, 3)
    time.sleep(0.2)
    reqs = requests_of(app, uid)
    assert [json.loads(r["body"]) for r in reqs] == [
        {"type": "connect"}, {"type": "echo_order", "n": 1}, {"type": "echo_order", "n": 2}]
    # X-Realtime-Groups: the groups at that moment (never the internal ~user: group)
    assert set(reqs[1]["headers"]["X-Realtime-Groups"].split(",")) == \
        {f"user_{uid}_notifications", "chat_r1", "extra_1"}
    assert set(reqs[2]["headers"]["X-Realtime-Groups"].split(",")) == \
        {f"user_{uid}_notifications", "chat_r1"}


def test_non_json_text_is_relayed_as_text_plain(ngx, jwt_secret, app):
    uid, _ = new_user(app)
    ws = connect(ngx, jwt_secret, uid, path="/quiet")
    ws.send_text("just some text \u00e9")
    assert recv_json(ws) == relay_failed(400)  # the app wants JSON
    (req,) = wait_requests(app, uid, 1)
    assert req["body"] == "just some text \u00e9"
    assert req["headers"]["Content-Type"].replace(" ", "").lower() == \
        "text/plain;charset=utf-8", req["headers"]


def test_client_publish_types_broadcast_and_other_types_relayed(ngx, jwt_secret, app):
    alice, (nid,) = new_user(app, "n")
    bob, _ = new_user(app)
    a = connect(ngx, jwt_secret, alice, path="/typed", room="t1")
    b = connect_elsewhere(ngx, lambda: connect(ngx, jwt_secret, bob, path="/typed", room="t1"),
                          [a])
    wait_count(ngx.port, "chat_t1", 2)
    send(a, {"type": "chat_message", "message": "by the module"})
    expected = {"type": "chat_message", "message": "by the module", "sender": str(alice)}
    assert recv_json(a) == expected and recv_json(b) == expected
    send(a, {"type": "mark_read", "id": nid})
    got = [recv_json(a), recv_json(a)]
    assert {"type": "unread", "count": 0} in got, got
    # the app also broadcasts (its chat handler saves first)
    send(a, {"type": "chat", "room": "t1", "message": "by the app"})
    got = recv_json(b)
    assert got["type"] == "chat_message" and got["message"] == "by the app" and "id" in got
    assert [json.loads(r["body"])["type"] for r in requests_of(app, alice)] == ["mark_read", "chat"]
    expect_nothing_more(ngx.port, [b], "chat_t1")


# --------------------------------------------------------------------------
# the answer's shapes (the test app answers message["body"] verbatim)


def answer(ws, body, status=200):
    send(ws, {"type": "answer", "body": body, "status": status})


def test_answer_shapes(ngx, jwt_secret, app):
    uid, _ = new_user(app)
    ws = connect(ngx, jwt_secret, uid, path="/quiet", room="s1")
    other = connect(ngx, jwt_secret, new_user(app)[0], path="/quiet", room="s1")
    group = f"user_{uid}_notifications"

    answer(ws, '{"reply": "plain text"}')  # a JSON string is sent as its text
    assert next_text(ws) == "plain text"
    answer(ws, '{"reply": [1, {"a": null}]}')  # anything else as compact JSON
    assert next_text(ws) == '[1,{"a":null}]'
    answer(ws, '{"publish": [{"groups": ["chat_s1", "%s"], "data": {"k": 1}}]}' % group)
    assert recv_json(ws) == {"k": 1}  # once, though in both groups
    assert recv_json(other) == {"k": 1}
    answer(ws, "")  # 200 empty: nothing
    answer(ws, "{}")  # nothing either
    # invalid answers are failures (502), and a bad publish list publishes nothing
    answer(ws, "not json")
    assert recv_json(ws) == relay_failed(502)
    answer(ws, '{"reply": "r", "publish": [{"group": "chat_s1", "data": 1}, '
               '{"group": "bad group!", "data": 2}]}')
    assert recv_json(ws) == relay_failed(502)
    answer(ws, '{"publish": [{"group": "chat_s1", "data": 1}, 7]}')
    assert recv_json(ws) == relay_failed(502)
    answer(ws, '{"publish": "chat_s1"}')
    assert recv_json(ws) == relay_failed(502)
    answer(ws, '[{"reply": 1}]')
    assert recv_json(ws) == relay_failed(502)
    answer(ws, '{"reply": "x"}', status=503)
    assert recv_json(ws) == relay_failed(503)
    expect_nothing_more(ngx.port, [ws, other], "chat_s1")
    # one message object instead of an array: taken as the publish location takes it
    answer(ws, '{"publish": {"group": "chat_s1", "data": 1}}')
    assert recv_json(ws) == 1 and recv_json(other) == 1


# --------------------------------------------------------------------------
# with the trivial upstream


def test_connect_answer_may_publish(ngx, jwt_secret, trivial):
    def respond(req):
        if req.json()["type"] == "connect":
            return 200, {"reply": "welcome", "publish": [
                {"group": "lobby",
                 "data": {"type": "joined", "user": req.headers["X-Realtime-User"]}}]}
        return 200, b""
    trivial.answer = respond
    first = connect(ngx, jwt_secret, 1, path="/trivial")
    got = {next_text(first), next_text(first)}
    assert got == {"welcome", '{"type":"joined","user":"1"}'}, got
    second = connect(ngx, jwt_secret, 2, path="/trivial")
    got = {next_text(second), next_text(second)}
    assert got == {"welcome", '{"type":"joined","user":"2"}'}, got
    assert recv_json(first) == {"type": "joined", "user": "2"}


def test_keepalive_connections_to_the_app_are_reused(ngx, jwt_secret, trivial):
    ws = connect(ngx, jwt_secret, 1, path="/trivial-quiet")
    n = 30
    for i in range(n):
        send(ws, {"n": i})
    reqs = trivial.wait_requests(n)
    assert [r.json()["n"] for r in reqs] == list(range(n))
    peers = {r.peer for r in reqs}
    assert len(peers) == 1, f"{n} sequential requests used {len(peers)} connections"
    for r in reqs:
        assert r.path == "/relay"
        assert r.headers["Connection"].lower() == "keep-alive", dict(r.headers)
        assert r.headers["X-Realtime-User"] == "1"
        assert r.headers["Content-Length"] == str(len(r.body))
    # another connection on the same worker uses the same pool
    worker = ngx.worker_of(ws.sock)
    ws2 = connect_on(ngx, lambda: connect(ngx, jwt_secret, 2, path="/trivial-quiet"), worker)
    send(ws2, {"n": "again"})
    reqs = trivial.wait_requests(n + 1)
    assert reqs[-1].peer in peers


def test_answer_over_1mib_is_a_failure(ngx, jwt_secret, trivial):
    big = json.dumps({"reply": "x" * (1024 * 1024 + 10)})
    trivial.answer = lambda req: (200, big) if req.json().get("big") else (200, {"reply": "ok"})
    ws = connect(ngx, jwt_secret, 1, path="/trivial-quiet")
    send(ws, {"big": True})
    assert recv_json(ws) == relay_failed(502)
    send(ws, {"big": False})
    assert next_text(ws) == "ok"


def test_unix_socket_upstream(nginx_factory, jwt_secret):
    d = tempfile.mkdtemp(prefix="realtime-unix-")  # reachable by workers running as nobody
    os.chmod(d, 0o755)
    up = TrivialUpstream(lambda req: (200, {"reply": {"echo": req.json(),
                                                       "path": req.path}}),
                         unix_path=os.path.join(d, "app.sock"))
    try:
        conf = make_conf(jwt_secret, closed_port(), up.url("/via/unix"))
        ngx = nginx_factory(conf, workers=WORKERS)
        ws = connect(ngx, jwt_secret, 3, path="/trivial-quiet")
        send(ws, {"type": "hi"})
        assert recv_json(ws) == {"echo": {"type": "hi"}, "path": "/via/unix"}
    finally:
        up.stop()
        shutil.rmtree(d, ignore_errors=True)


def test_app_answer_framings(ngx, jwt_secret, trivial):
    """What nginx's HTTP parsers take: chunked, HTTP/1.0 to EOF, Connection:
    close; headers over the limit and garbage are failures (502)."""
    answers = {
        "chunked": Raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                       b"Content-Type: application/json\r\n\r\n"
                       b"7\r\n{\"reply\r\n9;ext=1\r\n\": \"chunk\r\n3\r\ned\"\r\n1\r\n}\r\n"
                       b"0\r\nX-Trailer: t\r\n\r\n"),
        "http10": Raw(b'HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n'
                      b'{"reply": "to eof"}', close=True),
        "close": Raw(b'HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 19\r\n\r\n'
                     b'{"reply": "closed"}', close=True),
        "huge_headers": Raw(b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"p" * 9000 +
                            b"\r\nContent-Length: 0\r\n\r\n"),
        "garbage": Raw(b"hello there\r\n\r\n", close=True),
        "204": Raw(b"HTTP/1.1 204 No Content\r\n\r\n"),
    }
    trivial.answer = lambda req: answers.get(req.json().get("a"), (200, {"reply": "plain"}))
    ws = connect(ngx, jwt_secret, 1, path="/trivial-quiet")
    for name, expected in (("chunked", "chunked"), ("http10", "to eof"), ("close", "closed"),
                           ("plain", "plain"), ("huge_headers", None), ("garbage", None),
                           ("204", ""), ("plain", "plain")):
        send(ws, {"a": name})
        if expected is None:
            assert recv_json(ws) == relay_failed(502), name
        elif expected == "":
            continue  # 2xx without a body: nothing
        else:
            assert next_text(ws) == expected, name
    assert len(trivial.requests) == 8


def test_app_closing_kept_connections_between_requests(ngx, jwt_secret, trivial):
    """An app that closes each connection after answering, without saying
    so (no Connection: close): once its close has arrived, the kept
    connection is not used again, so every message gets through, once.
    (Sent before the close arrives, a message meets a closed connection and
    gets relay_failed 502 rather than being sent twice, as nginx's proxy
    does not resend a POST.)"""
    trivial.answer = lambda req: Raw(b'HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\n'
                                     b'{"reply": "k"}', close=True)
    ws = connect(ngx, jwt_secret, 1, path="/trivial-quiet")
    for i in range(20):
        send(ws, {"n": i})
        assert next_text(ws) == "k", i
        time.sleep(0.05)  # the app's close arrives before the next message
    assert len(trivial.requests) == 20
    assert [r.json()["n"] for r in trivial.requests] == list(range(20))


def test_app_dying_mid_request_is_not_retried(ngx, jwt_secret, trivial):
    """The app got the message on a kept connection and closed it without
    answering (a crash): the client gets 502 and the app saw the message
    once (a POST that reached the app is not sent again: it may have been
    handled, e.g. a chat message saved)."""
    trivial.answer = lambda req: Raw(close=True) if req.json().get("crash") else (200, b"")
    ws = connect(ngx, jwt_secret, 1, path="/trivial-quiet")
    send(ws, {"n": 1})  # opens the kept connection
    trivial.wait_requests(1)
    time.sleep(0.1)
    send(ws, {"crash": True})
    assert recv_json(ws) == relay_failed(502)
    crashes = [r for r in trivial.requests if r.json().get("crash")]
    assert len(crashes) == 1, f"the app got the message {len(crashes)} times"
