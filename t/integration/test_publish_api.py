"""The publish API (realtime_publish): request forms, what subscribers get,
the answer's counts, and every refusal (which must publish nothing)."""

import json

import pytest

from wsclient import assert_json_error
from groups_util import (count, expect_nothing_more, http, next_text, publish,
                         raw_http, recv_texts, spread_subscribers, stats, subscribe)

WORKERS = 4

CONF = """
realtime_zone rt 4m;
server {
    listen {port};
    location = /ws {
        realtime_websocket;
        realtime_subscribe $arg_g $arg_h;
    }
    location = /publish {
        allow 127.0.0.1;
        deny all;
        realtime_publish;
    }
    location = /publish-small {
        client_max_body_size 1k;
        realtime_publish;
    }
    location = /publish-denied {
        deny all;
        realtime_publish;
    }
    location = /stats {
        realtime_stats;
    }
}
"""


@pytest.fixture
def ngx(nginx_factory):
    return nginx_factory(CONF, workers=WORKERS)


@pytest.fixture
def subs(ngx):
    """Subscribers of "g1" on every worker, plus one of "g2"."""
    conns = [ws for ws, _ in spread_subscribers(ngx, "/ws?g=g1", 12)]
    g2 = subscribe(ngx.port, "/ws?g=g2")
    return conns, g2


def error_of(resp, status):
    return assert_json_error(resp, status)


# --------------------------------------------------------------------------
# what subscribers receive


ENCODINGS = [
    ({"a": 1, "b": [1, 2]}, '{"a":1,"b":[1,2]}'),
    ("hello", "hello"),
    ("", ""),
    ('{"not": "parsed"}', '{"not": "parsed"}'),    # a string is sent verbatim
    ("line\nbreak \"quoted\" \\", "line\nbreak \"quoted\" \\"),
    ("h\u00e9llo \u2603 \U0001F600", "h\u00e9llo \u2603 \U0001F600"),
    (42, "42"),
    (-1.5, "-1.5"),
    (True, "true"),
    (None, "null"),
    ([1, "two", {"three": 3}], '[1,"two",{"three":3}]'),
    ({"nested": {"deep": [[], {}]}, "z": "\u00e9"}, '{"nested":{"deep":[[],{}]},"z":"\u00e9"}'),
]


def test_data_encoding(ngx):
    """JSON data arrives re-encoded compactly; a JSON string arrives as its
    contents. One text frame per message."""
    ws = subscribe(ngx.port, "/ws?g=enc")
    for data, frame in ENCODINGS:
        r = publish(ngx.port, {"group": "enc", "data": data})
        assert r.json() == {"messages": 1, "subscribers": 1}
        got = next_text(ws)
        assert got == frame, f"data {data!r}: expected frame {frame!r}, got {got!r}"
    expect_nothing_more(ngx.port, [ws], "enc")


def test_body_not_reformatted_by_client(ngx):
    """Whitespace and key order of the request do not matter: data is re-encoded compactly."""
    ws = subscribe(ngx.port, "/ws?g=enc")
    body = b'{ "data" : {\n  "b" : [ 1 , 2 ],\n  "a" : "x y"\n} ,\n "group" : "enc" }'
    publish(ngx.port, body)
    assert next_text(ws) == '{"b":[1,2],"a":"x y"}'


def test_large_message(ngx):
    ws = subscribe(ngx.port, "/ws?g=big")
    text = "x" * 200_000
    # the default client_max_body_size (1m) applies
    publish(ngx.port, {"group": "big", "data": text})
    assert next_text(ws) == text


def test_single_group_reaches_all_workers(ngx, subs):
    conns, g2 = subs
    r = publish(ngx.port, {"group": "g1", "data": {"k": "v"}}).json()
    assert r == {"messages": 1, "subscribers": len(conns)}
    for ws in conns:
        assert next_text(ws) == '{"k":"v"}'
    expect_nothing_more(ngx.port, [g2], "g2")


def test_groups_form(ngx, subs):
    conns, g2 = subs
    r = publish(ngx.port, {"groups": ["g1", "g2", "empty"], "data": "multi"}).json()
    assert r == {"messages": 1, "subscribers": len(conns) + 1}
    for ws in conns + [g2]:
        assert next_text(ws) == "multi"
    expect_nothing_more(ngx.port, conns, "g1")
    expect_nothing_more(ngx.port, [g2], "g2")


