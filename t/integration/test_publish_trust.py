"""Who may publish and read stats: decided by the listener a request came in
on (loopback or unix socket = this host), never by the client address that
the realip module takes from X-Real-IP, X-Forwarded-For or the PROXY
protocol line.

A remote client cannot be made on loopback, so each test runs nginx in a
network namespace of its own, joined to ours by a veth pair: this test
process is a real non-loopback peer (the host end of the veth), and a
client inside the namespace (NetNs.entered) is the namespace's "this host".
The realip module trusts the veth peer, which then claims to be 127.0.0.1.
"""

import json
import os
import socket

import pytest

import wsclient
from nginx_harness import NetNs, wait_for
from wsclient import OP_PING, OP_TEXT, WS

TIMEOUT = 10.0

# {host_addr} is filled in per test (the veth peer realip trusts); the
# harness fills in {port} and {port2}. Locations set realip themselves so
# that /publish-plain has none. No directive the module did not always have
# appears here, so the same file runs against older builds.
CONF = """
realtime_zone rt 1m;

server {
    listen {port};

    # what the realip module made of the client address
    add_header X-Client $remote_addr always;

    location = /ws {
        realtime_websocket;
        realtime_subscribe g;
    }

    location = /publish {
        set_real_ip_from {host_addr};
        real_ip_header X-Real-IP;
        realtime_publish;
    }

    location = /publish-xff {
        set_real_ip_from {host_addr};
        real_ip_header X-Forwarded-For;
        real_ip_recursive on;
        realtime_publish;
    }

    location = /publish-plain {
        realtime_publish;
    }

    location = /publish-open {
        set_real_ip_from {host_addr};
        real_ip_header X-Real-IP;
        realtime_publish;
        realtime_publish_remote on;
    }

    location = /stats {
        set_real_ip_from {host_addr};
        real_ip_header X-Real-IP;
        realtime_stats;
    }
%(extra)s
}

server {
    listen {port2} proxy_protocol;
    set_real_ip_from {host_addr};
    real_ip_header proxy_protocol;
    add_header X-Client $remote_addr always;

    location = /publish { realtime_publish; }
    location = /stats { realtime_stats; }
}
"""

STATS_OPEN = """
    location = /stats-open {
        realtime_stats;
        realtime_stats_remote on;
    }
"""


@pytest.fixture
def netns():
    """A fresh network namespace + veth pair, removed at teardown even when
    the test (or the creation) fails."""
    if os.geteuid() != 0:
        pytest.skip("needs root: creates a network namespace and a veth pair")
    ns = NetNs()
    try:
        yield ns.create()
    finally:
        ns.remove()
        assert not ns.exists(), f"network namespace {ns.name} was not removed"


@pytest.fixture
def ns_nginx(netns, nginx_factory):
    """start(extra="", conf=CONF) -> (Nginx running in netns, NetNs).

    netns comes first, so it is torn down after nginx has been stopped."""
    def start(extra="", conf=CONF):
        conf = (conf % {"extra": extra}).replace("{host_addr}", netns.host_addr)
        return nginx_factory(conf, workers=2, netns=netns.name), netns
    return start


# --------------------------------------------------------------------------
# clients


class Resp:
    def __init__(self, r):
        self.status = r.status
        self.client = r.header("X-Client")
        self.content_type = r.header("Content-Type") or ""
        self.body = r.body

    def json(self):
        assert self.content_type.startswith("application/json"), \
            (self.status, self.content_type, self.body)
        return json.loads(self.body)

    def __repr__(self):
        return f"Resp({self.status}, client={self.client}, {self.body[:200]!r})"


def request(host, port, method, path, body=None, headers=(), proxy_line=None):
    """One HTTP/1.1 request on a fresh connection to host:port, made from
    whatever network namespace the calling thread is in."""
    data = b"" if body is None else json.dumps(body).encode()
    name = f"[{host}]" if ":" in host else host
    lines = [f"{method} {path} HTTP/1.1", f"Host: {name}:{port}",
             "Connection: close"]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
    lines += [f"{k}: {v}" for k, v in headers]
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + data
    if proxy_line is not None:
        raw = proxy_line.encode() + raw
    s = socket.create_connection((host, port), timeout=TIMEOUT)
    try:
        s.sendall(raw)
        r, _rest = wsclient.read_response(s, TIMEOUT)
        return Resp(r)
    finally:
        s.close()


