"""flows/sources.py: a quiet partition is polled again after a moment, by Bytewax; a resume
offset the partition no longer holds reads from the earliest offset, counted."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from confluent_kafka import Producer

from flows.sources import IDLE_POLL, KafkaPartitionSource, RawMessage
from mailflow.stats import STATS


def test_a_quiet_partition_returns_at_once_and_asks_to_be_polled_again_soon():
    # nothing listens on port 9: every poll is empty
    source = KafkaPartitionSource(["127.0.0.1:9"], ["email.deliveries"],
                                  stop=threading.Event())
    part = source.build_part("kafka_in", "0-email.deliveries", None)
    try:
        assert part.next_awake() is None  # before any poll: read at once
        assert part.next_batch() == []
        # Bytewax waits until then instead of the partition blocking in consume()
        wake = part.next_awake()
        assert wake is not None and wake - datetime.now(UTC) <= IDLE_POLL
    finally:
        part.close()


# -- resuming where the input is gone (a snapshot offset out of retention, or past the end)

TOPIC = "email.opens"


def fill(bootstrap: str, n: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(n):
        producer.produce(TOPIC, f"m{i}".encode(), partition=0)
    assert producer.flush(30) == 0


def read_until(part, offsets: int, limit_s: float = 60) -> list[int]:
    """Offsets of the first `offsets` messages the partition returns."""
    got: list[int] = []
    deadline = time.monotonic() + limit_s
    while len(got) < offsets and time.monotonic() < deadline:
        got += [m.offset for m in part.next_batch() if isinstance(m, RawMessage)]
        time.sleep(0.01)
    return got


def resets() -> int:
    return STATS.offset_resets[f"{TOPIC}/0"]


def test_consumers_never_skip_to_the_end_of_a_partition():
    source = KafkaPartitionSource(["127.0.0.1:9"], [TOPIC], stop=threading.Event())
    assert source.consumer_config()["auto.offset.reset"] == "earliest"


def test_a_resume_offset_past_the_end_reads_from_the_earliest_and_is_counted(broker, caplog):
    # e.g. the topic was recreated: its offsets start again from 0. (Kafka answers the
    # fetch with OFFSET_OUT_OF_RANGE; Tansu answers with nothing, for ever.)
    fill(broker.bootstrap, 10)
    before = resets()
    source = KafkaPartitionSource([broker.bootstrap], [TOPIC], stop=threading.Event())
    part = source.build_part("kafka_in", f"0-{TOPIC}", 1000)
    try:
        assert read_until(part, 10) == list(range(10))
        assert part.snapshot() == 10
    finally:
        part.close()
    assert resets() == before + 1
    assert any("past the end" in r.getMessage() and f"{TOPIC}/0" in r.getMessage()
               for r in caplog.records)
    assert f'mailflow_offset_resets_total{{partition="{TOPIC}/0"}}' in STATS.prometheus()


def test_a_resume_offset_inside_the_partition_is_kept(broker):
    fill(broker.bootstrap, 10)
    before = resets()
    source = KafkaPartitionSource([broker.bootstrap], [TOPIC], stop=threading.Event())
    part = source.build_part("kafka_in", f"0-{TOPIC}", 4)
    try:
        assert read_until(part, 6) == list(range(4, 10))
        assert part.snapshot() == 10
    finally:
        part.close()
    # the end of the partition (offset 10) is where a caught-up job resumes: no reset,
    # however often the watermarks are checked (once a second)
    part = source.build_part("kafka_in", f"0-{TOPIC}", 10)
    try:
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            assert not [m for m in part.next_batch() if isinstance(m, RawMessage)]
            time.sleep(0.01)
        assert part.snapshot() == 10
    finally:
        part.close()
    assert resets() == before


def test_a_message_from_an_earlier_offset_than_expected_is_counted_as_a_reset(broker):
    # What Kafka's OFFSET_OUT_OF_RANGE + auto.offset.reset=earliest looks like from here:
    # the next message comes from an offset before the one expected. Tansu never answers
    # OFFSET_OUT_OF_RANGE, so the expected offset is moved ahead by hand.
    fill(broker.bootstrap, 10)
    before = resets()
    source = KafkaPartitionSource([broker.bootstrap], [TOPIC], stop=threading.Event())
    part = source.build_part("kafka_in", f"0-{TOPIC}", 2)
    try:
        part._offset = 7  # noqa: SLF001 - stands in for the broker's reset
        assert read_until(part, 8) == list(range(2, 10))
    finally:
        part.close()
    assert resets() == before + 1
