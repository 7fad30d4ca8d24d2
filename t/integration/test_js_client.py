"""The browser client (clients/js/realtime.js, issue 11) in a real headless
Chromium (Debian's, driven by playwright-core from t/js), against a real
nginx with the module: connect and dispatch, resume without loss or
duplicate across a killed worker, a reload and a full restart, in-band
token refresh, no reconnect storm with a dead token, pause while offline.

The page (t/js/page.html) and the client are served by the same nginx as
the WebSockets (same origin); t/js/driver.mjs runs the browser and answers
JSON commands on its stdin (see there). Every test counts exactly: each
published number once, in order; the handshakes in the access log."""

import json
import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from groups_util import http, kill_worker, nginx_expecting, publish, wait_count  # noqa: F401
from jwt_util import claims, make_token, new_secret_file
from nginx_harness import REPO, wait_for

JS_DIR = REPO / "t" / "js"
CLIENT_DIR = REPO / "clients" / "js"
GROUP = "feed"

# A format that tells handshakes (Upgrade) from probes and SSE (Accept), and
# keeps tokens out (no query string).
LOG_FORMAT = "log_format rtjs '$status $request_method $uri up=$http_upgrade acc=$http_accept';"

CONF = LOG_FORMAT + """
realtime_zone rt 8m;
server {
    listen {port};
    keepalive_timeout 0;          # the only lasting connections are the client's
    access_log {prefix}/logs/js.log rtjs;
    realtime_ping_interval 0;
    types { text/html html; text/javascript js; }

    location = /favicon.ico { return 204; }
    location = /page.html { alias @JS@/page.html; }
    location /js/ { alias @CLIENT@/; }

    location = /publish {
        realtime_publish;
        realtime_history 1000 ttl=10m;
    }

    location = /ws {
        realtime_websocket;
        realtime_subscribe $arg_g;
        realtime_envelope on;
        realtime_history 1000 ttl=10m;
        realtime_client_publish $arg_g;
        realtime_welcome '{"type":"welcome","pid":$pid}';
    }

    # resumes from ?from= whatever the client says: replays what the
    # client has seen, which it must drop
    location = /dup {
        realtime_websocket;
        realtime_subscribe $arg_g;
        realtime_envelope on;
        realtime_resume_from $arg_from;
    }

    location = /jwt {
        realtime_websocket;
        realtime_auth_jwt $arg_token;
        realtime_auth_jwt_key_file @SECRET@;
        realtime_subscribe $arg_g;
        realtime_envelope on;
        realtime_welcome '{"type":"welcome","pid":$pid,"user":"$jwt_claim_sub"}';
    }
}
"""


@pytest.fixture(scope="module")
def secret(tmp_path_factory):
    """(HMAC secret, its key file) for the /jwt location."""
    return new_secret_file(tmp_path_factory.mktemp("jwtkey"))


@pytest.fixture
def conf(secret):
    return _conf(secret[1])


def _conf(secret_path):
    return (CONF.replace("@JS@", str(JS_DIR)).replace("@CLIENT@", str(CLIENT_DIR))
            .replace("@SECRET@", str(secret_path)))


# --------------------------------------------------------------------------
# the browser


