"""Every file in conf-examples/ passes `nginx -t` with the built module, and
runs end to end with real traffic."""

import json
import re
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from groups_util import (AuthUpstream, close_ws, count, expect_nothing_more, http as http_call,
                         next_text, publish, stats)
from django_app import DjangoApp
from jwt_util import KeyPair, make_token, new_secret, new_secret_file
from nginx_harness import MODULE, REPO, example_locations, example_snippet, wait_for
from sse_client import Stream
from wsclient import assert_json_error, handshake
from test_redis_cluster import redis, redis_factory  # noqa: F401

EXAMPLES = sorted((REPO / "conf-examples").glob("*.conf"))


def nginx_t(conf_text, prefix):
    (prefix / "conf").mkdir(exist_ok=True)
    (prefix / "logs").mkdir(exist_ok=True)
    (prefix / "tmp").mkdir(exist_ok=True)
    path = prefix / "conf" / "nginx.conf"
    path.write_text(conf_text)
    return subprocess.run(["/usr/sbin/nginx", "-t", "-p", str(prefix), "-c", str(path)],
                          capture_output=True, text=True)


@pytest.fixture(scope="module")
def jwt_public_key(tmp_path_factory):
    return KeyPair(tmp_path_factory.mktemp("jwtkey"), "p256", "key").pub_path


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
def test_example_passes_nginx_t(example, jwt_public_key, tls_cert):
    prefix = Path(tempfile.mkdtemp(prefix="rt-example-"))
    # machine-specific files the examples name: stand-ins made for the test
    text = (example.read_text()
            .replace("/etc/nginx/realtime/jwt-public.pem", str(jwt_public_key))
            .replace("/etc/nginx/realtime/jwt-secret.key", str(jwt_public_key))
            .replace("/etc/ssl/certs/ssl-cert-snakeoil.pem", str(tls_cert[0]))
            .replace("/etc/ssl/private/ssl-cert-snakeoil.key", str(tls_cert[1])))
    if re.search(r"^load_module", text, re.M):
        # a whole nginx.conf (the demo): fill in the demo script's placeholders
        conf = (text.replace("@MODULE@", str(MODULE)).replace("@PREFIX@", str(prefix))
                .replace("@HTML@", str(REPO / "demo"))
                .replace("@CLIENTS@", str(REPO / "clients" / "js")))
    else:
        # an http{}-level snippet, as its header says: include it in a minimal main config
        conf = (f"load_module {MODULE};\nerror_log {prefix}/logs/error.log;\npid {prefix}/logs/nginx.pid;\n"
                f"events {{}}\nhttp {{\n  access_log off;\n  client_body_temp_path {prefix}/tmp;\n"
                f"  proxy_temp_path {prefix}/tmp;\n{text}\n}}\n")
    r = nginx_t(conf, prefix)
    assert r.returncode == 0, r.stderr
    assert "syntax is ok" in r.stderr


# --------------------------------------------------------------------------
# each example run end to end: nginx with the file, real subscribers, a
# publish through the example's own publish location, messages received.
# Ports become free ones, machine-specific files stand-ins, the app behind
# auth_request a small Python server; the locations are found in the file
# (example_locations), so an example may move its publish API elsewhere.

ORIGIN = "https://app.example.com"


class WhoAmI(AuthUpstream):
    """The Django side of the session examples: /api/whoami/ answers 200 +
    X-User-Id for a known sessionid cookie, 401 otherwise; anything else 404.
    .requests: (method, path, Cookie) of each request."""

    SESSIONS = {"s-5": "5", "s-7": "7"}

    def __init__(self):
        self.requests = []
        super().__init__(self.whoami)

    def whoami(self, req):
        self.requests.append((req.command, req.path, req.headers.get("Cookie")))
        cookies = dict(c.strip().split("=", 1) for c in
                       (req.headers.get("Cookie") or "").split(";") if "=" in c)
        user = self.SESSIONS.get(cookies.get("sessionid"))
        if not req.path.startswith("/api/whoami/"):
            return 404, []
        if user is None:
            return 401, []
        return 200, [("X-User-Id", user)]


@pytest.fixture
def whoami():
    with WhoAmI() as app:
        yield app


def one(found, what):
    assert len(found) == 1, f"expected one {what} location, found {found}"
    return found[0]


def publish_api(ngx, snippet):
    """(port, path) of the example's publish location."""
    path, placeholder = one(example_locations(snippet, "realtime_publish"), "realtime_publish")
    return ngx.ports[placeholder], path


