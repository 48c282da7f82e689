"""flows/sources.py: a quiet partition is polled again after a moment, by Bytewax; a resume
offset the partition no longer holds reads from the earliest offset, counted."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest
from confluent_kafka import Producer

from flows.sources import IDLE_POLL, KafkaPartitionSource, RawMessage
from flows.stats import STATS
from mailflow.broker import EmbeddedBroker, ensure_topics
from schemas.topics import INPUT_TOPICS
from tests.conftest import mailflow_cmd, query_store


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


def produce_traffic(bootstrap: str, seed: int, rate: float, start: float) -> None:
    from mailflow.generator import TrafficGenerator

    producer = Producer({"bootstrap.servers": bootstrap})
    for ev in TrafficGenerator(seed=seed, start=start).events(rate, 60):
        producer.produce(ev.topic, ev.value, ev.key)
    assert producer.flush(30) == 0


@pytest.mark.integration
def test_a_job_resumed_against_recreated_topics_reads_them_from_the_beginning(broker, tmp_path):
    # The snapshot's offsets point past the end of the new topics. Before: the job
    # waited there for ever (Tansu) or skipped to the end (Kafka, auto.offset.reset=latest).
    resumed_dir, fresh_dir = tmp_path / "resumed", tmp_path / "fresh"
    env = {"MAILFLOW_ADMIN_PORT": "0", "MAILFLOW_LOG_FORMAT": "json"}
    produce_traffic(broker.bootstrap, seed=4, rate=20, start=1_795_000_000)
    # every old partition ends beyond where its recreated one will: 40 dead letters each
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for topic in INPUT_TOPICS:
        for partition in range(3):
            for _ in range(40):
                producer.produce(topic, b"not json", partition=partition)
    assert producer.flush(30) == 0
    mailflow_cmd("run", "--dev", "--no-tail", "--brokers", broker.bootstrap,
                 "--data-dir", str(resumed_dir), env=env)
    with EmbeddedBroker() as recreated:
        ensure_topics(recreated.bootstrap, partitions=3)
        produce_traffic(recreated.bootstrap, seed=5, rate=1, start=1_795_100_000)
        resumed = mailflow_cmd("run", "--dev", "--no-tail", "--brokers", recreated.bootstrap,
                               "--data-dir", str(resumed_dir), env=env, timeout=240)
        # what a job with no snapshot reads from the recreated topics
        mailflow_cmd("run", "--dev", "--no-tail", "--brokers", recreated.bootstrap,
                     "--data-dir", str(fresh_dir), env=env, timeout=240)
    assert "past the end of the partition" in resumed.stderr
    new_events = ("SELECT count() FROM mailflow.events FINAL "
                  "WHERE ts >= toDateTime64(1795100000, 3)")
    read = query_store(resumed_dir, new_events)[0][0]
    assert read > 0 and read == query_store(fresh_dir, new_events)[0][0]
