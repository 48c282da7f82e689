"""`mailflow serve`: the throttle-decision HTTP API for sending systems (read-only).

It materialises `mailflow.throttle` and `mailflow.suppressions` (and, for helpdesks,
the newest `mailflow.routes`) with a `ThrottleClient` and answers from memory; the
OpenAPI document is at `/openapi.json`. With `MAILFLOW_API_TOKENS` set, every `/v1`
endpoint wants `Authorization: Bearer <one of them>`; on a non-loopback bind without
tokens (`--insecure`) suppression, route and assignment look-ups are refused (403), since
they are per-recipient. `/v1/assignment` answers who is in a control group (an `Assigner`
on the client, schemas/assignment.py); without one it is 503. A suppression with `until`
is a hold: `suppressed` only before it.
`/readyz` is 503 unless the materialisation is live (caught up, consumer running).
A stream client that falls too far behind is dropped; the Kafka consumer never
waits for one.

`/ui/` is the operator console: a static page (mailflow/ui/) whose data comes from
`/ui/api/*` (mailflow/console.py) and whose live updates are `/v1/decisions/stream`.
The page asks for nothing the tokens do not allow: a token given once on its login form
(`POST /ui/login`) is kept as a session cookie (`HttpOnly`, `SameSite=Strict`, a digest of
the token, never the token), which every `/v1` and `/ui/api` endpoint accepts as well as
the bearer header.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
import urllib.parse
from collections import Counter
from http.server import BaseHTTPRequestHandler
from typing import Any

import orjson

from mailflow import console
from mailflow.console import BadRequest, ConsoleData
from mailflow.flow_api import FLOW_ID, FlowQueries, StoreUnavailable
from mailflow.http import (
    MAX_CONNECTIONS,
    HardenedServer,
    JsonHandler,
    bearer_ok,
    prom_label,
    route_label,
)
from operators.decision_view import parse_until
from schemas.mailbox_providers import provider_key
from sinks.client import ThrottleClient

log = logging.getLogger(__name__)

MAX_BATCH = 1000
MAX_ROUTES = 1000  # per /v1/routes answer
DEFAULT_ROUTES = 100
MAX_BODY = 1024 * 1024
_HASH = re.compile(r"^[0-9a-f]{32}$")
#: An address as the OpenAPI document describes it: no spaces, control characters or URL
#: delimiters (Python's \s includes \x1c-\x1f and \x85, as the schema's comment says).
_ADDRESS = re.compile(r"^[^@/?#%\s\x00-\x1f\x7f-\x9f]+@[^@/?#%\s\x00-\x1f\x7f-\x9f]+$")
_QUEUE = re.compile(r"^[^\s\x00-\x1f\x7f-\x9f]{1,128}$")

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
# an address (no spaces, control characters or URL delimiters) or a recipient hash
_RECIPIENT_PATTERN = ("^([0-9a-fA-F]{32}|[^@/?#%\\s\\x00-\\x1f\\x7f-\\x9f]+@"
                      "[^@/?#%\\s\\x00-\\x1f\\x7f-\\x9f]+)$")
_ASSIGNMENT = {
    "type": "object",
    "required": ["recipient_hash", "flow_id", "group", "holdout", "version", "global_share",
                 "flow_share", "transactional"],
    "properties": {
        "recipient_hash": {"type": "string"},
        "flow_id": {"type": "string", "description": "\"\": the global decision alone"},
        "group": {"type": "string", "enum": ["treated", "global", "flow"]},
        "holdout": {"type": "boolean", "description": "in a control group: do not send, "
                                                      "record a holdout event"},
        "version": {"type": "string", "description": "v<version>:<salt>: the split"},
        "global_share": {"type": "number", "minimum": 0, "maximum": 1},
        "flow_share": {"type": "number", "minimum": 0, "maximum": 1,
                       "description": "the flow's holdout share among recipients outside "
                                      "the global control group (0: no flow, or "
                                      "transactional)"},
        "transactional": {"type": "boolean", "description": "exempt from control groups"},
    },
}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): {"description": "error", "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}} for c in codes}


OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "mailflow decision API", "version": "1.0.0",
             "description": "May this sender send to this provider now, and how fast? "
                            "Is this recipient suppressed?"},
    "components": {
        "schemas": {"Decision": _DECISION, "Error": _ERROR, "Assignment": _ASSIGNMENT},
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
                                   "suppressed": {"type": "boolean",
                                                  "description": "a permanent suppression, "
                                                                 "or a hold before its until"},
                                   "reason": {"type": ["string", "null"]},
                                   "ts": {"type": ["string", "null"]},
                                   "until": {"type": ["string", "null"],
                                             "description": "a temporary hold's end (date "
                                                            "or RFC 3339): not before it"},
                                   "expired": {"type": "boolean",
                                               "description": "a hold whose until has "
                                                              "passed (not suppressed)"}}}}}},
                **_errors(400, 401, 403)},
        }},
        "/v1/routes": {"get": {
            "summary": "The newest classified replies (mailflow.routes), for helpdesks: newest "
                       "event_ts first; the server holds a bounded number per queue",
            "parameters": [
                {"name": "queue", "in": "query", "required": False,
                 "schema": {"type": "string",
                            "pattern": "^[^\\s\\x00-\\x1f\\x7f-\\x9f]{1,128}$"},
                 "description": "only this queue (default: every queue)"},
                {"name": "since", "in": "query", "required": False,
                 "schema": {"type": "string", "format": "date-time"},
                 "description": "only routes with event_ts at or after this RFC 3339 time "
                                "or date (encode + as %2B)"},
                {"name": "limit", "in": "query", "required": False,
                 "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ROUTES,
                            "default": DEFAULT_ROUTES}}],
            "responses": {"200": {"description": "routes, newest first", "content": {
                "application/json": {"schema": {
                    "type": "object", "required": ["routes", "queue", "count"],
                    "properties": {"queue": {"type": ["string", "null"]},
                                   "count": {"type": "integer"},
                                   "order": {"type": "string", "enum": ["newest_first"]},
                                   "routes": {"type": "array", "items": {
                                       "type": "object", "description": "a mailflow.routes "
                                                                        "record as published"
                                   }}}}}}},
                **_errors(400, 401, 403, 503)},
        }},
        "/v1/assignment": {"get": {
            "summary": "Is this recipient in a control group for this flow? (the global control "
                       "group first, then the flow's holdout; transactional flows are exempt). "
                       "A holdout: do not send, record a holdout event on email.holdouts",
            "parameters": [
                {"name": "recipient", "in": "query", "required": True,
                 "description": "an address (encode + as %2B) or a 32-hex recipient hash; "
                                "`recipient_hash=` is accepted in its place",
                 "schema": {"type": "string", "pattern": _RECIPIENT_PATTERN}},
                {"name": "flow", "in": "query", "required": False,
                 "description": "the flow id; omitted: only the global control group decides",
                 "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"}}],
            "responses": {"200": {"description": "the recipient's group", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Assignment"}}}},
                **_errors(400, 401, 403, 503)},
        }},
        "/v1/flows/{flow_id}/forecast": {"get": {
            "summary": "Each entry cohort's latest convergence forecast (80%/95% intervals), "
                       "the realised score of closed cohorts, and the flow's alerts",
            "parameters": [
                {"name": "flow_id", "in": "path", "required": True,
                 "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"}},
                {"name": "cohorts", "in": "query", "required": False,
                 "schema": {"type": "integer", "minimum": 1, "maximum": 120, "default": 14}}],
            "responses": {"200": {"description": "cohorts, newest first"},
                          **_errors(400, 401, 503)},
        }},
        "/v1/flows/{flow_id}/recipients/{recipient}": {"get": {
            "summary": "A recipient's latest convergence propensity in a flow (address or "
                       "recipient hash)",
            "parameters": [
                {"name": "flow_id", "in": "path", "required": True,
                 "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"}},
                {"name": "recipient", "in": "path", "required": True,
                 "schema": {"type": "string",
                            "pattern": "^([0-9a-fA-F]{32}|"
                                       "[^@/?#%\\s\\x00-\\x1f\\x7f-\\x9f]+@"
                                       "[^@/?#%\\s\\x00-\\x1f\\x7f-\\x9f]+)$"}}],
            "responses": {"200": {"description": "found (false: never entered the flow, or "
                                                 "erased), flow_id, recipient_hash, score "
                                                 "(null if not found), as_of, kind, "
                                                 "cohort_day, unsubscribe_risk, advice"},
                          **_errors(400, 401, 403, 503)},
        }},
        "/v1/decisions/stream": {"get": {
            "summary": "Server-Sent Events: every new decision and suppression as it arrives "
                       "(a tombstone: {recipient_hash, removed: true})",
            "responses": {"200": {"description": "text/event-stream"}, **_errors(401, 503)},
        }},
        "/healthz": {"get": {"summary": "alive", "security": [],
                             "responses": {"200": {"description": "ok"}}}},
        "/readyz": {"get": {"summary": "caught up with the topics", "security": [],
                            "responses": {"200": {"description": "ready"},
                                          "503": {"description": "catching up"}}}},
    },
}


ROUTES = {"/healthz": "healthz", "/readyz": "readyz", "/metrics": "metrics",
          "/openapi.json": "openapi", "/v1/throttle": "throttle",
          "/v1/throttle:batch": "throttle_batch", "/v1/decisions/stream": "stream",
          "/v1/routes": "routes", "/v1/assignment": "assignment"}
ROUTE_PREFIXES = {"/v1/suppressions/": "suppressions", "/v1/flows/": "flows",
                  "/ui/api/": "console_api", "/ui": "console"}
#: the console's data endpoints: /ui/api/<name> -> its ConsoleData method (None: `now`,
#: answered from memory without parameters)
CONSOLE_API = {"now": None, "history": "history", "flows": "flows",
               "models": "models", "replies": "replies", "tracking": "tracking"}
MAX_LOGIN_BODY = 4096
#: sent with every page of the console (and its data): no framing, no sniffing, no referrer
#: beyond this server (same-origin: a form post still carries its Origin, not "null")
UI_HEADERS = {"Content-Security-Policy": console.CSP, "X-Content-Type-Options": "nosniff",
              "Referrer-Policy": "same-origin", "X-Frame-Options": "DENY"}


class Subscriber:
    """One `/v1/decisions/stream` client: a bounded queue the publisher never waits on.
    A client that falls `size` messages behind is dropped (its stream ends)."""

    def __init__(self, size: int):
        self.queue: queue.Queue[bytes] = queue.Queue(maxsize=size)
        self.dropped = threading.Event()


class DecisionApi:
    def __init__(self, client: ThrottleClient, tokens: list[str], exposed: bool = False,
                 queue_size: int = 1000, max_subscribers: int = 32,
                 flows: FlowQueries | None = None, console: ConsoleData | None = None):
        self.client = client
        self.flows = flows  # convergence prediction from the store (None: not offered)
        # the operator console's data (a store-less one when not given: "now" only)
        self.console = console or ConsoleData(client, None)
        self.tokens = tokens
        # bound to a non-loopback address: suppression look-ups (personal data) need tokens
        self.exposed = exposed
        self.queue_size = queue_size
        self.max_subscribers = max_subscribers
        self.subscribers: list[Subscriber] = []
        self.dropped_subscribers = 0
        self._sub_lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.server: Any = None  # the HardenedServer, for its connection counters
        client.on_change = self.publish

    def subscribe(self) -> Subscriber | None:
        """A new stream subscriber, or None when `max_subscribers` are connected."""
        with self._sub_lock:
            if len(self.subscribers) >= self.max_subscribers:
                return None
            sub = Subscriber(self.queue_size)
            self.subscribers.append(sub)
            return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        with self._sub_lock:
            if sub in self.subscribers:
                self.subscribers.remove(sub)

    def publish(self, kind: str, record: dict[str, Any]) -> None:
        """Runs on the Kafka consumer thread: must never block, whoever does not read."""
        message = f"event: {kind}\ndata: {orjson.dumps(record).decode()}\n\n".encode()
        with self._sub_lock:
            subscribers = list(self.subscribers)
        for sub in subscribers:
            try:
                sub.queue.put_nowait(message)
            except queue.Full:
                sub.dropped.set()
                self.unsubscribe(sub)
                self.dropped_subscribers += 1
                log.warning("dropped a decision-stream subscriber %d messages behind",
                            self.queue_size)

    def authorised(self, authorization: str | None, cookie: str | None = None) -> bool:
        """A bearer token, or the console's session cookie (either, when tokens are set)."""
        return self.signed_in_by(authorization, cookie) is not None

    def signed_in_by(self, authorization: str | None, cookie: str | None) -> str | None:
        """How a request is authorised: "none" (no tokens set), "bearer", "cookie", or None
        (it is not)."""
        if not self.tokens:
            return "none"
        if bearer_ok(authorization, self.tokens):
            return "bearer"
        if console.cookie_ok(cookie, self.tokens):
            return "cookie"
        return None

    @property
    def live(self) -> bool:
        """The materialisation is current: caught up once, consumer thread running, the
        broker answering. Decisions served from a dead consumer would silently go stale."""
        return self.client.live

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

    def assignment(self, query: str) -> dict[str, Any]:
        """`/v1/assignment`: the recipient's control group for a flow (ValueError with a
        client-facing message on a bad query). Needs the client's assigner."""
        assigner = self.client.assigner
        if assigner is None:
            raise LookupError("control groups are not configured on this server: it needs "
                              "MAILFLOW_HASH_KEY (the assignment is keyed by it)")
        params: dict[str, str] = {}
        for name, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
            if name not in ("recipient", "recipient_hash", "flow"):
                raise ValueError(f"unknown parameter {name[:40]!r}: use recipient (or "
                                 "recipient_hash) and flow")
            if name in params:
                raise ValueError(f"{name} given twice")
            params[name] = value
        if "recipient" in params and "recipient_hash" in params:
            raise ValueError("give recipient or recipient_hash, not both")
        who = params.get("recipient", params.get("recipient_hash"))
        if who is None or who == "":
            raise ValueError("recipient is required: an address (encode + as %2B) or a "
                             "32-hex recipient hash")
        if "@" in who and "recipient" in params:
            if not _ADDRESS.fullmatch(who):
                raise ValueError("not an email address (no spaces or control characters; "
                                 "encode + as %2B)")
        elif not _HASH.fullmatch(who.lower()):
            raise ValueError("recipient_hash must be 32 hex digits" if "recipient_hash" in params
                             else "give an email address or a 32-hex recipient hash")
        flow = params.get("flow", "")
        if "flow" in params and not FLOW_ID.fullmatch(flow):
            raise ValueError("flow must be 1-128 letters, digits or ._:- characters (omit it "
                             "for the global control group alone)")
        a = assigner.assign(who, flow)
        self.counts["assignments"] += 1
        return {"recipient_hash": a.recipient_hash, "flow_id": a.flow_id, "group": a.group,
                "holdout": a.holdout, "version": a.version,
                "global_share": assigner.global_share,
                "flow_share": assigner.flow_share_of(flow),
                "transactional": flow in assigner.transactional}

    def metrics(self) -> str:
        view = self.client.view
        server = self.server
        permanent, holds, rejected = self.client.suppression_counts()
        routes = self.client.routes
        lines = [
            "# TYPE mailflow_api_requests_total counter",
            # labels come from ROUTES only (plus "other"): a client cannot add a series
            *[f'mailflow_api_requests_total{{endpoint="{prom_label(k)}"}} {v}'
              for k, v in sorted(self.counts.items()) if k not in ("lookups", "assignments")],
            "# TYPE mailflow_api_lookups_total counter",
            f"mailflow_api_lookups_total {self.counts['lookups']}",
            "# TYPE mailflow_api_assignments_total counter",
            f"mailflow_api_assignments_total {self.counts['assignments']}",
            "# TYPE mailflow_api_decisions gauge", f"mailflow_api_decisions {len(view.decisions)}",
            "# TYPE mailflow_api_suppressions gauge",
            f"mailflow_api_suppressions {permanent}",
            "# TYPE mailflow_api_suppression_holds gauge",
            f"mailflow_api_suppression_holds {holds}",
            "# TYPE mailflow_api_routes gauge",
            f"mailflow_api_routes {len(routes) if routes is not None else 0}",
            "# TYPE mailflow_api_rejected_records_total counter",
            f'mailflow_api_rejected_records_total{{topic="decisions"}} {rejected}',
            f'mailflow_api_rejected_records_total{{topic="routes"}} '
            f'{routes.rejected if routes is not None else 0}',
            "# TYPE mailflow_api_ready gauge", f"mailflow_api_ready {int(self.live)}",
            "# TYPE mailflow_api_stream_subscribers gauge",
            f"mailflow_api_stream_subscribers {len(self.subscribers)}",
            "# TYPE mailflow_api_stream_dropped_total counter",
            f"mailflow_api_stream_dropped_total {self.dropped_subscribers}",
            "# TYPE mailflow_api_refused_connections_total counter",
            f"mailflow_api_refused_connections_total "
            f"{getattr(server, 'refused_connections', 0)}", ""]
        return "\n".join(lines)


