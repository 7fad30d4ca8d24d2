"""realtime_redis: several nginx nodes sharing their groups through a real
redis-server (started per test on a free port, or a unix socket, in a
temporary directory): cross-node delivery and order, client messages,
subscriptions that follow the groups, Redis going away and coming back,
passwords, the subscriber worker killed, reload."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest

import wsclient
from groups_util import (close_ws, http, kill_worker, nginx_expecting, next_text,  # noqa: F401
                         nginx_test_config, publish, spread_subscribers, stats, subscribe)
from django_app import TrivialUpstream
from nginx_harness import pick_port, pid_alive, wait_for
from wsclient import OP_PONG

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None,
                                reason="redis-server is not installed (scripts/deps.sh test)")

TIMEOUT = 10.0


# --------------------------------------------------------------------------
# a private redis-server and a minimal RESP client


def _resp_encode(args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


class _Reader:
    def __init__(self, sock):
        self.sock, self.buf = sock, b""

    def _line(self):
        while b"\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("redis closed the connection")
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("redis closed the connection")
            self.buf += data
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n).decode(errors="replace")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise ValueError(f"bad RESP line {line!r}")


class Redis:
    """redis-server on a free port of 127.0.0.1 (and, with unix=True, a unix
    socket in its directory), no persistence; password: --requirepass."""

    def __init__(self, password=None, unix=False):
        self.dir = tempfile.mkdtemp(prefix="realtime-redis-")
        os.chmod(self.dir, 0o755)   # nginx workers may run as nobody
        self.port = pick_port()
        self.password = password
        self.sock_path = os.path.join(self.dir, "redis.sock") if unix else None
        self.proc = None

    @property
    def url(self):
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}"

    def start(self):
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--protected-mode", "no",
                "--dir", self.dir, "--logfile", "redis.log"]
        if self.password:
            args += ["--requirepass", self.password]
        if self.sock_path:
            args += ["--unixsocket", self.sock_path, "--unixsocketperm", "777"]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def ready():
            try:
                return self.cmd("PING") == "PONG"
            except OSError:
                return False
        assert wait_for(ready, TIMEOUT), f"redis-server did not start on {self.port}"
        return self

    def cmd(self, *args):
        with socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT) as s:
            r = _Reader(s)
            if self.password:
                s.sendall(_resp_encode(["AUTH", self.password]))
                ok = r.reply()
                assert ok == "OK", ok
            s.sendall(_resp_encode(args))
            return r.reply()

    def numsub(self, channel):
        return self.cmd("PUBSUB", "NUMSUB", channel)[1]

    def channels(self, pattern="realtime:g:*"):
        return sorted(self.cmd("PUBSUB", "CHANNELS", pattern))

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def redis_factory():
    servers = []

    def start(**kw):
        r = Redis(**kw).start()
        servers.append(r)
        return r

    yield start
    for r in servers:
        r.stop()


@pytest.fixture
def redis(redis_factory):
    return redis_factory()


# --------------------------------------------------------------------------
# nodes


CONF = """
realtime_zone rt 8m;
realtime_redis @URL@ @EXTRA@;
server {
    listen {port};
    location = /ws {
        realtime_websocket;
        realtime_subscribe $arg_g;
    }
    location = /chat {
        realtime_websocket;
        realtime_subscribe room_$arg_room;
        realtime_client_publish room_$arg_room;
    }
    location = /env {
        realtime_websocket;
        realtime_subscribe $arg_g;
        realtime_envelope on;
        realtime_user $arg_u;
    }
    location = /relay {
        realtime_websocket;
        realtime_subscribe $arg_g;
        realtime_relay @APP@;
    }
    location = /publish {
        realtime_publish;
    }
    location = /publish-kept {
        realtime_publish;
        realtime_history 50;
    }
    location = /stats {
        realtime_stats;
    }
}
"""


def conf(url, extra="", app="http://127.0.0.1:9/"):
    return CONF.replace("@URL@", url).replace("@EXTRA@", extra).replace("@APP@", app)


def redis_stats(node):
    return stats(node.port)["redis"]


def wait_up(*nodes, timeout=TIMEOUT):
    """Waits until every node's subscriber link is up; returns their stats."""
    for n in nodes:
        got = wait_for(lambda: redis_stats(n)["state"] == "up", timeout)
        assert got, f"{n.prefix}: redis link not up: {redis_stats(n)}"
    return [redis_stats(n) for n in nodes]


