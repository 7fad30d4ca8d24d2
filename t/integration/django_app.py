"""The apps behind realtime_relay in the relay tests.

DjangoApp runs relay_app/ (a real Django project: sqlite, Django's own
runserver, threaded) in a subprocess with its database in a temporary
directory; TrivialUpstream is a stdlib HTTP/1.1 server in a thread whose
answers a test programs (status, body, delay) and which records every
request and the TCP connection it came on.
"""

import json
import os
import shutil
import signal
import socket
import socketserver
import subprocess
import tempfile
import threading
import time
from http.client import HTTPConnection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from nginx_harness import pick_port, wait_for

APP_DIR = Path(__file__).resolve().parent / "relay_app"
PYTHON = "/usr/bin/python3"  # Debian's, with python3-django


class AppError(Exception):
    pass


class DjangoApp:
    """relay_app/ under `manage.py runserver 127.0.0.1:PORT --noreload`.

    start() migrates a new sqlite database (first start only) and waits until
    the app answers; stop() ends it (the port and the database stay, so a
    later start() brings the same app back); cleanup() removes the temporary
    directory. secret: the X-Relay-Secret the app requires.
    """

    def __init__(self, secret, port=None):
        self.secret = secret
        self.port = port or pick_port()
        self.dir = Path(tempfile.mkdtemp(prefix="realtime-django-"))
        self.proc = None
        self._migrated = False
        self.env = dict(os.environ, RELAY_DB=str(self.dir / "db.sqlite3"),
                        RELAY_SECRET=secret, PYTHONDONTWRITEBYTECODE="1",
                        PYTHONUNBUFFERED="1", DJANGO_SETTINGS_MODULE="relay_site.settings")

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def _manage(self, *args, **kw):
        return [PYTHON, str(APP_DIR / "manage.py"), *args]

    def start(self, timeout=30):
        if self.running():
            return self
        if not self._migrated:
            res = subprocess.run(self._manage("migrate", "--noinput", "-v", "0"), cwd=self.dir,
                                 env=self.env, capture_output=True, text=True, timeout=120)
            if res.returncode != 0:
                raise AppError(f"migrate failed:\n{res.stdout}{res.stderr}")
            self._migrated = True
        log = open(self.dir / "runserver.log", "ab")
        self.proc = subprocess.Popen(
            self._manage("runserver", f"127.0.0.1:{self.port}", "--noreload"),
            cwd=self.dir, env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True)
        log.close()

        def answers():
            if self.proc.poll() is not None:
                raise AppError(f"runserver exited with {self.proc.returncode}:\n{self.log()}")
            try:
                return self.get("/realtime/state", timeout=2)[0] == 200
            except OSError:
                return False
        if not wait_for(answers, timeout, interval=0.1):
            self.stop()
            raise AppError(f"the app did not answer within {timeout}s:\n{self.log()}")
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """Ends runserver; returns once its port is closed."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self):
        try:
            return (self.dir / "runserver.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # ------------------------------------------------------------------ HTTP

    def request(self, method, path, body=None, headers=None, timeout=10):
        """(status, headers, body bytes) of one request on a new connection."""
        conn = HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            hdrs = dict(headers or {})
            if body is not None and not isinstance(body, (bytes, str)):
                body = json.dumps(body)
                hdrs.setdefault("Content-Type", "application/json")
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            return resp.status, resp.headers, resp.read()
        finally:
            conn.close()

    def get(self, path, timeout=10):
        status, _h, body = self.request("GET", path, timeout=timeout)
        return status, body

    def state(self):
        """The app's state: notifications, chat, events, orders, requests, overlaps."""
        status, body = self.get("/realtime/state")
        if status != 200:
            raise AppError(f"GET /realtime/state: {status} {body[:300]!r}")
        return json.loads(body)

    def seed(self, user, *titles):
        """User `user` (created if missing) with one unread notification per
        title; returns the notifications' ids."""
        status, _h, body = self.request("POST", "/realtime/seed",
                                        {"user": user, "titles": list(titles)})
        if status != 200:
            raise AppError(f"seed: {status} {body[:300]!r}")
        return json.loads(body)["ids"]

    def relay(self, message, user=None, connection="direct-1", groups="", secret=True):
        """POSTs a message to /realtime/relay as nginx would; (status, body)."""
        headers = {"X-Realtime-Connection": connection, "X-Realtime-Groups": groups,
                   "Content-Type": "application/json"}
        if user is not None:
            headers["X-Realtime-User"] = str(user)
        if secret:
            headers["X-Relay-Secret"] = self.secret
        status, _h, body = self.request("POST", "/realtime/relay", json.dumps(message), headers)
        return status, body


