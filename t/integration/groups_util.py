"""Helpers for the groups / publish API / cross-worker tests: HTTP calls to
the publish and stats locations, subscribers, `nginx -t` runs, and an
nginx fixture for tests that expect specific alert lines in the error log.

Conventions of the configurations these helpers assume: the publish API is
at /publish, the stats at /stats (both overridable)."""

from http.client import HTTPConnection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import json
import os
import signal
import socket
import subprocess
import threading
import time

import pytest

import wsclient
from nginx_harness import Nginx, wait_for
from wsclient import OP_CLOSE, OP_PING, OP_TEXT, WS, ConnectionClosed

TIMEOUT = 10.0  # generous: nothing here measures speed


# --------------------------------------------------------------------------
# HTTP


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # http.client.HTTPMessage
        self.body = body

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            raise AssertionError(f"not JSON ({self.status}): {self.body[:300]!r}") from None

    def __repr__(self):
        return f"Response({self.status}, {self.body[:200]!r})"


def http(port, method, path, body=None, headers=None, timeout=TIMEOUT):
    """One request on a fresh connection (so successive requests may land on
    different workers). body: bytes, str, or anything json.dumps takes."""
    hdrs = dict(headers or {})
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
        hdrs.setdefault("Content-Type", "application/json")
    if isinstance(body, str):
        body = body.encode()
    conn = HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        return Response(resp.status, resp.headers, data)
    finally:
        conn.close()


def publish(port, payload, path="/publish", content_type="application/json",
            expect=200, headers=None):
    """POSTs payload (a JSON-able object, or raw bytes/str sent as is) and
    asserts the status (unless expect is None). headers: extra request
    headers. Returns the Response. The one publish client of the tests."""
    if isinstance(payload, (bytes, str)):
        body = payload
    else:
        body = json.dumps(payload)
    hdrs = {} if content_type is None else {"Content-Type": content_type}
    hdrs.update(headers or {})
    resp = http(port, "POST", path, body=body, headers=hdrs)
    if expect is not None:
        assert resp.status == expect, f"publish {str(body)[:200]!r}: {resp!r}"
    return resp


def count(port, group, path="/publish"):
    """GET ?group=: the subscriber count of group across all workers."""
    resp = http(port, "GET", f"{path}?group={group}")
    assert resp.status == 200, resp
    doc = resp.json()
    assert doc["group"] == group, doc
    return doc["subscribers"]


def wait_count(port, group, expected, timeout=TIMEOUT, path="/publish"):
    """Waits until GET ?group= reports expected; asserts with the last value."""
    last = [None]

    def ok():
        last[0] = count(port, group, path)
        return last[0] == expected
    if not wait_for(ok, timeout, interval=0.05):
        raise AssertionError(f"group {group!r}: {last[0]} subscribers, "
                             f"expected {expected} (waited {timeout}s)")


def stats(port, path="/stats"):
    resp = http(port, "GET", path)
    assert resp.status == 200, resp
    assert resp.headers.get("Content-Type", "").startswith("application/json"), \
        resp.headers
    return resp.json()


def raw_http(port, data, timeout=TIMEOUT):
    """Sends raw request bytes; returns wsclient's HttpResponse."""
    resp, sock, _rest = wsclient.request(port, data, timeout=timeout)
    sock.close()
    return resp


class AuthUpstream:
    """The app behind auth_request, for the tests that need one: a real HTTP
    server on a free loopback port (.port), in a thread. answer(request) is
    called for every GET, POST or HEAD with the BaseHTTPRequestHandler
    (.command, .path, .headers, .rfile) and returns (status, [(name, value),
    ...]); the response has those headers and an empty body. stop() ends it
    (again is harmless); used as a context manager it stops on exit."""

    def __init__(self, answer):
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self):
                status, headers = answer(self)
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_HEAD = _answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


# --------------------------------------------------------------------------
# publishers in threads


class Publisher(threading.Thread):
    """Publishes {"p": name, "seq": i} to group, one request (and one new
    connection, so successive messages go through different workers) per
    message, for n messages or until stop is set."""

    def __init__(self, port, group, name, n=None, stop=None, pause=0):
        super().__init__(daemon=True)
        self.port, self.group, self.name, self.n = port, group, name, n
        self.pause = pause  # seconds between messages (keeps TIME_WAITs few)
        self.stop = stop or threading.Event()
        self.sent = 0
        self.subscribers = []  # the "subscribers" of each answer
        self.error = None

    def run(self):
        try:
            while not self.stop.is_set() and (self.n is None or self.sent < self.n):
                r = publish(self.port, {"group": self.group,
                                        "data": {"p": self.name, "seq": self.sent}})
                self.subscribers.append(r.json()["subscribers"])
                self.sent += 1
                if self.pause:
                    time.sleep(self.pause)
        except BaseException as e:  # reported by the test
            self.error = e

    def finish(self, timeout=60):
        self.join(timeout)
        assert not self.is_alive(), f"publisher {self.name} did not finish"
        assert self.error is None, f"publisher {self.name}: {self.error!r}"


# --------------------------------------------------------------------------
# subscribers


def subscribe(port, path, timeout=TIMEOUT):
    """A WebSocket connection to path (the handshake must succeed)."""
    ws, _ = wsclient.ws_connect(port, path, timeout=timeout)
    return ws


def next_text(ws, timeout=TIMEOUT):
    """The next text message (server pings are skipped). Fails on anything else."""
    while True:
        f = ws.recv_data(timeout=timeout)
        if f.opcode == OP_PING:
            continue
        assert f.opcode == OP_TEXT and f.fin, f"expected a text message, got {f!r}"
        return f.payload.decode()