def wait_numsub(r, group, want, timeout=TIMEOUT):
    channel = "realtime:g:" + group
    last = [None]

    def ok():
        last[0] = r.numsub(channel)
        return last[0] == want
    assert wait_for(ok, timeout), f"{channel}: {last[0]} subscribers in redis, want {want}"


def start_nodes(nginx_factory, url, n=2, workers=2, extra="", app="http://127.0.0.1:9/"):
    nodes = [nginx_factory(conf(url, extra, app), workers=workers) for _ in range(n)]
    wait_up(*nodes)
    return nodes


def texts_until(ws, count, timeout=TIMEOUT):
    return [next_text(ws, timeout) for _ in range(count)]


def assert_nothing_pending(ws, wait=0.3):
    """Nothing more arrives on ws within wait seconds (pings aside)."""
    deadline = time.monotonic() + wait
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        try:
            f = ws.recv_data(timeout=left)
        except TimeoutError:
            return
        assert f.opcode != wsclient.OP_TEXT, f"unexpected message {f.payload[:200]!r}"


# --------------------------------------------------------------------------
# configuration


def test_config_refuses_tls_and_bad_urls():
    for url, what in (("rediss://127.0.0.1:6380", "TLS"),
                      ("redis://:topsecret@127.0.0.1:99999", "invalid port"),
                      ("redis://127.0.0.1/x", "database"),
                      ("http://127.0.0.1", "redis://")):
        rc, out = nginx_test_config(conf(url))
        assert rc != 0, out
        assert what in out, out
        assert "topsecret" not in out, out


def test_config_needs_the_zone_first_or_named():
    rc, out = nginx_test_config("""
realtime_zone a 1m;
realtime_zone b 1m;
realtime_redis redis://127.0.0.1;
""")
    assert rc != 0 and "zone=NAME" in out, out
    rc, out = nginx_test_config("""
realtime_zone a 1m;
realtime_redis redis://127.0.0.1 zone=nope;
""")
    assert rc != 0 and "unknown zone" in out, out
    rc, out = nginx_test_config("""
realtime_zone a 1m;
realtime_zone b 1m;
realtime_redis redis://127.0.0.1 zone=b prefix=app1 timeout=500ms;
""")
    assert rc == 0, out


# --------------------------------------------------------------------------
# delivery across nodes


def test_cross_node_delivery(redis, nginx_factory):
    a, b = start_nodes(nginx_factory, redis.url)
    wa = subscribe(a.port, "/ws?g=news")
    wb = subscribe(b.port, "/ws?g=news")
    wait_numsub(redis, "news", 2)

    r = publish(a.port, {"group": "news", "data": "from-a"}).json()
    assert r["nodes"] == 2 and r["subscribers"] == 1, r
    assert next_text(wa) == 'from-a'
    assert next_text(wb) == 'from-a'

    r = publish(b.port, {"group": "news", "data": {"n": 2}}).json()
    assert r["nodes"] == 2, r
    assert next_text(wa) == '{"n":2}'
    assert next_text(wb) == '{"n":2}'

    # exactly once: nothing else is on its way
    assert_nothing_pending(wa)
    assert_nothing_pending(wb)

    # the heartbeat measures the round trip through Redis
    assert wait_for(lambda: redis_stats(a)["latency_us"] > 0, 5), redis_stats(a)

    sa, sb = redis_stats(a), redis_stats(b)
    assert wait_for(lambda: redis_stats(b)["received"] >= 1 and redis_stats(a)["received"] >= 1,
                    3), (sa, sb)
    assert sa["subscriber_pid"] in a.worker_pids(), sa
    assert wait_for(lambda: redis_stats(a)["channels"] == 1, 3), redis_stats(a)
    assert redis_stats(a)["dropped"] == 0


