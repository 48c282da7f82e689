"""Input wiring: a Kafka source that knows when each partition is caught up.

`KafkaPartitionSource` reads every partition of the input topics with
`assign()` (no consumer group: offsets live in Bytewax snapshots) and hands
the dataflow plain `RawMessage` tuples, and a `CaughtUp` marker when the
consumer reported end-of-partition after the last message it returned. That
is the only reliable "nothing more to read right now" signal (empty polls also
happen while a fetch is in flight, and Tansu can report a high watermark that
is too low). The marker travels through the dataflow like data, so the
event-time gate learns it on whichever worker or process it runs: it must not
wait for a caught-up partition, nor skip one that is merely slow.

Stopping: raising out of a Bytewax callback (what Ctrl-C does by default)
panics the Rust runtime mid-batch. Instead a stop request (`STOP`) makes every
partition report end of input at its next poll; the dataflow then flushes
every window and sink and returns normally.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from mailflow.stats import STATS

log = logging.getLogger(__name__)

#: Set by the job's SIGTERM/SIGINT handler.
STOP = threading.Event()
#: How soon a partition whose last poll returned nothing is polled again.
IDLE_POLL = timedelta(milliseconds=2)


class RawMessage(NamedTuple):
    value: bytes | None
    topic: str
    partition: int
    offset: int
    error: str  # "" unless the consumer reported an error for this message


class CaughtUp(NamedTuple):
    """Marker in the stream: the partition has nothing more to read right now."""

    topic: str
    partition: int


def partition_id(topic: str, partition: int) -> str:
    return f"{topic}/{partition}"


class _KafkaPartition(StatefulSourcePartition):
    def __init__(self, config: dict[str, Any], topic: str, index: int, offset: int,
                 batch_size: int, tail: bool, stop: threading.Event):
        self._consumer = Consumer(config)
        self._consumer.assign([TopicPartition(topic, index, offset)])
        self._topic, self._index, self._offset = topic, index, offset
        self._name = partition_id(topic, index)
        self._batch_size, self._tail, self._stop = batch_size, tail, stop
        self._eof = False
        self._lag_checked = 0.0
        self._announced = False  # CaughtUp sent since the last message?
        self._quiet = False  # the last poll returned nothing

    def next_batch(self) -> list[RawMessage | CaughtUp]:
        if self._stop.is_set() or self._eof:
            raise StopIteration()
        batch: list[RawMessage | CaughtUp] = []
        reached_end = False
        # Never block: one worker thread polls every partition in turn, and a 1 ms wait
        # on each of ~20 quiet partitions put a floor of ~35 ms under every decision. A
        # quiet partition is polled again after IDLE_POLL (`next_awake`).
        for msg in self._consumer.consume(self._batch_size, 0):
            err = msg.error()
            if err is None:
                batch.append(RawMessage(msg.value(), self._topic, self._index, msg.offset(), ""))
                self._offset = msg.offset() + 1
                reached_end = False
            elif err.code() == KafkaError._PARTITION_EOF:
                reached_end = True
            else:  # surfaced to the dead-letter path with its position, never dropped
                log.warning("consumer error on %s: %s", self._name, err)
                if msg.offset() is not None and msg.offset() >= 0:
                    batch.append(RawMessage(msg.value(), self._topic, self._index,
                                            msg.offset(), str(err)))
        self._quiet = not batch
        if batch:
            self._announced = False
            STATS.record_input(len(batch))
        now = time.monotonic()
        if now - self._lag_checked >= 1.0:  # the consumer's cached view: no broker call
            self._lag_checked = now
            try:
                _low, high = self._consumer.get_watermark_offsets(
                    TopicPartition(self._topic, self._index), cached=True)
                if high >= 0:
                    STATS.consumer_lag[self._name] = max(0, high - self._offset)
            except KafkaException:
                pass
        if reached_end and not self._announced:
            # Travels with the data (to whichever worker or process runs the gate), once
            # per catch-up: the gate stops waiting for this partition until it moves again.
            batch.append(CaughtUp(self._topic, self._index))
            self._announced = True
        if reached_end:
            if not self._tail:
                self._eof = True  # deliver this batch; stop at the next call
        return batch

    def next_awake(self) -> datetime | None:
        return datetime.now(UTC) + IDLE_POLL if self._quiet else None

    def snapshot(self) -> int:
        return self._offset

    def close(self) -> None:
        self._consumer.close()


class KafkaPartitionSource(FixedPartitionedSource):
    """Every partition of `topics`, from the snapshot offset or the beginning."""

    def __init__(self, brokers: list[str], topics: list[str], tail: bool = True,
                 batch_size: int = 1000, add_config: dict[str, str] | None = None,
                 stop: threading.Event = STOP):
        self.brokers, self.topics, self.tail = brokers, list(topics), tail
        self.batch_size = batch_size
        self.add_config = dict(add_config or {})
        self.stop = stop

    def partition_ids(self) -> list[str]:
        """Every input partition as "topic/partition" (what the gate waits for)."""
        return [partition_id(part.split("-", 1)[1], int(part.split("-", 1)[0]))
                for part in self.list_parts()]

    def list_parts(self) -> list[str]:
        admin = AdminClient({"bootstrap.servers": ",".join(self.brokers)})
        parts = []
        for topic in self.topics:
            meta = admin.list_topics(topic, timeout=15).topics[topic]
            if meta.error is not None:
                raise RuntimeError(f"cannot list partitions of {topic}: {meta.error.str()}")
            parts += [f"{index}-{topic}" for index in sorted(meta.partitions)]
        return parts

    def build_part(self, step_id: str, for_part: str, resume_state: int | None
                   ) -> _KafkaPartition:
        index, topic = for_part.split("-", 1)
        config = {
            "bootstrap.servers": ",".join(self.brokers),
            "group.id": "mailflow-unused",  # assign() only; offsets live in snapshots
            "enable.auto.commit": "false",
            "enable.partition.eof": "true",  # the caught-up signal, in tail mode too
            **self.add_config,
        }
        offset = OFFSET_BEGINNING if resume_state is None else resume_state
        return _KafkaPartition(config, topic, int(index), offset, self.batch_size, self.tail,
                               self.stop)
