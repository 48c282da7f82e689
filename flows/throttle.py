"""The throttle step: one `ThrottleBook` per sender ("s:<sender>") and per provider
("p:<domain>"), each fed its signals in event-time order by one shard; and the
decisions' way out (ClickHouse rows, `mailflow.throttle` records)."""

from __future__ import annotations

import copy
import time
from collections import Counter
from typing import NamedTuple

import bytewax.operators as op
import orjson
from bytewax.connectors.kafka import KafkaSinkMessage

from flows.stats import STATS
from operators.throttle import Decision, Signal, ThrottleBook, ThrottlePolicy
from schemas import rows as out
from schemas.topics import THROTTLE


class ThrottleLogic(op.StatefulBatchLogic):
    """One `ThrottleBook` per key ("s:<sender>" or "p:<domain>"); snapshots copy the book."""

    def __init__(self, policy: ThrottlePolicy, resume: ThrottleBook | None):
        self.policy = policy
        self.book = resume
        if resume is not None:
            # A snapshot holds what was counted, not the thresholds: today's policy applies.
            resume.policy = policy

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




class DecisionOutput(NamedTuple):
    rows: list[tuple]  # for mailflow.throttle_decisions
    kafka: list[KafkaSinkMessage]  # for the mailflow.throttle topic


def decision_outputs(decisions: list[Decision]) -> list[DecisionOutput]:
    """Each decision once for ClickHouse and once for `mailflow.throttle`."""
    if not decisions:
        return []
    now_ms = int(time.time() * 1000)
    STATS.record_decisions(Counter(d.action for d in decisions))
    return [DecisionOutput(
        [out.decision_row(d, now_ms) for d in decisions],
        [KafkaSinkMessage(out.decision_key(d), orjson.dumps(out.decision_record(d, now_ms)),
                          topic=THROTTLE) for d in decisions])]
