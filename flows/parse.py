"""The `parse`, `classify` and `parse_control` steps: consumer batches in, typed records out.

    kafka_in ─ parse ─ classify ─ classified ─► route_to_shards, suppressions, dead letters

**parse** (stateless, on the worker that read the messages): bytes become
events or dead letters, grouped by input partition. Bytewax hands the step
everything its worker read since it last ran, so one call can hold several
partitions (and several polls of one partition): each partition present comes
out as its own `PartitionBatch`, keyed "topic/partition", its messages in
offset order.

**classify** (keyed by input partition): each input partition has its own
`BounceClassifier`, whose text model learns from the diagnostics a pattern made
certain. A partition is read by one worker, in offset order, so its classifier
learns in the same order whatever the number of workers or processes, and is
snapshotted in the same epoch as the partition's offset (consistent after a
`kill -9`). The price: each replica learns from its own partition's bounces
only, so the model reaches `min_training` a little later than one shared model
would. Every message becomes an event or a dead letter (never an exception);
each event that matters to throttling becomes a `Signal`.

**classified** merges what one worker's `classify` calls returned into one
`ParsedBatch` again, so the shards hear partition progress once per call, not
once per partition.
"""

from __future__ import annotations

import pickle
from collections import Counter
from collections.abc import Callable
from typing import Any, NamedTuple

import bytewax.operators as op

from flows.sources import CaughtUp, RawMessage, partition_id
from flows.stats import STATS
from operators.bounces import BounceClassifier, BounceVerdict
from operators.throttle import Signal, signal_kind
from schemas import rows as out
from schemas.control import EraseCommand, parse_control
from schemas.events import DeadLetter, Event, EventParser, internal_error
from schemas.hashing import RecipientHasher

_BOUNCING = frozenset({"bounce", "deferred"})


class PartitionBatch(NamedTuple):
    """One input partition's messages from one `parse` call: what `classify` reads."""

    partition: str  # "topic/partition"
    events: list[Event]
    dead: list[DeadLetter]
    raw: dict[int, bytes]  # the bounces' and deferrals' bytes by offset (for a dead letter)
    caught_up: bool  # the partition's last item in the call was its CaughtUp marker


class ParsedBatch(NamedTuple):
    events: list[tuple[Event, BounceVerdict | None]]
    signals: list[Signal]
    suppressions: list[tuple[Event, str]]
    dead: list[DeadLetter]
    progress: dict[str, int]  # newest event time (ms) per input partition
    caught_up: list[str]  # partitions that reached their end after these messages


class BatchParser:
    """The `parse` step: a consumer batch in, one `(partition, PartitionBatch)` per input
    partition in it, in order of first appearance.

    >>> from schemas.hashing import DEV_HASH_KEY
    >>> step = BatchParser(RecipientHasher(DEV_HASH_KEY))
    >>> out = step([RawMessage(b"{", "email.bounces", 1, 7, ""), CaughtUp("email.opens", 0),
    ...             RawMessage(None, "email.bounces", 1, 8, "broker down")])
    >>> [(key, [d.offset for d in b.dead], b.caught_up) for key, b in out]
    [('email.bounces/1', [7, 8], False), ('email.opens/0', [], True)]
    """

    def __init__(self, hasher: RecipientHasher):
        self.parser = EventParser(hasher)

    def __call__(self, messages: list[RawMessage | CaughtUp]
                 ) -> list[tuple[str, PartitionBatch]]:
        parse, now = self.parser.parse, self.parser.now()
        batches: dict[tuple[str, int], PartitionBatch] = {}
        dead_count: list[str] = []
        for m in messages:
            where = (m.topic, m.partition)
            batch = batches.get(where)
            if batch is None:
                batch = batches[where] = PartitionBatch(partition_id(*where), [], [], {}, False)
            if type(m) is CaughtUp:
                batches[where] = batch._replace(caught_up=True)
                continue
            if batch.caught_up:  # more after the marker: not caught up (the source says again)
                batch = batches[where] = batch._replace(caught_up=False)
            if m.error:  # the consumer's error for one message: dead letter, with position
                result: Event | DeadLetter = DeadLetter(f"kafka error: {m.error}", m.topic,
                                                        m.partition, m.offset, m.value or b"")
            else:
                result = parse(m.value, m.topic, m.partition, m.offset, now)
            if type(result) is Event:
                batch.events.append(result)
                if result.type in _BOUNCING:
                    batch.raw[result.offset] = m.value
            else:
                batch.dead.append(result)
                dead_count.append(result.error)
        if dead_count:
            STATS.record_dead(dead_count)
        return [(batch.partition, batch) for batch in batches.values()]


class ClassifyLogic(op.StatefulBatchLogic):
    """The `classify` step for one input partition: its `BounceClassifier`, and what
    `classify_batch` makes of each `PartitionBatch`.

    A snapshot is built only when the classifier learnt a wording since the last one
    (otherwise the cached bytes are returned): an epoch costs nothing for a partition
    without new wordings. `snapshots=False` (no recovery) builds none.
    """

    def __init__(self, snapshots: bool = True, resume: bytes | None = None,
                 classifier: Callable[[], BounceClassifier] = BounceClassifier):
        self.snapshots = snapshots
        if resume is None:
            self.bounces = classifier()
        else:
            self.bounces = BounceClassifier.restore(pickle.loads(resume))
        self._snapshot = resume
        self._learnt = self.bounces.n_learned

    def on_batch(self, values: list[PartitionBatch]) -> tuple[list[ParsedBatch], bool]:
        return [classify_batch(self.bounces, batch) for batch in values], self.RETAIN

    def snapshot(self) -> bytes | None:
        # Bytewax asks at every epoch, recovery or not; without recovery nobody reads it.
        if not self.snapshots:
            return None
        if self._snapshot is None or self.bounces.n_learned != self._learnt:
            self._snapshot = pickle.dumps(self.bounces.snapshot(),
                                          protocol=pickle.HIGHEST_PROTOCOL)
            self._learnt = self.bounces.n_learned
        return self._snapshot


