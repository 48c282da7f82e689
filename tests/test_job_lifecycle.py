"""The job as users run it: the demo end to end, and SIGTERM draining without loss."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

import orjson
import pytest
from confluent_kafka import Producer

from mailflow.generator import TrafficGenerator
from schemas.topics import EVENT_TYPES
from sinks.clickhouse import ClickHouseStore
from tests.conftest import ROOT, mailflow_cmd, query_store

pytestmark = pytest.mark.integration


def test_demo_runs_and_leaves_every_event_type_queryable(tmp_path):
    env = {"MAILFLOW_DATA_DIR": str(tmp_path), "MAILFLOW_ADMIN_PORT": "0",
           "MAILFLOW_API_PORT": "0", "MAILFLOW_KAFKA_BROKERS": "",
           "MAILFLOW_CLICKHOUSE_URL": ""}
    demo = mailflow_cmd("demo", "--seconds", "12", "--lift-days", "5", env=env, timeout=240)
    assert "processed" in demo.stdout and "mailflow sql" in demo.stdout
    # the console ran beside the job, and said where before the traffic began
    assert demo.stdout.index("console: http://127.0.0.1:") < demo.stdout.index("processed")
    assert "console query" not in (tmp_path / "demo-console.log").read_text()  # no failures
    out = mailflow_cmd("sql", "SELECT type, count() AS n FROM mailflow.events GROUP BY type",
                       "--format", "json", env=env).stdout
    counts = {row["type"]: int(row["n"]) for row in orjson.loads(out)}
    # every type but holdouts (the demo's control-group act has its own store, below)
    assert set(counts) == set(EVENT_TYPES) - {"holdout"}, sorted(set(EVENT_TYPES) - set(counts))
    dead = int(demo.stdout.split("dead letters ")[-1].split(";")[0].replace(",", ""))
    assert dead > 0  # the demo feeds malformed messages on purpose

    # Every ready query of the README runs on the demo's data and returns rows.
    queries = readme_queries()
    assert len(queries) >= 8
    store = ClickHouseStore(f"chdb://{tmp_path / 'clickhouse'}")
    try:
        for number, sql in enumerate(queries, 1):
            columns, rows = store.query(sql)
            assert rows, f"README query {number} returned no rows:\n{sql}"
    finally:
        store.close()

    # The control-group act: its traffic through the job, the report, the lift queries.
    assert "flow onboarding" in demo.stdout and "flow winback" in demo.stdout
    assert "SPLIT BROKEN" not in demo.stdout
    store = ClickHouseStore(f"chdb://{tmp_path / 'lift' / 'clickhouse'}")
    try:
        lift_queries = readme_queries("lift-queries")
        assert len(lift_queries) >= 2
        for sql in lift_queries:
            assert store.query(sql)[1], sql
    finally:
        store.close()


def readme_queries(marker: str = "analyst-queries") -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split(f"<!-- {marker} -->")[1].split(f"<!-- /{marker} -->")[0]
    sql = block.split("```sql")[1].split("```")[0]
    lines = [line for line in sql.splitlines() if not line.strip().startswith("--")]
    return [q.strip() for q in "\n".join(lines).split(";") if q.strip()]


def _stats(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=2) as resp:
        return orjson.loads(resp.read())


def test_sigterm_drains_flushes_and_exits_zero(broker, tmp_path):
    from mailflow.broker import free_port

    port = free_port()
    env = {**os.environ, "MAILFLOW_KAFKA_BROKERS": broker.bootstrap,
           "MAILFLOW_DATA_DIR": str(tmp_path), "MAILFLOW_ADMIN_PORT": str(port),
           "MAILFLOW_LOG_FORMAT": "json",
           # a long batch age: rows still buffered at SIGTERM must be flushed, not lost
           "MAILFLOW_BATCH_MS": "60000"}
    job = subprocess.Popen([sys.executable, "-m", "mailflow", "run", "--dev"], cwd=ROOT,
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        producer = Producer({"bootstrap.servers": broker.bootstrap})
        events = list(TrafficGenerator(seed=3, start=time.time() - 600).events(200, 30))
        for ev in events:
            producer.produce(ev.topic, ev.value, ev.key)
        assert producer.flush(30) == 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                stats = _stats(port)
                # parsed, and through the (later) analytics step: deliveries await labels
                if stats["events_total"] == len(events) and stats["pending_labels"] > 0:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        assert _stats(port)["rows_written"].get("mailflow.events", 0) < len(events)

        # what monitoring scrapes
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
        for series in ("mailflow_events_total", "mailflow_dead_letters_total",
                       "mailflow_consumer_lag", "mailflow_input_messages_total",
                       "mailflow_input_batches_total", "mailflow_inserts_total",
                       "mailflow_insert_seconds_total", "mailflow_decisions_total",
                       "mailflow_model_update_seconds_total", "mailflow_model_updates_total",
                       "mailflow_pending_labels", "mailflow_gate_held",
                       "mailflow_late_events_total", "mailflow_up"):
            assert f"# TYPE {series} " in metrics, series
        assert 'mailflow_events_total{type="delivered"}' in metrics
        assert "mailflow_pending_labels 0" not in metrics  # deliveries await their labels
        for probe in ("healthz", "readyz"):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/{probe}") as resp:
                assert resp.status == 200
        sent = time.monotonic()
        job.send_signal(signal.SIGTERM)
        assert job.wait(timeout=20) == 0
        assert time.monotonic() - sent < 20
        # structured logs: one JSON object per line, with a level
        lines = [orjson.loads(line) for line in job.stdout.read().splitlines()
                 if line.startswith(b"{")]
        assert any(entry["level"] == "info" and "draining" in entry["msg"] for entry in lines)
        # the flow hands the job's counters to its sinks: every stored row is counted
        assert any(f"'mailflow.events': {len(events)}" in entry["msg"]
                   for entry in lines if entry["msg"].startswith("job done")), lines[-3:]
    finally:
        if job.poll() is None:
            job.kill()
    total = query_store(tmp_path, "SELECT count() FROM mailflow.events")[0][0]
    assert total == len(events)