def subscriber(port, path, headers=(), **kw):
    resp, ws = handshake(port, path, headers=headers, **kw)
    assert resp.status == 101, f"{path}: {resp.status_line} {resp.body[:200]!r}"
    return resp, ws


def unwrap(text):
    """The demo's WebSocket location has realtime_envelope on: a published
    message {"group":G,"id":"EPOCH:SEQ","data":D} -> D (its text as it was
    published: a string as is, else compact JSON); the server's own frames
    (welcome, answers, errors) come bare and are returned as they are."""
    doc = json.loads(text)
    if isinstance(doc, dict) and set(doc) == {"group", "id", "data"}:
        assert re.fullmatch(r"[0-9a-f]{16}:[1-9][0-9]*", doc["id"]), doc
        data = doc["data"]
        return data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return text


def next_message(ws, events=None):
    """The next message (unwrapped) that is not a presence join/leave event
    of the default shape; the events skipped are appended to events."""
    while True:
        text = unwrap(next_text(ws))
        if not text.startswith('{"type":"presence","event":'):
            return text
        if events is not None:
            events.append(json.loads(text))


def presence_event(event, group, user):
    return {"type": "presence", "event": event, "group": group, "user": user, "info": None}


def test_demo_example_end_to_end(nginx_factory):
    snippet, _ = example_snippet("demo.conf")
    ngx = nginx_factory(snippet)
    _loc, placeholder = one(example_locations(snippet, "realtime_websocket"), "realtime_websocket")
    port = ngx.ports[placeholder]
    pub_port, pub_path = publish_api(ngx, snippet)

    page = http_call(port, "GET", "/")
    assert page.status == 200 and b"<html" in page.body.lower(), page
    # the demo's user comes from ?user= (for the demo only): 1 to 32
    # letters, digits, "_" or "-", else 403
    for bad in ("", "?user=", "?user=a%20b", "?user=%22x%22", "?user=" + "x" * 33):
        resp, ws = handshake(port, "/ws/rooms/lobby/" + bad)
        assert ws is None and resp.status == 403, (bad, resp)
    alice_events = []
    _, lobby = subscriber(port, "/ws/rooms/lobby/?user=alice")
    _, other = subscriber(port, "/ws/rooms/other/?user=bob")
    assert count(pub_port, "room_lobby", path=pub_path) == 1
    assert count(pub_port, "announcements", path=pub_path) == 2
    assert json.loads(next_message(lobby)) == {"type": "welcome", "user": "alice", "room": "lobby"}
    assert json.loads(next_message(other)) == {"type": "welcome", "user": "bob", "room": "other"}

    r = publish(pub_port, {"group": "room_lobby", "data": {"text": "hello"}}, path=pub_path).json()
    assert r == {"messages": 1, "subscribers": 1}
    assert next_message(lobby, alice_events) == '{"text":"hello"}'
    r = publish(pub_port, {"group": "announcements", "data": "to all"}, path=pub_path).json()
    assert r == {"messages": 1, "subscribers": 2}
    assert next_message(lobby, alice_events) == "to all"
    assert next_message(other) == "to all"       # the lobby message never reached it

    # a second user in the lobby: who is here, chat with the sender stamped
    # (a forged one replaced), not echoed, only the page's two types; app ping
    _, carol = subscriber(port, "/ws/rooms/lobby/?user=carol")
    assert json.loads(next_message(carol)) == {"type": "welcome", "user": "carol", "room": "lobby"}
    carol.send_text('{"type":"presence","group":"room_lobby"}')
    assert json.loads(next_message(carol)) == {"type": "presence", "group": "room_lobby", "count": 2,
                                               "users": [{"user": "alice", "info": None, "connections": 1},
                                                         {"user": "carol", "info": None, "connections": 1}]}
    carol.send_text('{"type":"chat_message","message":"hi","sender":"mallory"}')
    carol.send_text('{"type":"user_typing"}')
    carol.send_text('{"type":"something_else"}')
    carol.send_text('{"type":"ping","t":5}')
    assert next_message(lobby, alice_events) == '{"type":"chat_message","message":"hi","sender":"carol"}'
    assert next_message(lobby, alice_events) == '{"type":"user_typing","sender":"carol"}'
    assert next_message(carol) == '{"type":"error","error":"type_not_allowed"}'
    assert next_message(carol) == '{"type":"pong","t":5}'
    marker = publish(pub_port, {"group": "room_lobby", "data": "marker"}, path=pub_path).json()
    assert marker == {"messages": 1, "subscribers": 2}
    assert next_message(carol) == "marker"       # echo=off: nothing of her own before it
    assert next_message(lobby, alice_events) == "marker"

    # carol leaves: one leave event to the room, after the 2 s leave_delay
    carol.close()
    while presence_event("leave", "room_lobby", "carol") not in alice_events:
        alice_events.append(json.loads(unwrap(next_text(lobby))))
    assert presence_event("join", "room_lobby", "carol") in alice_events
    assert [e for e in alice_events if e["group"] == "room_lobby"] == [
        presence_event("join", "room_lobby", "alice"), presence_event("join", "room_lobby", "carol"),
        presence_event("leave", "room_lobby", "carol")]
    r = http_call(pub_port, "GET", pub_path + "?presence=room_lobby").json()
    assert r == {"group": "room_lobby", "count": 1, "users": [{"user": "alice", "info": None, "connections": 1}]}
    publish(pub_port, {"group": "room_other", "data": "marker"}, path=pub_path)
    assert next_message(other) == "marker"       # nothing of the lobby's reached it

    stats_path, stats_ph = one(example_locations(snippet, "realtime_stats"), "realtime_stats")
    st = stats(ngx.ports[stats_ph], stats_path)
    assert st["zone"] == "realtime" and st["connections"] == 2, st


