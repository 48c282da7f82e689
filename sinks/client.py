"""`ThrottleClient`: the engine's decisions, materialised in your own process.

For sending systems that want no network hop per lookup: the client reads
`mailflow.throttle` and `mailflow.suppressions` (every partition with
`assign()`, from the beginning, then following them) on a background thread
and answers from memory. Given a `RouteLog`, it reads `mailflow.routes` too
(the classified replies, for helpdesks; `mailflow serve` does), and the
erasures on `mailflow.control`, which take a person's routes out of it.

    from sinks.client import ThrottleClient

    client = ThrottleClient("kafka-1:9092", hash_key=b"...").start()
    client.wait_ready(30)
    verdict = client.may_send("news.example.com", "ann@gmail.com")
    if verdict.allowed:
        send_at_rate(normal_rate * verdict.rate_factor)

`hash_key` is the job's `MAILFLOW_HASH_KEY`: with it the client can check raw
addresses against the suppressions; without it, pass recipient hashes.

A suppression with `until` (an out-of-office reply) is a temporary hold:
`may_send` answers not allowed, with the hold's `reason` and `until`, while
`now` is before it, and allowed again after. A permanent suppression always
blocks, and a hold arriving after one never weakens it.

Control groups: given an `Assigner` (schemas/assignment.py, keyed by the same hash
key) and a `flow_id`, `may_send` answers `allowed=False, reason="holdout"` with the
`group` ("global" or "flow") for a recipient in a control group; the sending system
records a `holdout` event (topic `email.holdouts`) instead of sending. Suppressions,
holds and pauses are decided first: a holdout is answered, and recorded, only for
someone who would otherwise have been mailed now (the control group must look like the
treated group, so both hold only people the sender would have mailed).
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, NamedTuple

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from operators.decision_view import DecisionView, Effective, parse_time
from schemas.assignment import TREATED, Assigner
from schemas.control import EraseCommand, parse_control
from schemas.hashing import RecipientHasher
from schemas.mailbox_providers import provider_key, split_address
from schemas.topics import CONTROL, ROUTES, SUPPRESSIONS, THROTTLE

log = logging.getLogger(__name__)


class SendPermission(NamedTuple):
    allowed: bool  # False when paused, the recipient is suppressed (or held), or held out
    rate_factor: float  # share of the normal sending rate (0.0 when not allowed)
    action: str
    # "suppressed" for a permanent suppression, the hold's own reason ("out_of_office")
    # during a hold, "holdout" for a control group, else the throttle decision's
    reason: str
    until: str | None  # during a hold: its end ("not before"); else the pause's end
    domain: str  # the mailbox-provider key the decision was looked up for
    suppressed: bool  # a suppression blocks: permanent, or a hold still running
    hold: bool = False  # what blocks is a temporary hold (it ends at `until`)
    suppression_reason: str | None = None  # the blocking suppression's own reason
    # with a flow_id and an Assigner, when the send would otherwise be allowed: "treated"
    # (send), or "global" / "flow" (held out: record a holdout event); else None
    group: str | None = None


#: An address hashed by both the client and its assigner: their keys must agree.
_PROBE = "key-check@mailflow.invalid"


class _Route(NamedTuple):
    seq: int  # arrival order
    event_ts: float
    queue: str | None
    recipient_hash: str | None
    json: orjson.Fragment  # the record, serialised once


class RouteLog:
    """The newest `mailflow.routes` records in bounded memory: at most `per_queue` per
    queue and `total` in all (the oldest arrivals go first), one per `reply_id` (a
    repeat replaces the earlier record). An erasure (`erase`) drops a person's routes
    stamped at or before it, those held and those still to arrive.

    >>> log = RouteLog(per_queue=2)
    >>> for i, queue in enumerate(["sales", "sales", "support", "sales"]):
    ...     _ = log.apply({"reply_id": f"r{i}", "queue": queue,
    ...                    "event_ts": f"2026-12-01T10:0{i}:00Z"})
    >>> [r["reply_id"] for r in orjson.loads(orjson.dumps(log.newest("sales")))]
    ['r3', 'r1']
    >>> len(log), sorted(log.by_queue)
    (3, ['sales', 'support'])
    >>> log.apply({"reply_id": "r9", "queue": 7}), log.rejected
    (False, 1)
    """

    def __init__(self, per_queue: int = 10_000, total: int = 100_000):
        self.per_queue = per_queue
        self.total = total
        self.by_queue: dict[str | None, OrderedDict[str, _Route]] = {}
        self.arrival: OrderedDict[str, str | None] = OrderedDict()  # reply_id -> queue
        self.rejected = 0  # records that were not routes (counted, never raised)
        self.erased = 0  # routes dropped by an erasure
        # recipient hash -> event time (epoch s) up to which its routes are erased: a
        # route read after the command (another topic, another partition) is dropped too
        self.erasures: dict[str, float] = {}
        self._seq = 0

    def __len__(self) -> int:
        return len(self.arrival)

    def apply(self, record: Any) -> bool:
        """Take one record; False (and counted in `rejected`) when it is not a route: no
        `reply_id` string, a `queue` neither string nor null, or an `event_ts` that is
        no RFC 3339 time."""
        try:
            reply_id, queue = record["reply_id"], record.get("queue")
            if not isinstance(reply_id, str) or not reply_id:
                raise ValueError("reply_id")
            if queue is not None and not isinstance(queue, str):
                raise ValueError("queue")
            event_ts = parse_time(record["event_ts"])
            if event_ts is None:
                raise ValueError("event_ts")
            recipient_hash = record.get("recipient_hash")
            if not isinstance(recipient_hash, str):
                recipient_hash = None
            route = _Route(self._seq, event_ts, queue, recipient_hash,
                           orjson.Fragment(orjson.dumps(record)))
        except Exception:  # whatever a hostile record holds, it is only not a route
            self.rejected += 1
            return False
        erased_up_to = self.erasures.get(recipient_hash) if recipient_hash else None
        if erased_up_to is not None and event_ts <= erased_up_to:
            self.erased += 1
            return False
        self._seq += 1
        self._drop(reply_id)
        self.by_queue.setdefault(queue, OrderedDict())[reply_id] = route
        self.arrival[reply_id] = queue
        held = self.by_queue[queue]
        while len(held) > self.per_queue:
            self._drop(next(iter(held)))
        while len(self.arrival) > self.total:
            self._drop(next(iter(self.arrival)))
        return True

    def erase(self, recipient_hash: str, up_to: float) -> int:
        """Forget the person's routes stamped at or before `up_to` (epoch s), now and as
        they arrive; how many held routes went. A scan of what is held: erasures are rare.

        >>> log = RouteLog()
        >>> log.apply({"reply_id": "r1", "recipient_hash": "h", "queue": "sales",
        ...            "event_ts": "2026-12-01T10:00:00Z"})
        True
        >>> log.erase("h", up_to=parse_time("2026-12-01T11:00:00Z")), len(log)
        (1, 0)
        >>> log.apply({"reply_id": "r0", "recipient_hash": "h", "queue": "sales",
        ...            "event_ts": "2026-12-01T09:00:00Z"}), log.erased
        (False, 2)
        """
        self.erasures[recipient_hash] = max(up_to, self.erasures.get(recipient_hash, up_to))
        gone = [reply_id for held in self.by_queue.values()
                for reply_id, route in held.items()
                if route.recipient_hash == recipient_hash and route.event_ts <= up_to]
        for reply_id in gone:
            self._drop(reply_id)
        self.erased += len(gone)
        return len(gone)

    def remove(self, reply_id: str) -> bool:
        """A tombstone on `mailflow.routes` (the job erased the person): the route goes.

        >>> log = RouteLog()
        >>> log.apply({"reply_id": "r1", "queue": "sales", "event_ts": "2026-12-01T10:00:00Z"})
        True
        >>> log.remove("r1"), log.remove("r1"), len(log)
        (True, False, 0)
        """
        held = reply_id in self.arrival
        self._drop(reply_id)
        return held

    def _drop(self, reply_id: str) -> None:
        if reply_id not in self.arrival:
            return
        queue = self.arrival.pop(reply_id)
        held = self.by_queue[queue]
        del held[reply_id]
        if not held:
            del self.by_queue[queue]

    def newest(self, queue: str | None = None, since: float | None = None,
               limit: int = 100) -> list[orjson.Fragment]:
        """Up to `limit` routes of `queue` (None: every queue) with `event_ts` at or after
        `since`, newest `event_ts` first (ties: the later arrival first)."""
        if queue is None:
            routes = (r for held in self.by_queue.values() for r in held.values())
        else:
            routes = iter(self.by_queue.get(queue, {}).values())
        if since is not None:
            routes = (r for r in routes if r.event_ts >= since)
        return [r.json for r in heapq.nlargest(limit, routes, key=lambda r: (r.event_ts, r.seq))]


class ThrottleClient:
    def __init__(self, brokers: str, hash_key: bytes | None = None,
                 on_change: Callable[[str, dict[str, Any]], None] | None = None,
                 routes: RouteLog | None = None, assigner: Assigner | None = None):
        self.brokers = brokers
        self.hasher = RecipientHasher(hash_key) if hash_key else None
        if assigner is not None and self.hasher is not None and (
                assigner.recipient_hash(_PROBE) != self.hasher.recipient(_PROBE)):
            raise ValueError("the assigner is keyed with another key than hash_key: both "
                             "must be the job's MAILFLOW_HASH_KEY")
        if assigner is not None and self.hasher is None:
            self.hasher = assigner.hasher  # the same key: suppressions are checked too
        self.assigner = assigner  # control groups for may_send(flow_id=...) (None: none)
        self.view = DecisionView()
        self.routes = routes  # read `mailflow.routes` into it (None: not read)
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
            topics = (THROTTLE, SUPPRESSIONS) + (
                (ROUTES, CONTROL) if self.routes is not None else ())
            for topic in topics:
                meta = consumer.list_topics(topic, timeout=15).topics[topic]
                if not meta.partitions:
                    log.warning("throttle client: topic %s does not exist (yet): not read",
                                topic)
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
                    self._apply(msg.topic(), msg.value(), msg.key())
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

    def _apply(self, topic: str, value: bytes | None, key: bytes | None = None) -> None:
        if not value:
            if topic == SUPPRESSIONS and key:
                self._remove_suppression(key)
            elif topic == ROUTES and key and self.routes is not None:
                with self._lock:  # an erased person's route
                    self.routes.remove(key.decode(errors="replace"))
            return  # another tombstone: nothing to undo
        try:
            record = orjson.loads(value)
        except orjson.JSONDecodeError:
            if topic == CONTROL:
                return  # the job dead-letters bad commands; they are not ours to count
            log.warning("ignoring a malformed record on %s", topic)
            with self._lock:
                if topic == ROUTES and self.routes is not None:
                    self.routes.rejected += 1
                else:
                    self.view.rejected += 1
            return
        if topic in (ROUTES, CONTROL):
            self._apply_route_side(topic, value, record)
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

    def _apply_route_side(self, topic: str, value: bytes, record: Any) -> None:
        if self.routes is None:
            return
        with self._lock:
            self.records += 1
            if topic == ROUTES:
                rejected = self.routes.rejected
                self.routes.apply(record)
                if self.routes.rejected != rejected:
                    log.warning("ignoring a record on %s that is not a route", topic)
                return
            # anything but a valid erasure is the job's dead letter, not ours
            command = parse_control(value, topic, 0, 0)
            if isinstance(command, EraseCommand):
                self.routes.erase(command.recipient_hash, command.up_to_ms / 1000)

    def _remove_suppression(self, key: bytes) -> None:
        """A tombstone: the suppression keyed by this recipient hash is gone."""
        recipient_hash = key.decode("utf-8", "replace").strip().lower()
        with self._lock:
            changed = self.view.remove_suppression(recipient_hash)
        if changed and self.on_change is not None:
            self.on_change("suppression", {"recipient_hash": recipient_hash, "removed": True})

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

    def held_decisions(self, now: float | None = None) -> list[Effective]:
        """Every decision held, each as it applies at `now` (default: the wall clock)."""
        with self._lock:
            return self.view.held(time.time() if now is None else now)

    def suppression(self, recipient_or_hash: str, now: float | None = None
                    ) -> dict[str, Any] | None:
        """The suppression that blocks the recipient at `now` (default: the wall clock), or
        None: none, or a hold whose `until` has passed."""
        record, active = self.suppression_state(recipient_or_hash, now)
        return record if active else None

    def suppression_state(self, recipient_or_hash: str, now: float | None = None
                          ) -> tuple[dict[str, Any] | None, bool]:
        """(the suppression record held, or None; whether it blocks at `now`): an ended
        hold is (its record, False)."""
        recipient_hash = self.recipient_hash(recipient_or_hash)
        with self._lock:
            record, active = self.view.suppression_state(
                recipient_hash, time.time() if now is None else now)
        return record, active

    def suppression_counts(self, now: float | None = None) -> tuple[int, int, int]:
        """(permanent suppressions, holds still running at `now`, rejected records)."""
        with self._lock:
            return (self.view.permanent_suppressions,
                    self.view.active_holds(time.time() if now is None else now),
                    self.view.rejected)

    def may_send(self, sender: str, recipient: str, now: float | None = None,
                 flow_id: str | None = None) -> SendPermission:
        """May `sender` send to `recipient` (an address, or a domain) now, and how fast?
        `now` (epoch seconds, default the wall clock) decides pauses and holds alike.

        With `flow_id` and an assigner, a send that would otherwise be allowed is held out
        (`allowed=False, reason="holdout"`, `group` "global" or "flow") when the recipient
        is in a control group; `group` is "treated" when it may go. Raises ValueError when
        `recipient` is no address then (a domain names nobody to assign)."""
        now = time.time() if now is None else now
        parts = split_address(recipient.strip()) if "@" in recipient else None
        domain = provider_key(parts[1] if parts else recipient.strip().lower())
        assigner = self.assigner if flow_id is not None else None
        if assigner is not None and parts is None:
            raise ValueError("a holdout decision (flow_id) needs the recipient's address")
        record = None
        if parts is not None and self.hasher is not None:
            recipient = self.hasher.recipient(recipient)  # hashed once, for both look-ups
            record = self.suppression(recipient, now)
        e = self.throttle(sender, domain, now)
        if record is None:
            allowed = e.action != "pause"
            if allowed and assigner is not None and flow_id is not None:
                group = assigner.assign(recipient, flow_id).group
                if group != TREATED:
                    return SendPermission(False, 0.0, e.action, "holdout", None, domain,
                                          False, group=group)
                return SendPermission(True, e.rate_factor, e.action, e.reason, e.until,
                                      domain, False, group=group)
            return SendPermission(allowed, e.rate_factor if allowed else 0.0, e.action,
                                  e.reason, e.until, domain, False)
        own = record.get("reason")
        own = own if isinstance(own, str) and own else None
        until = record.get("until")
        if until is None:
            return SendPermission(False, 0.0, e.action, "suppressed", e.until, domain, True,
                                  False, own)
        return SendPermission(False, 0.0, e.action, own or "hold", str(until), domain, True,
                              True, own)

    def newest_routes(self, queue: str | None = None, since: float | None = None,
                      limit: int = 100) -> list[orjson.Fragment]:
        """The newest routes held (see `RouteLog.newest`); empty without a RouteLog."""
        if self.routes is None:
            return []
        with self._lock:
            return self.routes.newest(queue, since, limit)
