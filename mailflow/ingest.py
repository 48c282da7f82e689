"""`mailflow ingest`: ESP webhooks in, canonical events onto the input topics.

    POST /v1/webhooks/{sendgrid,ses,mailgun,postmark,sparkpost,canonical}[?sender=…]

Each request is authenticated where the provider signs (or by basic auth /
a bearer token where it does not), mapped by `schemas/providers/<name>.py`,
validated with the job's own parser, and produced to the input topics. The
answer is sent only after Kafka acknowledged every produced message, so an
accepted event is never lost; on a broker problem the receiver answers 503
and the provider retries (event ids are stable, so retries do not
double-count). Items that cannot be mapped or are invalid go to
`mailflow.dlq` with the provider name and the reason.
"""

from __future__ import annotations

import importlib
import logging
import re
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from types import ModuleType
from typing import Any

import orjson
from confluent_kafka import Producer

from mailflow.http import HardenedServer, JsonHandler, bearer_ok
from schemas.events import DeadLetter, EventParser
from schemas.hashing import DEV_HASH_KEY, RecipientHasher
from schemas.providers.base import PayloadError, SignatureError, header
from schemas.topics import DLQ, TOPIC_BY_TYPE
from sinks.kafka import producer_config

log = logging.getLogger(__name__)

PROVIDERS = ("sendgrid", "ses", "mailgun", "postmark", "sparkpost", "canonical")
INGEST_REQUEST_TIMEOUT_S = 30.0  # bodies up to ingest_max_body (5 MiB) from slow links
_SNS_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")


def adapter(name: str) -> ModuleType:
    if name not in PROVIDERS:
        raise KeyError(name)
    return importlib.import_module(f"schemas.providers.{name}")


class Unavailable(RuntimeError):
    """Kafka did not acknowledge in time: the provider should retry."""


class IngestResult:
    __slots__ = ("accepted", "rejected", "reasons", "notices")

    def __init__(self) -> None:
        self.accepted = 0
        self.rejected = 0
        self.reasons: list[str] = []
        self.notices: list[str] = []

    def as_json(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "rejected": self.rejected,
                "errors": self.reasons[:20], "notices": self.notices}


class _Acks:
    """Waits for the delivery reports of one request's messages."""

    def __init__(self, expected: int):
        self.pending = expected
        self.failed: list[str] = []
        self.done = threading.Event()
        if expected == 0:
            self.done.set()
        self._lock = threading.Lock()

    def __call__(self, err: Any, _msg: Any) -> None:
        with self._lock:
            if err is not None:
                self.failed.append(str(err))
            self.pending -= 1
            if self.pending <= 0:
                self.done.set()


class IngestCore:
    """Map, validate and produce: shared by the HTTP receiver and `mailflow replay`."""

    def __init__(self, brokers: str, config: Mapping[str, Any], ack_timeout_s: float = 15.0):
        self.config = dict(config)
        self.producer = Producer(producer_config(**{"bootstrap.servers": brokers,
                                                    "linger.ms": "5"}))
        self.validator = EventParser(RecipientHasher(DEV_HASH_KEY))  # validity only
        self.ack_timeout_s = ack_timeout_s
        self.counts: Counter[str] = Counter()
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="ingest-acks", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.producer.poll(0.05)

    def close(self) -> None:
        self.producer.flush(self.ack_timeout_s)
        self._stop.set()

    def verify(self, provider: str, headers: Mapping[str, str], body: bytes) -> None:
        adapter(provider).verify(headers, body, self.config)

    def ingest(self, provider: str, body: bytes, params: Mapping[str, str]) -> IngestResult:
        """Map one webhook body and produce it; returns once Kafka acknowledged it all."""
        return self.ingest_many(provider, [body], params, raise_payload_errors=True)

    def ingest_many(self, provider: str, bodies: list[bytes], params: Mapping[str, str],
                    raise_payload_errors: bool = False) -> IngestResult:
        """Several bodies of one provider, produced together and acknowledged together
        (replay). An unreadable body is dead-lettered (and raised if asked)."""
        result = IngestResult()
        out: list[tuple[str, bytes | None, bytes]] = []  # (topic, key, value), dead letters too
        for body in bodies:
            try:
                mapped = adapter(provider).map_payload(body, params)
            except PayloadError as exc:
                self._dead(provider, f"{provider}: {exc}", body, result, out)
                if raise_payload_errors:
                    self._send(out)
                    raise
                continue
            result.notices += mapped.notices
            for reason, raw in mapped.rejected:
                self._dead(provider, reason, raw, result, out)
            for event in mapped.events:
                raw = orjson.dumps(event)
                topic = TOPIC_BY_TYPE.get(str(event.get("type", "")), "email.deliveries")
                checked = self.validator.parse(raw, topic, -1, -1)
                if isinstance(checked, DeadLetter):
                    self._dead(provider, f"{provider}: {checked.error}", raw, result, out)
                    continue
                recipient = event.get("recipient") or event.get("recipient_hash") or ""
                out.append((topic, str(recipient).encode(), raw))
                result.accepted += 1
        self._send(out)
        self.counts[f"{provider}:accepted"] += result.accepted
        self.counts[f"{provider}:rejected"] += result.rejected
        for notice in result.notices:
            log.warning("%s: %s", provider, notice)
        return result

    @staticmethod
    def _dead(provider: str, reason: str, raw: bytes, result: IngestResult,
              out: list[tuple[str, bytes | None, bytes]]) -> None:
        record = DeadLetter(reason, f"webhook/{provider}", -1, -1, raw).to_json()
        out.append((DLQ, provider.encode(), record))
        result.rejected += 1
        result.reasons.append(reason)

    def _send(self, messages: list[tuple[str, bytes | None, bytes]]) -> None:
        acks = _Acks(len(messages))
        for topic, key, value in messages:
            self._produce(topic, key, value, acks)
        self._wait(acks)

    def _produce(self, topic: str, key: bytes | None, value: bytes, acks: _Acks) -> None:
        while True:
            try:
                self.producer.produce(topic, value, key, on_delivery=acks)
                return
            except BufferError:
                time.sleep(0.01)

    def _wait(self, acks: _Acks) -> None:
        if not acks.done.wait(self.ack_timeout_s):
            raise Unavailable(f"Kafka did not acknowledge within {self.ack_timeout_s:.0f}s")
        if acks.failed:
            raise Unavailable(f"Kafka refused {len(acks.failed)} messages: {acks.failed[0]}")