def test_order_across_three_nodes(redis, nginx_factory):
    a, b, c = start_nodes(nginx_factory, redis.url, n=3)
    subs = [subscribe(n.port, "/ws?g=ordered") for n in (a, b, c)]
    wait_numsub(redis, "ordered", 3)

    total = 300
    for i in range(total):
        node = a if i % 2 == 0 else b
        r = publish(node.port, {"group": "ordered", "data": i}).json()
        assert r["nodes"] == 3, r

    for ws, name in zip(subs, "abc"):
        got = [int(next_text(ws)) for _ in range(total)]
        assert got == list(range(total)), f"node {name}: {got[:20]}..."
        assert_nothing_pending(ws, 0.2)


def test_batches_and_several_groups_across_nodes(redis, nginx_factory):
    a, b = start_nodes(nginx_factory, redis.url)
    wb = subscribe(b.port, "/ws?g=x")
    wb2 = subscribe(b.port, "/ws?g=y")
    wait_numsub(redis, "x", 1)
    wait_numsub(redis, "y", 1)

    r = publish(a.port, [{"group": "x", "data": i} for i in range(5)]).json()
    assert r["messages"] == 5 and r["nodes"] == 1, r
    assert [next_text(wb) for _ in range(5)] == [str(i) for i in range(5)]

    # one PUBLISH per group: each group's subscribers get it once
    r = publish(a.port, {"groups": ["x", "y"], "data": "both"}).json()
    assert r["nodes"] == 1, r
    assert next_text(wb) == "both" and next_text(wb2) == "both"
    assert_nothing_pending(wb)
    assert_nothing_pending(wb2)


def test_client_messages_reach_the_other_node(redis, nginx_factory):
    a, b = start_nodes(nginx_factory, redis.url)
    ca = subscribe(a.port, "/chat?room=lobby")
    cb = subscribe(b.port, "/chat?room=lobby")
    wait_numsub(redis, "room_lobby", 2)

    ca.send_text(json.dumps({"text": "hello from a"}))
    mine = json.loads(next_text(ca))       # echo on
    theirs = json.loads(next_text(cb))
    assert mine == theirs and mine["text"] == "hello from a", (mine, theirs)

    cb.send_text(json.dumps({"text": "hello from b"}))
    assert json.loads(next_text(cb))["text"] == "hello from b"
    assert json.loads(next_text(ca))["text"] == "hello from b"
    assert_nothing_pending(ca)
    assert wait_for(lambda: redis_stats(a)["published"] >= 1, 3)


def test_only_groups_with_subscribers_are_subscribed(redis, nginx_factory):
    a, b = start_nodes(nginx_factory, redis.url)
    assert redis.channels() == []

    w1 = subscribe(a.port, "/ws?g=solo")
    wait_numsub(redis, "solo", 1)
    w2 = subscribe(a.port, "/ws?g=solo")
    w3 = subscribe(b.port, "/ws?g=other")
    wait_numsub(redis, "other", 1)
    assert redis.channels() == ["realtime:g:other", "realtime:g:solo"]
    assert redis.numsub("realtime:g:solo") == 1     # one subscriber per node

    # a publish to a group nobody here has: Redis takes it, nobody listens
    r = publish(a.port, {"group": "nobody", "data": 1}).json()
    assert r["nodes"] == 0 and r["subscribers"] == 0, r

    close_ws(w1)
    time.sleep(0.3)
    assert redis.numsub("realtime:g:solo") == 1     # w2 is still there
    close_ws(w2)
    wait_numsub(redis, "solo", 0)
    close_ws(w3)
    wait_numsub(redis, "other", 0)
    assert wait_for(lambda: redis.channels() == [], TIMEOUT), redis.channels()
    assert wait_for(lambda: redis_stats(a)["channels"] == 0, 3), redis_stats(a)