@pytest.mark.parametrize("example", ["notifications.conf", "django-session.conf"])
def test_session_example_end_to_end(nginx_factory, whoami, example):
    snippet, _ = example_snippet(example, replace=[("127.0.0.1:8000", f"127.0.0.1:{whoami.port}")])
    ngx = nginx_factory(snippet)
    ws_path, placeholder = one(example_locations(snippet, "realtime_websocket"), "realtime_websocket")
    port = ngx.ports[placeholder]
    pub_port, pub_path = publish_api(ngx, snippet)

    def cookie(session, origin=ORIGIN):
        return [("Cookie", f"theme=dark; sessionid={session}"), ("Origin", origin)]

    _, five = subscriber(port, ws_path, cookie("s-5"))
    _, seven = subscriber(port, ws_path, cookie("s-7"))
    assert count(pub_port, "user_5_notifications", path=pub_path) == 1
    assert count(pub_port, "global_notifications", path=pub_path) == 2
    # the app was asked, with the cookie
    assert any(p.startswith("/api/whoami/") and c and "sessionid=s-5" in c
               for _m, p, c in whoami.requests), whoami.requests

    # published from this host (loopback), wherever the example puts the API
    r = publish(pub_port, {"group": "user_5_notifications", "data": {"type": "level_up", "level": 7}},
                path=pub_path).json()
    assert r == {"messages": 1, "subscribers": 1}
    assert next_text(five) == '{"type":"level_up","level":7}'
    expect_nothing_more(pub_port, [seven], "user_7_notifications", path=pub_path)
    r = publish(pub_port, {"group": "global_notifications", "data": "maintenance"}, path=pub_path).json()
    assert r == {"messages": 1, "subscribers": 2}
    assert next_text(five) == "maintenance" and next_text(seven) == "maintenance"

    if "realtime_eventsource on;" in snippet:
        # the same user's notifications as an event stream, same cookie
        stream = Stream(port, ws_path, headers=cookie("s-5"))
        assert stream.status == 200, stream.headers
        assert stream.headers["content-type"] == "text/event-stream"
        assert stream.headers["access-control-allow-origin"] == ORIGIN
        r = publish(pub_port, {"group": "user_5_notifications", "data": {"type": "badge", "n": 2}},
                    path=pub_path).json()
        assert r == {"messages": 1, "subscribers": 2}
        assert next_text(five) == '{"type":"badge","n":2}'
        assert stream.next_event()["data"] == '{"type":"badge","n":2}'
        assert Stream(port, ws_path, headers=[("Origin", ORIGIN)]).status == 401
        stream.close()

    # refusals: no session (the app's 401, passed on), another site (403 JSON)
    resp, ws = handshake(port, ws_path, headers=[("Origin", ORIGIN)])
    assert ws is None and resp.status == 401, resp
    resp, ws = handshake(port, ws_path, headers=cookie("s-5", origin="https://evil.example"))
    assert ws is None, resp
    assert_json_error(resp, 403)
    if pub_port != port:
        # the public listener does not reach the publish API
        resp = publish(port, {"group": "global_notifications", "data": "x"}, path=pub_path,
                       expect=None)
        assert resp.status != 200, resp
    expect_nothing_more(pub_port, [five, seven], "global_notifications", path=pub_path)


