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

Resuming where the input is gone: a snapshot's offset can fall out of retention
(below the partition's first offset) or lie past its end (the topic was
recreated). The consumer then starts from the earliest offset still held
(`auto.offset.reset=earliest`: never skip a backlog), and the reset is logged and
counted (`mailflow_offset_resets_total`) wherever it is noticed: on resume
(offset below the low watermark), when the broker reports a high watermark below
the offset (Tansu answers such a fetch with nothing, forever, instead of
OFFSET_OUT_OF_RANGE: the partition seeks to the beginning itself), or when a
message arrives at an offset that went back, or jumped past records that expired.

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

from flows.stats import STATS

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
        self._topic, self._index = topic, index
        self._name = partition_id(topic, index)
        if offset >= 0:
            offset = self._resume_offset(offset)
        self._consumer.assign([TopicPartition(topic, index, offset)])
        self._offset = offset  # the next offset expected (negative: not known yet)
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
                if msg.offset() != self._offset and self._offset >= 0:
                    self._moved(msg.offset())
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
                low, high = self._consumer.get_watermark_offsets(
                    TopicPartition(self._topic, self._index), cached=True)
                if high >= 0:
                    STATS.consumer_lag[self._name] = max(0, high - self._offset)
                if not batch and 0 <= high < self._offset:
                    self._past_the_end(max(low, 0), high)
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

    def _resume_offset(self, offset: int) -> int:
        """The snapshot's offset, or the beginning if retention has removed it. (Only
        the low watermark is asked: Tansu's ListOffsets can report a high watermark
        below the real end, see `_past_the_end` for that side.)"""
        try:
            low, _high = self._consumer.get_watermark_offsets(
                TopicPartition(self._topic, self._index), timeout=10, cached=False)
        except KafkaException as exc:  # the consumer's own reset (earliest) still applies
            log.warning("%s: cannot check the resume offset %d (%s)", self._name, offset, exc)
            return offset
        if offset < low:
            self._reset(f"resume offset {offset} is below the first offset held, {low} "
                        "(removed by retention)")
            return low
        return offset

    def _moved(self, offset: int) -> None:
        """A message not at the expected offset: a reset, unless only a gap (transaction
        markers, compaction) lies between."""
        if offset < self._offset:
            self._reset(f"offset went back from {self._offset} to {offset} (the expected "
                        "offset was past the end of the partition: topic recreated?)")
            return
        try:
            low, _high = self._consumer.get_watermark_offsets(
                TopicPartition(self._topic, self._index), cached=True)
        except KafkaException:
            return
        if low > self._offset:
            self._reset(f"offsets {self._offset}..{low - 1} were removed by retention before "
                        f"they were read; reading from {offset}")

    def _past_the_end(self, low: int, high: int) -> None:
        self._reset(f"offset {self._offset} is past the end of the partition ({high}): "
                    "topic recreated?")
        self._consumer.assign([TopicPartition(self._topic, self._index, OFFSET_BEGINNING)])
        self._offset = low
        self._announced = False

    def _reset(self, why: str) -> None:
        STATS.record_offset_reset(self._name)
        log.warning("input %s: %s; reading from the earliest offset held", self._name, why)

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

    def consumer_config(self) -> dict[str, str]:
        return {
            "bootstrap.servers": ",".join(self.brokers),
            "group.id": "mailflow-unused",  # assign() only; offsets live in snapshots
            "enable.auto.commit": "false",
            "enable.partition.eof": "true",  # the caught-up signal, in tail mode too
            # an offset no longer held: read what is there, never skip to the end
            "auto.offset.reset": "earliest",
            **self.add_config,
        }

    def build_part(self, step_id: str, for_part: str, resume_state: int | None
                   ) -> _KafkaPartition:
        index, topic = for_part.split("-", 1)
        config = self.consumer_config()
        offset = OFFSET_BEGINNING if resume_state is None else resume_state
        return _KafkaPartition(config, topic, int(index), offset, self.batch_size, self.tail,
                               self.stop)
