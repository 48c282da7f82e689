"""Input wiring: the Kafka source, stoppable so shutdown drains instead of aborting,
and reporting which partitions are idle (for the event-time gate).

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


class PartitionActivity:
    """Which input partitions of this process have nothing to read right now.

    A partition is idle after `empty_polls` polls in a row returned nothing
    (or at end of input); the event-time gate then stops waiting for it.
    """

    def __init__(self, empty_polls: int = 2):
        self.empty_polls = empty_polls
        self._empty: dict[str, int] = {}
        self._done: set[str] = set()
        self.partitions: set[str] = set()

    def register(self, partition: str) -> None:
        self.partitions.add(partition)

    def polled(self, partition: str, count: int) -> None:
        self._empty[partition] = 0 if count else self._empty.get(partition, 0) + 1

    def finished(self, partition: str) -> None:
        self._done.add(partition)

    def idle(self) -> set[str]:
        limit = self.empty_polls
        return {p for p, n in list(self._empty.items()) if n >= limit} | self._done

    def reset(self) -> None:
        self.partitions.clear()
        self._empty.clear()
        self._done.clear()


ACTIVITY = PartitionActivity()


def partition_id(topic: str, partition: int) -> str:
    return f"{topic}/{partition}"


class _StoppablePartition(StatefulSourcePartition):
    def __init__(self, inner: StatefulSourcePartition, stop: threading.Event, name: str):
        self._inner = inner
        self._stop = stop
        self._name = name

    def next_batch(self) -> list[Any]:
        if self._stop.is_set():
            ACTIVITY.finished(self._name)
            raise StopIteration()
        try:
            batch = self._inner.next_batch()
        except StopIteration:
            ACTIVITY.finished(self._name)
            raise
        ACTIVITY.polled(self._name, len(batch))
        return batch

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
        index, topic = for_part.split("-", 1)
        ACTIVITY.register(partition_id(topic, int(index)))
        return _StoppablePartition(super().build_part(step_id, for_part, resume_state),
                                   self._stop, partition_id(topic, int(index)))
