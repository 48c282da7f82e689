"""sinks/client.py: the in-process decision view never skips decisions it could still read."""

from __future__ import annotations

from sinks.client import ThrottleClient


def test_a_position_no_longer_held_reads_on_from_the_earliest_record():
    # librdkafka's default, `latest`, would jump past every decision after the gap
    assert ThrottleClient("127.0.0.1:9").consumer_config()["auto.offset.reset"] == "earliest"
