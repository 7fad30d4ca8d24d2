"""Server-Sent Events (issue 11, item 6): with realtime_eventsource on, a
plain GET on a WebSocket location streams the same groups as
text/event-stream, with the same authentication, presence and history: `id:`
lines, Last-Event-ID (or ?last_id=) resume, heartbeat comments, the stream
ended (not cut) on reload, expiry and disconnect actions. Read here with a
raw HTTP client that decodes the chunks itself; a plain GET elsewhere is
told about its token before the 426."""

import json
import urllib.parse

import pytest

from groups_util import http, publish, wait_count
from jwt_util import claims, make_token, new_secret_file
from nginx_harness import pid_alive, wait_for
from sse_client import Stream
from wsclient import ws_connect

CONF = """
realtime_zone rt 8m;
server {
    listen {port};
    realtime_ping_interval 0;

    location = /publish {
        realtime_publish;
        realtime_history 50;
    }
    location = /publish-bare {
        realtime_publish;
    }
    location = /sse {
        realtime_websocket;
        realtime_eventsource on;
        realtime_subscribe $arg_g;
    }
    location = /env {
        realtime_websocket;
        realtime_eventsource on;
        realtime_subscribe $arg_g;
        realtime_envelope on;
        realtime_welcome '{"type":"welcome","group":"$arg_g"}';
    }
    location = /ws-only {
        realtime_websocket;
        realtime_subscribe $arg_g;
    }
    location = /hb {
        realtime_websocket;
        realtime_eventsource on;
        realtime_subscribe $arg_g;
        realtime_ping_interval 1s;
    }
    location = /unchunked {
        realtime_websocket;
        realtime_eventsource on;
        realtime_subscribe $arg_g;
        chunked_transfer_encoding off;
    }
    location = /jwt {
        realtime_auth_jwt $arg_token;
        realtime_auth_jwt_key_file @KEYFILE@;
        realtime_websocket;
        realtime_eventsource on;
        realtime_subscribe user_${jwt_claim_sub};
        realtime_presence on;
        realtime_envelope on;
    }
    location = /jwt-ws-only {
        realtime_auth_jwt $arg_token;
        realtime_auth_jwt_key_file @KEYFILE@;
        realtime_websocket;
        realtime_subscribe user_${jwt_claim_sub};
    }
    location = /cookie {
        realtime_auth_jwt $cookie_token;
        realtime_auth_jwt_key_file @KEYFILE@;
        realtime_websocket;
        realtime_eventsource on;
        realtime_subscribe user_${jwt_claim_sub};
    }
    location = /partner {
        realtime_websocket;
        realtime_eventsource on;
        realtime_subscribe $arg_g;
        realtime_allowed_origins https://partner.example;
    }
}
"""

TIMEOUT = 10


@pytest.fixture(scope="module")
def secret(tmp_path_factory):
    return new_secret_file(tmp_path_factory.mktemp("sse"))


@pytest.fixture
def ngx(nginx_factory, secret):
    return nginx_factory(CONF.replace("@KEYFILE@", str(secret[1])), workers=2)


def token(secret, sub="alice", ttl=3600):
    return make_token("HS256", secret[0], claims(sub=sub, ttl=ttl))


@pytest.fixture
def streams():
    opened = []

    def open_(*a, **kw):
        s = Stream(*a, **kw)
        opened.append(s)
        return s

    yield open_
    for s in opened:
        s.close()


def pub(ngx, group, data, path="/publish"):
    r = publish(ngx.port, {"group": group, "data": data}, path=path)
    return r.json()


# --------------------------------------------------------------------------


