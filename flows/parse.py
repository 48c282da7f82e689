"""The `parse` and `parse_control` steps: consumer batches in, typed records out.

Every message becomes an event or a dead letter (never an exception); bounces
and deferrals are classified here, and each event that matters to throttling
becomes a `Signal`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any, NamedTuple

from flows.sources import CaughtUp, RawMessage, partition_id
from flows.stats import STATS
from operators.bounces import BounceClassifier, BounceVerdict
from operators.throttle import Signal, signal_kind
from schemas import rows as out
from schemas.control import EraseCommand, parse_control
from schemas.events import DeadLetter, Event, EventParser, internal_error
from schemas.hashing import RecipientHasher

_BOUNCING = frozenset({"bounce", "deferred"})


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


def unclassified(ev: Event, exc: Exception, raw: list[tuple]) -> DeadLetter:
    """The dead letter for an event whose classification failed, with its original bytes."""
    position = (ev.topic, ev.partition, ev.offset)
    value = next((m[0] for m in raw if (m[1], m[2], m[3]) == position), None) or b""
    return DeadLetter(internal_error(exc, "classify"), ev.topic, ev.partition, ev.offset, value)