class Browser:
    """node t/js/driver.mjs: one Chromium, one page at a time."""

    def __init__(self):
        if not (JS_DIR / "node_modules" / "playwright-core").is_dir():
            pytest.fail("t/js/node_modules is missing: run scripts/deps.sh test (make test does)")
        self.stderr = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"rt-js-driver-{os.getpid()}.log", "w+")
        self.proc = subprocess.Popen(["node", str(JS_DIR / "driver.mjs")], cwd=JS_DIR, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr)
        self.lines = queue.Queue()
        threading.Thread(target=self._reader, daemon=True).start()
        assert self._answer(30) == "ready"

    def _reader(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _answer(self, timeout):
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"the browser driver did not answer within {timeout}s") from None
        if line is None:
            self.stderr.seek(0)
            raise AssertionError("the browser driver exited: " + self.stderr.read()[-3000:])
        doc = json.loads(line)
        if not doc["ok"]:
            raise AssertionError("in the browser: " + doc["error"])
        return doc["value"]

    def call(self, timeout=20, **cmd):
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self._answer(timeout)

    def open(self, port):
        return self.call(cmd="open", url=f"http://127.0.0.1:{port}/page.html")

    def eval(self, js):
        """Runs js (an async function body) in the page; returns its return value."""
        return self.call(cmd="eval", js=js)

    def wait(self, expr, timeout=15):
        """Polls the page until expr (an expression) is truthy; returns its value."""
        last = [None]

        def check():
            last[0] = self.eval("return " + expr)
            return last[0]
        value = wait_for(check, timeout, interval=0.1)
        assert value, f"{expr} still {last[0]!r} after {timeout}s; states {self.states()}"
        return value

    def offline(self, value):
        self.call(cmd="offline", value=value)

    def states(self):
        return self.eval("return window.rec ? stateNames() : []")

    def quit(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(5)
        self.stderr.close()


@pytest.fixture
def browser():
    b = Browser()
    yield b
    b.quit()


# --------------------------------------------------------------------------
# helpers


def access_log(ngx):
    """[(status, method, uri, upgrade, accept)] of the requests logged so far."""
    try:
        text = (ngx.prefix / "logs" / "js.log").read_text()
    except FileNotFoundError:
        return []
    rows = []
    for line in text.splitlines():
        status, method, uri, up, acc = line.split(" ", 4)
        rows.append((int(status), method, uri, up[3:], acc[4:]))
    return rows


def handshakes(ngx, uri):
    """The logged WebSocket handshakes to uri (statuses), in order."""
    return [r[0] for r in access_log(ngx) if r[2] == uri and r[3].lower() == "websocket"]


def probes(ngx, uri):
    """The logged plain GETs (probes, event streams) to uri (statuses)."""
    return [r[0] for r in access_log(ngx) if r[2] == uri and r[3].lower() != "websocket"]


class NumberedPublisher(threading.Thread):
    """Publishes {"n": 0..count-1} to group at about rate per second, one new
    connection per message. A publish whose answer is lost (the worker it
    reached was killed, or a connection refused in a reload) is looked up in
    the group's history before it is sent again, so every number is
    published exactly once."""

    def __init__(self, port, group, count, rate=100):
        super().__init__(daemon=True)
        self.port, self.group, self.count, self.pause = port, group, count, 1.0 / rate
        self.sent = 0
        self.retries = 0
        self.error = None

    def _in_history(self, n):
        r = http(self.port, "GET", f"/publish?history={self.group}")
        assert r.status == 200, r
        return any(m["data"] == {"n": n} for m in r.json()["messages"])

    def run(self):
        try:
            while self.sent < self.count:
                n = self.sent
                for attempt in range(50):
                    try:
                        if attempt and self._in_history(n):
                            break
                        r = http(self.port, "POST", "/publish",
                                 body={"group": self.group, "data": {"n": n}})
                        if r.status == 200:
                            break
                    except OSError:
                        pass
                    self.retries += 1
                    time.sleep(0.05)
                else:
                    raise AssertionError(f"could not publish {n}")
                self.sent += 1
                time.sleep(self.pause)
        except BaseException as e:  # reported by finish()
            self.error = e

    def finish(self, timeout=60):
        self.join(timeout)
        assert not self.is_alive(), "publisher did not finish"
        assert self.error is None, repr(self.error)


def start_client(browser, url, **opts):
    browser.eval(f"return start({json.dumps(url)}, {json.dumps(opts)})")


def welcome_pid(browser, index=-1):
    return browser.eval(f"return rec.types.welcome.at({index}).pid")


def expect_all_numbers(browser, count, timeout=20):
    """The page got 0..count-1, each once, in order, and dropped no duplicate
    (the server sent none)."""
    browser.wait(f"numbers().length >= {count}", timeout)
    got = browser.eval("return numbers()")
    assert got == list(range(count)), f"missing {sorted(set(range(count)) - set(got))[:20]}, " \
                                      f"got {len(got)}: {got[:10]}...{got[-10:]}"
    assert browser.eval("return rt.dropped") == 0


def stream_through(ngx, browser, disrupt, count=300, after=100):
    """Publishes count numbers at ~100/s; disrupt() once `after` have been
    received. Returns the publisher."""
    pub = NumberedPublisher(ngx.port, GROUP, count)
    pub.start()
    browser.wait(f"numbers().length >= {after}", 20)
    disrupt()
    pub.finish()
    return pub


# --------------------------------------------------------------------------
# 1. basics


def test_connect_dispatch_send_close(nginx_expecting, conf, browser):
    ngx, _allowed = nginx_expecting(conf)
    browser.open(ngx.port)
    start_client(browser, f"/ws?g={GROUP}")
    browser.wait("rt.state === 'open'")
    browser.wait("rec.types.welcome && rec.types.welcome.length === 1")
    assert browser.eval("return rt.transport") == "websocket"
    assert browser.states()[:2] == ["connecting", "open"]
    wait_count(ngx.port, GROUP, 1)

    # a second client in another browser context: what one sends (a client
    # publish, stamped and enveloped), the other gets, dispatched by type
    other = Browser()
    try:
        other.open(ngx.port)
        start_client(other, f"/ws?g={GROUP}")
        other.wait("rt.state === 'open'")
        wait_count(ngx.port, GROUP, 2)
        assert other.eval("return rt.send({type: 'chat_message', message: 'hi'})") is True
        browser.wait("rec.types.chat_message && rec.types.chat_message.length === 1")
        msg, meta = browser.eval("return rec.messages.at(-1)")
        assert msg == {"type": "chat_message", "message": "hi", "sender": None}
        assert meta["group"] == GROUP and meta["id"].endswith(":1"), meta
        assert browser.eval("return rt.lastIds") == {GROUP: meta["id"]}
        # the app's publish: the same envelope, data as published
        publish(ngx.port, {"group": GROUP, "data": {"type": "note", "n": 7}})
        browser.wait("numbers().length === 1")
        assert browser.eval("return rec.messages.at(-1)")[1]["id"].endswith(":2")
    finally:
        other.quit()

    # close(): closed, and never again a connection
    browser.eval("rt.close(); return true")
    assert browser.eval("return rt.state") == "closed"
    assert browser.eval("return rt.send({type: 'chat_message', message: 'x'})") is False
    wait_count(ngx.port, GROUP, 0)
    time.sleep(2)   # a reconnect would come within the backoff's first 500 ms
    assert handshakes(ngx, "/ws") == [101, 101]
    assert browser.states() == ["connecting", "open", "closed"]
    assert [c["code"] for c in browser.eval("return rec.closes")] == []


# --------------------------------------------------------------------------
# 2, 3, 4. no loss across a killed worker, a reload, a restart


def test_worker_killed_under_stream(nginx_expecting, conf, browser):
    ngx, allowed = nginx_expecting(conf)
    browser.open(ngx.port)
    start_client(browser, f"/ws?g={GROUP}")
    browser.wait("rt.state === 'open'")
    wait_count(ngx.port, GROUP, 1)
    pid = welcome_pid(browser)

    stream_through(ngx, browser, lambda: kill_worker(ngx, pid, allowed))
    expect_all_numbers(browser, 300)
    closes = browser.eval("return rec.closes")
    assert [c["code"] for c in closes] == [1006], closes
    assert welcome_pid(browser) != pid
    assert handshakes(ngx, "/ws")[-1:] == [101]


def test_reload_under_stream(nginx_expecting, conf, browser):
    ngx, _allowed = nginx_expecting(conf)
    browser.open(ngx.port)
    start_client(browser, f"/ws?g={GROUP}")
    browser.wait("rt.state === 'open'")
    wait_count(ngx.port, GROUP, 1)
    pid = welcome_pid(browser)

    stream_through(ngx, browser, ngx.reload)
    expect_all_numbers(browser, 300)
    closes = browser.eval("return rec.closes")
    assert [c["code"] for c in closes] == [1012], closes
    # a service restart is no failure: back within a second, whatever the backoff
    (detail,) = [d for s, d, _t in browser.eval("return rec.states") if s == "reconnecting"]
    assert detail["code"] == 1012 and 0 <= detail["delay"] <= 1000, detail
    assert welcome_pid(browser) not in (pid,)
    assert browser.eval("return rec.recoveries") == []


def test_full_restart_recovery_notice(nginx_expecting, conf, browser):
    ngx, _allowed = nginx_expecting(conf)
    port = ngx.port
    browser.open(port)
    start_client(browser, f"/ws?g={GROUP}")
    browser.wait("rt.state === 'open'")
    wait_count(port, GROUP, 1)
    for n in range(3):
        publish(port, {"group": GROUP, "data": {"n": n}})
    browser.wait("numbers().length === 3")
    old_id = browser.eval("return rt.lastIds")[GROUP]

    ngx.stop()
    browser.wait("rt.state === 'reconnecting'")
    # a new nginx on the same port: a new zone, the group's history is gone
    ngx2, _ = nginx_expecting(conf.replace("{port}", str(port)))
    browser.wait("rt.state === 'open'", 20)
    browser.wait("rec.recoveries.length === 1")
    assert browser.eval("return rec.recoveries") == [{"type": "recovery", "group": GROUP,
                                                      "recovered": False}]
    wait_count(port, GROUP, 1)
    for n in range(3, 6):
        publish(port, {"group": GROUP, "data": {"n": n}})
    browser.wait("numbers().length === 6")
    assert browser.eval("return numbers()") == list(range(6))
    new_id = browser.eval("return rt.lastIds")[GROUP]
    # a new epoch, a new history: accepted, not dropped as old
    assert new_id.split(":")[0] != old_id.split(":")[0] and new_id.endswith(":3"), (old_id, new_id)
    assert browser.eval("return rt.dropped") == 0
    # the notice came before the new messages
    kinds = browser.eval("return rec.messages.map(([d]) => d.type === 'recovery' ? 'R' : d.n)")
    assert kinds[kinds.index("R"):] == ["R", 3, 4, 5], kinds


def test_duplicates_dropped(nginx_expecting, conf, browser):
    ngx, _allowed = nginx_expecting(conf)
    for n in range(5):
        publish(ngx.port, {"group": GROUP, "data": {"n": n}})
    first = http(ngx.port, "GET", f"/publish?history={GROUP}").json()["messages"][0]["id"]
    browser.open(ngx.port)
    # every connection replays from the first message on: 1..4 the first
    # time, the same again after the reload, dropped
    start_client(browser, f"/dup?g={GROUP}&from={GROUP}@{first}")
    browser.wait("numbers().length === 4")
    ngx.reload()
    browser.wait("rec.closes.length === 1 && rt.state === 'open'")
    wait_count(ngx.port, GROUP, 1)
    publish(ngx.port, {"group": GROUP, "data": {"n": 5}})
    browser.wait("numbers().length === 5")
    assert browser.eval("return numbers()") == [1, 2, 3, 4, 5]
    assert browser.eval("return rt.dropped") == 4
    assert browser.eval("return rt.lastIds")[GROUP].endswith(":6")


# --------------------------------------------------------------------------
# 5, 6. tokens


def use_tokens(browser, **tokens):
    browser.eval(f"Object.assign(window.tokens, {json.dumps(tokens)}); return true")


def test_token_refreshed_in_band(nginx_expecting, conf, secret, browser):
    ngx, _allowed = nginx_expecting(conf)
    browser.open(ngx.port)
    # tokens of 6 s, refreshed 3 s before their exp: the connection outlives
    # the first ones without a 4003
    use_tokens(browser, mode="mint", secret=secret[0], sub="alice", ttl=6)
    start_client(browser, f"/jwt?g={GROUP}", useToken=True, refreshBefore=3)
    browser.wait("rt.state === 'open'")
    assert browser.eval("return rec.types.welcome[0].user") == "alice"
    first_exp = browser.eval("return tokenExpiry(tokens.given[0])")
    browser.wait(f"Date.now() / 1000 > {first_exp} + 2 && (rec.types.refresh || []).length >= 2", 15)
    answers = browser.eval("return rec.types.refresh")
    assert all(a["ok"] is True and a["exp"] > first_exp for a in answers), answers
    assert browser.eval("return rt.state") == "open"
    assert browser.eval("return rec.closes") == []
    assert browser.eval("return tokens.calls") == 1 + len(answers)
    # the connection still delivers, past the first token's exp
    publish(ngx.port, {"group": GROUP, "data": {"n": 0}})
    browser.wait("numbers().length === 1")
    browser.eval("rt.close(); return true")
    wait_count(ngx.port, GROUP, 0)
    assert handshakes(ngx, "/jwt") == [101]
    assert "token refresh refused" not in ngx.error_log()


def test_dead_token_no_storm(nginx_expecting, conf, secret, browser):
    ngx, _allowed = nginx_expecting(conf)
    browser.open(ngx.port)
    expired = make_token("HS256", secret[0], claims("alice", ttl=-3600))
    use_tokens(browser, mode="fixed", fixed=expired)
    start_client(browser, f"/jwt?g={GROUP}", useToken=True)
    browser.wait("rt.state === 'unauthorized'")
    # 4 s with a provider that keeps giving the refused token: asked again
    # (with backoff), never used again
    time.sleep(4)
    assert handshakes(ngx, "/jwt") == [401]
    assert probes(ngx, "/jwt") == [401]
    calls = browser.eval("return tokens.calls")
    assert 2 <= calls <= 8, calls
    assert browser.eval("return rt.state") == "unauthorized"

    # a new token: the client connects by itself
    good = make_token("HS256", secret[0], claims("alice", ttl=3600))
    use_tokens(browser, fixed=good)
    browser.wait("rt.state === 'open'", 40)
    assert browser.states() == ["connecting", "unauthorized", "connecting", "open"]
    wait_count(ngx.port, GROUP, 1)
    publish(ngx.port, {"group": GROUP, "data": {"n": 0}})
    browser.wait("numbers().length === 1")
    browser.eval("rt.close(); return true")
    wait_count(ngx.port, GROUP, 0)
    assert handshakes(ngx, "/jwt") == [401, 101]
    assert probes(ngx, "/jwt") == [401]


def test_expired_token_given_again(nginx_expecting, conf, secret, browser):
    ngx, _allowed = nginx_expecting(conf)
    browser.open(ngx.port)
    # a provider stuck on a 4 s token: the refresh finds nothing new, the
    # server closes with 4003 at its exp, the client asks once more, gets
    # the same token and waits, without a handshake, for another
    short = make_token("HS256", secret[0], claims("alice", ttl=4))
    use_tokens(browser, mode="fixed", fixed=short)
    start_client(browser, f"/jwt?g={GROUP}", useToken=True, refreshBefore=3)
    browser.wait("rt.state === 'open'")
    wait_count(ngx.port, GROUP, 1)
    publish(ngx.port, {"group": GROUP, "data": {"n": 0}})
    browser.wait("numbers().length === 1")
    browser.wait("rt.state === 'unauthorized'", 10)
    assert [c["code"] for c in browser.eval("return rec.closes")] == [4003]
    for n in range(1, 4):          # missed while unauthorized: replayed later
        publish(ngx.port, {"group": GROUP, "data": {"n": n}})
    time.sleep(1.5)
    assert handshakes(ngx, "/jwt") == [101]
    assert probes(ngx, "/jwt") == []

    use_tokens(browser, fixed=make_token("HS256", secret[0], claims("alice", ttl=3600)))
    browser.wait("rt.state === 'open'", 40)
    expect_all_numbers(browser, 4)
    assert browser.states() == ["connecting", "open", "connecting", "unauthorized", "connecting", "open"]
    browser.eval("rt.close(); return true")
    wait_count(ngx.port, GROUP, 0)
    assert handshakes(ngx, "/jwt") == [101, 101]


# --------------------------------------------------------------------------
# 7. offline


def test_paused_while_offline(nginx_expecting, conf, browser):
    ngx, _allowed = nginx_expecting(conf)
    browser.open(ngx.port)
    start_client(browser, f"/ws?g={GROUP}")
    browser.wait("rt.state === 'open'")
    wait_count(ngx.port, GROUP, 1)
    publish(ngx.port, {"group": GROUP, "data": {"n": 0}})
    browser.wait("numbers().length === 1")

    browser.offline(True)
    assert browser.eval("return navigator.onLine") is False
    ngx.reload()                        # the connection is closed (1012) while offline
    browser.wait("rt.state === 'paused'")
    for n in range(1, 4):
        publish(ngx.port, {"group": GROUP, "data": {"n": n}})
    time.sleep(2)
    assert browser.eval("return rt.state") == "paused"
    assert handshakes(ngx, "/ws") == [101]            # only the first one, closed by the reload

    browser.offline(False)              # "online": at once, and resumed
    browser.wait("rt.state === 'open'")
    expect_all_numbers(browser, 4)
    assert [c["code"] for c in browser.eval("return rec.closes")] == [1012]
    assert browser.states() == ["connecting", "open", "paused", "connecting", "open"]


def test_paused_while_hidden(nginx_expecting, conf, browser):
    """The same with the page hidden. Headless Chromium has no way to hide a
    page, so the page's visibilityState is overridden and the event it fires
    when it changes is dispatched: what the client reads and listens to."""
    ngx, _allowed = nginx_expecting(conf)
    browser.open(ngx.port)
    start_client(browser, f"/ws?g={GROUP}")
    browser.wait("rt.state === 'open'")
    wait_count(ngx.port, GROUP, 1)
    publish(ngx.port, {"group": GROUP, "data": {"n": 0}})
    browser.wait("numbers().length === 1")

    def visibility(state):
        browser.eval("Object.defineProperty(document, 'visibilityState', "
                     f"{{value: '{state}', configurable: true}}); "
                     "document.dispatchEvent(new Event('visibilitychange'))")

    visibility("hidden")
    ngx.reload()                        # closed (1012) while hidden: no reconnect
    browser.wait("rt.state === 'paused'")
    for n in range(1, 4):
        publish(ngx.port, {"group": GROUP, "data": {"n": n}})
    time.sleep(2)
    assert browser.eval("return rt.state") == "paused"
    assert handshakes(ngx, "/ws") == [101]

    visibility("visible")               # back: at once, and resumed
    browser.wait("rt.state === 'open'")
    expect_all_numbers(browser, 4)
    assert browser.states() == ["connecting", "open", "paused", "connecting", "open"]


# --------------------------------------------------------------------------
# 8. Server-Sent Events


def sse(conf):
    """conf with realtime_eventsource on in /ws and /jwt, and /front: a proxy
    to /ws that speaks HTTP/1.1 without passing Upgrade/Connection, so no
    WebSocket gets through it, but an event stream does."""
    conf = conf.replace("realtime_envelope on;", "realtime_envelope on;\n        realtime_eventsource on;")
    return conf.replace("    location = /dup {", """    location = /front {
        proxy_pass http://127.0.0.1:{port}/ws$is_args$args;
        proxy_http_version 1.1;
        proxy_buffering off;
        proxy_read_timeout 1h;
    }

    location = /dup {""")


def test_sse_fallback_through_proxy(nginx_expecting, conf, browser):
    ngx, _allowed = nginx_expecting(sse(conf))
    browser.open(ngx.port)
    start_client(browser, f"/front?g={GROUP}")
    browser.wait("rt.state === 'open'")
    assert browser.eval("return rt.transport") == "eventsource"
    wait_count(ngx.port, GROUP, 1)
    # the WebSocket failed, the probe said "event stream here": SSE at once
    assert browser.states() == ["connecting", "open"]
    (failed,) = browser.eval("return rec.closes")
    assert failed["transport"] == "websocket" and not failed["wasOpen"], failed
    assert browser.eval("return rec.types.welcome.length") == 1
    assert browser.eval("return rt.send({type: 'chat_message', message: 'x'})") is False

    # a reload ends the stream; the client comes back (SSE again) and resumes
    pid = welcome_pid(browser)
    stream_through(ngx, browser, ngx.reload)
    expect_all_numbers(browser, 300)
    assert welcome_pid(browser) != pid
    closes = browser.eval("return rec.closes")
    assert [(c["transport"], c["wasOpen"]) for c in closes] == [("websocket", False), ("eventsource", True)]
    assert browser.eval("return rec.recoveries") == []
    # the WebSocket was tried once, through the proxy; never again
    assert [r[3].lower() for r in access_log(ngx) if r[2] == "/front"].count("websocket") == 1


def test_sse_forced_resumes_after_worker_killed(nginx_expecting, conf, browser):
    ngx, allowed = nginx_expecting(sse(conf))
    browser.open(ngx.port)
    start_client(browser, f"/ws?g={GROUP}", transports=["eventsource"])
    browser.wait("rt.state === 'open'")
    assert browser.eval("return rt.transport") == "eventsource"
    wait_count(ngx.port, GROUP, 1)
    pid = welcome_pid(browser)
    stream_through(ngx, browser, lambda: kill_worker(ngx, pid, allowed))
    expect_all_numbers(browser, 300)
    assert handshakes(ngx, "/ws") == []
    assert browser.eval("return rec.recoveries") == []
    assert [c["transport"] for c in browser.eval("return rec.closes")] == ["eventsource"]


def test_sse_token_renewed_by_reconnecting(nginx_expecting, conf, secret, browser):
    ngx, _allowed = nginx_expecting(sse(conf))
    browser.open(ngx.port)
    # SSE cannot refresh in-band: a new stream with the new token before exp
    use_tokens(browser, mode="mint", secret=secret[0], sub="alice", ttl=6)
    start_client(browser, f"/jwt?g={GROUP}", useToken=True, refreshBefore=3, transports=["eventsource"])
    browser.wait("rt.state === 'open'")
    first_exp = browser.eval("return tokenExpiry(tokens.given[0])")
    wait_count(ngx.port, GROUP, 1)
    publish(ngx.port, {"group": GROUP, "data": {"n": 0}})
    browser.wait("numbers().length === 1")
    browser.wait(f"Date.now() / 1000 > {first_exp} + 1 && tokens.calls >= 3", 15)
    assert browser.eval("return rt.state") == "open"
    publish(ngx.port, {"group": GROUP, "data": {"n": 1}})
    expect_all_numbers(browser, 2)
    # replaced by the client itself each time, never cut by the server
    assert browser.eval("return rec.closes") == []
    # one stream per token
    browser.wait("rec.types.welcome.length === tokens.calls")


def test_published_types_accept_the_api_and_refuse_misuse(tmp_path):
    """clients/js/realtime.d.ts, as an app would compile against it
    (tsc --strict from npm, into t/js): t/js/types_check.ts uses the API
    as the README does and marks misuse the types must refuse
    (@ts-expect-error fails the build when nothing is refused)."""
    tsc = JS_DIR / "node_modules" / "typescript" / "bin" / "tsc"
    run = subprocess.run(["node", str(tsc), "--noEmit", "--strict", "--target", "es2022",
                          "--module", "es2022", "--moduleResolution", "bundler",
                          "--lib", "es2022,dom", str(JS_DIR / "types_check.ts")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    # and it can fail: a call the types refuse
    bad = tmp_path / "bad.ts"
    bad.write_text(f'import {{ RealtimeClient }} from "{CLIENT_DIR}/realtime.js";\n'
                   'new RealtimeClient("/ws/", { backoff: { min: "soon" } });\n')
    run = subprocess.run(["node", str(tsc), "--noEmit", "--strict", "--target", "es2022",
                          "--module", "es2022", "--moduleResolution", "bundler",
                          "--lib", "es2022,dom", str(bad)], capture_output=True, text=True, timeout=120)
    assert run.returncode != 0 and "TS2322" in run.stdout, run.stdout
