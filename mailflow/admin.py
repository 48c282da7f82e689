"""The job's admin HTTP endpoint on loopback: health, metrics, stats and local SQL.

A chDB store belongs to one process, so while the job runs `mailflow sql`
sends its query here instead of opening the store itself.

    GET  /healthz   200 while the process serves
    GET  /readyz    200 once the dataflow is running, else 503
    GET  /metrics   Prometheus text
    GET  /stats     JSON counters (the demo's live summary reads this)
    POST /sql       body: one read-only query; answer:
                    {"columns": [...], "rows": [[...]], "truncated": false}
                    (or, as `application/json`, {"query": "... {name:Type} ...",
                    "parameters": {"name": value}}: values bound by ClickHouse itself)
                    (503 on a process of a cluster that does not own the embedded
                    store: the answer names the one that does)

The port is bound to loopback, and a request must say so: its Host header must name
127.0.0.1, localhost or [::1] with this port, and an Origin header (a browser's) must
be the same. A web page the operator visits can therefore neither post SQL here
(cross-site request) nor reach it through a DNS name that resolves to 127.0.0.1
(DNS rebinding). SQL runs on a read-only client of its own (`ReadOnlyQueries`), and
`/healthz` shows the store's DSN without its password.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any

import orjson

from flows.stats import JobStats
from mailflow.http import HardenedServer, JsonHandler
from sinks.clickhouse import QueryRefused, StoreElsewhere, redact_dsn

log = logging.getLogger(__name__)

MAX_SQL_BYTES = 1024 * 1024
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")

#: columns, rows, and whether the rows were cut at the row limit
QueryAnswer = tuple[list[str], list[tuple], bool]
#: query(sql, parameters) -> QueryAnswer
Query = Callable[[str, "dict[str, Any] | None"], QueryAnswer]


def sql_request(body: bytes, content_type: str) -> tuple[str, dict[str, Any] | None]:
    """The query and its parameters from a `/sql` request body (ValueError if unusable).

    >>> sql_request(b"SELECT 1", "text/plain")
    ('SELECT 1', None)
    >>> sql_request(b'{"query": "SELECT {n:UInt8}", "parameters": {"n": 1}}', "application/json")
    ('SELECT {n:UInt8}', {'n': 1})
    >>> sql_request(b'{"query": "SELECT 1", "parameters": {"n": [1]}}', "application/json")
    Traceback (most recent call last):
    ...
    ValueError: parameters must be an object of strings and numbers
    """
    if content_type.split(";", 1)[0].strip().lower() != "application/json":
        return body.decode("utf-8", errors="replace"), None
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ValueError("the body is not JSON") from None
    if not isinstance(request, dict) or not isinstance(request.get("query"), str):
        raise ValueError('send {"query": "...", "parameters": {...}}')
    parameters = request.get("parameters") or {}
    if not isinstance(parameters, dict) or not all(
            isinstance(v, str | int | float) and not isinstance(v, bool)
            for v in parameters.values()):
        raise ValueError("parameters must be an object of strings and numbers")
    return request["query"], parameters or None


def local_hosts(port: int) -> frozenset[str]:
    """The Host header values a request to this loopback port may carry.

    >>> sorted(local_hosts(8765))
    ['127.0.0.1:8765', '[::1]:8765', 'localhost:8765']
    """
    names = [f"{name}:{port}" for name in LOOPBACK_NAMES]
    if port == 80:  # a client leaves the default port out
        names += LOOPBACK_NAMES
    return frozenset(names)


def foreign_request(headers: Any, port: int) -> str | None:
    """Why a request did not come from a local client (None if it did).

    >>> foreign_request({"Host": "localhost:8765"}, 8765) is None
    True
    >>> foreign_request({"Host": "rebound.example:8765"}, 8765)
    'unexpected Host header: only a local client may use this port'
    >>> foreign_request({"Host": "127.0.0.1:8765", "Origin": "https://evil.example"}, 8765)
    'cross-origin request refused'
    """
    hosts = local_hosts(port)
    if (headers.get("Host") or "").strip().lower() not in hosts:
        return "unexpected Host header: only a local client may use this port"
    origin = headers.get("Origin")
    if origin is not None and origin.strip().lower() not in {f"http://{h}" for h in hosts}:
        return "cross-origin request refused"
    if (headers.get("Sec-Fetch-Site") or "").lower() in ("cross-site", "same-site"):
        return "cross-origin request refused"
    return None


class AdminServer:
    def __init__(self, stats: JobStats, query: Query,
                 info: dict[str, Any], host: str = "127.0.0.1", port: int = 8765):
        # whoever built `info`, a DSN in it never shows its password
        info = {k: redact_dsn(v) if isinstance(v, str) else v for k, v in info.items()}
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


def _make_handler(stats: JobStats, query: Query,
                  info: dict[str, Any]) -> type[BaseHTTPRequestHandler]:
    class Handler(JsonHandler):
        server_version = "mailflow-admin"

        def _refused(self) -> bool:
            reason = foreign_request(self.headers, self.server.server_address[1])
            if reason is None:
                return False
            self.close_connection = True  # the body, if any, stays unread
            self._json(HTTPStatus.FORBIDDEN, {"error": reason})
            return True

        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            if self._refused():
                return
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
            if self._refused():
                return
            if self.path.split("?", 1)[0] != "/sql":
                self.close_connection = True  # its body stays unread
                self._json(404, {"error": f"no such endpoint: {self.path}"})
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length <= 0 or length > MAX_SQL_BYTES:
                self.close_connection = True  # a body of unknown length stays unread
                self._json(400, {"error": "send one SQL query as the request body"})
                return
            try:
                sql, parameters = sql_request(self.rfile.read(length),
                                              self.headers.get("Content-Type") or "")
            except ValueError as exc:
                self._json(400, {"error": str(exc)})
                return
            try:
                columns, rows, truncated = query(sql, parameters)
            except QueryRefused as exc:
                self._json(HTTPStatus.FORBIDDEN, {"error": str(exc)})
                return
            except StoreElsewhere as exc:  # a process of a cluster that does not own chDB
                self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": str(exc)})
                return
            except Exception as exc:  # the query's own error goes back to the caller
                self._json(HTTPStatus.BAD_REQUEST, {"error": redact_dsn(str(exc))})
                return
            self._json(200, {"columns": columns, "rows": rows, "truncated": truncated})

    return Handler
