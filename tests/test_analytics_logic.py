"""flows/pipeline.py AnalyticsLogic: its snapshot resumes exactly, and costs nothing when
recovery is off."""

from __future__ import annotations

from flows.pipeline import AnalyticsLogic, BatchParser
from flows.sources import RawMessage
from mailflow.config import load_settings
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


def test_resuming_from_a_snapshot_continues_exactly():
    items = ordered_items()
    half = len(items) // 2
    straight = AnalyticsLogic(None, SETTINGS)
    expected = straight.on_batch([items[:half]])[0] + straight.on_batch([items[half:]])[0]
    first = AnalyticsLogic(None, SETTINGS)
    got = first.on_batch([items[:half]])[0]
    resumed = AnalyticsLogic(first.snapshot(), SETTINGS)
    got += resumed.on_batch([items[half:]])[0]
    assert got == expected and len(got) > 5


def test_no_snapshot_is_built_without_recovery():
    logic = AnalyticsLogic(None, SETTINGS, snapshots=False)
    logic.on_batch([ordered_items()[:500]])
    assert logic.snapshot() is None