def test_jwt_example_end_to_end(nginx_factory, tls_cert, client_ssl_context, tmp_path):
    tmp_path.chmod(0o755)
    key = KeyPair(tmp_path, "p256", "app")
    snippet, _ = example_snippet("jwt-notifications.conf", replace=[
        ("/etc/nginx/realtime/jwt-public.pem", str(key.pub_path)),
        ("/etc/ssl/certs/ssl-cert-snakeoil.pem", str(tls_cert[0])),
        ("/etc/ssl/private/ssl-cert-snakeoil.key", str(tls_cert[1]))])
    ngx = nginx_factory(snippet)
    ws_path, placeholder = one(example_locations(snippet, "realtime_websocket"), "realtime_websocket")
    port = ngx.ports[placeholder]
    pub_port, pub_path = publish_api(ngx, snippet)

    def token(sub, **extra):
        c = {"sub": sub, "iss": ORIGIN, "exp": int(time.time()) + 600, **extra}
        return make_token("ES256", key, c)

    origin = [("Origin", ORIGIN)]
    # wss, token in the query string, with a groups claim
    _, five = subscriber(port, f"{ws_path}?token={token('5', groups=['team_7'])}", origin,
                         ssl_context=client_ssl_context)
    # the browser way: the token as a subprotocol next to notifications.v1
    resp, eight = subscriber(port, ws_path, origin, ssl_context=client_ssl_context,
                             protocols=["notifications.v1, bearer." + token("8")])
    assert resp.header("Sec-WebSocket-Protocol") == "notifications.v1"
    assert count(pub_port, "user_5_notifications", path=pub_path) == 1
    assert count(pub_port, "team_7", path=pub_path) == 1
    assert count(pub_port, "global_notifications", path=pub_path) == 2

    for group, data, receivers in [("user_5_notifications", "for 5", [five]),
                                   ("team_7", "for the team", [five]),
                                   ("user_8_notifications", "for 8", [eight]),
                                   ("global_notifications", "for all", [five, eight])]:
        r = publish(pub_port, {"group": group, "data": data}, path=pub_path).json()
        assert r == {"messages": 1, "subscribers": len(receivers)}, (group, r)
        for ws in receivers:
            assert next_text(ws) == data
    expect_nothing_more(pub_port, [five, eight], "global_notifications", path=pub_path)

    # refusals, as JSON: an HMAC token (the example allows RS256/ES256 only),
    # another issuer, no token
    for bad in (make_token("HS256", new_secret(), {"sub": "5", "iss": ORIGIN}),
                token("5", iss="https://evil.example")):
        resp, ws = handshake(port, f"{ws_path}?token={bad}", headers=origin,
                             ssl_context=client_ssl_context)
        assert ws is None, resp
        assert_json_error(resp, 401)
    resp, ws = handshake(port, ws_path, headers=origin, ssl_context=client_ssl_context)
    assert_json_error(resp, 401, "no token")


class JwtExample:
    """A JWT example (the chat room, online status, project tickets) running
    with a test key and certificate: .ngx, .snippet, .port (the public TLS
    listener), .pub (port, path) of its publish API; connect(path, **claims)
    opens a wss socket with a token for those claims ("iss" and "exp" added
    unless given)."""

    def __init__(self, nginx_factory, name, tls_cert, ssl_context, key, replace=()):
        self.snippet, _ = example_snippet(name, replace=[
            ("/etc/nginx/realtime/jwt-public.pem", str(key.pub_path)),
            ("/etc/ssl/certs/ssl-cert-snakeoil.pem", str(tls_cert[0])),
            ("/etc/ssl/private/ssl-cert-snakeoil.key", str(tls_cert[1])), *replace])
        self.ngx = nginx_factory(self.snippet)
        placeholders = {ph for _l, ph in example_locations(self.snippet, "realtime_websocket")}
        assert placeholders == {"ssl_port"}, placeholders
        self.port = self.ngx.ports["ssl_port"]
        # (the Django drop-in has no publish API: its app uses the channel layer)
        self.pub = (publish_api(self.ngx, self.snippet)
                    if example_locations(self.snippet, "realtime_publish") else None)
        self.ssl_context, self.key = ssl_context, key

    def token(self, **claims):
        return make_token("ES256", self.key, {"iss": ORIGIN, "exp": int(time.time()) + 600, **claims})

    def connect(self, path, query="", **claims):
        q = f"{query}&" if query else ""
        _, ws = subscriber(self.port, f"{path}?{q}token={self.token(**claims)}",
                           [("Origin", ORIGIN)], ssl_context=self.ssl_context)
        return ws

    def refused(self, path, token, status):
        resp, ws = handshake(self.port, f"{path}?token={token}", headers=[("Origin", ORIGIN)],
                             ssl_context=self.ssl_context)
        assert ws is None, resp
        assert_json_error(resp, status)

    def publish(self, group, data):
        port, path = self.pub
        return publish(port, {"group": group, "data": data}, path=path).json()

    def presence(self, group):
        port, path = self.pub
        return http_call(port, "GET", f"{path}?presence={group}").json()

    def nothing_more(self, subscribers, group):
        port, path = self.pub
        expect_nothing_more(port, subscribers, group, path=path)


