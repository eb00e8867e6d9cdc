"""A loopback HTTP server for BITS tests: GET with Range (206 + Content-Range) and HEAD
with Content-Length, as real Windows BITS needs (Wine's makes plain GETs). Standard
library only: it runs inside the Windows Python under test and in tools/wine.py."""

from __future__ import annotations

import base64
import random
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


def make_payload(size: int, seed: int = 0) -> bytes:
    """Deterministic bytes that no two offsets share by accident."""
    return random.Random(seed).randbytes(size)


class RangeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, files: dict[str, bytes]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files = files
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range)
        self.stall = threading.Event()  # set: answer headers, then send nothing more
        # path -> an HTTP status to answer with no body (401 asks for Basic credentials),
        # or 0: close the connection without answering
        self.answers: dict[str, int] = {}
        # path -> "user:password": served only with that Basic Authorization, else 401
        self.logins: dict[str, str] = {}
        self.headers_seen: list[dict[str, str]] = []  # every request's headers, in order
        self.sent_at: dict[str, float] = {}  # path -> time.monotonic() after its last body
        self.rate: dict[str, int] = {}  # path -> bytes per second to send its body at

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"


class _Handler(BaseHTTPRequestHandler):
    server: RangeServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _lookup(self) -> bytes | None:
        self.server.requests.append((self.command, self.path, self.headers.get("Range")))
        self.server.headers_seen.append(dict(self.headers.items()))
        answer = self.server.answers.get(self.path.split("?")[0])
        login = self.server.logins.get(self.path.split("?")[0])
        if login is not None:
            expected = "Basic " + base64.b64encode(login.encode()).decode()
            if self.headers.get("Authorization") != expected:
                answer = 401
        if answer is not None:
            if answer:
                self.send_response(answer)
                if answer == 401:
                    self.send_header("WWW-Authenticate", 'Basic realm="winbits"')
                self.send_header("Content-Length", "0")
                self.end_headers()
            self.close_connection = True
            return None
        body = self.server.files.get(self.path.split("?")[0])
        if body is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
        return body

    def do_HEAD(self) -> None:
        body = self._lookup()
        if body is not None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()

    def do_GET(self) -> None:
        body = self._lookup()
        if body is None:
            return
        start, end = 0, len(body) - 1
        wanted = self.headers.get("Range")
        if wanted:
            m = _RANGE.match(wanted.strip())
            if not m or (not m.group(1) and not m.group(2)):
                return self._unsatisfiable(len(body))
            if m.group(1):
                start = int(m.group(1))
                if m.group(2):
                    end = min(int(m.group(2)), end)
            else:  # suffix: the last N bytes
                start = max(0, len(body) - int(m.group(2)))
            if start > end:
                return self._unsatisfiable(len(body))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if self.server.stall.is_set():
            self.server.stall.wait(60)  # hold the connection; the client must give up
            return
        rate = self.server.rate.get(self.path.split("?")[0])
        step = (end + 1 - start) if rate is None else max(1, rate // 10)
        for at in range(start, end + 1, step):  # a tenth of the rate every 0.1 s
            if at > start:
                time.sleep(0.1)
            self.wfile.write(body[at : min(at + step, end + 1)])
            self.wfile.flush()
        self.server.sent_at[self.path.split("?")[0]] = time.monotonic()

    def _unsatisfiable(self, size: int) -> None:
        self.send_response(416)
        self.send_header("Content-Range", f"bytes */{size}")
        self.send_header("Content-Length", "0")
        self.end_headers()


def start(payload: bytes | dict[str, bytes], path: str = "/demo.bin") -> RangeServer:
    """A server on 127.0.0.1 (a free port) for one payload at path, or for a dict of
    path -> bytes. Serve it with serve_forever() in a thread; shutdown() stops it."""
    files = payload if isinstance(payload, dict) else {path: payload}
    return RangeServer(files)
