"""flows/sources.py: a quiet partition is polled again after a moment, by Bytewax."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from flows.sources import IDLE_POLL, KafkaPartitionSource


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