@pytest.fixture
def jwt_example(nginx_factory, tls_cert, client_ssl_context, tmp_path):
    tmp_path.chmod(0o755)
    key = KeyPair(tmp_path, "p256", "app")
    return lambda name, **kw: JwtExample(nginx_factory, name, tls_cert, client_ssl_context, key,
                                         **kw)


def next_json(ws):
    return json.loads(next_text(ws))


def test_multi_node_chat_example_end_to_end(jwt_example, redis):
    """The chat room on two nodes sharing a real redis-server: members on
    either node talk, presence counts a user once across nodes, a member
    that comes back through the other node resumes, and the app asks any
    node."""
    a, b = (jwt_example("multi-node-chat.conf",
                        replace=[("redis://127.0.0.1:6379", redis.url)]) for _ in range(2))
    # both nodes' subscribers are up: each follows its node channel
    assert wait_for(lambda: len(redis.channels("chat:n:*")) == 2, 10)

    def joined(name):
        return {"group": "chat_lobby",
                "data": {"type": "user_event", "event": "user_joined", "user": name}}

    alice = a.connect("/ws/chat/lobby/", sub="5", username="alice")
    assert next_json(alice) == joined("alice")
    assert wait_for(lambda: redis.numsub("chat:g:chat_lobby") == 1, 10)
    bob = b.connect("/ws/chat/lobby/", sub="8", username="bob")
    assert next_json(bob) == joined("bob")
    assert next_json(alice) == joined("bob")       # across nodes
    # B learns who was there before it followed the room (its snapshot)
    assert wait_for(lambda: redis.numsub("chat:g:chat_lobby") == 2, 10)
    assert wait_for(lambda: "5" in [u["user"] for u in b.presence("chat_lobby")["users"]], 10)
    alice_b = b.connect("/ws/chat/lobby/", sub="5", username="alice")  # a tab on B: no event

    alice.send_text('{"message":"Merhaba!"}')
    got = [next_json(ws) for ws in (alice, bob, alice_b)]
    assert got[0] == got[1] == got[2], got
    first = got[0]
    assert first["data"] == {"message": "Merhaba!", "type": "chat_message", "sender": "alice"}
    assert re.fullmatch(r"[0-9a-f]{16}:1", first["id"]), first

    # one user, two nodes: counted once, with both tabs
    for ex in (a, b):
        p = ex.presence("chat_lobby")
        assert p["count"] == 2, p
        assert {u["user"]: u["connections"] for u in p["users"]} == {"5": 2, "8": 1}, p

    # bob goes; alice's message meanwhile; bob comes back through node A
    close_ws(bob)
    alice.send_text('{"message":"are you there?"}')
    missed = next_json(alice)
    assert next_json(alice_b) == missed
    bob = a.connect("/ws/chat/lobby/", query=f"last_id={first['id']}", sub="8", username="bob")
    assert next_json(bob) == missed     # back within leave_delay: no leave, no join
    close_ws(bob)
    assert next_json(alice) == {"group": "chat_lobby", "data": {
        "type": "user_event", "event": "user_left", "user": "bob"}}

    port, path = a.pub
    hist = http_call(b.pub[0], "GET", f"{b.pub[1]}?history=chat_lobby").json()
    assert [m["id"] for m in hist["messages"]] == [first["id"], missed["id"]], hist
    assert publish(port, {"group": "chat_lobby", "data": {"type": "chat_message",
                                                           "message": "Hi!", "sender": "bot"}},
                   path=path).json()["nodes"] == 2