class _TCPHTTPServer(ThreadingHTTPServer):
    allow_reuse_address = True


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class Raw:
    """An answer of TrivialUpstream written verbatim (chunked bodies,
    HTTP/1.0, garbage), after delay seconds; close: close the connection
    afterwards (with no data: the app dies without answering)."""

    def __init__(self, data=b"", close=False, delay=0):
        self.data = data.encode() if isinstance(data, str) else data
        self.close = close
        self.delay = delay


class TrivialUpstream:
    """A fast, programmable app: a ThreadingHTTPServer speaking HTTP/1.1 with
    keepalive, on 127.0.0.1:<free port> (or an explicit port, or the unix
    socket unix_path), in a thread.

    answer(req) -> (status, body[, delay seconds]) or a Raw decides each
    answer (default: 200 with an empty body); req is a Request (method,
    path, headers, body, peer, arrived). Requests are recorded in .requests in
    arrival order. stop() ends it (again is harmless); start() again on the
    same port brings it back.
    """

    class Request:
        def __init__(self, handler, body):
            self.method = handler.command
            self.path = handler.path
            self.headers = handler.headers
            self.body = body
            # which keepalive connection: (ip, port), or the handler's socket on a unix socket
            self.peer = handler.client_address or id(handler.connection)
            self.arrived = time.monotonic()

        def json(self):
            return json.loads(self.body)

        def __repr__(self):
            return f"Request({self.method} {self.path} {self.body[:80]!r})"

    def __init__(self, answer=None, port=None, unix_path=None):
        self.answer = answer or (lambda req: (200, b""))
        self.requests = []
        self.lock = threading.Lock()
        self.port = port
        self.unix_path = unix_path  # listen on this unix socket instead (mode 0666)
        self.server = None
        self.thread = None
        self.start()

    def _handler(self):
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body are two writes: without this, Nagle holds the
            # body until nginx's delayed ACK (~40 ms) on a keepalive connection
            disable_nagle_algorithm = upstream.unix_path is None

            def _serve(self):
                n = int(self.headers.get("Content-Length") or 0)
                req = TrivialUpstream.Request(self, self.rfile.read(n) if n else b"")
                with upstream.lock:
                    upstream.requests.append(req)
                result = upstream.answer(req)
                if isinstance(result, Raw):
                    if result.delay:
                        time.sleep(result.delay)
                    if result.data:
                        self.wfile.write(result.data)
                    self.close_connection = result.close
                    return
                status, body = result[0], result[1]
                if len(result) > 2 and result[2]:
                    time.sleep(result[2])
                if isinstance(body, str):
                    body = body.encode()
                elif not isinstance(body, bytes):
                    body = json.dumps(body).encode()
                self.send_response(status)
                if body:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _serve

            def log_message(self, *args):
                pass

        return Handler

    def start(self):
        if self.server is not None:
            return self
        if self.unix_path:
            if os.path.exists(self.unix_path):
                os.unlink(self.unix_path)
            self.server = _UnixHTTPServer(str(self.unix_path), self._handler())
            os.chmod(self.unix_path, 0o666)  # workers may run as nobody
        else:
            self.server = _TCPHTTPServer(("127.0.0.1", self.port or 0), self._handler())
            self.port = self.server.server_address[1]
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        """Stops listening. Keepalive connections already accepted are served
        by their own threads until nginx closes them."""
        if self.server is None:
            return
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
        self.server = None
        if self.unix_path and os.path.exists(self.unix_path):
            os.unlink(self.unix_path)

    def url(self, uri="/"):
        """The realtime_relay URL of uri on this upstream."""
        if self.unix_path:
            return f"http://unix:{self.unix_path}:{uri}"
        return f"http://127.0.0.1:{self.port}{uri}"

    def bodies(self):
        with self.lock:
            return [r.body for r in self.requests]

    def wait_requests(self, n, timeout=10):
        """Waits until at least n requests arrived; returns them all."""
        if not wait_for(lambda: len(self.requests) >= n, timeout, interval=0.02):
            raise AssertionError(f"{len(self.requests)} requests reached the upstream, "
                                 f"expected {n}: {self.requests[-5:]}")
        with self.lock:
            return list(self.requests)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def closed_port():
    """A loopback port nothing listens on (connections are refused)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