def test_envelopes_and_string_payloads_across_nodes(redis, nginx_factory):
    a, b = start_nodes(nginx_factory, redis.url)
    wb = subscribe(b.port, "/env?g=ev&u=alice")
    wa = subscribe(a.port, "/env?g=ev&u=alice")
    wait_numsub(redis, "ev", 2)

    publish(a.port, {"group": "ev", "data": "plain \"text\""})
    publish(a.port, {"group": "ev", "data": {"k": [1, 2]}})
    for ws in (wb, wa):
        first, second = json.loads(next_text(ws)), json.loads(next_text(ws))
        assert first["group"] == "ev" and first["data"] == 'plain "text"', first
        assert second["data"] == {"k": [1, 2]}, second
        # no history where it was published: nobody numbers it, no "id"
        assert "id" not in first and "id" not in second, (first, second)

    # the users' internal groups ("~user:...") are followed for actions only
    everything = redis.cmd("PUBSUB", "CHANNELS", "*")
    assert [c for c in everything if "~" in c] == ["realtime:g:~user:alice"], everything
    assert "realtime:g:ev" in everything


def test_malformed_messages_are_counted_and_dropped(redis, nginx_factory):
    a, b = start_nodes(nginx_factory, redis.url)
    wa = subscribe(a.port, "/ws?g=raw")
    wb = subscribe(b.port, "/ws?g=raw")
    wait_numsub(redis, "raw", 2)

    for bad in ("garbage", "1 nothex -\nx", "9 00000001 -\nx", "1 00000001 q\nx", ""):
        assert redis.cmd("PUBLISH", "realtime:g:raw", bad) == 2
    assert wait_for(lambda: redis_stats(a)["dropped"] >= 5 and redis_stats(b)["dropped"] >= 5,
                    5), (redis_stats(a), redis_stats(b))

    # a well-formed message from some other node is delivered everywhere
    assert redis.cmd("PUBLISH", "realtime:g:raw", '1 0badf00d -\n{"from":"elsewhere"}') == 2
    assert next_text(wa) == next_text(wb) == '{"from":"elsewhere"}'
    assert_nothing_pending(wa)


def test_a_silent_server_times_out(nginx_factory):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)           # connections complete in the backlog, nothing answers
    try:
        port = silent.getsockname()[1]
        a = nginx_factory(conf(f"redis://127.0.0.1:{port}", "timeout=300ms"), workers=1)
        started = time.monotonic()
        resp = publish(a.port, {"group": "g", "data": 1}, expect=None)
        assert resp.status == 503, resp
        assert time.monotonic() - started < 3
        line = a.wait_log(lambda l: "no reply within the timeout" in l or "timed out" in l,
                          TIMEOUT)
        assert line and "[warn]" in line, a.error_log()[-2000:]
        # the link comes back to the same silence: refused again
        resp = publish(a.port, {"group": "g", "data": 2}, expect=None)
        assert resp.status == 503, resp
    finally:
        silent.close()


def test_relay_answers_reach_the_other_node(redis, nginx_factory):
    app = TrivialUpstream(lambda req: (200, {"reply": "noted", "publish": [
        {"group": "rel", "data": {"app": req.json().get("n")}}]}))
    try:
        a, b = start_nodes(nginx_factory, redis.url, app=app.url("/relay"))
        sender = subscribe(a.port, "/relay?g=rel")
        wb = subscribe(b.port, "/ws?g=rel")
        wait_numsub(redis, "rel", 2)
        sender.send_text(json.dumps({"type": "note", "n": 7}))
        got = {next_text(sender), next_text(sender)}
        assert got == {"noted", '{"app":7}'}, got
        assert next_text(wb) == '{"app":7}'
        assert_nothing_pending(wb)
    finally:
        app.stop()