def test_stream_headers_and_delivery_with_ids(ngx, streams):
    s = streams(ngx.port, "/sse?g=news")
    assert s.status == 200
    assert s.headers["content-type"] == "text/event-stream"
    assert s.headers["cache-control"] == "no-cache"
    assert s.headers["x-accel-buffering"] == "no"
    assert s.chunked
    assert "content-length" not in s.headers
    wait_count(ngx.port, "news", 1)
    pub(ngx, "news", {"n": 1})
    pub(ngx, "news", "two\nlines")
    pub(ngx, "news", {"n": 3}, path="/publish-bare")   # not kept, still numbered
    id1, d1 = s.next_json()
    assert d1 == {"n": 1}
    e2 = s.next_event()
    assert e2["data"] == "two\nlines"
    e3 = s.next_event()
    assert json.loads(e3["data"]) == {"n": 3}
    epoch, seq = id1.split(":")
    assert len(epoch) == 16 and int(seq) >= 1
    assert e2["id"] == f"{epoch}:{int(seq) + 1}"
    assert e3["id"] == f"{epoch}:{int(seq) + 2}"


def test_websocket_and_stream_side_by_side_on_both_workers(ngx, streams):
    subs = [streams(ngx.port, "/sse?g=mix") for _ in range(6)]
    ws, _ = ws_connect(ngx.port, "/sse?g=mix")
    wait_count(ngx.port, "mix", 7)
    for i in range(5):
        pub(ngx, "mix", {"i": i})
    for s in subs:
        assert [s.next_json()[1]["i"] for _ in range(5)] == list(range(5))
    for i in range(5):
        assert json.loads(ws.recv_data().payload) == {"i": i}


def test_envelope_and_welcome_are_events_too(ngx, streams):
    s = streams(ngx.port, "/env?g=e")
    assert s.next_json() == (None, {"type": "welcome", "group": "e"})
    wait_count(ngx.port, "e", 1)
    pub(ngx, "e", {"x": 1})
    sid, env = s.next_json()
    assert env == {"group": "e", "id": sid, "data": {"x": 1}}


def test_last_event_id_resumes_without_gap_or_duplicate(ngx, streams):
    s = streams(ngx.port, "/sse?g=r")
    wait_count(ngx.port, "r", 1)
    for i in range(3):
        pub(ngx, "r", {"i": i})
    ids = [s.next_json()[0] for _ in range(3)]
    s.close()
    wait_count(ngx.port, "r", 0)
    for i in range(3, 6):
        pub(ngx, "r", {"i": i})
    # what a browser's EventSource sends by itself when it reconnects
    s2 = streams(ngx.port, "/sse?g=r", headers=[("Last-Event-ID", ids[1])])
    got = [s2.next_json() for _ in range(4)]
    assert [d["i"] for _, d in got] == [2, 3, 4, 5]
    wait_count(ngx.port, "r", 1)
    pub(ngx, "r", {"i": 6})
    assert s2.next_json()[1] == {"i": 6}
    # ?last_id= wins over the header (a client that tracks several groups)
    q = urllib.parse.quote(f"r@{ids[2]}")
    s3 = streams(ngx.port, f"/sse?g=r&last_id={q}", headers=[("Last-Event-ID", ids[0])])
    assert [s3.next_json()[1]["i"] for _ in range(4)] == [3, 4, 5, 6]


def test_resume_beyond_history_gets_a_recovery_event(ngx, streams):
    epoch = "00000000ffffffff"
    s = streams(ngx.port, "/sse?g=lost", headers=[("Last-Event-ID", f"{epoch}:3")])
    assert s.next_json() == (None, {"type": "recovery", "group": "lost", "recovered": False})


def test_heartbeat_comments(ngx, streams):
    s = streams(ngx.port, "/hb?g=h")
    assert s.next_block(timeout=5) == ": heartbeat"
    assert s.next_block(timeout=5) == ": heartbeat"
    wait_count(ngx.port, "h", 1)
    pub(ngx, "h", {"after": "beats"})
    assert s.next_json()[1] == {"after": "beats"}


