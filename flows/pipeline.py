"""The main dataflow: Kafka input topics → parse → events into ClickHouse, bad input to the DLQ.

    kafka_in ─ parse ─┬─ event_rows ─ key_on shard ─ batch_rows ─ events_out (ClickHouse)
                      └─ dead_letters ─ dlq_out (Kafka mailflow.dlq)

Every step works on whole consumer batches (one Python call per batch, not per
event); the logic lives in `schemas/` and `operators/`.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaError, KafkaSink, KafkaSinkMessage
from bytewax.dataflow import Dataflow

from flows.sources import StoppableKafkaSource
from mailflow.config import Settings
from mailflow.stats import STATS
from operators.batching import RowBatcher
from operators.bounces import classify_bounce
from operators.engagement import is_human_interaction
from schemas.events import DeadLetter, Event, EventParser
from schemas.hashing import RecipientHasher
from schemas.rows import EventRow, event_row
from schemas.topics import DLQ

_BOUNCING = frozenset({"bounce", "deferred"})


class ParsedBatch(NamedTuple):
    rows: list[EventRow]
    dead: list[DeadLetter]


def enrich(ev: Event) -> EventRow:
    bounce_class = (classify_bounce(ev.smtp_code, ev.smtp_status, ev.diagnostic, ev.bounce_kind)
                    if ev.type in _BOUNCING else "")
    return event_row(ev, bounce_class, is_human_interaction(ev.type, ev.user_agent, ev.ip))


class BatchParser:
    """The `parse` step: a consumer batch in, one `ParsedBatch` out."""

    def __init__(self, hasher: RecipientHasher):
        self.parser = EventParser(hasher)

    def __call__(self, messages: list[Any]) -> list[ParsedBatch]:
        raw: list[tuple] = []
        broken: list[DeadLetter] = []
        for m in messages:
            if type(m) is KafkaError:  # consumer error surfaced for one message
                src = m.msg
                broken.append(DeadLetter(f"kafka error: {m.err}", src.topic or "",
                                         src.partition or 0, src.offset or 0, src.value or b""))
            else:
                raw.append((m.value, m.topic, m.partition, m.offset))
        events, dead = self.parser.parse_batch(raw)
        dead.extend(broken)
        if events:
            STATS.record_events(Counter(ev.type for ev in events), max(ev.ts_ms for ev in events))
        if dead:
            STATS.record_dead([d.error for d in dead])
        return [ParsedBatch([enrich(ev) for ev in events], dead)]


class BatchRowsLogic(op.StatefulBatchLogic):
    """Wraps `RowBatcher` for Bytewax: full batches go out at once, partial ones on a timer."""

    def __init__(self, max_rows: int, max_age_s: float, resume: Any = None):
        rows, since = resume if resume is not None else ([], None)
        self.batcher: RowBatcher = RowBatcher(max_rows, max_age_s, rows, since)

    def on_batch(self, values: list[list[EventRow]]) -> tuple[list[list[EventRow]], bool]:
        now = time.time()
        ready: list[list[EventRow]] = []
        for rows in values:
            ready.extend(self.batcher.add(rows, now))
        return ready, self.RETAIN

    def on_notify(self) -> tuple[list[list[EventRow]], bool]:
        return self.batcher.flush_due(time.time()), self.RETAIN

    def on_eof(self) -> tuple[list[list[EventRow]], bool]:
        return self.batcher.flush(), self.RETAIN

    def notify_at(self) -> datetime | None:
        due = self.batcher.due_at()
        return None if due is None else datetime.fromtimestamp(due, UTC) + timedelta(
            milliseconds=1)

    def snapshot(self) -> Any:
        return self.batcher.snapshot()


def dead_letter_message(dead: DeadLetter) -> KafkaSinkMessage:
    key = f"{dead.topic}:{dead.partition}:{dead.offset}".encode()
    return KafkaSinkMessage(key=key, value=dead.to_json())


def build_flow(settings: Settings, hasher: RecipientHasher, tail: bool = True) -> Dataflow:
    """Wire the job. `tail=False` stops at the end of what the topics hold (`--no-tail`)."""
    from sinks.clickhouse import EventsSink
    from sinks.kafka import producer_config

    brokers = settings.brokers().split(",")
    max_rows, max_age_s = settings.batch_rows, settings.batch_ms / 1000.0

    flow = Dataflow("mailflow")
    source = StoppableKafkaSource(brokers, settings.input_topics, tail=tail,
                                  batch_size=settings.kafka_batch, raise_on_errors=False)
    messages = op.input("kafka_in", flow, source)
    parsed = op.flat_map_batch("parse", messages, BatchParser(hasher))

    rows = op.filter("has_rows", op.map("event_rows", parsed, lambda b: b.rows), bool)
    keyed = op.key_on("shard", rows, lambda _rows: "events")
    batches = op.stateful_batch("batch_rows", keyed,
                                lambda resume: BatchRowsLogic(max_rows, max_age_s, resume))
    op.output("events_out", op.key_rm("unkey", batches), EventsSink(settings.clickhouse_dsn))

    dead = op.flat_map("dead_letters", parsed, lambda b: b.dead)
    op.output("dlq_out", op.map("dlq_record", dead, dead_letter_message),
              KafkaSink(brokers, DLQ, add_config=producer_config()))
    return flow
