"""Session-cookie apps: nginx's auth_request asks the app (here a real HTTP
server on a free port) who the session belongs to before the upgrade; the
answer's X-User becomes the connection's identity (realtime_user) and names
its groups. The upstream answers 200 + X-User for a known "sessionid"
cookie, 401 otherwise, and 403 for a banned session."""

import http.cookies
import json
import time

import pytest

from groups_util import AuthUpstream, close_ws, count, expect_nothing_more, next_text, publish, wait_count
from wsclient import assert_json_error, handshake

SESSIONS = {"s-alice": "alice", "s-bob": "bob", "s-carol": "carol", "s-mallory": "mallory",
            "s-nouser": ""}
BANNED_USERS = {"mallory"}


class SessionApp(AuthUpstream):
    """The app's session check, as a real HTTP server in a thread; .requests
    records what each request carried."""

    def __init__(self):
        self.requests = []
        super().__init__(self.check)

    def check(self, req):
        body_len = int(req.headers.get("Content-Length") or 0)
        self.requests.append({
            "path": req.path,
            "cookie": req.headers.get("Cookie"),
            "content_length": req.headers.get("Content-Length"),
            "body": req.rfile.read(body_len) if body_len else b"",
            "original_uri": req.headers.get("X-Original-URI"),
        })
        jar = http.cookies.SimpleCookie()
        try:
            jar.load(req.headers.get("Cookie") or "")
        except http.cookies.CookieError:
            jar = {}
        sid = jar["sessionid"].value if "sessionid" in jar else None
        user = SESSIONS.get(sid)
        if "banned" in jar or user in BANNED_USERS:
            return 403, []
        if req.path != "/check" or user is None:
            return 401, [("WWW-Authenticate", 'Cookie realm="app"')]
        if user == "":
            return 200, []     # an app bug: "yes", but no user
        return 200, [("X-User", user)]


@pytest.fixture
def app():
    with SessionApp() as a:
        yield a


SNIPPET = """
    realtime_zone rt 4m;

    server {
        listen {port};
        realtime_ping_interval 0;

        location = /ws/notifications {
            auth_request /auth;
            auth_request_set $user $upstream_http_x_user;

            realtime_websocket;
            realtime_user $user;
            realtime_subscribe user_${user}_notifications u_$realtime_user broadcast;
            realtime_max_connections_per_user 2;
        }

        location = /auth {
            internal;
            proxy_pass http://127.0.0.1:UPSTREAM_PORT/check;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $request_uri;
        }

        location = /publish {
            realtime_publish;
        }
    }
"""


@pytest.fixture
def ngx(nginx_factory, app):
    return nginx_factory(SNIPPET.replace("UPSTREAM_PORT", str(app.port)))


def with_cookie(port, cookie=None, path="/ws/notifications"):
    """wsclient.handshake with a Cookie header: (HttpResponse, WS or None)."""
    return handshake(port, path, headers=[("Cookie", cookie)] if cookie else [])


def connect(port, cookie):
    resp, ws = with_cookie(port, cookie)
    assert resp.status == 101, f"{cookie}: {resp.status_line} {resp.body[:200]!r}"
    return ws


