"""Retention TTLs on the fact tables, applied from the settings on real chDB."""

from __future__ import annotations

import pytest

from flows.settings import ConfigError, load_settings
from sinks.clickhouse import RETENTION, ClickHouseStore

DAY_MS = 86_400_000


@pytest.fixture
def store(tmp_path):
    store = ClickHouseStore(f"chdb://{tmp_path / 'ch'}")
    store.migrate()
    yield store
    store.close()


def create(store: ClickHouseStore, table: str) -> str:
    return store.query(f"SHOW CREATE TABLE mailflow.{table}")[1][0][0]


def test_ttls_follow_the_settings_and_an_unchanged_one_is_left_alone(store):
    assert all("TTL" not in create(store, t) for t in RETENTION)  # default: keep forever
    settings = load_settings(overrides={"events_ttl_days": 400, "decisions_ttl_days": 30},
                             environ={})
    changed = store.apply_retention(settings.retention_days())
    assert sorted(changed) == ["attribution", "events", "replies", "reply_feedback", "scores",
                              "throttle_decisions"]
    assert "TTL toDateTime(ts) + toIntervalDay(400)" in create(store, "events")
    assert "TTL toDateTime(event_ts) + toIntervalDay(30)" in create(store, "throttle_decisions")
    assert "TTL" not in create(store, "metrics_1m")
    assert "TTL" not in create(store, "suppressions")  # an opt-out never expires
    assert store.apply_retention(settings.retention_days()) == []

    changed = store.apply_retention({"events_ttl_days": 40, "metrics_ttl_days": 90})
    assert "TTL toDateTime(ts) + toIntervalDay(40)" in create(store, "events")
    assert "TTL toDateTime(minute) + toIntervalDay(90)" in create(store, "metrics_1m")
    assert "TTL" not in create(store, "throttle_decisions")  # back to 0: removed
    assert {"events", "metrics_1m", "throttle_decisions"} <= set(changed)


def test_rows_older_than_the_ttl_are_dropped(store):
    store.apply_retention({"events_ttl_days": 30})
    now_ms = int(store.query("SELECT toUnixTimestamp64Milli(now64(3))")[1][0][0])
    columns = ("event_id", "ts", "type", "recipient_hash")
    store.insert("mailflow.events", [("old", now_ms - 31 * DAY_MS, "open", "h1"),
                                     ("new", now_ms - 29 * DAY_MS, "open", "h2")], columns)
    store.query("OPTIMIZE TABLE mailflow.events FINAL")
    assert store.query("SELECT event_id FROM mailflow.events")[1] == [("new",)]


def test_a_negative_ttl_is_refused():
    with pytest.raises(ConfigError, match="events_ttl_days"):
        load_settings(overrides={"events_ttl_days": -1}, environ={})
