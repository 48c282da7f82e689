"""sinks/clickhouse.py: JSON blocks store exactly what the Native format stored; the
dataflow's sink writes off the dataflow's thread, every epoch's rows are stored
before its snapshot counts, and a failed insert fails the job."""

from __future__ import annotations

import datetime
import math
import random
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource, run_main

from flows.settings import load_settings
from flows.sources import RawMessage
from flows.stats import JobStats
from mailflow.generator import Incident, TrafficGenerator
from schemas.rows import TABLE_COLUMNS
from sinks.clickhouse import ClickHouseSink, ClickHouseStore, StoreError, close_stores, store_for
from tests.conftest import ROOT
from tests.test_shards import in_memory

pytestmark = pytest.mark.integration

START = 1_795_000_000.0
START_MS = int(START * 1000)


@pytest.fixture(scope="module")
def dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One migrated chDB store for the module (chDB: one store per process at a time)."""
    path = f"chdb://{tmp_path_factory.mktemp('chdb') / 'clickhouse'}"
    store_for(path).migrate()
    store_for(path).client.command("CREATE DATABASE roundtrip")
    yield path
    close_stores()


# -- JSON blocks store exactly what the Native format stored ----------------------------------

STRINGS = ("", "plain", 'quote " backslash \\ slash /', "line\nbreak\ttab\rreturn",
           "é ü ß 中文 𝄞 🚀", "\u2028\u2029\x00\x01\x1f\x7f", "],[", "null", '{"a": [1, 2.5]}',
           "x" * 3000)


def finite_double(rng: random.Random) -> float:
    """Any finite double: every exponent, every mantissa."""
    while True:
        value = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
        if math.isfinite(value):
            return value


def sample(column_type: str, i: int, rng: random.Random) -> Any:
    """Row i's value of a column type, as the job's rows carry it (timestamps as integers)."""
    if column_type.startswith("LowCardinality("):
        return sample(column_type[len("LowCardinality("):-1], i, rng)
    if column_type.startswith("Nullable("):
        return None if i % 3 == 0 else sample(column_type[len("Nullable("):-1], i, rng)
    if column_type.startswith("Array("):
        return [sample(column_type[len("Array("):-1], i + k, rng) for k in range(i % 4)]
    if column_type.startswith("DateTime64(3,"):
        return START_MS + 1_001 * i + 123
    if column_type.startswith("DateTime("):
        return int(START) + 60 * i
    if column_type.startswith("UInt"):
        top = 2 ** int(column_type[len("UInt"):]) - 1
        return (0, 1, top, rng.randrange(top))[i % 4]
    if column_type == "Float64":
        return (0.0, -0.0, 0.1 + 0.2, 5e-324, 1.7976931348623157e308, rng.random(),
                rng.uniform(-1e6, 1e6), finite_double(rng))[i % 8]
    if column_type == "Float32":
        return (0.0, -0.0, 0.5, rng.random(), rng.random() * 1000)[i % 5]
    if column_type == "Bool":
        return i % 2 == 0
    if column_type == "Date":
        return datetime.date(1970, 1, 1) + datetime.timedelta(days=(0, 1, 20_424, 49_000)[i % 4])
    if column_type == "String":
        return f"{STRINGS[i % len(STRINGS)]}#{i}"
    raise AssertionError(f"no sample values for {column_type}: add them to this test")


def sample_rows(store: ClickHouseStore, table: str, n: int = 40) -> list[tuple]:
    database, name = table.split(".")
    types = dict(store.query(f"SELECT name, type FROM system.columns "
                             f"WHERE database = '{database}' AND table = '{name}'")[1])
    rng = random.Random(table)
    return [tuple(sample(types[c], i, rng) for c in TABLE_COLUMNS[table]) for i in range(n)]


@pytest.fixture(scope="module")
def pipeline_rows() -> dict[str, list[tuple]]:
    """Every table's rows as the job builds them, from generated traffic with an incident."""
    generator = TrafficGenerator(seed=5, start=START,
                                 incident=Incident("news.acme.example", "gmail.com"))
    raw = [RawMessage(ev.value, ev.topic, 0, i, "")
           for i, ev in enumerate(generator.events(50.0, 400))]
    settings = load_settings(environ={"MAILFLOW_KAFKA_BROKERS": "127.0.0.1:9",
                                      "MAILFLOW_LABEL_WINDOW_S": "120", "MAILFLOW_SHARDS": "4"})
    return in_memory(raw, settings, batch=1000)  # the whole dataflow, in memory


