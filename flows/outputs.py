"""The way out: rows batched per table for ClickHouse, and records for Kafka."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import bytewax.operators as op
import orjson
from bytewax.connectors.kafka import KafkaSinkMessage

from flows.parse import ControlBatch, ParsedBatch
from operators.batching import RowBatcher
from schemas import rows as out
from schemas.control import Erasure
from schemas.topics import DLQ, SUPPRESSIONS


def _carries(erasure: Erasure, row: tuple) -> bool:
    return row[erasure.column] == erasure.recipient_hash


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




def suppression_messages(batch: ParsedBatch) -> list[KafkaSinkMessage] | None:
    return [KafkaSinkMessage(ev.recipient_hash.encode(),
                             orjson.dumps(out.suppression_record(ev, reason)), topic=SUPPRESSIONS)
            for ev, reason in batch.suppressions] or None


def dead_letter_messages(batch: ParsedBatch | ControlBatch) -> list[KafkaSinkMessage] | None:
    return [KafkaSinkMessage(key=f"{d.topic}:{d.partition}:{d.offset}".encode(),
                             value=d.to_json(), topic=DLQ) for d in batch.dead] or None


