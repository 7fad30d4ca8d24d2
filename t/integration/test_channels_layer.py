"""realtime_channels_redis: Django's unchanged channel_layer.group_send()
reaches browsers connected to nginx. Real everything: a Django project
(channels_app/, Debian's Django, channels and channels_redis) calling
async_to_sync(get_channel_layer().group_send) from a view (runserver) and
from a process of its own (a management command: the Celery/cron
topology), a real redis-server, nginx with 2 workers and WebSocket
clients."""

import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from http.client import HTTPConnection
from pathlib import Path

import pytest

import wsclient
from groups_util import close_ws, nginx_test_config, stats, subscribe
from nginx_harness import pick_port, wait_for
from test_redis_cluster import Redis, redis, redis_factory  # noqa: F401 (fixtures)

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None,
                                reason="redis-server is not installed (scripts/deps.sh test)")

TIMEOUT = 10.0
APP_DIR = Path(__file__).resolve().parent / "channels_app"
PYTHON = "/usr/bin/python3"  # Debian's, with Django, channels and channels_redis


# --------------------------------------------------------------------------
# the Django project


class ChannelsApp:
    """channels_app/ with its layer on redis_url: send() through a view of
    its runserver, command() through `manage.py send_events`."""

    def __init__(self, redis_url, layer="core", capacity=100):
        self.port = pick_port()
        self.dir = Path(tempfile.mkdtemp(prefix="realtime-channels-"))
        self.proc = None
        self.env = dict(os.environ, CH_REDIS=redis_url, CH_LAYER=layer,
                        CH_CAPACITY=str(capacity), PYTHONDONTWRITEBYTECODE="1",
                        PYTHONUNBUFFERED="1", DJANGO_SETTINGS_MODULE="chsite.settings")

    def _manage(self, *args):
        return [PYTHON, str(APP_DIR / "manage.py"), *args]

    def start(self):
        log = open(self.dir / "runserver.log", "ab")
        self.proc = subprocess.Popen(
            self._manage("runserver", f"127.0.0.1:{self.port}", "--noreload"),
            cwd=self.dir, env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True)
        log.close()

        def answers():
            assert self.proc.poll() is None, self.log()
            try:
                return self._request("GET", "/ping", timeout=2)[0] == 200
            except OSError:
                return False
        assert wait_for(answers, 30, interval=0.1), self.log()
        return self

    def log(self):
        try:
            return (self.dir / "runserver.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)

    def _request(self, method, path, body=None, timeout=30):
        conn = HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body,
                         headers={"Content-Type": "application/json"} if body else {})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def send(self, sends):
        """group_send each [group, event] from the view, in order."""
        status, body = self._request("POST", "/send", json.dumps({"sends": sends}))
        assert status == 200, (status, body[:500], self.log()[-3000:])
        return json.loads(body)["sent"]

    def command(self, sends, wait=True):
        """The same from `manage.py send_events` (a process of its own)."""
        p = subprocess.Popen(self._manage("send_events", json.dumps(sends)), cwd=self.dir,
                             env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        if not wait:
            return p
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        return out


@pytest.fixture
def app_factory():
    apps = []

    def start(redis_url, **kw):
        a = ChannelsApp(redis_url, **kw).start()
        apps.append(a)
        return a

    yield start
    for a in apps:
        a.stop()


# --------------------------------------------------------------------------
# nginx

# The seed shapes: a handler that reshapes its event, one sent as is, one
# never sent.
EVENTS = """
realtime_channels_event send_notification type=notification keep=data;
realtime_channels_event user_notification type=notification rename=notification:data drop=user_id;
realtime_channels_event counter value=count;
realtime_channels_event internal_only off;
"""

CONF = """
realtime_zone rt 8m;
realtime_channels_redis @URL@ @EXTRA@;
@EVENTS@
server {
    listen {port};
    location = /ws {
        realtime_websocket;
        realtime_subscribe $arg_g;
    }
    location = /env {
        realtime_websocket;
        realtime_subscribe $arg_g;
        realtime_envelope on;
    }
    location = /stats {
        realtime_stats;
    }
}
"""


def conf(url, extra="", events=EVENTS):
    return CONF.replace("@URL@", url).replace("@EXTRA@", extra).replace("@EVENTS@", events)


def ch_stats(node):
    return stats(node.port)["channels"]


def wait_up(*nodes):
    for n in nodes:
        assert wait_for(lambda: ch_stats(n)["state"] == "up", TIMEOUT), ch_stats(n)
    return [ch_stats(n) for n in nodes]


def members(r, group, prefix="asgi"):
    return r.cmd("ZRANGE", f"{prefix}:group:{group}", "0", "-1")


def channel_of(node, group):
    return "specific.%s!%s" % (ch_stats(node)["client_prefix"], group)


def wait_registered(r, node, group, present=True):
    name = channel_of(node, group)

    def ok():
        return (name in members(r, group)) == present
    assert wait_for(ok, TIMEOUT), (name, members(r, group))


def wait_numsub(r, channel, want):
    assert wait_for(lambda: r.cmd("PUBSUB", "NUMSUB", channel)[1] == want, TIMEOUT), \
        r.cmd("PUBSUB", "NUMSUB", channel)


def frames(ws, n, timeout=TIMEOUT):
    """The next n data frames (pings skipped): [(opcode, payload bytes)]."""
    out = []
    while len(out) < n:
        f = ws.recv_data(timeout=timeout)
        if f.opcode == wsclient.OP_PING:
            continue
        assert f.fin and f.opcode in (wsclient.OP_TEXT, wsclient.OP_BINARY), f
        out.append((f.opcode, f.payload))
    return out


def texts(ws, n, timeout=TIMEOUT):
    got = frames(ws, n, timeout)
    assert all(op == wsclient.OP_TEXT for op, _ in got), got[:5]
    return [p.decode() for _, p in got]


def nothing_more(ws, wait=0.5):
    deadline = time.monotonic() + wait
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        try:
            f = ws.recv_data(timeout=left)
        except TimeoutError:
            return
        assert f.opcode == wsclient.OP_PING, f"unexpected frame {f!r}"


def burst(group, n, start=0):
    return [[group, {"type": "chat_message", "n": i}] for i in range(start, start + n)]


def assert_burst(ws, n, start=0):
    got = [json.loads(t) for t in texts(ws, n)]
    assert [m["n"] for m in got] == list(range(start, start + n)), got[:5]
    assert all(m == {"type": "chat_message", "n": m["n"]} for m in got), got[:3]


# --------------------------------------------------------------------------
# configuration


def test_config_refuses_encryption_and_bad_rules():
    for extra in ("symmetric_encryption_keys=abc", "encryption=on"):
        rc, out = nginx_test_config(conf("redis://127.0.0.1:6379", extra))
        assert rc != 0 and "encrypted channel layers are not supported" in out, out

    for events, what in (("realtime_channels_event x bogus=1;", "realtime_channels_event"),
                         ("realtime_channels_event x keep=;", "realtime_channels_event"),
                         ("realtime_channels_event a off;\nrealtime_channels_event a off;",
                          "duplicate")):
        rc, out = nginx_test_config(conf("redis://127.0.0.1:6379", "", events))
        assert rc != 0 and what in out, out

    for extra, what in (("layer=kafka", "invalid layer"), ("capacity=0", "invalid capacity"),
                        ("nonsense=1", "invalid parameter")):
        rc, out = nginx_test_config(conf("redis://127.0.0.1:6379", extra))
        assert rc != 0 and what in out, out

    rc, out = nginx_test_config(conf("redis://:pw@127.0.0.1:6379/2",
                                     "prefix=app layer=pubsub expiry=30s group_expiry=2h "
                                     "capacity=500 timeout=500ms"))
    assert rc == 0, out
    rc, out = nginx_test_config(conf("redis://127.0.0.1", "") + "\n"
                                "realtime_channels_redis redis://127.0.0.1;")
    assert rc != 0 and "already" in out, out


# --------------------------------------------------------------------------
# delivery


@pytest.mark.parametrize("layer", ["core", "pubsub"])
def test_burst_from_a_view_and_a_process_arrives_in_order_once(redis, nginx_factory,
                                                              app_factory, layer):
    node = nginx_factory(conf(redis.url, f"layer={layer}"), workers=2)
    wait_up(node)
    app = app_factory(redis.url, layer=layer)
    a = subscribe(node.port, "/ws?g=news")
    b = subscribe(node.port, "/ws?g=news")
    if layer == "core":
        wait_registered(redis, node, "news")
        assert ch_stats(node)["groups"] == 1
    else:
        wait_numsub(redis, "asgi__group__news", 1)

    assert app.send(burst("news", 300)) == 300
    assert_burst(a, 300)
    assert_burst(b, 300)

    app.command(burst("news", 300, start=300))
    assert_burst(a, 300, start=300)
    assert_burst(b, 300, start=300)
    nothing_more(a)
    nothing_more(b)

    assert wait_for(lambda: ch_stats(node)["delivered"] == 600, 3), ch_stats(node)
    s = ch_stats(node)
    assert s["received"] == 600 and s["dropped"] == 0 and s["inbox_full"] == 0, s
    assert s["layer"] == layer and s["holder_pid"] in node.worker_pids(), s


def test_seed_shapes(redis, nginx_factory, app_factory):
    node = nginx_factory(conf(redis.url), workers=2)
    wait_up(node)
    app = app_factory(redis.url)
    ws = subscribe(node.port, "/ws?g=user_1_notifications")
    wait_registered(redis, node, "user_1_notifications")
    g = "user_1_notifications"
    note = {"id": 7, "title": "Ticket #4 assigned", "read": False}
    app.send([
        [g, {"type": "send_notification", "data": note, "extra": 1}],
        [g, {"type": "user_notification", "notification": note, "user_id": 1}],
        [g, {"type": "notification_message", "notification": note}],
        [g, {"type": "ticket_update", "ticket_id": 4, "status": "open"}],
        [g, {"type": "chat_message", "message": "hi", "username": "ann"}],
        [g, {"type": "internal_only", "x": 1}],
        [g, {"type": "websocket.send", "text": "plain text, not JSON"}],
        [g, {"type": "websocket.send", "bytes": {"__b64__": base64.b64encode(b"\x00\xffbin").decode()}}],
        [g, {"type": "counter", "count": 42}],
        [g, {"type": "unmapped_type", "a": [1, 2.5, None, True], "b": {"c": "d"}}],
    ])
    got = frames(ws, 9)
    j = [json.loads(p) if op == wsclient.OP_TEXT and p[:1] in (b"{", b"[", b"4") else p
         for op, p in got]
    assert j[0] == {"type": "notification", "data": note}, got[0]
    assert j[1] == {"type": "notification", "data": note}, got[1]
    # no rule: the event as JSON, minus the layer's internals
    assert j[2] == {"type": "notification_message", "notification": note}, got[2]
    assert j[3] == {"type": "ticket_update", "ticket_id": 4, "status": "open"}, got[3]
    assert j[4] == {"type": "chat_message", "message": "hi", "username": "ann"}, got[4]
    # internal_only is off: not sent
    assert got[5] == (wsclient.OP_TEXT, b"plain text, not JSON"), got[5]
    assert got[6] == (wsclient.OP_BINARY, b"\x00\xffbin"), got[6]
    assert got[7] == (wsclient.OP_TEXT, b"42"), got[7]
    assert j[8] == {"type": "unmapped_type", "a": [1, 2.5, None, True], "b": {"c": "d"}}, got[8]
    assert b"__asgi" not in b"".join(p for _, p in got)
    nothing_more(ws)
    assert wait_for(lambda: ch_stats(node)["ignored"] == 1, 3), ch_stats(node)
    s = ch_stats(node)
    assert s["delivered"] == 9 and s["dropped"] == 0, s


def test_envelopes_wrap_text_and_leave_binary_as_it_is(redis, nginx_factory, app_factory):
    """With realtime_envelope on, a layer event is {"group","id","data"}, a
    websocket.send text a JSON string in it, and bytes (no JSON form) a
    binary frame as they are."""
    node = nginx_factory(conf(redis.url), workers=2)
    wait_up(node)
    app = app_factory(redis.url)
    ws = subscribe(node.port, "/env?g=env_group")
    wait_registered(redis, node, "env_group")
    app.send([
        ["env_group", {"type": "ticket_update", "ticket_id": 4}],
        ["env_group", {"type": "websocket.send", "text": "plain"}],
        ["env_group", {"type": "websocket.send",
                       "bytes": {"__b64__": base64.b64encode(b"\x00\xffbin").decode()}}],
    ])
    got = frames(ws, 3)
    first, second = json.loads(got[0][1]), json.loads(got[1][1])
    first.pop("id", None), second.pop("id", None)    # numbered here (no history)
    assert first == {"group": "env_group",
                     "data": {"type": "ticket_update", "ticket_id": 4}}, got[0]
    assert second == {"group": "env_group", "data": "plain"}, got[1]
    assert got[2] == (wsclient.OP_BINARY, b"\x00\xffbin"), got[2]


def test_two_nodes_each_browser_gets_each_message_once(redis, nginx_factory, app_factory):
    a = nginx_factory(conf(redis.url), workers=2)
    b = nginx_factory(conf(redis.url), workers=2)
    wait_up(a, b)
    assert ch_stats(a)["client_prefix"] != ch_stats(b)["client_prefix"]
    app = app_factory(redis.url)
    wa = [subscribe(a.port, "/ws?g=room") for _ in range(3)]
    wb = [subscribe(b.port, "/ws?g=room") for _ in range(3)]
    wait_registered(redis, a, "room")
    wait_registered(redis, b, "room")
    # one channel per node, not per socket
    assert len(members(redis, "room")) == 2, members(redis, "room")

    app.send(burst("room", 100))
    for ws in wa + wb:
        assert_burst(ws, 100)
    for ws in wa + wb:
        nothing_more(ws, 0.2)
    assert wait_for(lambda: ch_stats(a)["delivered"] == 100 and ch_stats(b)["delivered"] == 100,
                    3), (ch_stats(a), ch_stats(b))


def test_registration_follows_subscribers(redis, nginx_factory, app_factory):
    node = nginx_factory(conf(redis.url), workers=2)
    wait_up(node)
    cp = ch_stats(node)["client_prefix"]
    assert len(cp) == 32 and int(cp, 16) >= 0

    ws = subscribe(node.port, "/ws?g=orders")
    wait_registered(redis, node, "orders")
    assert members(redis, "orders") == [f"specific.{cp}!orders"]
    ttl = redis.cmd("TTL", "asgi:group:orders")
    assert 86000 < ttl <= 86400, ttl
    score = float(redis.cmd("ZSCORE", "asgi:group:orders", f"specific.{cp}!orders"))
    assert abs(score - time.time()) < 30, score
    # internal groups and names Django cannot use are never registered
    ws2 = subscribe(node.port, "/ws?g=chat:lobby")
    time.sleep(0.3)
    assert redis.cmd("KEYS", "asgi:group:*") == ["asgi:group:orders"]
    close_ws(ws2)

    # a message waits in the inbox, named as channels_redis names it
    app = app_factory(redis.url)
    app.send([["orders", {"type": "ticket_update", "id": 1}]])
    assert json.loads(texts(ws, 1)[0]) == {"type": "ticket_update", "id": 1}

    close_ws(ws)
    wait_registered(redis, node, "orders", present=False)
    assert wait_for(lambda: ch_stats(node)["groups"] == 0, 3), ch_stats(node)

    # nobody here: Django sends nothing to this node
    app.send([["orders", {"type": "ticket_update", "id": 2}]])
    assert redis.cmd("ZCARD", f"asgispecific.{cp}!") == 0
    s = ch_stats(node)
    assert s["received"] == 1, s


def test_inbox_full_is_counted(redis, nginx_factory, app_factory):
    node = nginx_factory(conf(redis.url, "capacity=20"), workers=2)
    wait_up(node)
    app = app_factory(redis.url, capacity=20)
    ws = subscribe(node.port, "/ws?g=flood")
    wait_registered(redis, node, "flood")
    holder = ch_stats(node)["holder_pid"]
    cp = ch_stats(node)["client_prefix"]

    os.kill(holder, signal.SIGSTOP)
    try:
        app.send(burst("flood", 60))
        assert redis.cmd("ZCARD", f"asgispecific.{cp}!") == 20
    finally:
        os.kill(holder, signal.SIGCONT)

    # the inbox's 20, and the one a BZPOPMIN on its way may have taken
    # before the stop; Django dropped the rest (silently, on its side)
    got = [json.loads(t)["n"] for t in texts(ws, 20)]
    try:
        got += [json.loads(t)["n"] for t in texts(ws, 1, timeout=0.5)]
    except TimeoutError:
        pass
    assert got == list(range(len(got))), got
    nothing_more(ws)
    assert wait_for(lambda: ch_stats(node)["inbox_full"] >= 1, 5), ch_stats(node)
    assert "was full" in node.error_log()

    # and it drains normally afterwards
    app.send(burst("flood", 5, start=100))
    assert_burst(ws, 5, start=100)


@pytest.mark.parametrize("layer", ["core", "pubsub"])
def test_redis_restart_delivery_resumes(redis, nginx_factory, app_factory, layer):
    node = nginx_factory(conf(redis.url, f"layer={layer}"), workers=2)
    wait_up(node)
    app = app_factory(redis.url, layer=layer)
    ws = subscribe(node.port, "/ws?g=news")

    def ready():
        if layer == "core":
            wait_registered(redis, node, "news")
        else:
            wait_numsub(redis, "asgi__group__news", 1)
    ready()
    app.send(burst("news", 3))
    assert_burst(ws, 3)

    redis.kill()
    assert wait_for(lambda: ch_stats(node)["state"] == "down", TIMEOUT), ch_stats(node)
    redis.start()
    wait_up(node)
    # the registration or subscription is made again (Redis lost it)
    ready()
    app.send(burst("news", 3, start=3))
    assert_burst(ws, 3, start=3)
    log = node.error_log()
    link = "channel layer inbox link" if layer == "core" else "channel layer subscriber link"
    assert log.count(link) >= 1 and "lost" in log, log[-2000:]


def test_malformed_message_is_dropped_and_counted(redis, nginx_factory, app_factory):
    node = nginx_factory(conf(redis.url), workers=2)
    wait_up(node)
    app = app_factory(redis.url)
    ws = subscribe(node.port, "/ws?g=news")
    wait_registered(redis, node, "news")
    cp = ch_stats(node)["client_prefix"]
    inbox = f"asgispecific.{cp}!"
    for member in (b"R" * 12 + b"\xc1garbage", b"short", b"R" * 12 + b"\x93\x01\x02"):
        assert redis.cmd("ZADD", inbox, str(time.time()), member) == 1
    assert wait_for(lambda: ch_stats(node)["dropped"] == 3, 5), ch_stats(node)
    app.send([["news", {"type": "chat_message", "n": 0}]])
    assert_burst(ws, 1)
    assert "dropped" in node.error_log()
    assert node.worker_pids() and ch_stats(node)["state"] == "up"


def test_reload_keeps_the_registration_and_quit_removes_it(redis, nginx_factory, app_factory):
    node = nginx_factory(conf(redis.url), workers=2)
    wait_up(node)
    app = app_factory(redis.url)
    cp = ch_stats(node)["client_prefix"]
    ws = subscribe(node.port, "/ws?g=news")
    wait_registered(redis, node, "news")

    _old, new = node.reload()
    # the next workers hold the same identity (kept in the zone)
    assert wait_for(lambda: ch_stats(node)["holder_pid"] in new
                    and ch_stats(node)["state"] == "up", TIMEOUT), ch_stats(node)
    assert ch_stats(node)["client_prefix"] == cp
    close_ws(ws)
    ws = subscribe(node.port, "/ws?g=news")
    wait_registered(redis, node, "news")
    app.send(burst("news", 3))
    assert_burst(ws, 3)
    close_ws(ws)

    ws = subscribe(node.port, "/ws?g=news")
    wait_registered(redis, node, "news")
    node.stop()
    # nginx quit: Django sends nothing to it any more
    assert members(redis, "news") == [], members(redis, "news")
