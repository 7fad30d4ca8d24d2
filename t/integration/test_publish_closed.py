"""The publish and stats locations on this host's own listeners.

Trust is decided by the listener a request came in on: loopback and unix
sockets are this host, and what the client claims to be (X-Real-IP through
the realip module, here with `set_real_ip_from 127.0.0.1`) changes nothing
either way. Refusals of real remote peers, spoofed headers included, are in
test_publish_trust.py (it needs a network namespace)."""

import json
import socket

from groups_util import http, publish

CONF = """
realtime_zone rt 1m;
server {
    listen {port};
    listen unix:{prefix}/rt.sock;
    set_real_ip_from 127.0.0.1;
    real_ip_header X-Real-IP;

    location = /publish { realtime_publish; }
    location = /stats { realtime_stats; }
    location = /publish-open {
        realtime_publish;
        realtime_publish_remote on;
        allow 10.0.0.0/8;
        allow 127.0.0.1;
        deny all;
    }
    location = /stats-open {
        realtime_stats;
        realtime_stats_remote on;
        allow 127.0.0.1;
        deny all;
    }
}
"""


def call(port, path, body=None, real_ip=None):
    """(status, parsed JSON) of a GET (no body) or a publish POST through
    the shared client, optionally claiming to come from real_ip."""
    headers = {"X-Real-IP": real_ip} if real_ip else {}
    if body is None:
        resp = http(port, "GET", path, headers=headers)
    else:
        resp = publish(port, body, path=path, expect=None, headers=headers)
    return resp.status, resp.json()


def unix_call(sock_path, request):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect(str(sock_path))
        s.sendall(request)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_loopback_listener_publishes_whatever_realip_says(nginx_factory):
    ngx = nginx_factory(CONF)
    msg = {"group": "g", "data": 1}
    ok = (200, {"messages": 1, "subscribers": 0})
    assert call(ngx.port, "/publish", msg) == ok
    assert call(ngx.port, "/publish", msg, real_ip="127.0.0.9") == ok
    # a same-host proxy's clients are this host too (README, "Protecting
    # the publish and stats locations")
    assert call(ngx.port, "/publish", msg, real_ip="203.0.113.5") == ok
    assert call(ngx.port, "/publish", msg, real_ip="::ffff:198.51.100.7") == ok


def test_stats_open_on_loopback_by_default(nginx_factory):
    ngx = nginx_factory(CONF)
    status, doc = call(ngx.port, "/stats")
    assert status == 200
    assert sorted(w["pid"] for w in doc["workers"]) == ngx.worker_pids()
    assert call(ngx.port, "/stats", real_ip="203.0.113.5")[0] == 200


def test_unix_socket_listener_is_this_host(nginx_factory):
    ngx = nginx_factory(CONF)
    sock = ngx.prefix / "rt.sock"
    body = b'{"group":"g","data":1}'
    status, doc = unix_call(sock, b"POST /publish HTTP/1.0\r\nHost: x\r\n"
                                  b"Content-Type: application/json\r\n"
                                  b"Content-Length: %d\r\n\r\n" % len(body) + body)
    assert (status, doc) == (200, {"messages": 1, "subscribers": 0})
    status, doc = unix_call(sock, b"GET /stats HTTP/1.0\r\nHost: x\r\n\r\n")
    assert status == 200 and len(doc["workers"]) == 2


def test_remote_publisher_allowed_when_opened(nginx_factory):
    ngx = nginx_factory(CONF)
    msg = {"group": "g", "data": 1}
    assert call(ngx.port, "/publish-open", msg, real_ip="10.1.2.3") == (200, {"messages": 1, "subscribers": 0})
    # allow/deny still apply on top (nginx's own 403 page, not JSON)
    spoof = {"X-Real-IP": "203.0.113.5"}
    for resp in (publish(ngx.port, {}, path="/publish-open", expect=None, headers=spoof),
                 http(ngx.port, "GET", "/stats-open", headers=spoof)):
        assert resp.status == 403, resp
        assert resp.headers.get("Content-Type") != "application/json"
    assert call(ngx.port, "/stats-open")[0] == 200
