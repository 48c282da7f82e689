"""`ThrottleClient`: the engine's decisions, materialised in your own process.

For sending systems that want no network hop per lookup: the client reads
`mailflow.throttle` and `mailflow.suppressions` (every partition with
`assign()`, from the beginning, then following them) on a background thread
and answers from memory.

    from sinks.client import ThrottleClient

    client = ThrottleClient("kafka-1:9092", hash_key=b"...").start()
    client.wait_ready(30)
    verdict = client.may_send("news.example.com", "ann@gmail.com")
    if verdict.allowed:
        send_at_rate(normal_rate * verdict.rate_factor)

`hash_key` is the job's `MAILFLOW_HASH_KEY`: with it the client can check raw
addresses against the suppressions; without it, pass recipient hashes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from operators.decision_view import DecisionView, Effective
from schemas.hashing import RecipientHasher
from schemas.mailbox_providers import provider_key, split_address
from schemas.topics import SUPPRESSIONS, THROTTLE

log = logging.getLogger(__name__)


class SendPermission(NamedTuple):
    allowed: bool  # False when paused or the recipient is suppressed
    rate_factor: float  # share of the normal sending rate (0.0 when not allowed)
    action: str
    reason: str
    until: str | None
    domain: str  # the mailbox-provider key the decision was looked up for
    suppressed: bool


class ThrottleClient:
    def __init__(self, brokers: str, hash_key: bytes | None = None,
                 on_change: Callable[[str, dict[str, Any]], None] | None = None):
        self.brokers = brokers
        self.hasher = RecipientHasher(hash_key) if hash_key else None
        self.view = DecisionView()
        self.on_change = on_change
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="throttle-client", daemon=True)
        self.records = 0
        self.error: str | None = None  # the consumer thread stopped on this
        # the broker is failing (unreachable, refusing) while the thread runs on: decisions
        # may be going stale; cleared by the next record or end of partition
        self.failing: str | None = None

    # -- lifecycle ---------------------------------------------------------------
    def start(self) -> ThrottleClient:
        self._thread.start()
        return self

    def wait_ready(self, timeout: float | None = None) -> bool:
        """True once every partition has been read to its end at least once."""
        return self._ready.wait(timeout)

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    @property
    def live(self) -> bool:
        """Caught up once, the consumer thread running, and the broker answering: what is
        served is current. False while any of that is not so."""
        return (self._ready.is_set() and self._thread.is_alive() and self.error is None
                and self.failing is None)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def consumer_config(self) -> dict[str, Any]:
        return {"bootstrap.servers": self.brokers, "group.id": "mailflow-client",
                "error_cb": self._on_error,
                "enable.auto.commit": False, "enable.partition.eof": True,
                "fetch.wait.max.ms": 50,
                # a position that compaction or retention removed: read on from the
                # first record held, never jump to the end (and miss decisions)
                "auto.offset.reset": "earliest"}

    def _run(self) -> None:
        consumer = Consumer(self.consumer_config())
        try:
            parts = []
            for topic in (THROTTLE, SUPPRESSIONS):
                meta = consumer.list_topics(topic, timeout=15).topics[topic]
                parts += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions]
            consumer.assign(parts)
            pending = {(tp.topic, tp.partition) for tp in parts}
            while not self._stop.is_set():
                for msg in consumer.consume(500, 0.1):
                    err = msg.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            self.failing = None
                            pending.discard((msg.topic(), msg.partition()))
                            if not pending:
                                self._ready.set()
                        else:
                            self._on_error(err)
                        continue
                    self.failing = None
                    self._apply(msg.topic(), msg.value())
        except Exception as exc:  # reported through /readyz and the error attribute
            self.error = str(exc)
            log.exception("throttle client stopped")
        finally:
            consumer.close()

    def _on_error(self, err: KafkaError) -> None:
        """librdkafka's word that the broker is failing (all brokers down, transport...)."""
        if self.failing is None:
            log.warning("throttle client: Kafka is failing: %s", err)
        self.failing = str(err)

    def _apply(self, topic: str, value: bytes | None) -> None:
        if not value:
            return  # a tombstone
        try:
            record = orjson.loads(value)
        except orjson.JSONDecodeError:
            log.warning("ignoring a malformed record on %s", topic)
            return
        with self._lock:
            self.records += 1
            try:
                changed = (self.view.apply_decision(record) if topic == THROTTLE
                           else self.view.apply_suppression(record))
            except Exception:  # one hostile record must not end the materialisation
                log.warning("ignoring a record on %s the view could not take", topic,
                            exc_info=True)
                self.view.rejected += 1
                return
        if changed and self.on_change is not None:
            self.on_change("decision" if topic == THROTTLE else "suppression", record)

    # -- lookups -----------------------------------------------------------------
    def recipient_hash(self, recipient_or_hash: str) -> str:
        """The hash of a raw address (needs the hash key), or a hash as it is."""
        if "@" in recipient_or_hash:
            if self.hasher is None:
                raise ValueError("raw addresses need the hash key (MAILFLOW_HASH_KEY)")
            return self.hasher.recipient(recipient_or_hash)
        return recipient_or_hash.strip().lower()

    def throttle(self, sender: str, domain: str, now: float | None = None) -> Effective:
        with self._lock:
            return self.view.effective(sender, provider_key(domain),
                                       time.time() if now is None else now)

    def suppression(self, recipient_or_hash: str) -> dict[str, Any] | None:
        with self._lock:
            return self.view.suppression(self.recipient_hash(recipient_or_hash))

    def may_send(self, sender: str, recipient: str, now: float | None = None
                 ) -> SendPermission:
        """May `sender` send to `recipient` (an address, or a domain) now, and how fast?"""
        parts = split_address(recipient.strip()) if "@" in recipient else None
        domain = provider_key(parts[1] if parts else recipient.strip().lower())
        suppressed = False
        if parts is not None and self.hasher is not None:
            suppressed = self.suppression(recipient) is not None
        e = self.throttle(sender, domain, now)
        allowed = not suppressed and e.action != "pause"
        return SendPermission(allowed, e.rate_factor if allowed else 0.0, e.action,
                              "suppressed" if suppressed else e.reason, e.until, domain,
                              suppressed)
