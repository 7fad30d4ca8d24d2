"""The publish location is closed to other hosts by default.

A real remote client cannot be made on loopback, so the realip module
stands in for one: with `set_real_ip_from 127.0.0.1`, nginx treats the
X-Real-IP address as the client, exactly as it would behind a proxy."""

from groups_util import publish
from wsclient import assert_json_error

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
    """(status, parsed JSON body) of a publish, optionally "from" real_ip."""
    resp = publish(port, body, path=path, expect=None,
                   headers={"X-Real-IP": real_ip} if real_ip else None)
    return resp.status, resp.json()


def test_remote_publisher_refused_by_default(nginx_factory):
    ngx = nginx_factory(CONF)
    msg = {"group": "g", "data": 1}
    assert post(ngx.port, "/publish", msg) == (200, {"messages": 1, "subscribers": 0})
    assert post(ngx.port, "/publish", msg, real_ip="127.0.0.9") == (200, {"messages": 1, "subscribers": 0})

    resp = publish(ngx.port, msg, expect=None, headers={"X-Real-IP": "203.0.113.5"})
    doc = assert_json_error(resp, 403)
    assert "only allowed from this host" in doc["error"]

    resp = publish(ngx.port, msg, expect=None, headers={"X-Real-IP": "::ffff:198.51.100.7"})
    assert_json_error(resp, 403)


def test_remote_publisher_allowed_when_opened(nginx_factory):
    ngx = nginx_factory(CONF)
    msg = {"group": "g", "data": 1}
    assert post(ngx.port, "/publish-open", msg, real_ip="10.1.2.3") == (200, {"messages": 1, "subscribers": 0})
    # allow/deny still apply on top (nginx's own 403 page, not JSON)
    resp = publish(ngx.port, {}, path="/publish-open", expect=403,
                   headers={"X-Real-IP": "203.0.113.5"})
    assert not resp.headers.get("Content-Type", "").startswith("application/json"), resp.headers