def test_batch(ngx, subs):
    conns, g2 = subs
    body = [
        {"group": "g1", "data": "first"},
        {"group": "g2", "data": {"second": 2}},
        {"groups": ["g1", "g2"], "data": "third"},
        {"group": "nobody", "data": "fourth"},
    ]
    r = publish(ngx.port, body).json()
    n = len(conns)
    assert r == {"messages": 4, "subscribers": n + 1 + (n + 1) + 0,
                 "results": [{"subscribers": n}, {"subscribers": 1},
                             {"subscribers": n + 1}, {"subscribers": 0}]}, r
    for ws in conns:
        assert recv_texts(ws, 2) == ["first", "third"]
    assert recv_texts(g2, 2) == ['{"second":2}', "third"]
    expect_nothing_more(ngx.port, conns, "g1")
    expect_nothing_more(ngx.port, [g2], "g2")


def test_single_item_batch_has_results(ngx):
    ws = subscribe(ngx.port, "/ws?g=one")
    r = publish(ngx.port, [{"group": "one", "data": 1}]).json()
    assert r == {"messages": 1, "subscribers": 1, "results": [{"subscribers": 1}]}
    assert next_text(ws) == "1"


def test_publish_to_group_without_subscribers(ngx):
    r = publish(ngx.port, {"group": "nobody_here", "data": "x"}).json()
    assert r == {"messages": 1, "subscribers": 0}


@pytest.mark.parametrize("ctype", ["application/json", "application/json; charset=utf-8",
                                   "application/json;charset=UTF-8", "Application/JSON"])
def test_content_types_accepted(ngx, ctype):
    ws = subscribe(ngx.port, "/ws?g=ct")
    publish(ngx.port, {"group": "ct", "data": ctype}, content_type=ctype)
    assert next_text(ws) == ctype


def test_response_is_json(ngx):
    resp = publish(ngx.port, {"group": "x", "data": 1})
    assert resp.headers["Content-Type"].startswith("application/json")
    assert int(resp.headers["Content-Length"]) == len(resp.body)


# --------------------------------------------------------------------------
# refusals: the status, a JSON error, and nothing published


BAD_BODIES = [
    pytest.param(b'{"group": "g1", "data": ', id="truncated-json"),
    pytest.param(b'not json', id="not-json"),
    pytest.param(b'', id="empty-body"),
    pytest.param(b'{"group": "g1", "data": "x"} trailing', id="trailing-garbage"),
    pytest.param({"group": "g1"}, id="missing-data"),
    pytest.param({"data": "x"}, id="missing-group"),
    pytest.param({"group": "g1", "groups": ["g2"], "data": "x"}, id="group-and-groups"),
    pytest.param({"group": "bad name", "data": "x"}, id="invalid-group"),
    pytest.param({"group": "", "data": "x"}, id="empty-group-name"),
    pytest.param({"group": "a" * 101, "data": "x"}, id="group-too-long"),
    pytest.param({"group": 5, "data": "x"}, id="group-not-string"),
    pytest.param({"groups": [], "data": "x"}, id="empty-groups"),
    pytest.param({"groups": "g1", "data": "x"}, id="groups-not-array"),
    pytest.param({"groups": ["g1", "bad/name"], "data": "x"}, id="groups-one-invalid"),
    pytest.param({"groups": ["g1", 7], "data": "x"}, id="groups-one-not-string"),
    pytest.param([], id="empty-batch"),
    pytest.param([{"group": "g1", "data": "ok"}, "not an object"], id="batch-non-object"),
    pytest.param([{"group": "g1", "data": "ok"}, {"group": "g2"}], id="batch-missing-data"),
    pytest.param([{"group": "g1", "data": "ok"}, {"group": "g2", "data": 1},
                  {"group": "in valid", "data": 1}], id="batch-last-invalid"),
    pytest.param([{"group": "g1", "data": "ok"}, [{"group": "g2", "data": 1}]],
                 id="batch-nested-array"),
    pytest.param("just a string", id="top-level-string"),
    pytest.param(42, id="top-level-number"),
    pytest.param(None, id="top-level-null"),
]


def test_bad_request_publishes_nothing(ngx, subs):
    """Each bad body gets 400 with a JSON error and publishes nothing at all,
    not even the valid messages of a batch."""
    conns, g2 = subs
    for case in BAD_BODIES:
        body, = case.values
        before = stats(ngx.port)["messages_published"]
        if not isinstance(body, bytes):
            body = json.dumps(body)
        resp = publish(ngx.port, body, expect=None)
        assert resp.status == 400, (case.id, resp)
        error_of(resp, 400)
        assert stats(ngx.port)["messages_published"] == before, case.id
    # one marker per group: any message of the bad requests would come first
    expect_nothing_more(ngx.port, conns, "g1")
    expect_nothing_more(ngx.port, [g2], "g2")


