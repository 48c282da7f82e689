"""The main dataflow.

    control_in ─ parse_control ─ (erasures to the gate and analytics, bad commands to the dlq)
    kafka_in ─ parse ─┬─ event_rows, suppression_rows ──────────────┐
                      ├─ throttle_keys ─ throttle ─ decision_outputs ┼─ batch_rows ─ clickhouse_out
                      │                                  │           │  (events, decisions,
                      │                                  ▼           │   suppressions)
                      ├─ suppressions ──────────────► kafka_records ─ kafka_out (mailflow.throttle,
                      └─ dead_letters ─ dlq_record ──►                 .suppressions, .dlq)

Every step works on whole consumer batches (one Python call per batch, not per
event). Throttle state is keyed twice: by sender ("s:<sender>": its pairs and
the sender-wide roll-up) and by provider ("p:<domain>": the provider-wide
roll-up), so it spreads over workers. The logic lives in `schemas/` and
`operators/`.
"""

from __future__ import annotations

import copy
import logging
import pickle
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, NamedTuple

import bytewax.operators as op
import orjson
from bytewax.connectors.kafka import KafkaSinkMessage
from bytewax.dataflow import Dataflow

from flows.settings import Settings
from flows.sources import CaughtUp, KafkaPartitionSource, RawMessage, partition_id
from flows.stats import STATS
from operators.analytics import AnalyticsBatch, EngagementAnalytics, empty_batch
from operators.batching import RowBatcher
from operators.bounces import BounceClassifier, BounceVerdict
from operators.ordering import EventTimeGate
from operators.throttle import Decision, Signal, ThrottleBook, ThrottlePolicy, signal_kind
from schemas import rows as out
from schemas.control import EraseCommand, Erasure, erasable_tables, parse_control
from schemas.events import DeadLetter, Event, EventParser, internal_error
from schemas.hashing import RecipientHasher
from schemas.topics import CONTROL, DLQ, SCORES, SEND_TIMES, SUPPRESSIONS, THROTTLE, VARIANTS

log = logging.getLogger(__name__)
_BOUNCING = frozenset({"bounce", "deferred"})
EVENTS, DECISIONS, SUPPRESSED = ("mailflow.events", "mailflow.throttle_decisions",
                                 "mailflow.suppressions")
ATTRIBUTION, METRICS, CONVERGENCE = ("mailflow.attribution", "mailflow.metrics_1m",
                                     "mailflow.convergence")
#: Tables whose rows an erasure deletes, and the column holding the recipient hash.
ERASABLE = erasable_tables(out.TABLE_COLUMNS)


class ParsedBatch(NamedTuple):
    events: list[tuple[Event, BounceVerdict | None]]
    signals: list[Signal]
    suppressions: list[tuple[Event, str]]
    dead: list[DeadLetter]
    progress: dict[str, int]  # newest event time (ms) per input partition
    caught_up: list[str]  # partitions that reached their end after these messages


class BatchParser:
    """The `parse` step: a consumer batch in, one `ParsedBatch` out."""

    def __init__(self, hasher: RecipientHasher):
        self.parser = EventParser(hasher)
        self.bounces = BounceClassifier()

    def __call__(self, messages: list[RawMessage | CaughtUp]) -> list[ParsedBatch]:
        raw: list[tuple] = []
        broken: list[DeadLetter] = []
        caught_up: list[str] = []
        for m in messages:
            if type(m) is CaughtUp:
                caught_up.append(partition_id(m.topic, m.partition))
            elif m.error:  # the consumer's error for one message: dead letter, with position
                broken.append(DeadLetter(f"kafka error: {m.error}", m.topic, m.partition,
                                         m.offset, m.value or b""))
            else:
                raw.append((m.value, m.topic, m.partition, m.offset))
        events, dead = self.parser.parse_batch(raw)
        dead.extend(broken)
        items, signals, suppressions = [], [], []
        newest: dict[tuple[str, int], int] = {}
        classify = self.bounces.classify
        for ev in events:
            if ev.ts_ms > newest.get((ev.topic, ev.partition), -1):
                newest[(ev.topic, ev.partition)] = ev.ts_ms
            try:  # one message's surprise is that message's dead letter, never the job's end
                bounce = (classify(ev.smtp_code, ev.smtp_status, ev.diagnostic, ev.bounce_kind)
                          if ev.type in _BOUNCING else None)
                kind = signal_kind(ev.type, bounce.bounce_class if bounce is not None else "")
                reason = out.suppression_reason(ev, bounce) if kind is not None else None
            except Exception as exc:
                dead.append(unclassified(ev, exc, raw))
                continue
            items.append((ev, bounce))
            if kind is not None:
                signals.append(Signal(ev.ts_ms, ev.sender, ev.domain, kind))
                if reason is not None:
                    suppressions.append((ev, reason))
        if items:
            STATS.record_events(Counter(ev.type for ev, _b in items),
                                max(ev.ts_ms for ev, _b in items))
        if dead:
            STATS.record_dead([d.error for d in dead])
        progress = {partition_id(t, p): ts for (t, p), ts in newest.items()}
        return [ParsedBatch(items, signals, suppressions, dead, progress, caught_up)]