# --------------------------------------------------------------------------
# Redis going away


def _link_lines(node, what):
    """{(pid, link kind): count} of the error log's "lost"/"back" lines."""
    counts = {}
    for line in node.error_log().splitlines():
        m = re.search(r"\] (\d+)#\d+: .*realtime: redis (\w+) link to \S+ " + what, line)
        if m:
            key = (int(m.group(1)), m.group(2))
            counts[key] = counts.get(key, 0) + 1
    return counts


def test_redis_down_and_back(redis, nginx_factory):
    a, b = start_nodes(nginx_factory, redis.url)
    wa = subscribe(a.port, "/ws?g=live")
    wb = subscribe(b.port, "/ws?g=live")
    ca1 = subscribe(a.port, "/chat?room=r1")
    ca2 = subscribe(a.port, "/chat?room=r1")
    wait_numsub(redis, "live", 2)
    wait_numsub(redis, "room_r1", 1)
    publish(a.port, {"group": "live", "data": "before"})
    assert next_text(wa) == next_text(wb) == 'before'

    # killed mid-stream: every answer is a 200 (delivered here, once, in
    # order) or a 503 (delivered nowhere)
    results, stop = [], threading.Event()

    def stream():
        i = 0
        while not stop.is_set():
            resp = publish(a.port, {"group": "live", "data": f"s-{i}"}, expect=None)
            results.append((i, resp.status))
            i += 1
            time.sleep(0.005)
    t = threading.Thread(target=stream, daemon=True)
    t.start()
    time.sleep(0.3)
    redis.kill()
    # until the node answers 503 (a loaded machine may take a while to get
    # there), and a little longer
    wait_for(lambda: any(st == 503 for _i, st in list(results)), TIMEOUT)
    time.sleep(0.2)
    stop.set()
    t.join(10)
    statuses = {st for _i, st in results}
    assert statuses <= {200, 503} and 503 in statuses, results
    delivered = [f"s-{i}" for i, st in results if st == 200]
    assert [next_text(wa) for _ in delivered] == delivered
    assert_nothing_pending(wa, 0.2)
    while True:     # what reached the other node before the kill: not checked
        try:
            f = wb.recv_data(timeout=0.3)
        except TimeoutError:
            break

    # fail fast: every publish is refused, nothing is delivered
    for node in (a, b, a, b):
        resp = publish(node.port, {"group": "live", "data": "lost"}, expect=None)
        assert resp.status == 503, resp
        assert resp.json() == {"error": "redis unavailable"}
    assert_nothing_pending(wa, 0.2)

    # the node keeps serving: pings answered, chat delivered locally
    wa.send_ping(b"still-there")
    while True:
        f = wa.recv_data(timeout=TIMEOUT)
        if f.opcode == OP_PONG:
            assert f.payload == b"still-there"
            break
    ca1.send_text(json.dumps({"text": "local only"}))
    assert json.loads(next_text(ca2))["text"] == "local only"
    assert json.loads(next_text(ca1))["text"] == "local only"
    assert wait_for(lambda: redis_stats(a)["state"] != "up", TIMEOUT), redis_stats(a)
    assert wait_for(lambda: redis_stats(a)["local_only"] >= 1, 3), redis_stats(a)

    # the same port again: the links come back by themselves
    redis.start()
    wait_up(a, b, timeout=20)
    wait_numsub(redis, "live", 2)
    wait_numsub(redis, "room_r1", 1)
    assert wait_for(lambda: publish(b.port, {"group": "live", "data": "after"},
                                    expect=None).status == 200, TIMEOUT)
    assert next_text(wa) == next_text(wb) == 'after'

    # one line when a link is lost, one when it is back; never per message
    for node in (a, b):
        lost, back = _link_lines(node, "lost"), _link_lines(node, "back after")
        assert lost, node.error_log()[-3000:]
        assert all(n == 1 for n in lost.values()), lost
        assert all(n == 1 for n in back.values()), back
        assert set(back) <= set(lost), (lost, back)
        assert any(kind == "subscriber" for _pid, kind in back), back
        assert wait_for(lambda: redis_stats(node)["reconnects"] >= 1, 3), redis_stats(node)
    text = a.error_log()
    assert text.count("stay on this node") <= len(a.worker_pids()), text[-3000:]


