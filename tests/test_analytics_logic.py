"""flows/pipeline.py AnalyticsLogic: its snapshot resumes exactly, and costs nothing when
recovery is off."""

from __future__ import annotations

from flows.pipeline import AnalyticsLogic, BatchParser
from flows.settings import load_settings
from flows.sources import RawMessage
from mailflow.generator import TrafficGenerator
from schemas.hashing import DEV_HASH_KEY, RecipientHasher

START = 1_795_000_000.0
SETTINGS = load_settings(environ={"MAILFLOW_KAFKA_BROKERS": "127.0.0.1:9",
                                  "MAILFLOW_LABEL_WINDOW_S": "120"})


def ordered_items() -> list:
    raw = [RawMessage(ev.value, ev.topic, 0, i, "")
           for i, ev in enumerate(TrafficGenerator(seed=2, start=START).events(40.0, 300))]
    parser = BatchParser(RecipientHasher(DEV_HASH_KEY))
    parser.parser.now = lambda: START + 3600
    parsed = parser(raw)[0]
    return sorted(parsed.events, key=lambda item: item[0].ts_ms)


def drained(logic: AnalyticsLogic, items: list) -> list:
    """Outputs of one batch and of every slice after it, in order."""
    out = logic.on_batch([items])[0]
    while logic.notify_at() is not None:
        out += logic.on_notify()[0]
    return out


def rows_by_table(outputs: list) -> dict:
    """Rows per table and messages per topic (the order across topics is free)."""
    tables: dict = {}
    for table, rows in outputs:
        for row in rows:
            tables.setdefault(("kafka", row.topic) if table == "kafka" else table, []).append(row)
    return tables


def test_resuming_from_a_snapshot_continues_exactly():
    items = ordered_items()
    half = len(items) // 2
    straight = AnalyticsLogic(None, SETTINGS)
    expected = drained(straight, items[:half]) + drained(straight, items[half:])
    first = AnalyticsLogic(None, SETTINGS)
    first.SLICE_S = 0.0  # one chunk per call: the snapshot holds queued events too
    got = first.on_batch([items[:half]])[0]
    assert first.queued
    resumed = AnalyticsLogic(first.snapshot(), SETTINGS)
    got += drained(resumed, items[half:])
    assert rows_by_table(got) == rows_by_table(expected) and len(expected) > 5


def test_work_is_sliced_and_the_result_does_not_depend_on_the_slices():
    items = ordered_items()
    whole = AnalyticsLogic(None, SETTINGS)
    whole.SLICE_S = 60.0
    expected = whole.on_batch([items])[0]
    assert whole.notify_at() is None  # all done in one call
    sliced = AnalyticsLogic(None, SETTINGS)
    sliced.SLICE_S = 0.0
    first = sliced.on_batch([items])[0]
    assert len(sliced.queued) == len(items) - sliced.CHUNK and sliced.notify_at() is not None
    assert rows_by_table(first + drained(sliced, [])) == rows_by_table(expected)


def test_a_long_queue_is_worked_off_at_once():
    items = ordered_items()
    logic = AnalyticsLogic(None, SETTINGS)
    logic.SLICE_S, logic.MAX_QUEUED = 0.0, 1000
    logic.on_batch([items])
    assert len(logic.queued) <= 1000


def test_no_snapshot_is_built_without_recovery():
    logic = AnalyticsLogic(None, SETTINGS, snapshots=False)
    logic.on_batch([ordered_items()[:500]])
    assert logic.snapshot() is None