class ControlBatch(NamedTuple):
    """What one batch of `mailflow.control` held: commands, and messages that are none."""

    erasures: list[EraseCommand]
    dead: list[DeadLetter]


def parse_controls(messages: list[RawMessage | CaughtUp]) -> list[ControlBatch]:
    """The `parse_control` step: commands never go through the event parser."""
    erasures: list[EraseCommand] = []
    dead: list[DeadLetter] = []
    for m in messages:
        if type(m) is CaughtUp:
            continue  # the gate waits for event partitions only
        if m.error:
            dead.append(DeadLetter(f"kafka error: {m.error}", m.topic, m.partition, m.offset,
                                   m.value or b""))
            continue
        try:  # one bad command is that command's dead letter, never the job's end
            command = parse_control(m.value, m.topic, m.partition, m.offset)
        except Exception as exc:
            command = DeadLetter(internal_error(exc, "control"), m.topic, m.partition,
                                 m.offset, m.value or b"")
        (dead if type(command) is DeadLetter else erasures).append(command)
    if dead:
        STATS.record_dead([d.error for d in dead])
    return [ControlBatch(erasures, dead)] if erasures or dead else []


def erased_by(command: EraseCommand) -> Callable[[tuple[Event, Any]], bool]:
    """Is an `(event, …)` item one the erasure covers (its recipient, at or before `ts`)?"""
    h, up_to = command.recipient_hash, command.up_to_ms
    return lambda item: item[0].recipient_hash == h and item[0].ts_ms <= up_to


def _carries(erasure: Erasure, row: tuple) -> bool:
    return row[erasure.column] == erasure.recipient_hash


def unclassified(ev: Event, exc: Exception, raw: list[tuple]) -> DeadLetter:
    """The dead letter for an event whose classification failed, with its original bytes."""
    position = (ev.topic, ev.partition, ev.offset)
    value = next((m[0] for m in raw if (m[1], m[2], m[3]) == position), None) or b""
    return DeadLetter(internal_error(exc, "classify"), ev.topic, ev.partition, ev.offset, value)


def source_position(item: tuple[Event, Any]) -> tuple[str, int, int]:
    """Events with equal event time leave in source order, however input was batched."""
    ev = item[0]
    return ev.topic, ev.partition, ev.offset


