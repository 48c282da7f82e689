"""What the three HTTP servers (admin, ingest, api) share: JSON answers, no Nagle stall."""

from __future__ import annotations

import logging
from http.server import BaseHTTPRequestHandler
from typing import Any, Protocol

import orjson

log = logging.getLogger(__name__)


class JsonHandler(BaseHTTPRequestHandler):
    server_version = "mailflow"
    # http.server writes headers and body separately: without this, Nagle and delayed
    # ACKs stall every keep-alive response ~40 ms
    disable_nagle_algorithm = True

    def log_message(self, fmt: str, *args: Any) -> None:
        log.debug("%s %s", self.server_version, fmt % args)

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: Any) -> None:
        self._send(status, orjson.dumps(payload, default=str))


class Serving(Protocol):
    def serve_forever(self) -> None: ...
    def stop(self) -> None: ...


def serve_until_interrupted(server: Serving) -> int:
    """Run a server in the foreground until Ctrl-C / SIGTERM-as-KeyboardInterrupt."""
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