def test_django_channels_example_end_to_end(jwt_example, redis, tmp_path):
    """The seed notifications app with its Python unchanged: group_send from
    a Django view and from a process of its own (channels_redis' core layer
    on a real redis-server) reaches the browsers connected to nginx, each
    in the shape its consumer's handler sent."""
    from test_channels_layer import ChannelsApp

    ex = jwt_example("django-channels.conf",
                     replace=[("redis://127.0.0.1:6379", redis.url)])
    app = ChannelsApp(redis.url).start()
    try:
        alice = ex.connect("/ws/notifications/", user_id=5)
        bob = ex.connect("/ws/notifications/", user_id=8)
        # nginx registered one channel per group in the layer, as group_add does
        assert wait_for(lambda: redis.cmd("ZCARD", "asgi:group:user_5_notifications") == 1
                        and redis.cmd("ZCARD", "asgi:group:global_notifications") == 1, 10)

        note = {"title": "Ticket Assigned", "message": "You were assigned to PROJ-456"}
        app.send([["user_5_notifications", {"type": "send_notification", "notification": note}],
                  ["global_notifications", {"type": "notification_message",
                                            "data": {"id": "maintenance", "level": "info"}}]])
        assert next_json(alice) == {"type": "notification", "data": note}
        glob = {"type": "notification_message", "data": {"id": "maintenance", "level": "info"}}
        assert next_json(alice) == glob
        assert next_json(bob) == glob               # not alice's own notification
        # from a process of its own (a Celery task, a cron job)
        app.command([["user_8_notifications", {"type": "send_notification",
                                               "notification": {"title": "Hi bob"}}]])
        assert next_json(bob) == {"type": "notification", "data": {"title": "Hi bob"}}
        # nothing else was on its way to alice: the next thing she gets is a marker
        app.send([["user_5_notifications", {"type": "websocket.send", "text": "marker"}]])
        assert next_text(alice) == "marker"
        # a forged or missing token never joins
        ex.refused("/ws/notifications/", "not.a.token", 401)
    finally:
        app.stop()


def test_chat_room_example_end_to_end(jwt_example):
    """The seed chat room: {"message": ...} in, {"type": "chat_message",
    "message": ..., "sender": <username>} out to the room, user_event
    joined/left once per user."""
    ex = jwt_example("chat-room.conf")
    joined = {"type": "user_event", "message": "Bir kullanıcı odaya katıldı", "event": "user_joined"}
    left = {"type": "user_event", "message": "Bir kullanıcı odadan ayrıldı", "event": "user_left"}

    alice = ex.connect("/ws/chat/lobby/", sub="5", username="alice")
    assert next_json(alice) == joined          # the joiner gets it too, as group_send does
    bob = ex.connect("/ws/chat/lobby/", sub="8", username="bob")
    assert next_json(alice) == joined and next_json(bob) == joined
    alice2 = ex.connect("/ws/chat/lobby/", sub="5", username="alice")   # a second tab: no event
    carol = ex.connect("/ws/chat/other/", sub="9", username="carol")    # another room
    assert next_json(carol) == joined

    alice.send_text('{"message":"Merhaba!"}')
    for ws in (alice, alice2, bob):
        # the seed's format exactly (key order: the client's fields, then the stamps)
        assert next_text(ws) == '{"message":"Merhaba!","type":"chat_message","sender":"alice"}'
    # a forged sender and type are overwritten
    bob.send_text('{"type":"user_event","message":"hi","sender":"alice","event":"user_left"}')
    for ws in (alice, alice2, bob):
        assert next_json(ws) == {"type": "chat_message", "message": "hi", "sender": "bob",
                                 "event": "user_left"}
    bob.send_text('{"type":"ping","t":1}')      # the app ping is the module's, not the room's
    assert next_json(bob) == {"type": "pong", "t": 1}
    bob.send_text("not json")
    assert next_json(bob) == {"type": "error", "error": "not_json"}

    # the app: who is here (one entry per user, with the tabs), and a message
    assert ex.presence("chat_lobby") == {"group": "chat_lobby", "count": 2, "users": [
        {"user": "5", "info": {"username": "alice"}, "connections": 2},
        {"user": "8", "info": {"username": "bob"}, "connections": 1}]}
    msg = {"type": "chat_message", "message": "Hi!", "sender": "bot"}
    assert ex.publish("chat_lobby", msg) == {"messages": 1, "subscribers": 3}
    for ws in (alice, alice2, bob):
        assert next_json(ws) == msg

    # one tab closed: alice is still here; the last one: she left (after 2 s)
    close_ws(alice2)
    ex.nothing_more([alice, bob], "chat_lobby")
    close_ws(alice)
    assert next_json(bob) == left
    assert ex.presence("chat_lobby")["count"] == 1
    ex.nothing_more([bob], "chat_lobby")
    ex.nothing_more([carol], "chat_other")     # nothing of the lobby reached the other room

    # no token, a token from elsewhere: 401
    ex.refused("/ws/chat/lobby/", "", 401)
    ex.refused("/ws/chat/lobby/", make_token("HS256", new_secret(), {"sub": "5", "iss": ORIGIN}), 401)


