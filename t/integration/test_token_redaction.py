"""A JWT in the query string (?token=, what the seeds' front-ends send) is
part of the request line, which nginx logs as $request in the access log
and as the request: "..." context of error log lines. With nginx's default
log formats no part of a token's signature may reach any log: the module
redacts the token in the logged request line once the location is known,
whatever happens next (101, 401, a bad handshake, limit_req, deny,
auth_request)."""


import pytest

from jwt_util import claims, make_token, new_secret, new_secret_file, signature_of, unsigned_token
from nginx_harness import wait_for
from wsclient import handshake


@pytest.fixture(scope="module")
def secret(tmp_path_factory):
    return new_secret_file(tmp_path_factory.mktemp("redact"))


def snippet(secret_file):
    # default access log format (combined, set by the harness), error log at info
    return f"""
    realtime_zone rt 4m;
    log_format raw '$request_uri $arg_token';
    limit_req_zone $server_port zone=one:1m rate=1r/m;

    server {{
        listen {{port}};
        realtime_ping_interval 0;
        realtime_auth_jwt $arg_token $cookie_access_token;
        realtime_auth_jwt_key_file {secret_file};

        location = /ws {{
            realtime_websocket;
            realtime_echo on;
        }}
        location = /raw {{
            realtime_websocket;
            access_log logs/raw.log raw;
        }}
        location = /limited {{
            limit_req zone=one;
            realtime_websocket;
        }}
        location = /denied {{
            deny all;
            realtime_websocket;
        }}
        location = /session {{
            auth_request /auth;
            realtime_websocket;
        }}
        location = /auth {{
            internal;
            # nobody listens there: nginx logs the failed connect with the
            # request line, and auth_request answers 500
            proxy_pass http://127.0.0.1:9/check;
        }}
    }}
"""


@pytest.fixture
def ngx(nginx_factory, secret):
    return nginx_factory(snippet(secret[1]))


def all_logs(ngx):
    text = ngx.error_log() + ngx.stderr_text()
    p = ngx.prefix / "logs" / "access.log"
    if p.exists():
        text += p.read_text()
    return text


def test_query_string_tokens_are_redacted_in_every_log(ngx, secret):
    key = secret[0]
    tokens = {
        "valid": make_token("HS256", key, claims("logged")),
        "valid-again": make_token("HS256", key, claims("twice")),
        "forged": make_token("HS256", new_secret(), claims("logged")),
        "expired": make_token("HS256", key, claims("logged", ttl=-100)),
        "alg-none": unsigned_token(claims("admin")) + "c2lnbmF0dXJlLXBhcnQtb2YtdGhlLW5vbmUtdG9rZW4",
        "bad-handshake": make_token("HS256", key, claims("noupgrade")),
        "denied": make_token("HS256", key, claims("denied")),
        "auth-request": make_token("HS256", key, claims("session")),
        "limited": make_token("HS256", key, claims("limited")),
    }

    # accepted: the 101's access log line
    resp, ws = handshake(ngx.port, "/ws?token=" + tokens["valid"])
    assert resp.status == 101, resp
    ws.echo("hello")
    ws.send_close(1000)
    ws.wait_eof(5)
    ws.close()
    # the token twice in the line, after another parameter
    resp, ws = handshake(ngx.port, f"/ws?v=1&token={tokens['valid-again']}&again="
                                   f"{tokens['valid-again']}")
    assert resp.status == 101, resp
    ws.close()

    # refused with 401: the module's own info line carries the request line
    for name in ("forged", "expired", "alg-none"):
        resp, _ = handshake(ngx.port, "/ws?token=" + tokens[name])
        assert resp.status == 401, (name, resp)
    # a bad handshake (no Upgrade) is refused before the token is verified
    resp, _ = handshake(ngx.port, "/ws?token=" + tokens["bad-handshake"], upgrade=None)
    assert resp.status == 426, resp
    # refused in the access phase by nginx itself ("access forbidden by rule")
    resp, _ = handshake(ngx.port, "/denied?token=" + tokens["denied"])
    assert resp.status == 403, resp
    # auth_request's upstream is down: nginx logs the failed connect
    resp, _ = handshake(ngx.port, "/session?token=" + tokens["auth-request"])
    assert resp.status == 500, resp

    # refused by limit_req (preaccess, like the redaction): the second one
    for _ in range(2):
        resp, ws = handshake(ngx.port, "/limited?token=" + tokens["limited"])
        if ws is not None:
            ws.close()
    assert resp.status == 503, resp

    assert ngx.wait_log(lambda line: "handshake refused with 401: bad signature" in line)
    assert ngx.wait_log(lambda line: "handshake refused with 426" in line)
    assert ngx.wait_log(lambda line: "access forbidden by rule" in line)
    assert ngx.wait_log(lambda line: "while connecting to upstream" in line)
    assert ngx.wait_log(lambda line: "limiting requests" in line)

    # workers write the access log after the response: wait for all 10 lines
    access_path = ngx.prefix / "logs" / "access.log"
    assert wait_for(lambda: access_path.read_text().count("\n") >= 10, 5), access_path.read_text()
    logs = all_logs(ngx)
    access = access_path.read_text()

    for name, token in tokens.items():
        sig = signature_of(token)
        assert len(sig) >= 32, name
        for part in (sig, sig[:16], sig[-16:], sig[len(sig) // 2:len(sig) // 2 + 8]):
            assert part not in logs, f"part of the {name} token's signature is in a log"

    # the lines are there, with the token replaced
    assert access.count("?token=[redacted] HTTP/1.1") >= 9, access
    assert "/ws?v=1&token=[redacted]&again=[redacted] HTTP/1.1" in access, access
    assert 'request: "GET /ws?token=[redacted] HTTP/1.1"' in ngx.error_log()
    assert 'request: "GET /denied?token=[redacted] HTTP/1.1"' in ngx.error_log()


def test_only_the_request_line_is_redacted(ngx, secret):
    """$args, $arg_token and $request_uri keep the token (they are read from
    the original request, after the redaction): a log_format that names
    them logs it, as the README warns."""
    token = make_token("HS256", secret[0], claims("args"))
    resp, ws = handshake(ngx.port, f"/raw?token={token}&x=1")
    assert resp.status == 101, resp
    ws.close()
    raw = ngx.prefix / "logs" / "raw.log"
    assert wait_for(lambda: raw.exists() and raw.read_text().endswith("\n"), 5)
    assert raw.read_text() == f"/raw?token={token}&x=1 {token}\n"
