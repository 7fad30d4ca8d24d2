"""The publish location is closed to other hosts by default.

A real remote client cannot be made on loopback, so the realip module
stands in for one: with `set_real_ip_from 127.0.0.1`, nginx treats the
X-Real-IP address as the client, exactly as it would behind a proxy."""

import json
import urllib.error
import urllib.request

CONF = """
realtime_zone rt 1m;
server {
    listen {port};
    set_real_ip_from 127.0.0.1;
    real_ip_header X-Real-IP;

    location = /publish { realtime_publish; }
    location = /publish-open {
        realtime_publish;
        realtime_publish_remote on;
        allow 10.0.0.0/8;
        allow 127.0.0.1;
        deny all;
    }
}
"""


def post(port, path, body, real_ip=None):
    headers = {"Content-Type": "application/json"}
    if real_ip:
        headers["X-Real-IP"] = real_ip
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_remote_publisher_refused_by_default(nginx_factory):
    ngx = nginx_factory(CONF)
    msg = {"group": "g", "data": 1}
    assert post(ngx.port, "/publish", msg) == (200, {"messages": 1, "subscribers": 0})
    assert post(ngx.port, "/publish", msg, real_ip="127.0.0.9") == (200, {"messages": 1, "subscribers": 0})

    status, doc = post(ngx.port, "/publish", msg, real_ip="203.0.113.5")
    assert status == 403
    assert "only allowed from this host" in doc["error"]

    status, doc = post(ngx.port, "/publish", msg, real_ip="::ffff:198.51.100.7")
    assert status == 403


def test_remote_publisher_allowed_when_opened(nginx_factory):
    ngx = nginx_factory(CONF)
    msg = {"group": "g", "data": 1}
    assert post(ngx.port, "/publish-open", msg, real_ip="10.1.2.3") == (200, {"messages": 1, "subscribers": 0})
    # allow/deny still apply on top (nginx's own 403 page, not JSON)
    req = urllib.request.Request(f"http://127.0.0.1:{ngx.port}/publish-open", data=b"{}", method="POST",
                                 headers={"Content-Type": "application/json", "X-Real-IP": "203.0.113.5"})
    try:
        urllib.request.urlopen(req, timeout=5)
        raise AssertionError("expected 403")
    except urllib.error.HTTPError as e:
        assert e.code == 403