def exact(row: tuple) -> tuple:
    """Floats by their bits: 0.0 == -0.0 in Python, not in storage."""
    return tuple(v.hex() if isinstance(v, float) else v for v in row)


def stored_both_ways(store: ClickHouseStore, table: str, rows: list[tuple],
                     copy: str) -> tuple[list[tuple], list[tuple]]:
    """What a Native insert (the sink's format until now) and a JSON block insert of the
    same rows leave in two copies of `table` (plain MergeTree: no row folded away)."""
    columns = TABLE_COLUMNS[table]
    native, json = f"roundtrip.{copy}_native", f"roundtrip.{copy}_json"
    for name in (native, json):
        store.client.command(f"CREATE TABLE {name} AS {table} ENGINE = MergeTree ORDER BY ()")
    store.client.insert(native, rows, column_names=list(columns))
    store.insert(json, rows, columns)
    select = ", ".join(f"`{c}`" for c in columns)
    native_rows, json_rows = (
        [exact(r) for r in store.query(f"SELECT {select} FROM {name} ORDER BY ALL")[1]]
        for name in (native, json))
    return native_rows, json_rows


@pytest.mark.parametrize("table", sorted(TABLE_COLUMNS))
def test_json_blocks_store_every_column_type_as_the_native_format(dsn, table):
    store = store_for(dsn)
    rows = sample_rows(store, table)
    native, json = stored_both_ways(store, table, rows, f"samples_{table.split('.')[1]}")
    assert len(native) == len(rows)
    assert json == native


#: Tables that need days of flow traffic before the job writes a row (cohorts close after
#: their window, alerts need closed cohorts), or a helpdesk's feedback the generator does not
#: write: their columns are checked with samples above.
NEEDS_DAYS = {"mailflow.cohort_outcomes", "mailflow.flow_alerts", "mailflow.forecast_quality",
              "mailflow.reply_feedback", "mailflow.lift", "mailflow.lift_segments"}


@pytest.mark.parametrize("table", sorted(set(TABLE_COLUMNS) - NEEDS_DAYS))
def test_json_blocks_store_the_jobs_rows_as_the_native_format(dsn, pipeline_rows, table):
    rows = pipeline_rows[table]
    assert rows, f"the generated traffic made no {table} rows"
    native, json = stored_both_ways(store_for(dsn), table, rows,
                                    f"pipeline_{table.split('.')[1]}")
    assert len(native) == len(rows)
    assert json == native


# -- the dataflow's sink ---------------------------------------------------------------------

MODEL_EVENTS = "mailflow.model_events"


def block(model: str, number: int, rows: int = 1) -> list[tuple]:
    """`rows` distinct `mailflow.model_events` rows tagged with a block number."""
    return [(START_MS + 1000 * number + i, model, "drift", f"block {number}") for i in range(rows)]


def details(store: ClickHouseStore, model: str) -> list[str]:
    return [r[0] for r in store.query(f"SELECT detail FROM {MODEL_EVENTS} "
                                      f"WHERE model = '{model}' ORDER BY ts")[1]]