def _handler(api: DecisionApi) -> type[BaseHTTPRequestHandler]:
    class Handler(JsonHandler):
        server_version = "mailflow-api"
        protocol_version = "HTTP/1.1"

        def _guard(self) -> bool:
            if api.authorised(self.headers.get("Authorization"), self.headers.get("Cookie")):
                return True
            self._json(401, {"error": "missing or wrong bearer token",
                             "tokens_required": True})
            return False

        def do_GET(self) -> None:  # noqa: N802
            url = urllib.parse.urlsplit(self.path)
            path = url.path
            api.counts[route_label(path, ROUTES, ROUTE_PREFIXES)] += 1
            if path == "/healthz":
                self._json(200, {"status": "ok"})
            elif path == "/readyz":
                live = api.live
                self._json(200 if live else 503, {"ready": live,
                                                   "error": api.client.error or api.client.failing})
            elif path == "/metrics":
                self._send(200, api.metrics().encode(), "text/plain; version=0.0.4")
            elif path == "/openapi.json":
                self._json(200, OPENAPI)
            elif path == "/ui/api/session":  # the page asks before it shows anything
                self._session()
            elif path.startswith("/ui/api/"):
                if self._guard():
                    self._console(path[len("/ui/api/"):], url.query)
            elif path == "/ui":
                self._redirect("/ui/")
            elif path.startswith("/ui/"):
                self._asset(path)
            elif path == "/v1/throttle":
                if self._guard():
                    params = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
                    try:
                        self._json(200, api.lookup(params))
                    except ValueError as exc:
                        self._json(400, {"error": str(exc)})
            elif path.startswith("/v1/suppressions/"):
                if self._guard():
                    if api.exposed and not api.tokens:
                        self._json(403, {"error": "suppression look-ups need "
                                                  "MAILFLOW_API_TOKENS on a non-loopback bind"})
                        return
                    self._suppression(urllib.parse.unquote(path[len("/v1/suppressions/"):]))
            elif path == "/v1/routes":
                if self._guard():
                    if api.exposed and not api.tokens:
                        self._json(403, {"error": "route look-ups need "
                                                  "MAILFLOW_API_TOKENS on a non-loopback bind"})
                        return
                    self._routes(url.query)
            elif path == "/v1/assignment":
                if self._guard():
                    self._assignment(url.query)
            elif path.startswith("/v1/flows/"):
                if self._guard():
                    self._flows(path[len("/v1/flows/"):], url.query)
            elif path == "/v1/decisions/stream":
                if self._guard():
                    self._stream()
            elif path == "/v1/throttle:batch":
                self._not_allowed()
            else:
                self._json(404, {"error": "no such endpoint"})

        def do_POST(self) -> None:  # noqa: N802
            path = urllib.parse.urlsplit(self.path).path
            api.counts[route_label(path, ROUTES, ROUTE_PREFIXES)] += 1
            if path in ("/ui/login", "/ui/logout"):
                self._login(path == "/ui/login")
                return
            if path != "/v1/throttle:batch":
                if (path in ROUTES or path.startswith("/v1/suppressions/")
                        or path.startswith("/v1/flows/")):
                    self._not_allowed()
                else:
                    self._json(404, {"error": "no such endpoint"})
                return
            if not self._guard():
                return
            try:
                body = orjson.loads(self.body())
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
            body = orjson.dumps({"error": f"{self.command} not allowed here; use {allowed}"})
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

        def _flows(self, rest: str, query: str) -> None:
            parts = [urllib.parse.unquote(p) for p in rest.split("/")]
            try:
                if len(parts) == 2 and parts[1] == "forecast":
                    params = dict(urllib.parse.parse_qsl(query))
                    try:
                        cohorts = int(params.get("cohorts", "14"))
                    except ValueError:
                        raise ValueError("cohorts must be a whole number") from None
                    FlowQueries.check(parts[0], cohorts=cohorts)
                    if self._no_store():
                        return
                    self._json(200, api.flows.forecast(parts[0], cohorts))
                elif len(parts) == 3 and parts[1] == "recipients":
                    FlowQueries.check(parts[0])
                    if api.exposed and not api.tokens:
                        self._json(403, {"error": "recipient look-ups need "
                                                  "MAILFLOW_API_TOKENS on a non-loopback bind"})
                        return
                    who = parts[2].strip()
                    if "@" in who:
                        if who.count("@") != 1 or not all(who.split("@")):
                            raise ValueError("not an email address")
                        if api.client.hasher is None:
                            raise ValueError("raw addresses need MAILFLOW_HASH_KEY on the "
                                             "server; send the recipient hash instead")
                    elif not _HASH.match(who.lower()):
                        raise ValueError("give an email address or a 32-hex recipient hash")
                    if self._no_store():
                        return
                    h = api.client.recipient_hash(who)
                    record = api.flows.recipient(parts[0], h)
                    self._json(200, {"found": True, **record} if record else {
                        "found": False, "flow_id": parts[0], "recipient_hash": h,
                        "score": None})
                else:
                    self._json(404, {"error": "no such endpoint: /v1/flows/<flow_id>/forecast "
                                              "or /v1/flows/<flow_id>/recipients/<recipient>"})
            except ValueError as exc:
                self._json(400, {"error": str(exc)})
            except StoreUnavailable as exc:
                self._json(503, {"error": str(exc)})
            except Exception as exc:  # the store's own error: never the server's end
                log.warning("flow query failed: %s", exc)
                self._json(503, {"error": f"the store did not answer: {exc}"[:300]})

        def _console(self, name: str, query: str) -> None:
            if name not in CONSOLE_API:
                self._json(404, {"error": f"no such console endpoint: {name[:60]!r}"})
                return
            params = dict(urllib.parse.parse_qsl(query))
            method = CONSOLE_API[name]
            try:
                answer = (api.console.now() if method is None
                          else getattr(api.console, method)(params))
            except BadRequest as exc:
                self._json(400, {"error": str(exc)})
                return
            except (LookupError, StoreUnavailable) as exc:
                self._json(503, {"error": str(exc)})
                return
            except Exception as exc:  # the store's own error: never the server's end
                log.warning("console query %s failed: %s", name, exc)
                self._json(503, {"error": f"the store did not answer: {exc}"[:300]})
                return
            self._send(200, orjson.dumps(answer, default=str), "application/json",
                       {**UI_HEADERS, "Cache-Control": "no-store"})

        def _session(self) -> None:
            """Whether this browser is signed in: 200 either way (a 401 here would be an
            error in the page's console on every visit), and no data."""
            auth = api.signed_in_by(self.headers.get("Authorization"), self.headers.get("Cookie"))
            self._send(200, orjson.dumps({"signed_in": auth is not None, "auth": auth,
                                          "tokens_required": bool(api.tokens)}),
                       "application/json", {**UI_HEADERS, "Cache-Control": "no-store"})

        def _asset(self, path: str) -> None:
            found = console.asset(path)
            if found is None:
                self._json(404, {"error": "no such page"})
                return
            body, content_type = found
            self._send(200, body, content_type, {**UI_HEADERS, "Cache-Control": "no-cache"})

        def _redirect(self, location: str, cookie: str | None = None) -> None:
            headers = {"Location": location, "Cache-Control": "no-store", **UI_HEADERS}
            if cookie is not None:
                headers["Set-Cookie"] = cookie
            self._send(303, b"", "text/plain; charset=utf-8", headers)

        def _login(self, login: bool) -> None:
            """The console's login form (`token=`) sets the session cookie; logout ends it.
            Only from this server's own page: a cross-site form post is refused."""
            origin = self.headers.get("Origin")
            host = (self.headers.get("Host") or "").strip().lower()
            if (origin is not None and origin.strip().lower() not in
                    (f"http://{host}", f"https://{host}")) or (
                    (self.headers.get("Sec-Fetch-Site") or "").lower() in ("cross-site",
                                                                           "same-site")):
                self.close_connection = True
                self._json(403, {"error": "cross-origin login refused"})
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if not 0 <= length <= MAX_LOGIN_BODY:
                self.close_connection = True
                self._json(400, {"error": "send the form: token=<one of MAILFLOW_API_TOKENS>"})
                return
            form = urllib.parse.parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
            secure = (self.headers.get("X-Forwarded-Proto") or "").lower() == "https"
            if not login:
                self._redirect("/ui/", console.set_cookie(None, secure))
                return
            token = (form.get("token") or [""])[0].strip()
            if not api.tokens:
                self._redirect("/ui/")  # nothing to log in to: no tokens on this server
            elif bearer_ok(f"Bearer {token}", api.tokens):
                self._redirect("/ui/", console.set_cookie(token, secure))
            else:
                log.warning("console login with a wrong token from %s", self.client_address[0])
                self._redirect("/ui/?login=failed")

        def _no_store(self) -> bool:
            if api.flows is None:
                self._json(503, {"error": "flow predictions need the store: not configured"})
                return True
            return False

        def _suppression(self, who: str) -> None:
            who = who.strip()
            if "@" in who:
                if not _ADDRESS.match(who):
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
            record, active = api.client.suppression_state(recipient_hash)
            until = record.get("until") if record else None
            self._json(200, {"recipient_hash": recipient_hash, "suppressed": active,
                             "reason": record.get("reason") if record else None,
                             "ts": record.get("ts") if record else None,
                             "until": until, "expired": until is not None and not active})

        def _assignment(self, query: str) -> None:
            if api.exposed and not api.tokens:
                self._json(403, {"error": "assignment look-ups need MAILFLOW_API_TOKENS on a "
                                          "non-loopback bind"})
                return
            try:
                self._json(200, api.assignment(query))
            except ValueError as exc:
                self._json(400, {"error": str(exc)})
            except LookupError as exc:  # no assigner on this server
                self._json(503, {"error": str(exc)})

        def _routes(self, query: str) -> None:
            try:
                queue_name, since, limit = _route_params(query)
            except ValueError as exc:
                self._json(400, {"error": str(exc)})
                return
            if api.client.routes is None:
                self._json(503, {"error": "this server does not read mailflow.routes"})
                return
            routes = api.client.newest_routes(queue_name, since, limit)
            self._json(200, {"queue": queue_name, "count": len(routes),
                             "order": "newest_first", "routes": routes})

        def _stream(self) -> None:
            sub = api.subscribe()
            if sub is None:
                self.close_connection = True
                self._json(503, {"error": f"at most {api.max_subscribers} stream clients; "
                                          "retry later"})
                return
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
                # a write that cannot progress for WRITE_TIMEOUT_S raises TimeoutError, and
                # a client too far behind is dropped by the publisher: either ends the stream
                while not sub.dropped.is_set():
                    try:
                        message = sub.queue.get(timeout=1.0)
                    except queue.Empty:
                        if time.monotonic() - last >= 15:  # keep proxies from closing it
                            self.wfile.write(b": keep-alive\n\n")
                            self.wfile.flush()
                            last = time.monotonic()
                        continue
                    self.wfile.write(message)
                    self.wfile.flush()
                    last = time.monotonic()
            except (ConnectionError, TimeoutError):
                pass
            finally:
                api.unsubscribe(sub)

    return Handler