def publish_inside(ns, port, group, data, path="/publish"):
    """Publishes from the namespace's own loopback (this host, for nginx)."""
    with ns.entered():
        return request("127.0.0.1", port, "POST", path,
                       {"group": group, "data": data})


def subscribe_from_outside(ns, port, n=2):
    """n WebSocket subscribers to group g, connected through the veth (a
    WebSocket location is open to everybody). Waits until all are counted."""
    subs = []
    for _ in range(n):
        s = socket.create_connection((ns.ns_addr, port), timeout=TIMEOUT)
        wsclient._open_sockets.append(s)
        key = wsclient.new_key()
        s.sendall(wsclient.build_request("/ws", port=port, key=key,
                                         host=f"{ns.ns_addr}:{port}"))
        resp, rest = wsclient.read_response(s, TIMEOUT)
        assert resp.status == 101, resp.status_line
        subs.append(WS(s, rest))

    def counted():
        with ns.entered():
            r = request("127.0.0.1", port, "GET", "/publish?group=g")
        return r.status == 200 and r.json()["subscribers"] == n
    assert wait_for(counted, TIMEOUT), "subscribers were not counted"
    return subs


def delivered(data):
    """What a subscriber receives for "data": a string as is, else JSON."""
    return data if isinstance(data, str) else json.dumps(data)


def next_text(ws):
    while True:
        f = ws.recv_data(timeout=TIMEOUT)
        if f.opcode == OP_PING:
            continue
        assert f.opcode == OP_TEXT and f.fin, f
        return f.payload.decode()


def assert_only_marker(ns, port, subs, marker):
    """Publishes marker from inside; it must be the next (so the only)
    message every subscriber gets: anything published before would come
    first, messages of a group are delivered in order."""
    r = publish_inside(ns, port, "g", marker)
    assert r.status == 200, r
    assert r.json()["subscribers"] == len(subs), r
    for ws in subs:
        assert next_text(ws) == delivered(marker), "a refused publish was delivered"


def assert_refused(r):
    assert r.status == 403, r
    assert "only allowed from this host" in r.json()["error"], r


# --------------------------------------------------------------------------


def test_spoofed_real_ip_cannot_publish(ns_nginx):
    ngx, ns = ns_nginx()
    subs = subscribe_from_outside(ns, ngx.port)

    spoof = [("X-Real-IP", "127.0.0.1")]
    r = request(ns.ns_addr, ngx.port, "POST", "/publish",
                {"group": "g", "data": "spoofed"}, spoof)
    assert r.client == "127.0.0.1", f"realip did not take the header: {r}"
    assert_refused(r)

    r = request(ns.ns_addr, ngx.port, "POST", "/publish-xff",
                {"group": "g", "data": "spoofed-xff"},
                [("X-Forwarded-For", "127.0.0.1")])
    assert r.client == "127.0.0.1", r
    assert_refused(r)

    # the subscriber count is as closed as publishing
    r = request(ns.ns_addr, ngx.port, "GET", "/publish?group=g", headers=spoof)
    assert_refused(r)

    assert_only_marker(ns, ngx.port, subs, "from-inside")
    assert "publishing refused" in ngx.error_log()


def test_spoofed_real_ip_cannot_read_stats(ns_nginx):
    ngx, ns = ns_nginx()
    r = request(ns.ns_addr, ngx.port, "GET", "/stats",
                headers=[("X-Real-IP", "127.0.0.1")])
    assert r.client == "127.0.0.1", r
    assert_refused(r)
    assert "pid" not in r.body.decode()

    # the same location from the namespace's loopback
    with ns.entered():
        r = request("127.0.0.1", ngx.port, "GET", "/stats")
    assert r.status == 200, r
    assert sorted(w["pid"] for w in r.json()["workers"]) == ngx.worker_pids()


