"""Cross-site WebSocket hijacking: where the browser sends the credential by
itself (a JWT read from a cookie, or auth_request asking the app about the
session cookie) a page of another site could open the socket as its
visitor. There the handshake's Origin must name this host (Host) unless
realtime_allowed_origins says otherwise; a JWT in the query string or a
header (which a foreign page cannot have) keeps allowing any origin.
Requests without Origin (non-browser clients) are allowed everywhere."""

import json

import pytest

import wsclient
from groups_util import AuthUpstream, close_ws
from jwt_util import claims, make_token, new_secret_file

EVIL = "https://evil.example"


@pytest.fixture(scope="module")
def secret(tmp_path_factory):
    return new_secret_file(tmp_path_factory.mktemp("origin"))


@pytest.fixture
def upstream():
    """auth_request's upstream: 200 + X-User: alice for every request."""
    with AuthUpstream(lambda request: (200, [("X-User", "alice")])) as u:
        yield u


def snippet(secret_file, upstream_port):
    return f"""
    realtime_zone rt 4m;

    server {{
        listen {{port}};
        realtime_ping_interval 0;
        realtime_auth_jwt_key_file {secret_file};

        location = /cookie {{
            realtime_websocket;
            realtime_auth_jwt $cookie_access_token;
        }}
        location = /cookie-braces {{
            realtime_websocket;
            realtime_auth_jwt $arg_token ${{cookie_access_token}};
        }}
        location = /http-cookie {{
            realtime_websocket;
            realtime_auth_jwt $http_authorization $HTTP_COOKIE;
        }}
        location = /cookie-listed {{
            realtime_websocket;
            realtime_auth_jwt $cookie_access_token;
            realtime_allowed_origins https://app.example;
        }}
        location = /cookie-any {{
            realtime_websocket;
            realtime_auth_jwt $cookie_access_token;
            realtime_allowed_origins *;
        }}
        location = /query {{
            realtime_websocket;
            realtime_auth_jwt $arg_token $http_authorization $realtime_protocol_token;
        }}
        location = /session {{
            auth_request /auth;
            auth_request_set $user $upstream_http_x_user;
            realtime_websocket;
            realtime_user $user;
        }}
        location = /open {{
            realtime_websocket;
        }}

        location = /auth {{
            internal;
            proxy_pass http://127.0.0.1:{upstream_port}/check;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
        }}
    }}

    server {{
        listen {{port2}};
        realtime_ping_interval 0;

        # inherited from the server level
        auth_request /auth;

        location = /session {{
            auth_request_set $user $upstream_http_x_user;
            realtime_websocket;
            realtime_user $user;
        }}
        location = /session-off {{
            auth_request off;
            realtime_websocket;
        }}
        location = /auth {{
            internal;
            proxy_pass http://127.0.0.1:{upstream_port}/check;
        }}
    }}
"""


@pytest.fixture
def ngx(nginx_factory, secret, upstream):
    return nginx_factory(snippet(secret[1], upstream.port))


def handshake(port, path, origin=None, cookie=None, host=None):
    headers = [("Cookie", cookie)] if cookie else []
    resp, ws = wsclient.handshake(port, path, headers=headers, origin=origin, host=host)
    if ws is not None:
        close_ws(ws)
    return resp


def status(port, path, origin=None, cookie=None, host=None):
    return handshake(port, path, origin=origin, cookie=cookie, host=host).status


def assert_cross_origin_refused(resp):
    assert resp.status == 403, (resp.status_line, resp.body)
    doc = json.loads(resp.body)
    assert set(doc) == {"error"} and "Origin" in doc["error"], doc
    assert resp.header("Sec-WebSocket-Accept") is None


def test_cookie_jwt_defaults_to_same_origin(ngx, secret):
    cookie = "access_token=" + make_token("HS256", secret[0], claims("alice"))
    same = f"http://127.0.0.1:{ngx.port}"
    for path in ("/cookie", "/cookie-braces"):
        assert_cross_origin_refused(handshake(ngx.port, path, origin=EVIL, cookie=cookie))
        # the same host on another port is another origin
        assert_cross_origin_refused(handshake(ngx.port, path, cookie=cookie,
                                              origin=f"http://127.0.0.1:{ngx.port + 1}"))
        assert_cross_origin_refused(handshake(ngx.port, path, origin="null", cookie=cookie))
        assert status(ngx.port, path, origin=same, cookie=cookie) == 101, path
        assert status(ngx.port, path, origin=same.upper(), cookie=cookie) == 101, path
        # non-browser clients send no Origin
        assert status(ngx.port, path, cookie=cookie) == 101, path
    # default ports: "https://app.example" is the origin of Host "app.example"
    assert status(ngx.port, "/cookie", origin="https://app.example", cookie=cookie,
                  host="app.example") == 101
    assert status(ngx.port, "/cookie", origin="http://app.example", cookie=cookie,
                  host="app.example:80") == 101
    assert_cross_origin_refused(handshake(ngx.port, "/cookie", origin="https://app.example",
                                          cookie=cookie, host="app.example:8443"))
    # the origin check comes before the token: no cookie, cross-origin is 403
    assert_cross_origin_refused(handshake(ngx.port, "/cookie", origin=EVIL))
    # $http_cookie as a source counts as a cookie (names are case-insensitive)
    assert_cross_origin_refused(handshake(ngx.port, "/http-cookie", origin=EVIL))
    assert ngx.wait_log(lambda line: "handshake refused with 403: cross-origin" in line)


def test_explicit_allowed_origins_override_the_default(ngx, secret):
    cookie = "access_token=" + make_token("HS256", secret[0], claims("alice"))
    same = f"http://127.0.0.1:{ngx.port}"
    assert status(ngx.port, "/cookie-listed", origin="https://app.example", cookie=cookie) == 101
    assert handshake(ngx.port, "/cookie-listed", origin=EVIL, cookie=cookie).status == 403
    # the list replaces the default: the host's own origin is not in it
    assert handshake(ngx.port, "/cookie-listed", origin=same, cookie=cookie).status == 403
    # "*" allows any origin explicitly
    for origin in (EVIL, same, "null"):
        assert status(ngx.port, "/cookie-any", origin=origin, cookie=cookie) == 101, origin


def test_query_and_header_tokens_allow_any_origin(ngx, secret):
    token = make_token("HS256", secret[0], claims("alice"))
    for origin in (EVIL, "null", f"http://127.0.0.1:{ngx.port}", None):
        assert status(ngx.port, "/query?token=" + token, origin=origin) == 101, origin
        # a cookie sent along is not a source here
        assert status(ngx.port, "/query?token=" + token, origin=origin,
                      cookie="access_token=x") == 101, origin
    # and so does a location without authentication
    assert status(ngx.port, "/open", origin=EVIL) == 101


def test_auth_request_defaults_to_same_origin(ngx):
    same = f"http://127.0.0.1:{ngx.port}"
    assert_cross_origin_refused(handshake(ngx.port, "/session", origin=EVIL, cookie="sessionid=x"))
    assert status(ngx.port, "/session", origin=same, cookie="sessionid=x") == 101
    assert status(ngx.port, "/session", cookie="sessionid=x") == 101

    # auth_request inherited from the server level counts; "auth_request off" does not
    same2 = f"http://127.0.0.1:{ngx.ports['port2']}"
    assert_cross_origin_refused(handshake(ngx.ports["port2"], "/session", origin=EVIL))
    assert status(ngx.ports["port2"], "/session", origin=same2) == 101
    assert status(ngx.ports["port2"], "/session-off", origin=EVIL) == 101