class OrderingLogic(op.StatefulBatchLogic):
    """Two `EventTimeGate`s over the same partition progress.

    Throttle signals leave with a small event-time slack (decisions must be
    fast); events for analytics leave strictly in order (a convergence row for
    a minute must see every event before it).
    """

    POLL_S = 0.02

    def __init__(self, slack_ms: int, partitions: list[str],
                 resume: tuple[EventTimeGate, EventTimeGate, set[str]] | None):
        self.partitions = partitions
        self.signals, self.events, self.idle = resume if resume is not None else (
            EventTimeGate(slack_ms), EventTimeGate(0, tiebreak=source_position), set())

    def on_batch(self, values: list[ParsedBatch | EraseCommand]
                 ) -> tuple[list[tuple[str, list]], bool]:
        signals: list[tuple[int, Any]] = []
        events: list[tuple[int, Any]] = []
        erasures: list[EraseCommand] = []
        idle, partitions = self.idle, self.partitions
        for batch in values:
            if type(batch) is EraseCommand:
                # Held events of the erased recipient never reach analytics (signals
                # carry no recipient). Released ones are analytics' to drop.
                self.events.discard(erased_by(batch))
                erasures.append(batch)
                continue
            idle.difference_update(batch.progress)  # moving again
            idle.update(batch.caught_up)
            signals += self.signals.add(((s.ts_ms, s) for s in batch.signals), batch.progress,
                                        idle, partitions)
            events += self.events.add(((item[0].ts_ms, item) for item in batch.events),
                                      batch.progress, idle, partitions)
        out, retain = self._out(signals, events)
        return out + [("erase", [e]) for e in erasures], retain

    def on_notify(self) -> tuple[list[tuple[str, list]], bool]:
        return self._out(self.signals.release(self.idle, self.partitions),
                         self.events.release(self.idle, self.partitions))

    def on_eof(self) -> tuple[list[tuple[str, list]], bool]:
        return self._out(self.signals.flush(), self.events.flush())

    def notify_at(self) -> datetime | None:
        held = self.signals.held or self.events.held
        return datetime.now(UTC) + timedelta(seconds=self.POLL_S) if held else None

    def _out(self, signals: list[tuple[int, Any]], events: list[tuple[int, Any]]
             ) -> tuple[list[tuple[str, list]], bool]:
        STATS.signals_held = self.signals.held
        STATS.events_held = self.events.held
        out: list[tuple[str, list]] = []
        if signals:
            out.append(("signals", [s for _ts, s in signals]))
        if events:
            out.append(("events", [e for _ts, e in events]))
        return out, self.RETAIN

    def snapshot(self) -> tuple[EventTimeGate, EventTimeGate, set[str]]:
        # Called every epoch even without recovery: copy the gates' containers only (the
        # held events are immutable); a deep copy of tens of thousands of events took ~1 s.
        return copy.copy(self.signals), copy.copy(self.events), set(self.idle)


