"""Every file in conf-examples/ passes `nginx -t` with the built module, and
runs end to end with real traffic."""

import re
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from groups_util import (AuthUpstream, count, expect_nothing_more, http as http_call, next_text,
                         publish, stats)
from jwt_util import KeyPair, make_token, new_secret
from nginx_harness import MODULE, REPO, example_locations, example_snippet
from wsclient import assert_json_error, handshake

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
            .replace("/etc/ssl/certs/ssl-cert-snakeoil.pem", str(tls_cert[0]))
            .replace("/etc/ssl/private/ssl-cert-snakeoil.key", str(tls_cert[1])))
    if re.search(r"^load_module", text, re.M):
        # a whole nginx.conf (the demo): fill in the demo script's placeholders
        conf = (text.replace("@MODULE@", str(MODULE)).replace("@PREFIX@", str(prefix))
                .replace("@HTML@", str(REPO / "demo")))
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


def test_demo_example_end_to_end(nginx_factory):
    snippet, _ = example_snippet("demo.conf")
    ngx = nginx_factory(snippet)
    _loc, placeholder = one(example_locations(snippet, "realtime_websocket"), "realtime_websocket")
    port = ngx.ports[placeholder]
    pub_port, pub_path = publish_api(ngx, snippet)

    page = http_call(port, "GET", "/")
    assert page.status == 200 and b"<html" in page.body.lower(), page
    _, lobby = subscriber(port, "/ws/rooms/lobby/")
    _, other = subscriber(port, "/ws/rooms/other/")
    assert count(pub_port, "room_lobby", path=pub_path) == 1
    assert count(pub_port, "announcements", path=pub_path) == 2

    r = publish(pub_port, {"group": "room_lobby", "data": {"text": "hello"}}, path=pub_path).json()
    assert r == {"messages": 1, "subscribers": 1}
    assert next_text(lobby) == '{"text":"hello"}'
    r = publish(pub_port, {"group": "announcements", "data": "to all"}, path=pub_path).json()
    assert r == {"messages": 1, "subscribers": 2}
    assert next_text(lobby) == "to all"
    assert next_text(other) == "to all"       # the lobby message never reached it
    expect_nothing_more(pub_port, [lobby, other], "announcements", path=pub_path)

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


def test_every_example_runs_end_to_end():
    """A new file in conf-examples/ needs its own end-to-end test above."""
    covered = {"demo.conf", "notifications.conf", "django-session.conf", "jwt-notifications.conf"}
    assert {e.name for e in EXAMPLES} == covered
