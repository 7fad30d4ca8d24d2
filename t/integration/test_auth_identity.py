"""A connection's identity: in-band refresh keeps it, and realtime_user has
a length limit.

A refresh may only move the expiry: the new token must give the same
realtime_user and the same groups (every claim and token header field
that realtime_user and realtime_subscribe name, and "sub", JSON-equal) and
must not lift an expiry. Tokens here carry no "sub" where the app
identifies users by "user_id" (Django SimpleJWT)."""

import json
import time

import pytest

from groups_util import close_ws, wait_count
from jwt_util import make_token, new_secret_file
from wsclient import OP_CLOSE, OP_TEXT, handshake


@pytest.fixture(scope="module")
def secret(tmp_path_factory):
    return new_secret_file(tmp_path_factory.mktemp("identity"))


def snippet(secret_file):
    return f"""
    realtime_zone rt 4m;

    server {{
        listen {{port}};
        realtime_ping_interval 0;
        realtime_auth_jwt $arg_token;
        realtime_auth_jwt_key_file {secret_file};

        location = /publish {{
            realtime_publish;
        }}
        location = /django {{
            realtime_websocket;
            realtime_echo on;
            realtime_user $jwt_claim_user_id;
            realtime_subscribe user_${{jwt_claim_user_id}}_notifications;
        }}
        location = /groups {{
            realtime_websocket;
            realtime_echo on;
            realtime_subscribe $jwt_claim_groups;
        }}
        location = /header {{
            realtime_websocket;
            realtime_echo on;
            realtime_user ${{jwt_header_tenant}}.$jwt_claim_sub;
        }}
        location = /long {{
            realtime_websocket;
            realtime_max_connections_per_user 1;
        }}
    }}
"""


@pytest.fixture
def ngx(nginx_factory, secret):
    return nginx_factory(snippet(secret[1]))


def connect(port, path, token):
    resp, ws = handshake(port, f"{path}?token={token}")
    assert resp.status == 101, (path, resp.status_line, resp.body)
    return ws


def refresh(ws, token):
    ws.send_text(json.dumps({"type": "refresh", "token": token}))
    f = ws.recv_data(timeout=5)
    assert f.opcode == OP_TEXT, f
    return json.loads(f.payload)


def refused(reason):
    return {"type": "refresh", "ok": False, "error": reason}


def wait_close(ws, timeout):
    f = ws.recv_data(timeout=timeout)
    assert f.opcode == OP_CLOSE, f
    return f, time.time()


def test_refresh_keeps_identity_groups_and_expiry(ngx, secret):
    key = secret[0]
    t0 = int(time.time())
    exp0, exp1 = t0 + 3, t0 + 6

    def tok(header=None, **c):
        return make_token("HS256", key, c, header=header)

    # user 5's sockets, tokens without "sub" as SimpleJWT makes them
    a = connect(ngx.port, "/django", tok(user_id=5, exp=exp0))
    b = connect(ngx.port, "/django", tok(user_id=5, exp=exp0))
    g = connect(ngx.port, "/groups", tok(sub="gina", groups=["team_1", "team_2"], exp=exp0))
    h = connect(ngx.port, "/header", tok(header={"tenant": "acme"}, sub="hal", exp=exp0))
    wait_count(ngx.port, "user_5_notifications", 2)

    # a: another user's token, a token without exp, a type change: refused
    assert refresh(a, tok(user_id=6, exp=exp1)) == refused('the new token changes claim "user_id"')
    assert refresh(a, tok(exp=exp1)) == refused('the new token changes claim "user_id"')
    assert refresh(a, tok(user_id="5", exp=exp1)) == refused('the new token changes claim "user_id"')
    assert refresh(a, tok(user_id=5, sub="5", exp=exp1)) == refused(
        "the new token is for another subject")
    assert refresh(a, tok(user_id=5)) == refused("the new token does not expire")

    # g: other groups, or the same user without the groups claim: refused
    assert refresh(g, tok(sub="gina", groups=["team_1", "team_3"], exp=exp1)) == refused(
        'the new token changes claim "groups"')
    assert refresh(g, tok(sub="gina", exp=exp1)) == refused('the new token changes claim "groups"')
    # h: a token header field realtime_user names must stay too
    assert refresh(h, tok(header={"tenant": "other"}, sub="hal", exp=exp1)) == refused(
        'the new token changes header "tenant"')

    # b: the same user with a later expiry is accepted (other claims may change)
    assert refresh(b, tok(user_id=5, exp=exp1, jti="second")) == {"type": "refresh", "ok": True,
                                                                  "exp": exp1}
    # same groups (the claim name matched case-insensitively) is accepted too
    ok = refresh(g, tok(sub="gina", GROUPS=["team_1", "team_2"], exp=exp0 + 1))
    assert ok == {"type": "refresh", "ok": True, "exp": exp0 + 1}, ok

    # the refused ones keep the old expiry: a and h close with 4003 at exp0
    for ws in (a, h):
        f, when = wait_close(ws, timeout=exp0 + 4 - time.time())
        assert f.close_code == 4003 and f.close_reason == b"token expired", f
        assert exp0 - 0.05 <= when <= exp0 + 2.5, when - exp0
        ws.send_close(4003)
        assert ws.wait_eof(5)

    # b stays open past the old expiry
    time.sleep(max(0.0, exp0 + 1.2 - time.time()))
    b.echo("still here")
    close_ws(b)
    close_ws(g)
    wait_count(ngx.port, "user_5_notifications", 0)
    assert ngx.wait_log(lambda line: 'token refresh refused: the new token changes claim "user_id"'
                        in line)


def test_token_without_exp_connection_may_refresh_without_exp(ngx, secret):
    """Only an expiry that exists must stay: a connection that never
    expires may refresh with a token that does not expire either."""
    a = connect(ngx.port, "/django", make_token("HS256", secret[0], {"user_id": 7}))
    assert refresh(a, make_token("HS256", secret[0], {"user_id": 7})) == {
        "type": "refresh", "ok": True, "exp": 0}
    close_ws(a)


def test_realtime_user_too_long_is_refused(ngx, secret):
    longest = "u" * 200
    ws = connect(ngx.port, "/long", make_token("HS256", secret[0], {"sub": longest}))
    resp, _ = handshake(ngx.port, "/long?token=" + make_token("HS256", secret[0], {"sub": longest}))
    assert resp.status == 429, resp  # the limit is counted for the full name

    resp, ws2 = handshake(ngx.port, "/long?token=" + make_token("HS256", secret[0],
                                                                {"sub": longest + "x"}))
    assert ws2 is None and resp.status == 403, resp
    assert json.loads(resp.body) == {"error": "realtime_user is too long"}
    assert ngx.wait_log(lambda line: "[info]" in line and
                        "handshake refused with 403: realtime_user is too long" in line)
    close_ws(ws)