def test_loopback_inside_namespace_publishes(ns_nginx):
    ngx, ns = ns_nginx()
    subs = subscribe_from_outside(ns, ngx.port)

    r = publish_inside(ns, ngx.port, "g", {"hello": 1})
    assert r.status == 200, r
    assert r.json() == {"messages": 1, "subscribers": 2}
    for ws in subs:
        assert json.loads(next_text(ws)) == {"hello": 1}

    # a remote X-Real-IP on a loopback listener changes nothing: the
    # listener decides (a same-host proxy is trusted, see README,
    # "Protecting the publish and stats locations")
    with ns.entered():
        r = request("127.0.0.1", ngx.port, "POST", "/publish",
                    {"group": "g", "data": 2}, [("X-Real-IP", "127.0.0.1")])
    assert r.status == 200, r


def test_publish_remote_on_lets_the_peer_publish(ns_nginx):
    ngx, ns = ns_nginx(extra=STATS_OPEN)
    subs = subscribe_from_outside(ns, ngx.port)

    r = request(ns.ns_addr, ngx.port, "POST", "/publish-open",
                {"group": "g", "data": "opened"})
    assert r.status == 200, r
    assert r.json() == {"messages": 1, "subscribers": 2}
    for ws in subs:
        assert next_text(ws) == "opened"

    r = request(ns.ns_addr, ngx.port, "GET", "/stats-open")
    assert r.status == 200, r
    assert len(r.json()["workers"]) == 2

    # opening one location opens no other
    assert_refused(request(ns.ns_addr, ngx.port, "POST", "/publish",
                           {"group": "g", "data": "closed"}))
    assert_refused(request(ns.ns_addr, ngx.port, "GET", "/stats"))


def test_spoofed_address_without_realip_or_via_proxy_protocol(ns_nginx):
    ngx, ns = ns_nginx()
    subs = subscribe_from_outside(ns, ngx.port)

    # no realip: the header is just a header
    r = request(ns.ns_addr, ngx.port, "POST", "/publish-plain",
                {"group": "g", "data": "plain"},
                [("X-Forwarded-For", "127.0.0.1"), ("X-Real-IP", "127.0.0.1")])
    assert r.client == ns.host_addr, r
    assert_refused(r)

    # a PROXY protocol line claiming loopback, from a peer realip trusts
    line = f"PROXY TCP4 127.0.0.1 127.0.0.1 40000 {ngx.ports['port2']}\r\n"
    r = request(ns.ns_addr, ngx.ports["port2"], "POST", "/publish",
                {"group": "g", "data": "proxied"}, proxy_line=line)
    assert r.client == "127.0.0.1", r
    assert_refused(r)

    r = request(ns.ns_addr, ngx.ports["port2"], "GET", "/stats", proxy_line=line)
    assert r.client == "127.0.0.1", r
    assert_refused(r)

    assert_only_marker(ns, ngx.port, subs, "after-proxy")


DUAL_STACK = """
realtime_zone rt 1m;
server {
    listen [::]:{port} ipv6only=off;
    location = /publish { realtime_publish; }
    location = /stats { realtime_stats; }
%(extra)s
}
"""


def test_dual_stack_listener(ns_nginx):
    """On a [::] ipv6only=off listener IPv4 peers arrive on ::ffff:a.b.c.d:
    ::ffff:127.0.0.1 is this host, ::ffff:<veth address> is not."""
    ngx, ns = ns_nginx(conf=DUAL_STACK)
    msg = {"group": "g", "data": 1}
    assert_refused(request(ns.ns_addr, ngx.port, "POST", "/publish", msg))
    assert_refused(request(ns.ns_addr, ngx.port, "GET", "/stats"))
    assert f"came in on [::ffff:{ns.ns_addr}]:{ngx.port}" in ngx.error_log()

    with ns.entered():
        for host in ("127.0.0.1", "::1"):
            r = request(host, ngx.port, "POST", "/publish", msg)
            assert r.status == 200, (host, r)
            r = request(host, ngx.port, "GET", "/stats")
            assert r.status == 200, (host, r)