# --------------------------------------------------------------------------
# passwords and unix sockets


def test_wrong_password_is_a_clear_error_and_the_right_one_works(redis_factory, nginx_factory):
    secret = "Rt-s3cret-7f2c"
    wrong = "Zq9-bad-secret"
    r = redis_factory(password=secret)
    bad = nginx_factory(conf(f"redis://:{wrong}@127.0.0.1:{r.port}"), workers=1)
    good = nginx_factory(conf(f"redis://:{secret}@127.0.0.1:{r.port}/0"), workers=1)
    wait_up(good)

    line = bad.wait_log(lambda l: "AUTH failed" in l, TIMEOUT)
    assert line, bad.error_log()
    assert wrong not in bad.error_log() and secret not in good.error_log()
    assert "redis://:***@127.0.0.1" in line, line
    assert redis_stats(bad)["state"] != "up"
    # retries (100 ms, then doubling) say nothing more
    time.sleep(1.5)
    for kind in ("subscriber", "command"):
        lines = [l for l in bad.error_log().splitlines()
                 if f"redis {kind} link" in l and "AUTH failed" in l]
        assert len(lines) <= 2, lines     # the [error] line and the "lost" one
    resp = publish(bad.port, {"group": "g", "data": 1}, expect=None)
    assert resp.status == 503, resp
    assert wrong not in json.dumps(stats(bad.port))

    w = subscribe(good.port, "/ws?g=pw")
    wait_numsub(r, "pw", 1)
    assert publish(good.port, {"group": "pw", "data": "ok"}).json()["nodes"] == 1
    assert next_text(w) == 'ok'


def test_a_database_redis_refuses_is_a_clear_error(redis, nginx_factory):
    a = nginx_factory(conf(redis.url + "/4000"), workers=1)
    line = a.wait_log(lambda l: "SELECT failed" in l, TIMEOUT)
    assert line and "redis://127.0.0.1" in line, a.error_log()[-2000:]
    assert publish(a.port, {"group": "g", "data": 1}, expect=None).status == 503


def test_unix_socket_url_with_password_and_db(redis_factory, nginx_factory):
    secret = "unix-pw-91c"
    r = redis_factory(unix=True, password=secret)
    a, b = start_nodes(nginx_factory, "unix:" + r.sock_path, extra=f"password={secret} db=2")
    assert secret not in a.error_log()
    wa = subscribe(a.port, "/ws?g=sock")
    wb = subscribe(b.port, "/ws?g=sock")
    wait_numsub(r, "sock", 2)
    assert publish(b.port, {"group": "sock", "data": "via-unix"}).json()["nodes"] == 2
    assert next_text(wa) == next_text(wb) == 'via-unix'


# --------------------------------------------------------------------------
# the subscriber worker


def test_subscriber_killed_another_worker_takes_over(redis, nginx_expecting, nginx_factory):
    a, allowed = nginx_expecting(conf(redis.url), workers=2)
    b = nginx_factory(conf(redis.url), workers=2)
    wait_up(a, b)
    conns = spread_subscribers(a, "/ws?g=fo", 2)
    wb = subscribe(b.port, "/ws?g=fo")
    wait_numsub(redis, "fo", 2)

    old = redis_stats(a)["subscriber_pid"]
    assert old in a.worker_pids()
    kill_worker(a, old, allowed)

    def taken_over():
        s = redis_stats(a)
        return s if s["state"] == "up" and s["subscriber_pid"] not in (0, old) \
            and pid_alive(s["subscriber_pid"]) else None
    s = wait_for(taken_over, 8)
    assert s, redis_stats(a)
    wait_numsub(redis, "fo", 2)

    survivors = [ws for ws, pid in conns if pid != old]
    assert survivors
    r = publish(b.port, {"group": "fo", "data": "after-kill"}).json()
    assert r["nodes"] == 2, r
    for ws in survivors:
        assert next_text(ws) == 'after-kill'
    assert next_text(wb) == 'after-kill'


