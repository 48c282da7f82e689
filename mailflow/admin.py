"""The job's admin HTTP endpoint on loopback: health, metrics, stats and local SQL.

A chDB store belongs to one process, so while the job runs `mailflow sql`
sends its query here instead of opening the store itself.

    GET  /healthz   200 while the process serves
    GET  /readyz    200 once the dataflow is running, else 503
    GET  /metrics   Prometheus text
    GET  /stats     JSON counters (the demo's live summary reads this)
    POST /sql       body: one query; answer: {"columns": [...], "rows": [[...]]}
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any

from mailflow.http import HardenedServer, JsonHandler
from mailflow.stats import JobStats

log = logging.getLogger(__name__)

MAX_SQL_BYTES = 1024 * 1024


class AdminServer:
    def __init__(self, stats: JobStats, query: Callable[[str], tuple[list[str], list[tuple]]],
                 info: dict[str, Any], host: str = "127.0.0.1", port: int = 8765):
        handler = _make_handler(stats, query, info)
        self.httpd = HardenedServer((host, port), handler, max_body=MAX_SQL_BYTES)
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="admin-http",
                                        daemon=True)

    def start(self) -> AdminServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _make_handler(stats: JobStats, query: Callable[[str], tuple[list[str], list[tuple]]],
                  info: dict[str, Any]) -> type[BaseHTTPRequestHandler]:
    class Handler(JsonHandler):
        server_version = "mailflow-admin"

        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                self._json(200, {"status": "ok", **info})
            elif path == "/readyz":
                ready = stats.ready.is_set()
                self._json(200 if ready else 503, {"ready": ready})
            elif path == "/metrics":
                self._send(200, stats.prometheus().encode(), "text/plain; version=0.0.4")
            elif path == "/stats":
                self._json(200, stats.snapshot())
            else:
                self._json(404, {"error": f"no such endpoint: {path}"})

        def do_POST(self) -> None:  # noqa: N802
            if self.path.split("?", 1)[0] != "/sql":
                self._json(404, {"error": f"no such endpoint: {self.path}"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length <= 0 or length > MAX_SQL_BYTES:
                self._json(400, {"error": "send one SQL query as the request body"})
                return
            sql = self.rfile.read(length).decode("utf-8", errors="replace")
            try:
                columns, rows = query(sql)
            except Exception as exc:  # the query's own error goes back to the caller
                self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
                return
            self._json(200, {"columns": columns, "rows": rows})

    return Handler
