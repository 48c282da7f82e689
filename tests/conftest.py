"""Shared fixtures: the real embedded broker (Tansu) and real chDB stores."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from mailflow.broker import EmbeddedBroker, ensure_topics
from sinks.clickhouse import ClickHouseStore

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    """A fresh Tansu broker on a free loopback port (starts in ~50 ms), topics created."""
    with EmbeddedBroker() as running:
        ensure_topics(running.bootstrap, partitions=3)
        yield running
        # Tansu's SIGTERM waits for its clients to hang up, and stop() gives it 5 s before
        # SIGKILL: a producer the test dropped inside a reference cycle (an IngestCore, say)
        # stays connected until the cycle collector runs. Collect now: the broker stops at once.
        gc.collect()


def mailflow_cmd(*args: str, env: dict[str, str] | None = None, timeout: float = 300,
                 check: bool = True) -> subprocess.CompletedProcess:
    """Run `python -m mailflow ARGS` as its own process (chDB: one store per process)."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "mailflow", *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"mailflow {' '.join(args)} exited {proc.returncode}\n"
                             f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-5000:]}")
    return proc


def query_store(data_dir: Path, sql: str) -> list[tuple]:
    """Open the job's chDB store (after the job exited), query, close again."""
    store = ClickHouseStore(f"chdb://{data_dir / 'clickhouse'}")
    try:
        return store.query(sql)[1]
    finally:
        store.close()


def consume_all(bootstrap: str, topic: str, partitions: int = 3,
                timeout: float = 30.0) -> list:
    """Every message of a topic, read to end-of-partition (never by watermark)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"test-{time.time()}",
                         "enable.partition.eof": True, "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, -2) for p in range(partitions)])
    messages, eof = [], set()
    deadline = time.monotonic() + timeout
    while len(eof) < partitions and time.monotonic() < deadline:
        for msg in consumer.consume(1000, 0.5):
            if msg.error():
                eof.add(msg.partition())
            else:
                messages.append(msg)
    consumer.close()
    assert len(eof) == partitions, f"{topic}: end of partitions not reached in {timeout}s"
    return messages