def test_reload_keeps_one_subscriber(redis, nginx_factory):
    a, b = start_nodes(nginx_factory, redis.url)
    old_workers, new_workers = a.reload()
    assert wait_for(lambda: redis_stats(a)["subscriber_pid"] in new_workers
                    and redis_stats(a)["state"] == "up", TIMEOUT), redis_stats(a)

    wa = subscribe(a.port, "/ws?g=reloaded")
    wb = subscribe(b.port, "/ws?g=reloaded")
    wait_numsub(redis, "reloaded", 2)
    assert publish(b.port, {"group": "reloaded", "data": 1}).json()["nodes"] == 2
    assert next_text(wa) == next_text(wb) == "1"
    assert publish(a.port, {"group": "reloaded", "data": 2}).json()["nodes"] == 2
    assert next_text(wa) == next_text(wb) == "2"
    # one subscription per node, whatever the number of workers
    assert redis.cmd("PUBSUB", "NUMSUB", "realtime:g:reloaded")[1] == 2


# --------------------------------------------------------------------------
# actions by user across nodes


def _expect_close(ws, code, reason=b""):
    while True:
        f = ws.recv_data(timeout=TIMEOUT)
        if f.opcode == wsclient.OP_CLOSE:
            break
        raise AssertionError(f"expected a close frame, got {f!r}")
    assert f.close_code == code and f.close_reason == reason, f


def test_actions_reach_the_users_connections_on_every_node(redis, nginx_factory):
    a, b, c = start_nodes(nginx_factory, redis.url, n=3)
    alice_a = subscribe(a.port, "/env?g=room&u=alice")
    alice_b = subscribe(b.port, "/env?g=room&u=alice")
    bob_b = subscribe(b.port, "/env?g=room&u=bob")
    wait_numsub(redis, "~user:alice", 2)

    # posted to a node where alice has no connection: both of hers, on a and b
    r = publish(c.port, {"action": "subscribe", "user": "alice", "group": "extra"}).json()
    assert r == {"action": "subscribe", "user": "alice", "connections": 0, "nodes": 2}, r
    wait_numsub(redis, "extra", 2)
    publish(c.port, {"group": "extra", "data": "only alice"})
    for ws in (alice_a, alice_b):
        m = json.loads(next_text(ws))
        while m.get("type") == "subscribed":    # the action's notice first
            m = json.loads(next_text(ws))
        assert m["data"] == "only alice", m

    r = publish(a.port, {"action": "disconnect", "user": "alice", "code": 4001,
                         "reason": "banned"}).json()
    assert r == {"action": "disconnect", "user": "alice", "connections": 1, "nodes": 2}, r
    for ws in (alice_a, alice_b):
        _expect_close(ws, 4001, b"banned")
    # bob is untouched
    publish(a.port, {"group": "room", "data": "bob still here"})
    assert json.loads(next_text(bob_b))["data"] == "bob still here"
    wait_numsub(redis, "~user:alice", 0)


def test_actions_are_refused_while_redis_is_down(redis, nginx_factory):
    a, b = start_nodes(nginx_factory, redis.url)
    alice = subscribe(b.port, "/env?g=room&u=alice")
    wait_numsub(redis, "~user:alice", 1)
    redis.kill()
    assert wait_for(lambda: redis_stats(a)["state"] != "up", TIMEOUT)
    r = publish(a.port, {"action": "disconnect", "user": "alice"}, expect=503)
    assert r.json() == {"error": "redis unavailable"}
    assert alice.is_open()