class AnalyticsLogic(op.StatefulBatchLogic):
    """Wraps `EngagementAnalytics`: ordered events in, rows for every analytics table out.

    It works in slices of `SLICE_S` and then yields (continuing from `on_notify`), so a
    burst of analytics work (a backlog, a window of labels closing) does not hold up
    throttle decisions, which share the worker. Past `MAX_QUEUED` waiting events it
    works through them at once: memory stays bounded, and the input waits.
    """

    SLICE_S = 0.02
    CHUNK = 256
    MAX_QUEUED = 50_000

    def __init__(self, resume: bytes | None, settings: Settings, snapshots: bool = True):
        self.snapshots = snapshots
        self.queued: list[tuple[Event, BounceVerdict | None]] = []
        if resume is not None:
            self.analytics, self.queued = pickle.loads(resume)
        else:
            self.analytics = EngagementAnalytics(
                attribution_window_s=settings.attribution_window_s,
                allowed_lateness_s=settings.allowed_lateness_s,
                label_window_s=settings.label_window_s, reset_on_drift=settings.reset_on_drift)

    def on_batch(self, values: list[list[tuple[Event, BounceVerdict | None]] | EraseCommand]
                 ) -> tuple[list[tuple[str, list[tuple]]], bool]:
        erased: list[tuple[str, Any]] = []
        for batch in values:
            if type(batch) is EraseCommand:
                erased += self._erase(batch)
            else:
                self.queued += batch
        # The erasure goes out first: rows after it are other people's, or newer events.
        return erased + self._work(self.SLICE_S), self.RETAIN

    def _erase(self, command: EraseCommand) -> list[tuple[str, Any]]:
        """Forget the recipient here, then tell every table and compacted topic to."""
        h = command.recipient_hash
        before = len(self.queued)
        erased = erased_by(command)
        self.queued = [item for item in self.queued if not erased(item)]
        report = self.analytics.forget(h, command.up_to_ms)
        report["queued"] = before - len(self.queued)
        STATS.erasures += 1
        log.info("erased recipient %s… (requested %s, %s:%d:%d): %s", h[:8],
                 command.requested_at or "?", command.topic, command.partition, command.offset,
                 report)
        return ([(table, Erasure(h, column)) for table, column in ERASABLE.items()]
                + [("kafka", [KafkaSinkMessage(h.encode(), None, topic=SEND_TIMES)])])

    def on_notify(self) -> tuple[list[tuple[str, list[tuple]]], bool]:
        return self._work(self.SLICE_S), self.RETAIN

    def notify_at(self) -> datetime | None:
        return datetime.now(UTC) if self.queued else None

    def on_eof(self) -> tuple[list[tuple[str, list[tuple]]], bool]:
        rows = self._work(None)
        return rows + self._rows(self.analytics.flush()), self.RETAIN

    def _work(self, slice_s: float | None) -> list[tuple[str, list]]:
        """Apply queued events for about `slice_s` (None: all of them)."""
        queued, chunk = self.queued, self.CHUNK
        started = time.perf_counter()
        deadline = started + slice_s if slice_s is not None else float("inf")
        done = 0
        batch = empty_batch()
        while done < len(queued) and (done == 0 or time.perf_counter() < deadline
                                      or len(queued) - done > self.MAX_QUEUED):
            self.analytics.apply(queued[done:done + chunk], batch)
            done += chunk
        applied = min(done, len(queued))
        del queued[:applied]
        STATS.analytics_seconds += time.perf_counter() - started
        STATS.analytics_events += applied
        STATS.analytics_queued = len(queued)
        learner = self.analytics.learner
        STATS.model_update_seconds, STATS.model_updates = learner.update_seconds, learner.updates
        return self._rows(batch)

    def _rows(self, batch: AnalyticsBatch) -> list[tuple[str, list]]:
        """(table, rows) for ClickHouse and ("kafka", messages) for the output topics."""
        STATS.late_events = self.analytics.late
        STATS.erased_events = self.analytics.erased_dropped
        STATS.pending_labels = len(self.analytics.learner.pending)
        tables = [
            (EVENTS, [out.event_row(e.event, e.bounce, e.interaction, e.attributed_flows)
                      for e in batch.events]),
            (ATTRIBUTION, [out.attribution_row(ev, c) for ev, c in batch.credits]),
            (METRICS, [out.metrics_row(r) for r in batch.minutes]),
            (CONVERGENCE, [out.convergence_row(r) for r in batch.convergence]),
            ("mailflow.scores", [out.score_row(sc) for sc in batch.scores]),
            ("mailflow.model_metrics", [out.model_metric_row(r) for r in batch.model_metrics]),
            ("mailflow.model_events", [tuple(e) for e in batch.model_events]),
            ("mailflow.send_times", [out.send_time_row(st) for st in batch.send_times]),
            ("mailflow.recipient_profiles", [tuple(p) for p in batch.profiles]),
            ("mailflow.variant_allocations", [row for a in batch.allocations
                                              for row in out.allocation_rows(a)]),
        ]
        messages = (
            [KafkaSinkMessage(sc.message_id.encode(), orjson.dumps(out.score_record(sc)),
                              topic=SCORES) for sc in batch.scores]
            + [KafkaSinkMessage(st.recipient_hash.encode(),
                                orjson.dumps(out.send_time_record(st)), topic=SEND_TIMES)
               for st in batch.send_times]
            + [KafkaSinkMessage(a.campaign_id.encode(), orjson.dumps(out.allocation_record(a)),
                                topic=VARIANTS) for a in batch.allocations])
        result: list[tuple[str, list]] = [(table, rows) for table, rows in tables if rows]
        if messages:
            result.append(("kafka", messages))
        return result

    def snapshot(self) -> bytes | None:
        # Bytewax asks at every epoch, recovery or not; without recovery nobody reads it
        # (the pickle grows with the state: hundreds of ms that delay every decision).
        if not self.snapshots:
            return None
        # One pickle pass (Bytewax stores bytes as they are), not a deep copy and a pickle.
        return pickle.dumps((self.analytics, self.queued), protocol=pickle.HIGHEST_PROTOCOL)


def throttle_keys(signals: list[Signal]) -> Iterator[tuple[str, tuple[str, list[Signal]]]]:
    """Route each signal to its sender's book and its provider's book, in event-time order.

    The key travels in the value too: Bytewax builds state without telling it its key.
    """
    by_key: dict[str, list[Signal]] = {}
    for sig in signals:
        by_key.setdefault("s:" + sig.sender, []).append(sig)
        by_key.setdefault("p:" + sig.domain, []).append(sig)
    return ((key, (key, signals)) for key, signals in by_key.items())