def recv_texts(ws, n, timeout=TIMEOUT):
    return [next_text(ws, timeout) for _ in range(n)]


_marker_seq = [0]


def expect_nothing_more(port, subscribers, group, path="/publish"):
    """Proves that nothing is pending for subscribers (all members of group):
    publishes a unique marker to group; the next message each one gets must
    be that marker. Messages are ordered per group, and delivery to one
    connection is in queue order, so anything published earlier would come
    first."""
    _marker_seq[0] += 1
    marker = f"marker-{os.getpid()}-{_marker_seq[0]}"
    resp = publish(port, {"group": group, "data": marker}, path=path)
    assert resp.json()["subscribers"] >= len(subscribers), resp
    for ws in subscribers:
        got = next_text(ws)
        assert got == marker, f"expected nothing before the marker, got {got[:200]!r}"


def spread_subscribers(ngx, path, n, want_all_workers=True, extra_tries=200, connect=None):
    """Opens n connections to path; when want_all_workers, keeps opening
    (extra ones are kept) until every current worker holds at least one, so
    each test really crosses workers. connect(port, path) -> WS opens one
    (default: a handshake that must succeed). Returns [(ws, worker_pid)].
    The one spread helper of the tests."""
    connect = connect or subscribe
    conns = []

    def add():
        ws = connect(ngx.port, path)
        pid = ngx.worker_of(ws.sock)
        assert pid is not None, "could not find the worker of a connection"
        conns.append((ws, pid))

    for _ in range(n):
        add()
    if want_all_workers:
        workers = set(ngx.worker_pids(shutting_down=False))
        tries = 0
        while {pid for _, pid in conns} < workers and tries < extra_tries:
            tries += 1
            add()
        served = {pid for _, pid in conns}
        assert served >= workers, f"connections reached only {served} of {workers}"
    return conns


def close_ws(ws):
    """Closes a connection the test is done with, politely if it can: a close
    frame (1000) and up to 5 s for the server's EOF, errors ignored (the
    server may have gone first); then the socket."""
    try:
        ws.send_close(1000)
        ws.wait_eof(5)
    except OSError:
        pass
    ws.close()


def stalled_socket(port, path, rcvbuf=4096, timeout=TIMEOUT):
    """A raw socket that completes the WebSocket handshake and then never reads.
    Its receive buffer is made small before connecting so the server's
    output backs up quickly."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    wsclient._open_sockets.append(s)
    key = wsclient.new_key()
    s.sendall(wsclient.build_request(path, port=port, key=key))
    resp, rest = wsclient.read_response(s, timeout)
    assert resp.status == 101, resp
    return WS(s, rest)


def drain_frames(ws, timeout=TIMEOUT):
    """Reads frames until a close frame, EOF/RST, or timeout.
    Returns (text payloads, close frame or None, how it ended)."""
    texts = []
    while True:
        try:
            f = ws.recv_data(timeout=timeout)
        except ConnectionClosed:
            return texts, None, "eof"
        except TimeoutError:
            return texts, None, "timeout"
        if f.opcode == OP_PING:
            continue
        if f.opcode == OP_CLOSE:
            return texts, f, "close"
        assert f.opcode == OP_TEXT and f.fin, f
        texts.append(f.payload.decode())


# --------------------------------------------------------------------------
# configuration checks


def nginx_test_config(snippet, workers=1):
    """Runs `nginx -t` on the snippet. Returns (returncode, combined output)."""
    n = Nginx(snippet, workers=workers)
    try:
        n._render()
        res = subprocess.run(n._cmd("-t"), capture_output=True, text=True, timeout=30)
        return res.returncode, res.stdout + res.stderr + n.error_log()
    finally:
        n.cleanup()


# --------------------------------------------------------------------------
# nginx whose error log may hold specific, expected alert lines


@pytest.fixture
def nginx_expecting(request):
    """Like conftest's nginx_factory, for tests that kill a worker on purpose:
    start(snippet, workers=2, **kw) -> (Nginx, allowed), where `allowed` is a
    list the test fills with exact substrings of log lines it expects (e.g.
    "worker process 1234 exited on signal 9"). At teardown the error log
    must hold no [alert]/[emerg]/[crit]/"exited on signal"/"core dumped"
    line other than ones containing one of these substrings, and nginx must
    shut down by itself after SIGQUIT.

    (The shared harness has no way to whitelist a line; this fixture keeps
    the same check with a narrow, per-test allowance instead of editing it.)
    """
    instances = []
    try:  # lets conftest's report hook show the error log tail on failure
        from conftest import _INSTANCES_KEY
        shown = request.node.stash.setdefault(_INSTANCES_KEY, [])
    except ImportError:
        shown = []

    def start(snippet, workers=2, **kw):
        n = Nginx(snippet, workers=workers, **kw)
        allowed = []
        instances.append((n, allowed))
        shown.append(n)
        return n.start(), allowed

    yield start

    wsclient.close_all()
    problems = []
    for n, allowed in instances:
        if n.proc is not None:
            n.stop()
        problems += n.problems
        bad = [line for line in n.bad_log_lines()
               if not any(a in line for a in allowed)]
        if bad:
            problems.append("error log of %s has:\n  %s" % (n.prefix, "\n  ".join(bad)))
    if not problems and not getattr(request.node, "rep_call_failed", False):
        for n, _ in instances:
            n.cleanup()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def kill_worker(ngx, pid, allowed):
    """SIGKILLs one worker and whitelists exactly its death notice."""
    assert pid in ngx.worker_pids(), (pid, ngx.worker_pids())
    allowed.append(f"worker process {pid} exited on signal {int(signal.SIGKILL)}")
    os.kill(pid, signal.SIGKILL)

