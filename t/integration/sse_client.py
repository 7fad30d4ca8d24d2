"""A raw HTTP client for Server-Sent Events streams: it reads the response
head, then decodes the body (chunked or not) itself, so a test sees the
stream exactly as the bytes came (the comments, the last chunk, EOF)."""

import json
import socket

TIMEOUT = 10


class Stream:
    """A raw HTTP client for an event stream: the response head, then events
    decoded from the (chunked or not) body, exactly as the bytes came."""

    def __init__(self, port, path, headers=(), version="HTTP/1.1"):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        lines = [f"GET {path} {version}", f"Host: 127.0.0.1:{port}",
                 "Accept: text/event-stream"]
        lines += [f"{k}: {v}" for k, v in headers]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.buf = b""
        head = self._until(b"\r\n\r\n")
        status_line, *hdrs = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = {}
        for h in hdrs:
            k, v = h.split(":", 1)
            self.headers[k.strip().lower()] = v.strip()
        self.chunked = self.headers.get("transfer-encoding") == "chunked"
        self.body = b""          # decoded body so far
        self.ended = False       # the last chunk (or EOF) came
        self.eof = False
        if "content-length" in self.headers:
            n = int(self.headers["content-length"])
            while len(self.buf) < n:
                self._more()
            self.body, self.buf = self.buf[:n], self.buf[n:]
            self.ended = True

    def json(self):
        return json.loads(self.body)

    def _more(self):
        data = self.sock.recv(65536)
        if not data:
            self.eof = True
            raise EOFError
        self.buf += data

    def _until(self, sep):
        while sep not in self.buf:
            self._more()
        i = self.buf.index(sep) + len(sep)
        out, self.buf = self.buf[:i - len(sep)], self.buf[i:]
        return out

    def _body_more(self):
        """Moves more decoded body bytes into self.body."""
        if self.ended:
            raise EOFError
        if not self.chunked:
            try:
                self._more()
            except EOFError:
                self.ended = True
                raise
            self.body += self.buf
            self.buf = b""
            return
        size = int(self._until(b"\r\n"), 16)
        if size == 0:
            assert self._until(b"\r\n") == b"", "no trailers expected"
            self.ended = True
            raise EOFError
        while len(self.buf) < size + 2:
            self._more()
        assert self.buf[size:size + 2] == b"\r\n", self.buf[:size + 2]
        self.body += self.buf[:size]
        self.buf = self.buf[size + 2:]

    def next_block(self, timeout=TIMEOUT):
        """The next event or comment block, as its raw text (without the
        blank line that ends it)."""
        self.sock.settimeout(timeout)
        while b"\n\n" not in self.body:
            self._body_more()
        i = self.body.index(b"\n\n")
        block, self.body = self.body[:i], self.body[i + 2:]
        return block.decode()

    def next_event(self, timeout=TIMEOUT):
        """The next event as {"id": ..., "data": ...} (comments skipped)."""
        while True:
            block = self.next_block(timeout)
            ev = {"data": []}
            for line in block.split("\n"):
                if line.startswith(":"):
                    continue
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "data":
                    ev["data"].append(value)
                else:
                    ev[field] = value
            if block.startswith(":") and not ev["data"]:
                continue
            ev["data"] = "\n".join(ev["data"])
            return ev

    def next_json(self, timeout=TIMEOUT):
        ev = self.next_event(timeout)
        return ev.get("id"), json.loads(ev["data"])

    def wait_end(self, timeout=TIMEOUT):
        """Reads to the end of the stream; returns the events still read."""
        events = []
        try:
            while True:
                events.append(self.next_event(timeout))
        except EOFError:
            pass
        return events

    def close(self):
        self.sock.close()