def classify_batch(bounces: BounceClassifier, batch: PartitionBatch) -> ParsedBatch:
    """Bounces and deferrals classified, signals and suppressions, the partition's progress."""
    dead = list(batch.dead)
    items, signals, suppressions = [], [], []
    newest = -1
    classify = bounces.classify
    for ev in batch.events:
        if ev.ts_ms > newest:
            newest = ev.ts_ms
        try:  # one message's surprise is that message's dead letter, never the job's end
            bounce = (classify(ev.smtp_code, ev.smtp_status, ev.diagnostic, ev.bounce_kind)
                      if ev.type in _BOUNCING else None)
            kind = signal_kind(ev.type, bounce.bounce_class if bounce is not None else "")
            reason = out.suppression_reason(ev, bounce) if kind is not None else None
        except Exception as exc:
            dead.append(unclassified(ev, exc, batch.raw))
            STATS.record_dead([dead[-1].error])
            continue
        items.append((ev, bounce))
        if kind is not None:
            signals.append(Signal(ev.ts_ms, ev.sender, ev.domain, kind))
            if reason is not None:
                suppressions.append((ev, reason))
    if items:
        STATS.record_events(Counter(ev.type for ev, _b in items),
                            max(ev.ts_ms for ev, _b in items))
    return ParsedBatch(items, signals, suppressions, dead,
                       {batch.partition: newest} if newest >= 0 else {},
                       [batch.partition] if batch.caught_up else [])


def merge_classified(outputs: list[tuple[str, ParsedBatch]]) -> list[ParsedBatch]:
    """The `classified` step: one worker's `classify` outputs as one `ParsedBatch`.

    Every `ParsedBatch` sends its progress to every shard, so one per call, not one per
    partition. A partition's batches arrive in offset order; its caught-up marker
    holds only if nothing of it came after (the source announces again at the end).

    >>> a = ParsedBatch([], [], [], [], {"t/0": 5}, ["t/0"])
    >>> b = ParsedBatch([], [], [], [], {"t/1": 9}, [])
    >>> c = ParsedBatch([], [], [], [], {"t/0": 7}, [])
    >>> [merged] = merge_classified([("t/0", a), ("t/1", b), ("t/0", c)])
    >>> merged.progress, merged.caught_up
    ({'t/0': 7, 't/1': 9}, [])
    >>> merge_classified([("t/1", b), ("t/0", a)])[0].caught_up
    ['t/0']
    """
    if len(outputs) <= 1:
        return [b for _key, b in outputs]
    merged = ParsedBatch([], [], [], [], {}, [])
    caught_up: dict[str, None] = {}
    for key, b in outputs:
        merged.events.extend(b.events)
        merged.signals.extend(b.signals)
        merged.suppressions.extend(b.suppressions)
        merged.dead.extend(b.dead)
        for part, ts in b.progress.items():
            if ts > merged.progress.get(part, -1):
                merged.progress[part] = ts
        if b.caught_up:
            caught_up[key] = None
        else:
            caught_up.pop(key, None)
    merged.caught_up.extend(caught_up)
    return [merged]


class ParseAndClassify:
    """`parse`, `classify` and `classified` in one call, outside a dataflow (the bench,
    tests): one `ClassifyLogic` per input partition, as in the job.

    >>> from schemas.hashing import DEV_HASH_KEY
    >>> step = ParseAndClassify(RecipientHasher(DEV_HASH_KEY))
    >>> [batch] = step([RawMessage(b"[]", "email.bounces", 0, 3, ""),
    ...                 CaughtUp("email.bounces", 0)])
    >>> [d.error for d in batch.dead], batch.caught_up, sorted(step.logics)
    (['not a JSON object but array'], ['email.bounces/0'], ['email.bounces/0'])
    """

    def __init__(self, hasher: RecipientHasher,
                 classifier: Callable[[], BounceClassifier] = BounceClassifier):
        self.parse = BatchParser(hasher)
        self.parser = self.parse.parser  # the `EventParser` (tests set its clock)
        self.classifier = classifier
        self.logics: dict[str, ClassifyLogic] = {}

    def __call__(self, messages: list[RawMessage | CaughtUp]) -> list[ParsedBatch]:
        outputs: list[tuple[str, ParsedBatch]] = []
        for key, batch in self.parse(messages):
            logic = self.logics.get(key)
            if logic is None:
                logic = self.logics[key] = ClassifyLogic(False, None, self.classifier)
            outputs += [(key, b) for b in logic.on_batch([batch])[0]]
        return merge_classified(outputs)


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


def unclassified(ev: Event, exc: Exception, raw: dict[int, bytes]) -> DeadLetter:
    """The dead letter for an event whose classification failed, with its original bytes
    (kept for bounces and deferrals, the events the classifier reads; for the others the
    position in the input names the message)."""
    return DeadLetter(internal_error(exc, "classify"), ev.topic, ev.partition, ev.offset,
                      raw.get(ev.offset) or b"")