class ThrottleLogic(op.StatefulBatchLogic):
    """One `ThrottleBook` per key ("s:<sender>" or "p:<domain>"); snapshots copy the book."""

    def __init__(self, policy: ThrottlePolicy, resume: ThrottleBook | None):
        self.policy = policy
        self.book = resume

    def on_batch(self, values: list[tuple[str, list[Signal]]]
                 ) -> tuple[list[Decision], bool]:
        if self.book is None:
            key = values[0][0]
            self.book = ThrottleBook("sender" if key.startswith("s:") else "provider", key[2:],
                                     self.policy)
        book, late = self.book, self.book.late
        decisions = [d for _key, signals in values for d in book.apply(signals)]
        STATS.late_signals += book.late - late
        return decisions, self.RETAIN

    def snapshot(self) -> ThrottleBook | None:
        return copy.deepcopy(self.book)


class BatchRowsLogic(op.StatefulBatchLogic):
    """Wraps `RowBatcher` for Bytewax: full batches go out at once, partial ones on a timer."""

    def __init__(self, max_rows: int, max_age_s: float, resume: Any = None):
        rows, since = resume if resume is not None else ([], None)
        self.batcher: RowBatcher = RowBatcher(max_rows, max_age_s, rows, since)

    def on_batch(self, values: list[list[tuple] | Erasure]
                 ) -> tuple[list[list[tuple] | Erasure], bool]:
        now = time.time()
        ready: list[list[tuple] | Erasure] = []
        for rows in values:
            if type(rows) is Erasure:
                # Buffered rows of the recipient are never written; the sink deletes the
                # ones already written, after every block released before it.
                self.batcher.discard(partial(_carries, rows))
                ready.append(rows)
            else:
                ready.extend(self.batcher.add(rows, now))
        return ready, self.RETAIN

    def on_notify(self) -> tuple[list[list[tuple]], bool]:
        return self.batcher.flush_due(time.time()), self.RETAIN

    def on_eof(self) -> tuple[list[list[tuple]], bool]:
        return self.batcher.flush(), self.RETAIN

    def notify_at(self) -> datetime | None:
        due = self.batcher.due_at()
        return None if due is None else datetime.fromtimestamp(due, UTC) + timedelta(
            milliseconds=1)

    def snapshot(self) -> Any:
        return self.batcher.snapshot()


def decision_outputs(decisions: list[Decision]) -> list[tuple[str, Any]]:
    """Each decision once for ClickHouse and once for `mailflow.throttle`."""
    now_ms = int(time.time() * 1000)
    STATS.record_decisions(Counter(d.action for d in decisions))
    return [("rows", [out.decision_row(d, now_ms) for d in decisions]),
            ("kafka", [KafkaSinkMessage(out.decision_key(d),
                                        orjson.dumps(out.decision_record(d, now_ms)),
                                        topic=THROTTLE) for d in decisions])]


def suppression_messages(batch: ParsedBatch) -> list[KafkaSinkMessage] | None:
    return [KafkaSinkMessage(ev.recipient_hash.encode(),
                             orjson.dumps(out.suppression_record(ev, reason)), topic=SUPPRESSIONS)
            for ev, reason in batch.suppressions] or None


def dead_letter_messages(batch: ParsedBatch | ControlBatch) -> list[KafkaSinkMessage] | None:
    return [KafkaSinkMessage(key=f"{d.topic}:{d.partition}:{d.offset}".encode(),
                             value=d.to_json(), topic=DLQ) for d in batch.dead] or None


