"""Kafka output: producer settings and the dataflow's Kafka sink."""

from __future__ import annotations

from itertools import chain

from bytewax.connectors.kafka import KafkaSinkMessage
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition
from confluent_kafka import Producer


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


class _KafkaOutputPartition(StatefulSinkPartition):
    """Produces without waiting; the epoch's snapshot waits for every acknowledgement."""

    def __init__(self, config: dict[str, str]):
        self._producer = Producer(config)

    def write_batch(self, values: list[list[KafkaSinkMessage]]) -> None:
        produce = self._producer.produce
        for msg in chain.from_iterable(values):
            while True:
                try:
                    produce(msg.topic, msg.value, msg.key)
                    break
                except BufferError:  # the local queue is full: let librdkafka drain it
                    self._producer.poll(0.05)
        self._producer.poll(0)

    def snapshot(self) -> None:
        # Everything produced before this epoch's snapshot must be in Kafka before the
        # snapshot counts, or a crash would skip it on resume: fail loudly instead.
        remaining = self._producer.flush(60)
        if remaining:
            raise RuntimeError(f"{remaining} Kafka messages unacknowledged after 60 s")
        return None

    def close(self) -> None:
        self._producer.flush(60)


class KafkaOutput(FixedPartitionedSink):
    """Kafka output for lists of messages that name their topic
    (`("kafka", [KafkaSinkMessage, ...])`).

    Bytewax's `KafkaSink` flushes after every batch, which blocks the worker on a
    broker round trip many times a second; this sink flushes once per epoch (in the
    snapshot) and at close, keeping at-least-once delivery.
    """

    def __init__(self, brokers: list[str], config: dict[str, str] | None = None):
        self.config = {**producer_config(), **(config or {}),
                       "bootstrap.servers": ",".join(brokers)}

    def list_parts(self) -> list[str]:
        return ["kafka"]

    def part_fn(self, item_key: str) -> int:
        return 0

    def build_part(self, step_id: str, for_part: str, resume_state: None
                   ) -> _KafkaOutputPartition:
        return _KafkaOutputPartition(self.config)