def test_http10_and_unchunked_streams_end_with_the_connection(ngx, streams):
    s10 = streams(ngx.port, "/sse?g=u", version="HTTP/1.0")
    s11 = streams(ngx.port, "/unchunked?g=u")
    for s in (s10, s11):
        assert s.status == 200 and not s.chunked, s.headers
    wait_count(ngx.port, "u", 2)
    pub(ngx, "u", "a\r\nb")
    for s in (s10, s11):
        assert s.next_event()["data"] == "a\nb"
    old, _new = ngx.reload()
    for s in (s10, s11):
        assert s.wait_end() == []
        assert s.eof


def test_reload_ends_the_stream_and_resume_continues(ngx, streams):
    subs = [streams(ngx.port, "/sse?g=rl") for _ in range(6)]
    wait_count(ngx.port, "rl", 6)
    pub(ngx, "rl", {"i": 0})
    last = [s.next_json()[0] for s in subs]
    old, _new = ngx.reload()
    for s in subs:
        assert s.wait_end() == []       # the last chunk: an orderly end
        assert s.ended
    assert wait_for(lambda: not any(pid_alive(p) for p in old), TIMEOUT), ngx.processes()
    pub(ngx, "rl", {"i": 1})
    for lid in last:
        s = streams(ngx.port, "/sse?g=rl", headers=[("Last-Event-ID", lid)])
        assert s.next_json()[1] == {"i": 1}


def test_jwt_stream_identity_presence_and_expiry(ngx, streams, secret):
    for bad in ("", "?token=forged.token.here",
                "?token=" + token(secret, ttl=-60),
                "?token=" + make_token("HS256", "another-secret-of-32-bytes-length!", claims())):
        s = streams(ngx.port, "/jwt" + bad)
        assert s.status == 401, (bad, s.status)
        assert "error" in s.json()
    s = streams(ngx.port, "/jwt?token=" + token(secret, "carol", ttl=3))
    assert s.status == 200
    wait_count(ngx.port, "user_carol", 1)
    r = http(ngx.port, "GET", "/publish?presence=user_carol")
    assert r.json()["count"] == 1, r.json()
    # its own presence join, in the envelope: the payload without any frame
    # header (an event stream carries text only)
    sid, env = s.next_json()
    assert env == {"group": "user_carol", "id": sid,
                   "data": {"type": "presence", "event": "join", "group": "user_carol",
                            "user": "carol", "info": None}}, env
    pub(ngx, "user_carol", {"for": "carol"})
    assert s.next_json()[1]["data"] == {"for": "carol"}
    # the token expires: the stream ends (4003 for a WebSocket)
    assert s.wait_end(timeout=10) == []
    assert s.ended
    wait_count(ngx.port, "user_carol", 0)


def test_disconnect_action_ends_the_stream(ngx, streams, secret):
    s = streams(ngx.port, "/jwt?token=" + token(secret, "dave"))
    wait_count(ngx.port, "user_dave", 1)
    r = publish(ngx.port, {"action": "disconnect", "user": "dave"})
    assert r.json()["connections"] == 1, r.json()
    assert [json.loads(e["data"])["data"]["event"] for e in s.wait_end()] == ["join"]
    assert s.ended


def test_plain_get_without_eventsource_hears_about_its_token_first(ngx, streams, secret):
    # the probe of a page whose WebSocket failed: the token is the reason
    s = streams(ngx.port, "/jwt-ws-only?token=forged.token.here")
    assert s.status == 401
    s = streams(ngx.port, "/jwt-ws-only")
    assert s.status == 401
    # a good token: the location speaks WebSocket only
    s = streams(ngx.port, "/jwt-ws-only?token=" + token(secret))
    assert s.status == 426
    assert s.headers["upgrade"] == "websocket"
    s = streams(ngx.port, "/ws-only?g=x")
    assert s.status == 426