def build_flow(settings: Settings, hasher: RecipientHasher, tail: bool = True,
               snapshots: bool = True) -> Dataflow:
    """Wire the job. `tail=False` stops at the end of what the topics hold (`--no-tail`);
    `snapshots=False` (no recovery) skips building the analytics snapshot."""
    from sinks.clickhouse import ClickHouseSink
    from sinks.kafka import KafkaOutput

    brokers = settings.brokers().split(",")
    max_rows, max_age_s = settings.batch_rows, settings.batch_ms / 1000.0
    policy = settings.throttle_policy()

    flow = Dataflow("mailflow")
    source = KafkaPartitionSource(brokers, settings.input_topics, tail=tail,
                                  batch_size=settings.kafka_batch,
                                  add_config={"fetch.wait.max.ms": str(settings.fetch_wait_ms)})
    parsed = op.flat_map_batch("parse", op.input("kafka_in", flow, source), BatchParser(hasher))
    # Commands (erasures) have their own input: never parsed as events, never dead-lettered
    # as bad events; a malformed command is a dead letter of its own.
    control = KafkaPartitionSource(brokers, [CONTROL], tail=tail, batch_size=settings.kafka_batch)
    commands = op.flat_map_batch("parse_control", op.input("control_in", flow, control),
                                 parse_controls)
    erasures = op.flat_map("erasures", commands, lambda c: c.erasures)

    # Event-time order: signals for throttling (with slack), events for analytics (strict).
    partitions = source.partition_ids()
    ordered = op.key_rm("ordered", op.stateful_batch(
        "order_events", op.map("to_gate", op.merge("gate_input", parsed, erasures),
                               lambda b: ("gate", b)),
        lambda resume: OrderingLogic(settings.order_slack_ms, partitions, resume)))
    signal_batches = op.filter_map("signal_batches", ordered,
                                   lambda kv: kv[1] if kv[0] == "signals" else None)
    event_batches = op.filter_map("event_batches", ordered,
                                  lambda kv: kv[1] if kv[0] == "events" else None)
    erase_commands = op.flat_map("erase_commands", ordered,
                                 lambda kv: kv[1] if kv[0] == "erase" else [])

    # Throttling: keyed by sender and by provider.
    keyed_signals = op.flat_map("throttle_keys", signal_batches, throttle_keys)
    decisions = op.key_rm("decisions", op.stateful_batch(
        "throttle", keyed_signals, lambda resume: ThrottleLogic(policy, resume)))

    # Analytics: machine/bot, latency, attribution, metrics_1m, convergence.
    analytics_rows = op.key_rm("analytics_rows", op.stateful_batch(
        "analytics", op.map("to_analytics", op.merge("analytics_input", event_batches,
                                                     erase_commands),
                            lambda b: ("analytics", b)),
        lambda resume: AnalyticsLogic(resume, settings, snapshots)))
    decision_batches = op.flat_map_batch("decision_outputs", decisions, decision_outputs)
    decision_rows = op.filter_map("decision_rows", decision_batches,
                                  lambda kv: (DECISIONS, kv[1]) if kv[0] == "rows" else None)
    decision_kafka = op.filter_map("decision_kafka", decision_batches,
                                   lambda kv: kv[1] if kv[0] == "kafka" and kv[1] else None)

    # ClickHouse: every table through one size/age batcher per table.
    analytics_kafka = op.filter_map("analytics_kafka", analytics_rows,
                                    lambda kv: kv[1] if kv[0] == "kafka" else None)
    analytics_tables = op.filter("analytics_tables", analytics_rows, lambda kv: kv[0] != "kafka")
    tables = op.merge(
        "table_rows",
        analytics_tables,
        op.map("suppression_rows", parsed, lambda b: (SUPPRESSED, [
            out.suppression_row(ev, reason) for ev, reason in b.suppressions])),
        decision_rows,
    )
    by_table = op.filter("has_rows", tables, lambda kv: bool(kv[1]))
    batches = op.stateful_batch("batch_rows", by_table,
                                lambda resume: BatchRowsLogic(max_rows, max_age_s, resume))
    op.output("clickhouse_out", batches, ClickHouseSink(settings.clickhouse_dsn, stats=STATS))

    # Kafka outputs: decisions, scores, suppressions, dead letters. Lists of messages that
    # name their topic travel as one item each (no per-message dataflow overhead).
    records = op.merge(
        "kafka_records",
        decision_kafka,
        analytics_kafka,
        op.filter_map("suppressions", parsed, suppression_messages),
        op.filter_map("dead_letters", parsed, dead_letter_messages),
        op.filter_map("control_dead_letters", commands, dead_letter_messages),
    )
    op.output("kafka_out", op.map("kafka_key", records, lambda msgs: ("kafka", msgs)),
              KafkaOutput(brokers, stats=STATS))
    return flow

