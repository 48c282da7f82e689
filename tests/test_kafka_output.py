"""sinks/kafka.py: an output message Kafka refused or never acknowledged fails the epoch.

Without delivery reports, `flush()` returns 0 for a message that failed (it is no
longer queued), so the snapshot committed and the output was lost for good. Against
the real broker (Tansu 0.6), the failures it really produces:
- an invalid topic name: the broker answers `TOPIC_EXCEPTION` (Invalid topic);
- the broker gone for longer than `message.timeout.ms`: `_MSG_TIMED_OUT`;
- a message above the producer's `message.max.bytes`: refused before sending.
(Tansu accepts a topic's `max.message.bytes` at creation but does not enforce it: a
1.9 MB message goes into a topic created with 1000, so that case cannot be shown.)
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from bytewax.connectors.kafka import KafkaSinkMessage

from flows.stats import STATS
from mailflow.broker import EmbeddedBroker
from schemas.topics import THROTTLE
from sinks.kafka import KafkaOutput, OutputLost
from tests.conftest import ROOT, consume_all

INVALID_TOPIC = "not a valid topic!"


def output_part(bootstrap: str, **config: str):
    return KafkaOutput([bootstrap], config=config, stats=STATS).build_part(
        "kafka_out", "kafka", None)


def failures(topic: str, error: str) -> int:
    return STATS.output_failures[(topic, error)]


def test_a_refused_message_fails_the_snapshot_and_is_counted(broker, caplog):
    before = failures(INVALID_TOPIC, "TOPIC_EXCEPTION")
    part = output_part(broker.bootstrap)
    with pytest.raises(OutputLost, match="not delivered.*Invalid topic"):
        part.write_batch([[KafkaSinkMessage(b"k", b"kept", topic=THROTTLE),
                           KafkaSinkMessage(b"k", b"lost", topic=INVALID_TOPIC)]])
        part.snapshot()  # (write_batch raises instead if the report is already in)
    assert failures(INVALID_TOPIC, "TOPIC_EXCEPTION") == before + 1
    assert any(INVALID_TOPIC in r.getMessage() and "Invalid topic" in r.getMessage()
               for r in caplog.records)
    assert 'error="TOPIC_EXCEPTION"' in STATS.prometheus()
    # later batches of the failed epoch are not produced
    with pytest.raises(OutputLost):
        part.write_batch([[KafkaSinkMessage(b"k", b"after", topic=THROTTLE)]])
    part.close()  # already raised: Bytewax closes while unwinding, a second raise aborts
    assert [m.value() for m in consume_all(broker.bootstrap, THROTTLE)] == [b"kept"]


def test_delivered_output_snapshots_as_before(broker):
    part = output_part(broker.bootstrap)
    part.write_batch([[KafkaSinkMessage(b"k", f"v{i}".encode(), topic=THROTTLE)
                       for i in range(100)]])
    assert part.snapshot() is None
    part.close()
    assert len(consume_all(broker.bootstrap, THROTTLE)) == 100


def test_output_unacknowledged_past_the_timeout_fails_the_snapshot():
    broker = EmbeddedBroker().start()
    try:
        part = output_part(broker.bootstrap, **{"message.timeout.ms": "1500"})
        part.write_batch([[KafkaSinkMessage(b"k", b"v", topic=THROTTLE)]])
        assert part.snapshot() is None
    finally:
        broker.stop()
    before = failures(THROTTLE, "_MSG_TIMED_OUT")
    part.write_batch([[KafkaSinkMessage(b"k", b"while the broker is down", topic=THROTTLE)]])
    with pytest.raises(OutputLost, match="timed out"):
        part.snapshot()
    assert failures(THROTTLE, "_MSG_TIMED_OUT") == before + 1


def test_a_message_too_large_for_the_producer_fails_the_epoch(broker):
    before = failures(THROTTLE, "MSG_SIZE_TOO_LARGE")
    part = output_part(broker.bootstrap, **{"message.max.bytes": "100000"})
    with pytest.raises(OutputLost, match="too large"):
        part.write_batch([[KafkaSinkMessage(b"k", b"x" * 200_000, topic=THROTTLE)]])
    assert failures(THROTTLE, "MSG_SIZE_TOO_LARGE") == before + 1


FLOW = """
import sys
from bytewax import operators as op
from bytewax.connectors.kafka import KafkaSinkMessage
from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig
from bytewax.testing import TestingSource, run_main
from sinks.kafka import KafkaOutput

bootstrap, recovery, bad_topic = sys.argv[1:]
flow = Dataflow("lost_output")
items = op.input("inp", flow, TestingSource([b"first", b"refused", b"last"]))
messages = op.map("to_kafka", items, lambda v: ("kafka", [KafkaSinkMessage(
    b"k", v, topic=bad_topic if v == b"refused" else "mailflow.throttle")]))
op.output("kafka_out", messages, KafkaOutput([bootstrap]))
run_main(flow, recovery_config=RecoveryConfig(recovery))
"""


def test_a_dataflow_with_lost_output_stops_and_its_resume_replays_it(broker, tmp_path):
    from bytewax.recovery import init_db_dir

    init_db_dir(tmp_path, 1)
    script = tmp_path / "flow.py"
    script.write_text(FLOW)

    def run(bad_topic: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(script), broker.bootstrap, str(tmp_path),
                               bad_topic], cwd=ROOT, capture_output=True, text=True,
                              timeout=120)

    failed = run(INVALID_TOPIC)
    assert failed.returncode != 0 and "not delivered" in failed.stderr, failed.stderr[-2000:]
    # the epoch was not committed: once the topic problem is fixed, the resumed run
    # produces the refused message (a committed epoch would have skipped it)
    resumed = run(THROTTLE)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    values = [m.value() for m in consume_all(broker.bootstrap, THROTTLE)]
    assert {b"first", b"refused", b"last"} <= set(values)