def test_origin_rules_and_cors(ngx, streams, secret):
    cookie = ("Cookie", "token=" + token(secret, "erin"))
    s = streams(ngx.port, "/cookie", headers=[cookie, ("Origin", "https://evil.example")])
    assert s.status == 403
    s = streams(ngx.port, "/cookie", headers=[cookie, ("Origin", f"http://127.0.0.1:{ngx.port}")])
    assert s.status == 200
    s = streams(ngx.port, "/partner?g=p", headers=[("Origin", "https://evil.example")])
    assert s.status == 403
    s = streams(ngx.port, "/partner?g=p", headers=[("Origin", "https://partner.example")])
    assert s.status == 200
    assert s.headers["access-control-allow-origin"] == "https://partner.example"
    assert s.headers["access-control-allow-credentials"] == "true"


def test_input_on_a_stream_is_ignored(ngx, streams):
    s = streams(ngx.port, "/sse?g=in")
    s.sock.sendall(b"\x81\x85garbage that is not a request" * 100)
    wait_count(ngx.port, "in", 1)
    pub(ngx, "in", {"still": "here"})
    assert s.next_json()[1] == {"still": "here"}


def test_client_closing_a_stream_leaves_the_group(ngx, streams):
    s = streams(ngx.port, "/sse?g=bye")
    wait_count(ngx.port, "bye", 1)
    s.close()
    wait_count(ngx.port, "bye", 0)
    assert pub(ngx, "bye", 1)["subscribers"] == 0


def test_binary_client_messages_do_not_reach_streams(nginx_factory, streams):
    ngx = nginx_factory("""
realtime_zone rt 8m;
server {
    listen {port};
    location = /chat {
        realtime_websocket;
        realtime_eventsource on;
        realtime_subscribe $arg_g;
        realtime_client_publish $arg_g;
    }
}
""")
    s = streams(ngx.port, "/chat?g=c")
    ws, _ = ws_connect(ngx.port, "/chat?g=c")   # both joined before their answer
    ws.send_binary(b"\x00\x01")
    ws.send_text('{"type":"chat","text":"hi"}')
    got = json.loads(s.next_event()["data"])
    assert (got["type"], got["text"]) == ("chat", "hi"), got


def test_websocket_envelope_of_a_presence_event_holds_the_bare_event(ngx, secret):
    """The same payload as the stream's: presence events are stored as
    frames, and their envelope must not include the frame's header."""
    ws, _ = ws_connect(ngx.port, "/jwt?token=" + token(secret, "frank"))
    env = json.loads(ws.recv_data().payload)
    assert env["data"] == {"type": "presence", "event": "join", "group": "user_frank",
                           "user": "frank", "info": None}, env


def test_head_probe_answers_like_a_get_without_opening_anything(ngx, secret):
    """What a page asks after a refused WebSocket: the status a GET would
    get, header only, with no stream, no group joined, no presence flap."""
    r = http(ngx.port, "HEAD", "/sse?g=probe")
    assert r.status == 200 and r.body == b""
    assert r.headers["Content-Type"] == "text/event-stream"
    assert count_now(ngx, "probe") == 0
    assert http(ngx.port, "HEAD", "/ws-only?g=probe").status == 426
    assert http(ngx.port, "HEAD", "/jwt").status == 401
    assert http(ngx.port, "HEAD", "/jwt?token=forged.token.here").status == 401
    good = "/jwt?token=" + token(secret, "gina")
    assert http(ngx.port, "HEAD", good).status == 200
    assert http(ngx.port, "HEAD", "/jwt-ws-only?token=" + token(secret, "gina")).status == 426
    r = http(ngx.port, "GET", "/publish?presence=user_gina")
    assert r.json()["count"] == 0, r.json()
    cookie = {"Cookie": "token=" + token(secret, "gina"), "Origin": "https://evil.example"}
    assert http(ngx.port, "HEAD", "/cookie", headers=cookie).status == 403


def count_now(ngx, group):
    return publish(ngx.port, {"group": group, "data": "x"}, path="/publish-bare").json()["subscribers"]