def test_online_status_example_end_to_end(jwt_example):
    """Everyone in the presence group "online": join/leave once per user,
    the leave delayed so that a page change does not flap; the list asked
    by the page and by the app."""
    ex = jwt_example("online-status.conf")
    path = "/ws/online-status/"

    def event(kind, user, name):
        return {"type": "presence", "event": kind, "group": "online", "user": user,
                "info": {"username": name}}

    alice = ex.connect(path, sub="5", username="alice")
    assert next_json(alice) == event("join", "5", "alice")
    bob = ex.connect(path, sub="8", username="bob")
    assert next_json(alice) == next_json(bob) == event("join", "8", "bob")
    alice2 = ex.connect(path, sub="5", username="alice")

    bob.send_text('{"type":"presence","group":"online"}')
    users = [{"user": "5", "info": {"username": "alice"}, "connections": 2},
             {"user": "8", "info": {"username": "bob"}, "connections": 1}]
    assert next_json(bob) == {"type": "presence", "group": "online", "count": 2, "users": users}
    assert ex.presence("online") == {"group": "online", "count": 2, "users": users}
    bob.send_text('{"type":"chat","text":"x"}')         # the socket only listens
    assert next_json(bob) == {"type": "error", "error": "unhandled"}

    # alice goes to another page: both tabs close, one comes back at once
    close_ws(alice)
    close_ws(alice2)
    alice = ex.connect(path, sub="5", username="alice")
    ex.nothing_more([alice, bob], "online")             # no leave, no join
    assert ex.presence("online")["count"] == 2

    # she logs out: the leave comes 5 s after her last socket closed
    start = time.monotonic()
    close_ws(alice)
    assert next_json(bob) == event("leave", "5", "alice")
    assert time.monotonic() - start >= 4.5
    assert ex.presence("online") == {"group": "online", "count": 1, "users": [users[1]]}
    ex.nothing_more([bob], "online")


def test_project_tickets_example_end_to_end(jwt_example):
    """Seed 004: the connection_established greeting, user_status
    joined/left with a numeric user_id, ticket_viewing and user_typing to
    the others only, the app ping, ticket updates published by the app."""
    ex = jwt_example("project-tickets.conf")
    path = "/ws/projects/1/presence/"

    def status(action, name, uid):
        return {"type": "user_status", "action": action, "username": name, "user_id": uid}

    john = ex.connect(path, user_id=5, username="john_doe")
    assert next_text(john) == '{"type":"connection_established","user_id":5}'
    assert next_text(john) == '{"type":"user_status","action":"joined","username":"john_doe","user_id":5}'
    jane = ex.connect(path, user_id=7, username="jane")
    assert next_json(jane) == {"type": "connection_established", "user_id": 7}
    assert next_json(john) == next_json(jane) == status("joined", "jane", 7)
    other = ex.connect("/ws/projects/2/presence/", user_id=9, username="max")
    assert next_json(other) == {"type": "connection_established", "user_id": 9}
    assert next_json(other) == status("joined", "max", 9)
    tickets = ex.connect("/ws/projects/1/tickets/", user_id=7, username="jane")

    # viewing and typing go to the others, stamped; not back to the sender
    john.send_text('{"type":"ticket_viewing","ticket_id":123}')
    assert next_json(jane) == {"type": "ticket_viewing", "ticket_id": 123, "username": "john_doe",
                               "user_id": 5, "sender": "5"}
    john.send_text('{"type":"user_typing","ticket_id":123,"username":"jane","user_id":7}')
    assert next_json(jane) == {"type": "user_typing", "ticket_id": 123, "username": "john_doe",
                               "user_id": 5, "sender": "5"}
    # no client can forge a user_status; the app ping answers
    john.send_text('{"type":"user_status","action":"left","username":"jane","user_id":7}')
    assert next_json(john) == {"type": "error", "error": "type_not_allowed"}
    john.send_text('{"type":"ping","timestamp":1730800000000}')
    assert next_json(john) == {"type": "pong", "timestamp": 1730800000000}
    ex.nothing_more([john, jane], "project_1_presence")
    ex.nothing_more([other], "project_2_presence")

    # the app: who is in project 1, and a ticket update to the tickets socket
    assert ex.presence("project_1_presence") == {"group": "project_1_presence", "count": 2, "users": [
        {"user": "5", "info": {"username": "john_doe"}, "connections": 1},
        {"user": "7", "info": {"username": "jane"}, "connections": 1}]}
    update = {"type": "ticket_update", "action": "created", "data": {"ticket_id": 123, "key": "PROJ-456"}}
    assert ex.publish("project_1_tickets", update) == {"messages": 1, "subscribers": 1}
    assert next_json(tickets) == update

    # jane closes the page: john sees her leave (after the 3 s leave_delay)
    close_ws(jane)
    assert next_json(john) == status("left", "jane", 7)
    ex.nothing_more([john], "project_1_presence")
    ex.refused(path, "", 401)


