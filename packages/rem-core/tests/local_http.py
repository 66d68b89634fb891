"""A tiny HTTP server on 127.0.0.1 for download tests: Range support, dropped connections, stalls.

Tests never reach the internet: they serve their own bytes and count what was sent, so a resumed
download can be shown to fetch only the remainder.
"""

from __future__ import annotations

import re
import threading
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Served:
    """One file and how the server misbehaves when serving it."""

    data: bytes
    ranges: bool = True  # honour "Range: bytes=N-"; False answers 200 with the whole file
    drop_after: int | None = None  # the first response is cut after this many body bytes
    stall: bool = False  # never answer (until the server stops): for timeouts
    status: int | None = None  # answer this error status instead
    gate: threading.Event | None = None  # hold the body back until the test sets this


class LocalServer:
    """Serves ``files[name]`` at ``/name``; records requests and counts body bytes sent."""

    def __init__(self) -> None:
        self.files: dict[str, Served] = {}
        self.requests: list[tuple[str, str | None]] = []  # (name, Range header)
        self.body_bytes = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def url(self, name: str) -> str:
        return f"{self.base_url}/{urllib.parse.quote(name)}"

    def __enter__(self) -> LocalServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()


def _make_handler(owner: LocalServer):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format, *args):  # keep test output clean
            pass

        def do_GET(self):
            name = urllib.parse.unquote(self.path.lstrip("/"))
            range_header = self.headers.get("Range")
            with owner._lock:
                owner.requests.append((name, range_header))
            served = owner.files.get(name)
            if served is None:
                self.send_error(404)
                return
            if served.stall:
                owner._stop.wait(30)
                return
            if served.status is not None:
                self.send_error(served.status)
                return
            data, start = served.data, 0
            match = re.fullmatch(r"bytes=(\d+)-", range_header or "")
            if match and served.ranges:
                start = int(match.group(1))
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if served.gate is not None:
                served.gate.wait(30)
            if served.drop_after is not None:
                body = body[: served.drop_after]
                served.drop_after = None  # only the first response is cut
                self.close_connection = True
            self.wfile.write(body)
            with owner._lock:
                owner.body_bytes += len(body)

    return Handler