def test_wrong_content_type_is_415(ngx, subs):
    conns, g2 = subs
    for ctype in (None, "text/plain", "application/jsonx",
                  "application/x-www-form-urlencoded", "text/json", "json"):
        resp = publish(ngx.port, {"group": "g1", "data": "x"}, content_type=ctype,
                       expect=None)
        assert resp.status == 415, (ctype, resp)
        error_of(resp, 415)
    expect_nothing_more(ngx.port, conns, "g1")


def test_wrong_method_is_405(ngx, subs):
    conns, _ = subs
    for method in ("PUT", "DELETE", "PATCH"):
        resp = http(ngx.port, method, "/publish",
                    body=json.dumps({"group": "g1", "data": "x"}),
                    headers={"Content-Type": "application/json"})
        assert resp.status == 405, (method, resp)
        error_of(resp, 405)
        allow = resp.headers.get_all("Allow")
        assert allow == ["GET, POST"], (method, allow)
    expect_nothing_more(ngx.port, conns, "g1")


def test_body_over_client_max_body_size_is_413(ngx, subs):
    conns, _ = subs
    small = {"group": "g1", "data": "y" * 500}
    r = publish(ngx.port, small, path="/publish-small").json()
    assert r["subscribers"] == len(conns)
    for ws in conns:
        assert next_text(ws) == "y" * 500
    resp = publish(ngx.port, {"group": "g1", "data": "x" * 2000}, path="/publish-small",
                   expect=None)
    error_of(resp, 413)
    expect_nothing_more(ngx.port, conns, "g1")


def test_body_at_exactly_the_limit_is_accepted(ngx):
    ws = subscribe(ngx.port, "/ws?g=lim")
    prefix = '{"group":"lim","data":"'
    body = prefix + "z" * (1024 - len(prefix) - 2) + '"}'
    assert len(body) == 1024
    publish(ngx.port, body, path="/publish-small")
    assert next_text(ws) == "z" * (1024 - len(prefix) - 2)


def test_chunked_body_is_411(ngx, subs):
    conns, _ = subs
    payload = json.dumps({"group": "g1", "data": "chunked"}).encode()
    req = (b"POST /publish HTTP/1.1\r\nHost: localhost\r\n"
           b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
           b"Connection: close\r\n\r\n"
           + b"%x\r\n" % len(payload) + payload + b"\r\n0\r\n\r\n")
    resp = raw_http(ngx.port, req)
    error_of(resp, 411)
    expect_nothing_more(ngx.port, conns, "g1")


def test_access_rules_run_before_publishing(ngx, subs):
    conns, _ = subs
    resp = publish(ngx.port, {"group": "g1", "data": "denied"}, path="/publish-denied",
                   expect=None)
    assert resp.status == 403, resp     # nginx's own deny (its HTML page, not the module's JSON)
    expect_nothing_more(ngx.port, conns, "g1")


def test_refusals_leave_keepalive_connection_usable(ngx):
    """A refused publish (400 with a body read, 413 with a body not read) on
    a keep-alive connection: the next request on it is answered properly."""
    from http.client import HTTPConnection
    ws = subscribe(ngx.port, "/ws?g=ka")
    conn = HTTPConnection("127.0.0.1", ngx.port, timeout=10)
    try:
        for path, body, status in [
                ("/publish", b'{"group": 1}', 400),
                ("/publish-small", json.dumps({"group": "ka", "data": "q" * 3000}), 413),
                ("/publish", json.dumps({"group": "ka", "data": "after"}), 200)]:
            conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            assert resp.status == status, (path, resp.status, data)
            if resp.will_close:
                conn.close()
                conn = HTTPConnection("127.0.0.1", ngx.port, timeout=10)
    finally:
        conn.close()
    assert next_text(ws) == "after"


# --------------------------------------------------------------------------
# GET ?group=


def test_get_group_count(ngx, subs):
    conns, _ = subs
    assert count(ngx.port, "g1") == len(conns)
    assert count(ngx.port, "g2") == 1
    assert count(ngx.port, "never_used") == 0
    resp = http(ngx.port, "GET", "/publish?group=g1&other=1")
    assert resp.status == 200 and resp.json() == {"group": "g1", "subscribers": len(conns)}
    assert resp.headers["Content-Type"].startswith("application/json")


def test_get_group_count_unescapes(ngx):
    subscribe(ngx.port, "/ws?g=a:b")
    resp = http(ngx.port, "GET", "/publish?group=a%3Ab")
    assert resp.status == 200, resp
    assert resp.json() == {"group": "a:b", "subscribers": 1}


def test_get_group_invalid_is_400(ngx):
    for query in ("", "?", "?group=", "?grp=g1", "?group=bad%20name",
                  "?group=" + "a" * 101, "?group=a/b", "?group=%00"):
        resp = http(ngx.port, "GET", "/publish" + query)
        assert resp.status == 400, (query, resp)
        error_of(resp, 400)