def test_the_sink_writes_every_table_it_is_given_and_drains_when_the_input_ends(dsn):
    store = store_for(dsn)
    items = [(MODEL_EVENTS, block("dataflow", b, rows=3)) for b in range(5)]
    items.append(("mailflow.model_metrics",
                  [("dataflow", int(START), 10, 10, 0.5, 0.7, 0.1, 0.02)]))
    counts = JobStats()  # the sink counts into whatever it is given (the job: its STATS)
    flow = Dataflow("clickhouse_sink")
    op.output("clickhouse_out", op.input("rows", flow, TestingSource(items)),
              ClickHouseSink(dsn, stats=counts))
    run_main(flow)
    assert details(store, "dataflow") == [f"block {b}" for b in range(5) for _ in range(3)]
    assert store.query("SELECT count() FROM mailflow.model_metrics "
                       "WHERE model = 'dataflow'")[1] == [(1,)]
    assert counts.rows_by_table[MODEL_EVENTS] == 15
    assert counts.inserts_by_table[MODEL_EVENTS] == 5


def test_snapshot_returns_once_every_queued_block_is_stored_in_order(dsn):
    store = store_for(dsn)
    store.client.command(f"SYSTEM STOP MERGES {MODEL_EVENTS}")  # one part per insert
    part = ClickHouseSink(dsn).build_part("clickhouse_out", MODEL_EVENTS, None)
    try:
        part.write_batch([block("order", b) for b in range(4)])
        part.write_batch([block("order", b) for b in range(4, 8)])
        part.snapshot()
        parts = store.query(f"SELECT detail, _part FROM {MODEL_EVENTS} WHERE model = 'order'")[1]
    finally:
        part.close()
        store.client.command(f"SYSTEM START MERGES {MODEL_EVENTS}")
    by_insert = sorted(parts, key=lambda row: int(row[1].split("_")[1]))  # all_<block>_...
    assert [detail for detail, _part in by_insert] == [f"block {b}" for b in range(8)]


def test_a_busy_store_holds_the_dataflow_back_instead_of_queueing_without_bound(dsn):
    store = store_for(dsn)
    part = ClickHouseSink(dsn, queued_blocks=1).build_part("clickhouse_out", MODEL_EVENTS, None)
    busy = threading.Thread(target=store.query, args=("SELECT sleepEachRow(0.5) FROM numbers(3)",))
    busy.start()
    time.sleep(0.2)  # the slow query holds the store
    # one block waits for the store, one in the queue: the third cannot be queued
    writing = threading.Thread(target=part.write_batch,
                               args=([block("pressure", b) for b in range(3)],))
    writing.start()
    writing.join(0.5)
    assert writing.is_alive()
    busy.join()
    writing.join(10)
    part.snapshot()
    part.close()
    assert details(store, "pressure") == ["block 0", "block 1", "block 2"]


def test_a_block_the_store_refuses_fails_the_job_instead_of_losing_rows(dsn):
    store = store_for(dsn)
    part = ClickHouseSink(dsn, retries=1).build_part("clickhouse_out", MODEL_EVENTS, None)
    part.write_batch([[("not a time", "refused", "drift", "")]])
    with pytest.raises(StoreError, match="insert into mailflow.model_events failed 2 times"):
        part.snapshot()
    with pytest.raises(StoreError):
        part.write_batch([block("refused", 1)])
    part.close()  # already raised: Bytewax closes while unwinding, a second raise aborts
    assert details(store, "refused") == []


FAILING_FLOW = """
import sys
from bytewax import operators as op
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource, run_main
from sinks.clickhouse import ClickHouseSink

flow = Dataflow("refused_insert")
rows = op.input("rows", flow, TestingSource([("mailflow.events", [("x",)])]))
op.output("clickhouse_out", rows, ClickHouseSink(sys.argv[1], retries=0))  # no database
run_main(flow)
"""


def test_a_failed_insert_stops_the_dataflow_with_its_error_instead_of_aborting(tmp_path):
    # Bytewax closes every sink while it unwinds from the first error: a second raise
    # from close() was a panic in a destructor, SIGABRT, and the error never printed.
    script = tmp_path / "flow.py"
    script.write_text(FAILING_FLOW)
    proc = subprocess.run([sys.executable, str(script), f"chdb://{tmp_path / 'ch'}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "insert into mailflow.events failed 1 times" in proc.stderr