def test_notifications_relay_example_end_to_end(nginx_factory, tmp_path):
    """The seeds' notifications app with mark-as-read over the socket: the
    relay goes to the real Django app of t/integration/relay_app, which
    checks the example's shared secret."""
    secret, secret_path = new_secret_file(tmp_path)
    app = DjangoApp("change-me-in-settings").start()
    try:
        snippet, _ = example_snippet("notifications-relay.conf", replace=[
            ("/etc/nginx/realtime/jwt-secret.key", str(secret_path)),
            ("server 127.0.0.1:8000;", f"server 127.0.0.1:{app.port};")])
        ngx = nginx_factory(snippet)
        ws_path, placeholder = one(example_locations(snippet, "realtime_websocket"),
                                   "realtime_websocket")
        port = ngx.ports[placeholder]
        pub_port, pub_path = publish_api(ngx, snippet)

        uid = 4242
        first, second = app.seed(uid, "welcome", "level up")
        tok = make_token("HS256", secret, {"user_id": uid, "exp": int(time.time()) + 600})
        _, tab1 = subscriber(port, f"{ws_path}?token={tok}")
        _, tab2 = subscriber(port, f"{ws_path}?token={tok}")
        for ws in (tab1, tab2):
            assert json.loads(next_text(ws)) == {"type": "connection_established", "user_id": uid}
            # the connect event's answer: the unread count, from the app
            assert json.loads(next_text(ws)) == {"type": "hello", "unread": 2}

        # mark_read from one tab: the reply to it, the badge to both tabs
        tab1.send_text(json.dumps({"type": "mark_read", "id": first}))
        got = {next_text(tab1), next_text(tab1)}
        assert {json.loads(t)["type"] for t in got} == {"unread", "badge"}, got
        assert json.loads(next_text(tab2)) == {"type": "badge", "unread": 1}
        state = app.state()
        assert [n["read"] for n in state["notifications"] if n["user_id"] == uid] == [True, False]

        # the app's own publishes still go through the loopback publish API
        r = publish(pub_port, {"group": f"user_{uid}_notifications",
                               "data": {"type": "notification", "title": "new"}},
                    path=pub_path).json()
        assert r == {"messages": 1, "subscribers": 2}
        for ws in (tab1, tab2):
            assert json.loads(next_text(ws)) == {"type": "notification", "title": "new"}

        # the disconnect event reaches the app with the close code
        close_ws(tab2)
        def disconnects():
            return [(e["user"], e["code"]) for e in app.state()["events"]
                    if e["kind"] == "disconnect"]
        assert wait_for(lambda: disconnects(), 10), app.state()["events"]
        assert disconnects() == [(str(uid), 1000)], app.state()["events"]
    finally:
        app.cleanup()


def test_every_example_runs_end_to_end():
    """A new file in conf-examples/ needs its own end-to-end test above."""
    covered = {"demo.conf", "notifications.conf", "django-session.conf", "jwt-notifications.conf",
               "chat-room.conf", "online-status.conf", "project-tickets.conf",
               "notifications-relay.conf", "multi-node-chat.conf", "django-channels.conf"}
    assert {e.name for e in EXAMPLES} == covered
