"""Input wiring: the Kafka source, stoppable so shutdown drains instead of aborting.

Raising out of a Bytewax callback (what Ctrl-C does by default) panics the
Rust runtime mid-batch. Instead, a stop request makes every input partition
report end-of-input at its next poll; the dataflow then flushes every window
and sink and returns normally.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

from bytewax.connectors.kafka import KafkaSource
from bytewax.inputs import StatefulSourcePartition

#: Set by the job's SIGTERM/SIGINT handler.
STOP = threading.Event()


class _StoppablePartition(StatefulSourcePartition):
    def __init__(self, inner: StatefulSourcePartition, stop: threading.Event):
        self._inner = inner
        self._stop = stop

    def next_batch(self) -> list[Any]:
        if self._stop.is_set():
            raise StopIteration()
        return self._inner.next_batch()

    def next_awake(self) -> datetime | None:
        return self._inner.next_awake()

    def snapshot(self) -> Any:
        return self._inner.snapshot()

    def close(self) -> None:
        self._inner.close()


class StoppableKafkaSource(KafkaSource):
    """`KafkaSource` whose partitions end cleanly once `stop` is set."""

    def __init__(self, *args: Any, stop: threading.Event = STOP, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._stop = stop

    def build_part(self, step_id: str, for_part: str, resume_state: Any) -> _StoppablePartition:
        return _StoppablePartition(super().build_part(step_id, for_part, resume_state),
                                   self._stop)
