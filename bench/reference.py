"""Reference loops for `mailflow bench`: the same events, without mailflow.

Absolute events/s move with the machine; these two loops run on the same
broker and events in the same bench run, so mailflow's throughput can be
given as a ratio to them (a figure that travels between machines):

- `consume-parse`: a plain confluent-kafka consumer, `assign()`ed to every
  partition of the input topics from the beginning, reads to the end and
  decodes each value with orjson: the least any Python Kafka job costs.
- `loop`: a minimal hand-written job: consume, orjson, one row per event,
  inserted in blocks of 5,000 into a chDB table through clickhouse-connect
  (its ordinary `insert`). No validation, hashing, state or outputs.

Each prints one JSON line: events, seconds, events_per_s, cpu_us_per_event.
The clock starts once the consumer (and table) exist and stops when the last
message is decoded (and the last block inserted); imports and process start
are not timed. `mailflow bench` runs this file as its own process:

    python bench/reference.py consume-parse --brokers 127.0.0.1:9092 --events 200000
    python bench/reference.py loop --brokers 127.0.0.1:9092 --events 200000 \\
        --dsn chdb:///tmp/reference/clickhouse
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from schemas.topics import INPUT_TOPICS

COLUMNS = ("ts", "type", "sender", "recipient", "message_id", "campaign_id", "smtp_code",
           "source_topic", "source_partition", "source_offset")
TABLE = """CREATE TABLE IF NOT EXISTS reference_events (
    ts DateTime64(3), type LowCardinality(String), sender LowCardinality(String),
    recipient String, message_id String, campaign_id LowCardinality(String),
    smtp_code UInt16, source_topic LowCardinality(String), source_partition UInt16,
    source_offset UInt64
) ENGINE = MergeTree ORDER BY ts"""
BLOCK = 5000


def assigned_consumer(brokers: str) -> Consumer:
    """A consumer on every partition of the input topics, from the beginning."""
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": "mailflow-reference",
                         "enable.auto.commit": False, "enable.partition.eof": True})
    topics = consumer.list_topics(timeout=10).topics
    consumer.assign([TopicPartition(name, p, OFFSET_BEGINNING) for name in INPUT_TOPICS
                     if name in topics for p in topics[name].partitions])
    return consumer


def read_to_end(consumer: Consumer) -> Iterator[list]:
    """Batches of messages until every assigned partition reported its end."""
    remaining = {(tp.topic, tp.partition) for tp in consumer.assignment()}
    while remaining:
        batch = []
        # a short wait: consume() waits out its timeout whenever fewer than 1000 are left
        for msg in consumer.consume(1000, 0.01):
            if msg.error() is None:
                batch.append(msg)
            else:  # _PARTITION_EOF (or a real error: then stop rather than hang)
                remaining.discard((msg.topic(), msg.partition()))
        yield batch


def consume_parse(brokers: str) -> Callable[[], int]:
    consumer = assigned_consumer(brokers)

    def run() -> int:
        n = 0
        for batch in read_to_end(consumer):
            for msg in batch:
                orjson.loads(msg.value())
                n += 1
        return n

    return run


def row(msg) -> tuple:
    d = orjson.loads(msg.value())
    ts = d["ts"]  # RFC 3339, or epoch seconds or milliseconds (above 1e11)
    ts = (datetime.fromisoformat(ts) if isinstance(ts, str)
          else datetime.fromtimestamp(ts / 1000 if ts > 1e11 else ts, UTC))
    return (ts, d.get("type", ""), d.get("sender", ""), d.get("recipient", ""),
            d.get("message_id", ""), d.get("campaign_id") or "", d.get("smtp_code") or 0,
            msg.topic(), msg.partition(), msg.offset())


def loop(brokers: str, dsn: str) -> Callable[[], int]:
    import clickhouse_connect

    client = clickhouse_connect.get_client(dsn=dsn)
    client.command(TABLE)
    consumer = assigned_consumer(brokers)

    def run() -> int:
        rows: list[tuple] = []
        n = 0
        for batch in read_to_end(consumer):
            rows.extend(row(msg) for msg in batch)
            if len(rows) >= BLOCK:
                client.insert("reference_events", rows, column_names=COLUMNS)
                n += len(rows)
                rows = []
        if rows:
            client.insert("reference_events", rows, column_names=COLUMNS)
            n += len(rows)
        return n

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("which", choices=["consume-parse", "loop"])
    parser.add_argument("--brokers", required=True)
    parser.add_argument("--events", type=int, help="expected count (checked)")
    parser.add_argument("--dsn", default="chdb://memory", help="clickhouse-connect DSN (loop)")
    args = parser.parse_args(argv)
    run = consume_parse(args.brokers) if args.which == "consume-parse" else loop(
        args.brokers, args.dsn)
    wall, cpu = time.perf_counter(), time.process_time()
    n = run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(orjson.dumps({"reference": args.which, "events": n, "seconds": round(wall, 3),
                        "events_per_s": round(n / wall), "cpu_us_per_event":
                        round(1e6 * cpu / max(n, 1), 2)}).decode())
    if args.events is not None and n != args.events:
        print(f"read {n} events, expected {args.events}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
