"""`mailflow ingest`: ESP webhooks in, canonical events onto the input topics.

    POST /v1/webhooks/{sendgrid,ses,mailgun,postmark,sparkpost,canonical}[?sender=…]
    POST /v1/inbound/mime[?sender=…]   (one raw RFC 5322 reply: a `reply` event)

Each request is authenticated where the provider signs (or by basic auth /
a bearer token where it does not), mapped by `schemas/providers/<name>.py`,
validated with the job's own parser, pseudonymised (the address becomes
`recipient_hash` + `recipient_domain` with the job's key, and the Kafka key is
that hash) and produced to the input topics. The answer is sent only after
Kafka acknowledged every produced message, so an accepted event is never
lost; on a broker problem the receiver answers 503 and the provider retries
(event ids are stable, so retries do not double-count). Items that cannot be
mapped or are invalid go to `mailflow.dlq` with the provider name and the
reason, one by one: whatever one item makes the adapter or the checks raise,
the rest of its batch is accepted and the answer lists it by index.
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
from confluent_kafka import KafkaException, Producer

from mailflow.http import HardenedServer, JsonHandler, bearer_ok
from schemas.events import DeadLetter, EventParser
from schemas.hashing import RecipientHasher
from schemas.providers.base import (
    PayloadError,
    ReplayGuard,
    RetryLater,
    SignatureError,
    header,
    raw_of,
)
from schemas.providers.ses import topic_allow_list
from schemas.topics import DLQ, TOPIC_BY_TYPE
from sinks.kafka import producer_config

log = logging.getLogger(__name__)

PROVIDERS = ("sendgrid", "ses", "mailgun", "postmark", "sparkpost", "canonical")
#: Inbound mail (not webhooks): `POST /v1/inbound/{name}`, protected by the ingest token.
INBOUND = ("mime",)
#: Content types `POST /v1/inbound/mime` accepts.
MIME_TYPES = ("message/rfc822", "application/octet-stream")
INGEST_REQUEST_TIMEOUT_S = 30.0  # bodies up to ingest_max_body (5 MiB) from slow links
_SNS_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")


def adapter(name: str) -> ModuleType:
    if name not in PROVIDERS and name not in INBOUND:
        raise KeyError(name)
    return importlib.import_module(f"schemas.providers.{name}")


class Unavailable(RuntimeError):
    """Kafka did not acknowledge in time: the provider should retry."""


class IngestResult:
    """The answer to one webhook: what was accepted, and each refused item with its index."""

    __slots__ = ("accepted", "rejected", "errors", "notices", "confirmations")

    def __init__(self) -> None:
        self.accepted = 0
        self.rejected = 0
        self.errors: list[dict[str, Any]] = []  # {"index": item, "reason": why}
        self.notices: list[str] = []
        self.confirmations: list[tuple[str, str]] = []  # SNS (TopicArn, SubscribeURL)

    @property
    def reasons(self) -> list[str]:
        return [error["reason"] for error in self.errors]

    def as_json(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "rejected": self.rejected,
                "errors": self.errors[:MAX_ERRORS], "notices": self.notices}


#: A response lists at most this many refused items (all of them go to the DLQ).
MAX_ERRORS = 100
#: Fields of a canonical event that are identifiers or numbers: never scrubbed. Everything
#: else (diagnostic, url, provider extras) is free text that may quote an address.
_STRUCTURAL = frozenset({"type", "ts", "sender", "recipient", "recipient_hash",
                         "recipient_domain", "message_id", "event_id", "campaign_id",
                         "flow_id", "variant", "user_agent", "ip", "smtp_code", "smtp_status",
                         "bounce_kind", "goal", "value", "currency", "provider",
                         "reply_id"})
#: Deeper items are refused: nothing a provider sends nests like this, and orjson (the
#: job's encoder) stops at 254 levels.
MAX_DEPTH = 64
_INVALID_ADDRESS = "recipient is not an email address"
_DOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*"
                     r"[a-z0-9])?)+$")


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


class _Refused(Exception):
    """Internal: one mapped event cannot go to the input topics (it becomes a dead letter)."""


class IngestCore:
    """Map, validate, pseudonymise and produce: shared by the HTTP receiver and
    `mailflow replay`.

    Raw addresses never reach the input topics: each event carries `recipient_hash`
    (the job's keyed hash, so the same key gives the same value as `mailflow run`) and
    `recipient_domain`, is keyed by that hash, and its free text is scrubbed.
    """

    def __init__(self, brokers: str, config: Mapping[str, Any], hasher: RecipientHasher,
                 ack_timeout_s: float = 15.0):
        self.config = dict(config)
        # one replay memory per receiver (Mailgun signs only a token and a timestamp)
        self.config.setdefault("mailgun_replay_guard", ReplayGuard())
        self.producer = Producer(producer_config(**{"bootstrap.servers": brokers,
                                                    "linger.ms": "5"}))
        self.hasher = hasher
        self.parser = EventParser(hasher)
        self.confirm_url = self.config.get("confirm_subscription") or confirm_subscription
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

    def forget(self, provider: str, headers: Mapping[str, str], body: bytes) -> None:
        """The request failed on our side (503): let the provider's retry pass the replay
        check again."""
        hook = getattr(adapter(provider), "forget", None)
        if hook is not None:
            hook(headers, body, self.config)

    def ingest(self, provider: str, body: bytes, params: Mapping[str, str]) -> IngestResult:
        """Map one webhook body and produce it; returns once Kafka acknowledged it all."""
        return self.ingest_many(provider, [body], params, raise_payload_errors=True)

    def ingest_many(self, provider: str, bodies: list[bytes], params: Mapping[str, str],
                    raise_payload_errors: bool = False) -> IngestResult:
        """Several bodies of one provider, produced together and acknowledged together
        (replay). An unreadable body is dead-lettered (and raised if asked); one bad item
        is dead-lettered alone, whatever it makes the adapter or the checks raise."""
        result = IngestResult()
        out: list[tuple[str, bytes | None, bytes]] = []  # (topic, key, value), dead letters too
        for number, body in enumerate(bodies):
            where = {"body": number} if len(bodies) > 1 else {}
            try:
                mapped = adapter(provider).map_payload(body, params)
            except PayloadError as exc:
                self._dead(provider, f"{provider}: {exc}", body, result, out, where)
                if raise_payload_errors:
                    self._send(out)
                    raise
                continue
            except Exception as exc:  # noqa: BLE001 - an adapter bug must not lose the body
                log.exception("%s: mapping a body failed", provider)
                self._dead(provider, f"{provider}: cannot map body: {type(exc).__name__}: "
                           f"{str(exc)[:200]}", body, result, out, where)
                continue
            result.notices += mapped.notices
            result.confirmations += mapped.confirmations
            for i, (reason, raw) in enumerate(mapped.rejected):
                index = mapped.rejected_items[i] if i < len(mapped.rejected_items) else None
                self._dead(provider, reason, raw, result, out, {**where, "index": index})
            for i, event in enumerate(mapped.events):
                index = mapped.event_items[i] if i < len(mapped.event_items) else None
                try:
                    out.append(self._prepare(event))
                    result.accepted += 1
                except _Refused as exc:
                    self._dead(provider, f"{provider}: {exc}", raw_of(event), result, out,
                               {**where, "index": index})
                except Exception as exc:  # noqa: BLE001 - this event only, never the batch
                    log.exception("%s: preparing an event failed", provider)
                    self._dead(provider, f"{provider}: cannot prepare event: "
                               f"{type(exc).__name__}: {str(exc)[:200]}", raw_of(event),
                               result, out, {**where, "index": index})
        self._send(out)
        self.counts[f"{provider}:accepted"] += result.accepted
        self.counts[f"{provider}:rejected"] += result.rejected
        for notice in result.notices:
            log.warning("%s: %s", provider, notice)
        return result

    def _prepare(self, event: dict[str, Any]) -> tuple[str, bytes, bytes]:
        """(topic, key, value) of one mapped event: checked with the job's own parser,
        the address replaced by its hash and domain, free text scrubbed."""
        if not isinstance(event, dict):
            raise _Refused("event is not a JSON object")
        clean = {key: (value if key in _STRUCTURAL else self._scrub(value, 1))
                 for key, value in event.items()}
        raw = orjson.dumps(clean)
        topic = TOPIC_BY_TYPE.get(str(clean.get("type", "")), "email.deliveries")
        try:
            checked = self.parser.parse(raw, topic, -1, -1)
        except Exception as exc:  # noqa: BLE001 - see _final
            raise _Refused(f"the job's parser fails on this event ({type(exc).__name__}: "
                           f"{str(exc)[:120]})") from None
        if isinstance(checked, DeadLetter):
            if checked.error == _INVALID_ADDRESS and clean.get("type") == "dropped":
                return self._invalid_address(clean, topic)
            raise _Refused(checked.error)
        out = {key: value for key, value in clean.items() if key != "recipient"}
        out["recipient_hash"] = checked.recipient_hash
        out["recipient_domain"] = checked.recipient_domain
        if not out.get("event_id"):
            out["event_id"] = self._event_id(event)
        return self._final(out, topic)

    def _event_id(self, event: dict[str, Any]) -> str:
        """The id the job would derive from the event as the provider sent it: stable on
        retries, and the same whether an event came through ingest or straight to Kafka."""
        return self.hasher.payload(orjson.dumps(event))

    def _invalid_address(self, clean: dict[str, Any], topic: str) -> tuple[str, bytes, bytes]:
        """A `dropped` event for an address that is not one (the ESP refused to send to
        it): kept, hashed, with its domain if it has a plausible one, else "invalid"."""
        address = clean.get("recipient")
        if not isinstance(address, str) or not address.strip():
            raise _Refused(_INVALID_ADDRESS)
        domain = address.strip().rpartition("@")[2].strip().lower().rstrip(".")
        out = {key: value for key, value in clean.items() if key != "recipient"}
        out["recipient_hash"] = self.hasher.recipient(address)
        out["recipient_domain"] = domain if "@" in address and _DOMAIN.match(domain) \
            else "invalid"
        out["recipient_invalid"] = True
        if not out.get("event_id"):
            out["event_id"] = self._event_id(clean)
        return self._final(out, topic)

    def _final(self, out: dict[str, Any], topic: str) -> tuple[str, bytes, bytes]:
        value = orjson.dumps(out)
        try:  # what the job will see must pass its parser, and must not break it
            final = self.parser.parse(value, topic, -1, -1)
        except Exception as exc:  # noqa: BLE001 - a poison message for the job: keep it out
            raise _Refused(f"the job's parser fails on this event ({type(exc).__name__}: "
                           f"{str(exc)[:120]})") from None
        if isinstance(final, DeadLetter):
            raise _Refused(final.error)
        return topic, str(out["recipient_hash"]).encode(), value

    def _scrub(self, value: Any, depth: int) -> Any:
        """Free text with every address-like substring replaced (keys too); strings are
        scrubbed decoded, so an escape in the JSON text cannot hide or break one."""
        if depth > MAX_DEPTH:
            raise _Refused(f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, str):
            return self.hasher.scrub(value)
        if isinstance(value, dict):
            return {self.hasher.scrub(str(k)): self._scrub(v, depth + 1)
                    for k, v in value.items()}
        if isinstance(value, list):
            return [self._scrub(v, depth + 1) for v in value]
        return value

    def confirm_subscriptions(self, result: IngestResult) -> None:
        """Visit SubscribeURLs of SNS SubscriptionConfirmations, only when asked to, only
        when the message's signature was verified, and only for allowed topics."""
        if not self.config.get("ses_confirm_subscriptions"):
            return
        allowed = topic_allow_list(self.config.get("ses_topic_arns"))
        for topic, url in result.confirmations:
            if not self.config.get("ses_verify_sns"):
                why = "SNS signatures are not verified (set MAILFLOW_SES_VERIFY_SNS=1)"
            elif topic not in allowed:
                why = "its topic is not in MAILFLOW_SES_TOPIC_ARNS"
            else:
                try:
                    why = "" if self.confirm_url(url) else "the URL is not an SNS URL"
                except Exception as exc:  # noqa: BLE001 - network: report, do not fail
                    why = f"confirming failed: {exc}"
                if not why:
                    result.notices.append(f"confirmed the SNS subscription to {topic}")
                    continue
            result.notices.append(f"not confirming the SNS subscription to {topic}: {why}")
            log.warning("not confirming the SNS subscription to %s: %s", topic, why)

    @staticmethod
    def _dead(provider: str, reason: str, raw: bytes, result: IngestResult,
              out: list[tuple[str, bytes | None, bytes]], where: Mapping[str, Any]) -> None:
        record = DeadLetter(reason, f"webhook/{provider}", -1, -1, raw).to_json()
        out.append((DLQ, provider.encode(), record))
        result.rejected += 1
        result.errors.append({**where, "reason": reason})

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
            except KafkaException as exc:  # refused before sending: the provider retries
                raise Unavailable(f"Kafka refused a message: {exc}") from None

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
            if parts[:2] == ["v1", "inbound"]:
                self._inbound(parts, url)
                return
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
            except RetryLater as exc:
                self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": f"{provider}: {exc}"})
                return
            params = dict(urllib.parse.parse_qsl(url.query))
            try:
                result = core.ingest(provider, body, params)
            except PayloadError as exc:
                self._json(400, {"error": f"{provider}: {exc}"})
                return
            except Unavailable as exc:
                core.forget(provider, headers, body)
                self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": str(exc)})
                return
            core.confirm_subscriptions(result)
            self._json(200, result.as_json())

        def _inbound(self, parts: list[str], url: urllib.parse.SplitResult) -> None:
            """A raw mail (one reply) in: 400 with the reason (and a dead letter) when it
            is not a readable reply."""
            if len(parts) != 3 or parts[2] not in INBOUND:
                self._json(404, {"error": "POST /v1/inbound/{" + ",".join(INBOUND) + "}"})
                return
            body = self.body()
            headers = dict(self.headers.items())
            if token and not self._token_ok(headers):
                self._json(401, {"error": "missing or wrong bearer token"})
                return
            ctype = header(headers, "Content-Type").split(";", 1)[0].strip().lower()
            if ctype not in MIME_TYPES:
                self._json(HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                           {"error": f"Content-Type must be one of {', '.join(MIME_TYPES)}"})
                return
            params = dict(urllib.parse.parse_qsl(url.query))
            try:
                result = core.ingest(parts[2], body, params)
            except PayloadError as exc:
                self._json(400, {"error": f"{parts[2]}: {exc}"})
                return
            except Unavailable as exc:
                self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": str(exc)})
                return
            self._json(200 if result.accepted else 400, result.as_json())

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