def _route_params(query: str) -> tuple[str | None, float | None, int]:
    """`/v1/routes`' query: (queue, since as epoch seconds, limit); ValueError with a
    client-facing message on anything else.

    >>> _route_params("queue=sales&limit=5&since=2026-12-01T10:00:00Z")
    ('sales', 1796119200.0, 5)
    >>> _route_params("")
    (None, None, 100)
    >>> _route_params("limit=0")
    Traceback (most recent call last):
    ...
    ValueError: limit must be a whole number from 1 to 1000
    """
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    params: dict[str, str] = {}
    for name, value in pairs:
        if name not in ("queue", "since", "limit"):
            raise ValueError(f"unknown parameter {name[:40]!r}: use queue, since, limit")
        if name in params:
            raise ValueError(f"{name} given twice")
        params[name] = value
    queue_name = params.get("queue")
    if queue_name is not None and not _QUEUE.match(queue_name):
        raise ValueError("queue must be 1 to 128 characters, no spaces or control characters")
    since = None
    if "since" in params:
        try:
            since = parse_until(params["since"])
        except (ValueError, OverflowError, OSError):
            raise ValueError("since must be an RFC 3339 time (2026-12-01T10:00:00Z; encode + "
                             "as %2B) or a date (2026-12-01)") from None
    text = params.get("limit", str(DEFAULT_ROUTES))
    if not (text.isascii() and text.isdigit() and len(text) < 6 and 1 <= int(text) <= MAX_ROUTES):
        raise ValueError(f"limit must be a whole number from 1 to {MAX_ROUTES}")
    return queue_name, since, int(text)


class ApiServer:
    def __init__(self, api: DecisionApi, host: str = "127.0.0.1", port: int = 8770,
                 max_connections: int = MAX_CONNECTIONS):
        self.api = api
        self.httpd = HardenedServer((host, port), _handler(api), max_connections=max_connections,
                                    max_body=MAX_BODY)
        api.server = self.httpd
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