def confirm_subscription(url: str) -> bool:
    """Confirm an SNS subscription (only Amazon's own SNS hosts)."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme != "https" or not _SNS_HOST.match(parsed.hostname or ""):
        log.warning("not confirming SNS subscription at unexpected URL %s", url)
        return False
    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - checked above
        return 200 <= resp.status < 300


def _make_handler(core: IngestCore, max_body: int, token: str) -> type[BaseHTTPRequestHandler]:
    class Handler(JsonHandler):
        server_version = "mailflow-ingest"
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                self._json(200, {"status": "ok", "counts": dict(core.counts)})
            else:
                self._json(404, {"error": f"no such endpoint: {path}"})

        def do_POST(self) -> None:  # noqa: N802
            url = urllib.parse.urlsplit(self.path)
            parts = url.path.strip("/").split("/")
            if len(parts) != 3 or parts[:2] != ["v1", "webhooks"] or parts[2] not in PROVIDERS:
                self._json(404, {"error": "POST /v1/webhooks/{" + ",".join(PROVIDERS) + "}"})
                return
            provider = parts[2]
            body = self.body()  # framing and max_body checked by JsonHandler (413 over it)
            headers = dict(self.headers.items())
            if token and provider == "canonical" and not self._token_ok(headers):
                self._json(401, {"error": "missing or wrong bearer token"})
                return
            try:
                core.verify(provider, headers, body)
            except SignatureError as exc:
                self._json(403, {"error": f"{provider} signature: {exc}"})
                return
            params = dict(urllib.parse.parse_qsl(url.query))
            try:
                result = core.ingest(provider, body, params)
            except PayloadError as exc:
                self._json(400, {"error": f"{provider}: {exc}"})
                return
            except Unavailable as exc:
                self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": str(exc)})
                return
            if core.config.get("ses_confirm_subscriptions"):
                for notice in result.notices:
                    url_match = re.search(r"https://\S+", notice)
                    if url_match:
                        confirm_subscription(url_match.group())
            self._json(200, result.as_json())

        def _token_ok(self, headers: Mapping[str, str]) -> bool:
            return bearer_ok(header(headers, "Authorization"), [token])

    return Handler


class IngestServer:
    def __init__(self, core: IngestCore, host: str = "127.0.0.1", port: int = 8780,
                 max_body: int = 5 * 1024 * 1024, token: str = ""):
        self.core = core
        self.httpd = HardenedServer((host, port), _make_handler(core, max_body, token),
                                    max_body=max_body, request_timeout=INGEST_REQUEST_TIMEOUT_S)
        self.port = self.httpd.server_address[1]

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def start(self) -> IngestServer:
        threading.Thread(target=self.serve_forever, name="ingest-http", daemon=True).start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.core.close()
