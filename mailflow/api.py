"""`mailflow serve`: the throttle-decision HTTP API for sending systems (read-only).

It materialises `mailflow.throttle` and `mailflow.suppressions` with a
`ThrottleClient` and answers from memory; the OpenAPI document is at
`/openapi.json`. With `MAILFLOW_API_TOKENS` set, every `/v1` endpoint wants
`Authorization: Bearer <one of them>`.
"""

from __future__ import annotations

import hmac
import logging
import queue
import re
import threading
import time
import urllib.parse
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from mailflow.http import JsonHandler
from schemas.mailbox_providers import provider_key
from sinks.client import ThrottleClient

log = logging.getLogger(__name__)

MAX_BATCH = 1000
_HASH = re.compile(r"^[0-9a-f]{32}$")

_DECISION = {
    "type": "object",
    "required": ["sender", "domain", "action", "rate_factor", "reason", "key", "seq"],
    "properties": {
        "sender": {"type": "string"}, "domain": {"type": "string"},
        "action": {"type": "string", "enum": ["allow", "slow", "pause"]},
        "rate_factor": {"type": "number", "minimum": 0, "maximum": 1},
        "until": {"type": ["string", "null"]}, "reason": {"type": "string"},
        "key": {"type": "string"}, "seq": {"type": "integer"},
        "decision": {"type": ["object", "null"]},
    },
}
_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): {"description": "error", "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}} for c in codes}


OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "mailflow decision API", "version": "1.0.0",
             "description": "May this sender send to this provider now, and how fast? "
                            "Is this recipient suppressed?"},
    "components": {
        "schemas": {"Decision": _DECISION, "Error": _ERROR},
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    },
    "security": [{"bearer": []}, {}],
    "paths": {
        "/v1/throttle": {"get": {
            "summary": "The decision that applies to one send",
            "parameters": [
                {"name": "sender", "in": "query", "required": True,
                 "schema": {"type": "string", "minLength": 1}},
                {"name": "domain", "in": "query", "required": True,
                 "schema": {"type": "string", "minLength": 1},
                 "description": "the recipient's domain, a provider key (gmail.com), or the "
                                "recipient's address"},
            ],
            "responses": {"200": {"description": "the effective decision", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Decision"}}}},
                **_errors(400, 401)},
        }},
        "/v1/throttle:batch": {"post": {
            "summary": "Decisions for many sends at once (at most 1000)",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["items"], "properties": {"items": {
                    "type": "array", "maxItems": MAX_BATCH, "items": {
                        "type": "object", "properties": {
                            "sender": {"type": "string", "minLength": 1},
                            "domain": {"type": "string", "minLength": 1}},
                        "required": ["sender", "domain"]}}}}}}},
            "responses": {"200": {"description": "one result per item, in order", "content": {
                "application/json": {"schema": {"type": "object", "required": ["results"],
                                                 "properties": {"results": {
                                                     "type": "array", "items": {
                                                         "$ref": "#/components/schemas/"
                                                                 "Decision"}}}}}}},
                **_errors(400, 401, 413)},
        }},
        "/v1/suppressions/{recipient}": {"get": {
            "summary": "Is this recipient (address or recipient hash) suppressed?",
            "parameters": [{"name": "recipient", "in": "path", "required": True,
                            "schema": {"type": "string",
                                       # no spaces or control characters (the
                                       # server strips Python's whitespace, which
                                       # includes \x1c-\x1f and \x85)
                                       "pattern": "^([0-9a-fA-F]{32}|"
                                                  "[^@/?#%\\s\\x00-\\x1f\\x7f-\\x9f]+@"
                                                  "[^@/?#%\\s\\x00-\\x1f\\x7f-\\x9f]+)$"}}],
            "responses": {"200": {"description": "suppression status", "content": {
                "application/json": {"schema": {
                    "type": "object", "required": ["recipient_hash", "suppressed"],
                    "properties": {"recipient_hash": {"type": "string"},
                                   "suppressed": {"type": "boolean"},
                                   "reason": {"type": ["string", "null"]},
                                   "ts": {"type": ["string", "null"]}}}}}},
                **_errors(400, 401)},
        }},
        "/v1/decisions/stream": {"get": {
            "summary": "Server-Sent Events: every new decision and suppression as it arrives",
            "responses": {"200": {"description": "text/event-stream"}, **_errors(401)},
        }},
        "/healthz": {"get": {"summary": "alive", "security": [],
                             "responses": {"200": {"description": "ok"}}}},
        "/readyz": {"get": {"summary": "caught up with the topics", "security": [],
                            "responses": {"200": {"description": "ready"},
                                          "503": {"description": "catching up"}}}},
    },
}