def test_session_cookie_names_the_user_groups(ngx, app):
    alice = [connect(ngx.port, "sessionid=s-alice"), connect(ngx.port, "theme=dark; sessionid=s-alice")]
    bob = [connect(ngx.port, "sessionid=s-bob")]

    # identities from the upstream's X-User: groups and $realtime_user
    wait_count(ngx.port, "user_alice_notifications", 2)
    wait_count(ngx.port, "user_bob_notifications", 1)
    assert count(ngx.port, "u_alice") == 2
    assert count(ngx.port, "u_bob") == 1
    assert count(ngx.port, "broadcast") == 3

    resp = publish(ngx.port, {"group": "user_alice_notifications", "data": {"type": "level_up", "level": 7}})
    assert resp.json()["subscribers"] == 2
    for ws in alice:
        assert json.loads(next_text(ws)) == {"type": "level_up", "level": 7}
    # bob never sees alice's notification: nothing before a marker in his group
    expect_nothing_more(ngx.port, bob, "user_bob_notifications")

    publish(ngx.port, {"group": "user_bob_notifications", "data": "for bob only"})
    assert next_text(bob[0]) == "for bob only"
    expect_nothing_more(ngx.port, alice, "user_alice_notifications")

    publish(ngx.port, {"group": "broadcast", "data": "all"})
    for ws in alice + bob:
        assert next_text(ws) == "all"

    # the upstream was asked at /check, with the cookie, without a body
    assert len(app.requests) == 3
    for req in app.requests:
        assert req["path"] == "/check"
        assert req["original_uri"] == "/ws/notifications"
        assert req["content_length"] in (None, "0") and req["body"] == b""
    assert sorted(r["cookie"] for r in app.requests) == sorted(
        ["sessionid=s-alice", "theme=dark; sessionid=s-alice", "sessionid=s-bob"])

    for ws in alice + bob:
        close_ws(ws)
    wait_count(ngx.port, "broadcast", 0)


def test_no_or_unknown_session_gets_401(ngx, app):
    for cookie in (None, "sessionid=s-nobody", "session=s-alice", "theme=dark"):
        resp, ws = with_cookie(ngx.port, cookie)
        assert ws is None and resp.status == 401, (cookie, resp)
        # auth_request passes the app's challenge on
        assert resp.header("WWW-Authenticate") == 'Cookie realm="app"', resp.headers
        assert resp.header("Sec-WebSocket-Accept") is None
    assert len(app.requests) == 4
    # nobody was subscribed
    assert count(ngx.port, "user__notifications") == 0
    assert count(ngx.port, "broadcast") == 0


def test_banned_session_gets_403(ngx, app):
    for cookie in ("sessionid=s-mallory", "sessionid=s-alice; banned=1"):
        resp, ws = with_cookie(ngx.port, cookie)
        assert ws is None and resp.status == 403, (cookie, resp)
        assert resp.header("Sec-WebSocket-Accept") is None
    assert count(ngx.port, "user_mallory_notifications") == 0
    assert count(ngx.port, "user_alice_notifications") == 0
    # a good session still works next to them
    close_ws(connect(ngx.port, "sessionid=s-alice"))


def test_authenticated_without_a_user_gets_403(ngx, app):
    """The app says 200 but names nobody: the connection would join the
    shared "user__notifications"; it is refused instead."""
    resp, ws = with_cookie(ngx.port, "sessionid=s-nouser")
    assert ws is None, resp
    # the module's own refusal: JSON, unlike the app's 401/403 passed on by auth_request
    assert_json_error(resp, 403)
    assert count(ngx.port, "user__notifications") == 0


def test_per_user_limit_with_session_identity(ngx, app):
    carol = [connect(ngx.port, "sessionid=s-carol") for _ in range(2)]
    resp, ws = with_cookie(ngx.port, "sessionid=s-carol")
    assert ws is None, resp
    assert assert_json_error(resp, 429) == {"error": "too many connections for this user"}
    # another user is not limited by carol's connections
    alice = connect(ngx.port, "sessionid=s-alice")
    close_ws(carol[0])
    deadline = time.monotonic() + 5
    while True:
        resp, ws = with_cookie(ngx.port, "sessionid=s-carol")
        if ws is not None:
            break
        assert time.monotonic() < deadline, "the limit did not free a place after a close"
        assert_json_error(resp, 429)
        time.sleep(0.05)
    for w in (carol[1], ws, alice):
        close_ws(w)


def test_upstream_down_fails_closed(ngx, app):
    app.stop()
    resp, ws = with_cookie(ngx.port, "sessionid=s-alice")
    assert ws is None and resp.status == 500, resp
    assert count(ngx.port, "user_alice_notifications") == 0
