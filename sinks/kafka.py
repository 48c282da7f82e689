"""Kafka output: producer settings and the dataflow's Kafka sink."""

from __future__ import annotations

import logging
from itertools import chain
from typing import Any

from bytewax.connectors.kafka import KafkaSinkMessage
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from sinks.counters import NO_COUNTS, OutputFailureCounter

log = logging.getLogger(__name__)


class OutputLost(RuntimeError):
    """Kafka refused or gave up on output messages: the epoch must not be committed."""


def producer_config(**extra: str) -> dict[str, str]:
    """Durable, batched producing: wait for all in-sync replicas, compress, linger briefly."""
    config = {
        "acks": "all",
        "enable.idempotence": "true",
        "linger.ms": "20",
        "compression.type": "lz4",
        "message.max.bytes": str(2 * 1024 * 1024),
    }
    config.update(extra)
    return config


class DeliveryFailures:
    """The producer's failure reports: each one counted (`stats`, by topic and error) and
    logged with its topic and error (once per topic and error, as a broker outage fails
    thousands at a time); `check()` raises while any is unsettled.

    librdkafka retries on its own; a delivery report that carries an error is final
    (the broker refused the message: unknown or invalid topic, authorisation, size; or
    it was not acknowledged within `message.timeout.ms`), so the message is lost unless
    the epoch that produced it is replayed.
    """

    def __init__(self, stats: OutputFailureCounter = NO_COUNTS) -> None:
        self.stats = stats
        self.count = 0
        self.first = ""
        self.raised = False  # check() has raised: the dataflow is already failing
        self._logged: set[tuple[str, str]] = set()

    def on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.record(msg.topic() or "?", err)

    def on_error(self, err: KafkaError) -> None:
        """Producer-wide errors: a fatal one (e.g. the idempotent producer fenced) fails
        every later message too; the others (a broker down) are retried by librdkafka."""
        if err.fatal():
            self.record("*", err)
        else:
            log.warning("Kafka producer: %s", err.str())

    def record(self, topic: str, err: KafkaError) -> None:
        self.count += 1
        self.stats.record_output_failure(topic, err.name())
        if not self.first:
            self.first = f"{topic}: {err.str()}"
        if (topic, err.name()) not in self._logged:
            self._logged.add((topic, err.name()))
            log.error("Kafka output to %s failed: %s (%s)", topic, err.str(), err.name())

    def check(self) -> None:
        if self.count:
            self.raised = True
            raise OutputLost(f"{self.count} Kafka output message(s) not delivered (first: "
                             f"{self.first}); not committing this epoch, the job stops and "
                             "resumes from the last snapshot")


class _KafkaOutputPartition(StatefulSinkPartition):
    """Produces without waiting; the epoch's snapshot waits for every acknowledgement and
    fails if any message was refused (a snapshot must never count lost output)."""

    def __init__(self, config: dict[str, Any], stats: OutputFailureCounter = NO_COUNTS):
        self.failures = DeliveryFailures(stats)
        # only failures call back into Python: nothing on the hot path when all is well
        self._producer = Producer({**config, "on_delivery": self.failures.on_delivery,
                                   "delivery.report.only.error": True,
                                   "error_cb": self.failures.on_error})

    def write_batch(self, values: list[list[KafkaSinkMessage]]) -> None:
        self.failures.check()  # stop producing into an epoch that cannot commit
        produce = self._producer.produce
        for msg in chain.from_iterable(values):
            while True:
                try:
                    produce(msg.topic, msg.value, msg.key)
                    break
                except BufferError:  # the local queue is full: let librdkafka drain it
                    self._producer.poll(0.05)
                except KafkaException as exc:  # refused before sending, e.g. too large
                    self.failures.record(msg.topic, exc.args[0])
                    break
        self._producer.poll(0)
        self.failures.check()

    def snapshot(self) -> None:
        # Everything produced before this epoch's snapshot must be in Kafka before the
        # snapshot counts, or a crash would skip it on resume: fail loudly instead.
        remaining = self._producer.flush(60)
        if remaining:
            raise OutputLost(f"{remaining} Kafka messages unacknowledged after 60 s")
        self.failures.check()
        return None

    def close(self) -> None:
        self._producer.flush(60)
        # Raising again while Bytewax unwinds from the first failure would abort the
        # process (a panic in a destructor) and hide the first error's message.
        if not self.failures.raised:
            self.failures.check()


class KafkaOutput(FixedPartitionedSink):
    """Kafka output for lists of messages that name their topic
    (`("kafka", [KafkaSinkMessage, ...])`).

    Bytewax's `KafkaSink` flushes after every batch, which blocks the worker on a
    broker round trip many times a second; this sink flushes once per epoch (in the
    snapshot) and at close, keeping at-least-once delivery. Lost messages are counted
    by `stats` (the job passes its `STATS`; by default nothing is counted).
    """

    def __init__(self, brokers: list[str], config: dict[str, str] | None = None,
                 stats: OutputFailureCounter = NO_COUNTS):
        self.stats = stats
        self.config = {**producer_config(), **(config or {}),
                       "bootstrap.servers": ",".join(brokers)}

    def list_parts(self) -> list[str]:
        return ["kafka"]

    def part_fn(self, item_key: str) -> int:
        return 0

    def build_part(self, step_id: str, for_part: str, resume_state: None
                   ) -> _KafkaOutputPartition:
        return _KafkaOutputPartition(self.config, self.stats)