class DecisionApi:
    def __init__(self, client: ThrottleClient, tokens: list[str]):
        self.client = client
        self.tokens = tokens
        self.subscribers: list[queue.Queue] = []
        self._sub_lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        client.on_change = self.publish

    def publish(self, kind: str, record: dict[str, Any]) -> None:
        message = f"event: {kind}\ndata: {orjson.dumps(record).decode()}\n\n".encode()
        with self._sub_lock:
            for q in self.subscribers:
                q.put(message)

    def authorised(self, authorization: str) -> bool:
        if not self.tokens:
            return True
        return any(hmac.compare_digest(authorization, f"Bearer {t}") for t in self.tokens)

    def lookup(self, item: dict[str, Any]) -> dict[str, Any]:
        """One throttle lookup (raises ValueError with a client-facing message)."""
        sender = item.get("sender")
        if not isinstance(sender, str) or not sender:
            raise ValueError("sender is required")
        domain = item.get("domain")
        if not isinstance(domain, str) or not domain:
            raise ValueError("domain is required (a domain, provider key or address)")
        # lenient on purpose: an address counts by its domain, and an unknown (or odd)
        # domain simply has no decision
        domain = domain.strip().rsplit("@", 1)[-1] or domain
        key = provider_key(domain)
        e = self.client.throttle(sender, key)
        self.counts["lookups"] += 1
        return {"sender": sender, "domain": key, "action": e.action,
                "rate_factor": e.rate_factor, "until": e.until, "reason": e.reason,
                "key": e.key, "seq": e.seq, "decision": e.decision}

    def metrics(self) -> str:
        view = self.client.view
        lines = [
            "# TYPE mailflow_api_requests_total counter",
            *[f'mailflow_api_requests_total{{endpoint="{k}"}} {v}'
              for k, v in sorted(self.counts.items()) if k != "lookups"],
            "# TYPE mailflow_api_lookups_total counter",
            f"mailflow_api_lookups_total {self.counts['lookups']}",
            "# TYPE mailflow_api_decisions gauge", f"mailflow_api_decisions {len(view.decisions)}",
            "# TYPE mailflow_api_suppressions gauge",
            f"mailflow_api_suppressions {len(view.suppressed)}",
            "# TYPE mailflow_api_ready gauge", f"mailflow_api_ready {int(self.client.ready)}",
            "# TYPE mailflow_api_stream_subscribers gauge",
            f"mailflow_api_stream_subscribers {len(self.subscribers)}", ""]
        return "\n".join(lines)


def _handler(api: DecisionApi) -> type[BaseHTTPRequestHandler]:
    class Handler(JsonHandler):
        server_version = "mailflow-api"
        protocol_version = "HTTP/1.1"

        def _guard(self) -> bool:
            if api.authorised(self.headers.get("Authorization", "")):
                return True
            self._json(401, {"error": "missing or wrong bearer token"})
            return False

        def do_GET(self) -> None:  # noqa: N802
            url = urllib.parse.urlsplit(self.path)
            path = url.path
            api.counts[path.split("/")[2] if path.startswith("/v1/") and path.count("/") > 1
                       else path.strip("/") or "root"] += 1
            if path == "/healthz":
                self._json(200, {"status": "ok"})
            elif path == "/readyz":
                ready = api.client.ready
                self._json(200 if ready else 503, {"ready": ready, "error": api.client.error})
            elif path == "/metrics":
                self._send(200, api.metrics().encode(), "text/plain; version=0.0.4")
            elif path == "/openapi.json":
                self._json(200, OPENAPI)
            elif path == "/v1/throttle":
                if self._guard():
                    params = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
                    try:
                        self._json(200, api.lookup(params))
                    except ValueError as exc:
                        self._json(400, {"error": str(exc)})
            elif path.startswith("/v1/suppressions/"):
                if self._guard():
                    self._suppression(urllib.parse.unquote(path[len("/v1/suppressions/"):]))
            elif path == "/v1/decisions/stream":
                if self._guard():
                    self._stream()
            elif path == "/v1/throttle:batch":
                self._not_allowed()
            else:
                self._json(404, {"error": f"no such endpoint: {path}"})

        def do_POST(self) -> None:  # noqa: N802
            path = urllib.parse.urlsplit(self.path).path
            api.counts["throttle:batch"] += 1
            if path != "/v1/throttle:batch":
                if path in ("/v1/throttle", "/healthz", "/readyz", "/metrics", "/openapi.json",
                            "/v1/decisions/stream") or path.startswith("/v1/suppressions/"):
                    self._not_allowed()
                else:
                    self._json(404, {"error": f"no such endpoint: {path}"})
                return
            if not self._guard():
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > 1024 * 1024:
                self.close_connection = True
                self._json(413, {"error": "body over 1 MiB"})
                return
            try:
                body = orjson.loads(self.rfile.read(length) if length > 0 else b"")
            except orjson.JSONDecodeError as exc:
                self._json(400, {"error": f"body is not JSON: {exc}"})
                return
            items = body.get("items") if isinstance(body, dict) else None
            if not isinstance(items, list):
                self._json(400, {"error": 'send {"items": [{"sender": …, "domain": …}, …]}'})
                return
            if len(items) > MAX_BATCH:
                self._json(400, {"error": f"at most {MAX_BATCH} items per request"})
                return
            results = []
            for i, item in enumerate(items):
                if not isinstance(item, dict):
                    self._json(400, {"error": f"items[{i}] is not an object"})
                    return
                try:
                    results.append(api.lookup(item))
                except ValueError as exc:
                    self._json(400, {"error": f"items[{i}]: {exc}"})
                    return
            self._json(200, {"results": results})

        def _not_allowed(self) -> None:
            path = urllib.parse.urlsplit(self.path).path
            allowed = "POST" if path == "/v1/throttle:batch" else "GET"
            body = orjson.dumps({"error": f"{self.command} not allowed on {path}; use {allowed}"})
            self.send_response(405)
            self.send_header("Allow", allowed)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_HEAD = _not_allowed

        def __getattr__(self, name: str) -> Any:
            # any other method (QUERY, PROPFIND, …) is 405 too, not http.server's 501
            if name.startswith("do_"):
                return self._not_allowed
            raise AttributeError(name)

        def _suppression(self, who: str) -> None:
            who = who.strip()
            if "@" in who:
                if who.count("@") != 1 or not who.split("@")[0] or not who.split("@")[1]:
                    self._json(400, {"error": "not an email address"})
                    return
                if api.client.hasher is None:
                    self._json(400, {"error": "raw addresses need MAILFLOW_HASH_KEY on the "
                                              "server; send the recipient hash instead"})
                    return
            elif not _HASH.match(who.lower()):
                self._json(400, {"error": "give an email address or a 32-hex recipient hash"})
                return
            recipient_hash = api.client.recipient_hash(who)
            record = api.client.view.suppression(recipient_hash)
            self._json(200, {"recipient_hash": recipient_hash, "suppressed": record is not None,
                             "reason": record.get("reason") if record else None,
                             "ts": record.get("ts") if record else None})

        def _stream(self) -> None:
            q: queue.Queue = queue.Queue(maxsize=10_000)
            with api._sub_lock:
                api.subscribers.append(q)
            try:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                self.wfile.write(b": connected\n\n")
                self.wfile.flush()
                last = time.monotonic()
                while True:
                    try:
                        message = q.get(timeout=1.0)
                    except queue.Empty:
                        if time.monotonic() - last >= 15:  # keep proxies from closing it
                            self.wfile.write(b": keep-alive\n\n")
                            self.wfile.flush()
                            last = time.monotonic()
                        continue
                    self.wfile.write(message)
                    self.wfile.flush()
                    last = time.monotonic()
            except (BrokenPipeError, ConnectionResetError):
                pass
            finally:
                with api._sub_lock:
                    api.subscribers.remove(q)

    return Handler


class ApiServer:
    def __init__(self, api: DecisionApi, host: str = "127.0.0.1", port: int = 8770):
        self.api = api
        self.httpd = ThreadingHTTPServer((host, port), _handler(api))
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]

    def start(self) -> ApiServer:
        threading.Thread(target=self.httpd.serve_forever, name="api-http", daemon=True).start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.api.client.close()
